"""The AVQA head (AVST at DG-SCT's width) against the golden `avqa_head` fixture, and its
behaviour in training (dropout) and conversion (dead weights)."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import golden_f64
import golden_weights
from dgsct_jax.models import layers
from dgsct_jax.models import presets
from dgsct_jax.models.heads import avqa as avqa_head
from weight_conversion import archs
from weight_conversion import convert
from weight_conversion import engine
from weight_conversion import store
from weight_conversion.maps import avqa as avqa_map

INTERMEDIATES = ("qst_feature", "audio_feat", "grounding_posi", "grounding_nega",
                 "visual_feat_grd_posi", "visual_feat_att", "audio_feat_att", "fused")


@pytest.fixture(scope="module")
def golden_state(golden_dir):
  return golden_weights.golden_state_dict(golden_dir / "avqa_head_manifest.json")


@pytest.fixture(scope="module")
def golden_io(golden_dir):
  with np.load(golden_dir / "avqa_head_io.npz") as data:
    return {k: data[k] for k in data.files}


def _inputs(io):
  return {"posi_map": io["input_posi_map_f16"].astype(np.float32),
          "nega_map": io["input_nega_map_f16"].astype(np.float32),
          "audio": io["input_audio_f16"].astype(np.float32),
          "question": io["input_question"]}


@pytest.fixture(scope="module")
def converted(golden_state, golden_io, tmp_path_factory):
  """Rule weights → .npz → `convert_file` → store → materialize → arch.run."""
  tmp = tmp_path_factory.mktemp("avqa_head")
  np.savez(tmp / "src.npz", **golden_state)
  manifest = convert.convert_file("avqa_head", tmp / "src.npz", tmp / "converted")
  values, stored = store.load(tmp / "converted")
  model = archs.materialize(archs.get(stored["arch"]), stored["model_config"], values)
  return model, archs.get("avqa_head").run(model, _inputs(golden_io)), manifest


@pytest.mark.parametrize("name", avqa_map.OUTPUTS)
def test_golden_parity(converted, golden_io, name):
  _, outputs, _ = converted
  ref = golden_io[name]
  assert outputs[name].shape == ref.shape
  assert golden_weights.max_rel(outputs[name], ref) <= 1e-4
  assert golden_weights.max_rel(outputs[name], golden_io[name.replace("out_", "out64_")]) <= 1e-4


def test_golden_intermediates(converted, golden_io):
  model, _, _ = converted
  x = {k: jnp.asarray(v) for k, v in _inputs(golden_io).items()}
  per_video = lambda a: a.reshape(2, 10, *a.shape[1:])
  inter = model(per_video(x["posi_map"]), per_video(x["nega_map"]), per_video(x["audio"]),
                x["question"], capture=True)["inter"]
  for name in INTERMEDIATES:
    assert inter[name].shape == golden_io[f"inter_{name}"].shape, name
    assert golden_weights.max_rel(inter[name], golden_io[f"inter_{name}"]) <= 1e-4, name


def test_float64_equals_the_official_float64_run(golden_dir, golden_io, tmp_path):
  """In float64 (tests/golden_f64.py, a JAX_ENABLE_X64 subprocess) rounding noise is ~1e-16:
  a wrong formula, order of operations or constant errs by ≥ 1e-7 here."""
  ours = golden_f64.run_subprocess(golden_dir, "avqa_head", tmp_path / "out.npz", timeout=600)
  for name in avqa_map.OUTPUTS:
    assert ours[name].dtype == np.float64
    ref = golden_io[name.replace("out_", "out64_")]  # match logits: (B·T, 2)
    assert golden_weights.max_rel(ours[name].reshape(ref.shape), ref) <= 1e-10, name


def test_conversion_uses_every_key(converted, golden_state):
  _, _, manifest = converted
  assert len(manifest["mapping"]) == len(golden_state) and not manifest["ignored"]
  targets = {m["target"] for m in manifest["mapping"]}
  assert "question_encoder.word2vec.weight" in targets
  assert "question_encoder.lstm.weight_hh_l0" in targets


def test_dead_weights_match_the_fixture(golden_dir, golden_state):
  """The fixture marks which head keys influence the outputs; ours get gradients exactly there."""
  manifest = json.loads((golden_dir / "avqa_head_manifest.json").read_text())
  model = nnx.eval_shape(lambda: avqa_head.AVQAHead(rngs=nnx.Rngs(0)))
  result = engine.convert(golden_state, model, avqa_map.rules(list(golden_state)))
  model = archs.materialize(archs.get("avqa_head"), {}, result.values)
  rng = np.random.default_rng(0)
  maps = [jnp.asarray(rng.standard_normal((2, 10, 36, 1536)), jnp.float32) for _ in range(2)]
  audio = jnp.asarray(rng.standard_normal((2, 10, 768)), jnp.float32)
  question = jnp.asarray(rng.integers(0, 93, (2, 14)), jnp.int32)

  def loss(m):
    out = m(*maps, audio, question)
    return sum(jnp.sum(v) for v in out.values())

  grads = nnx.jit(nnx.grad(loss))(model)
  live = {".".join(map(str, p)): bool(np.abs(np.asarray(g.get_value())).max() > 0)
          for p, g in grads.flat_state()}
  source_of = {t: s for s, t, _ in result.mapping}
  assert len(live) == len(golden_state)
  for target, alive in live.items():
    assert alive == manifest["keys"][source_of[target]]["influences_outputs"], target


def test_dead_weights_can_be_left_out(golden_state):
  model = nnx.eval_shape(lambda: avqa_head.AVQAHead(keep_dead_params=False, rngs=nnx.Rngs(0)))
  result = engine.convert(golden_state, model,
                          avqa_map.rules(list(golden_state), keep_dead_params=False))
  assert sorted(dict(result.ignored)) == sorted(
      f"{m}.{p}" for m in ("fc_a1_pure", "fc_a2_pure", "norm3") for p in ("weight", "bias"))


@pytest.fixture(scope="module")
def tiny():
  head = dict(presets.HEAD_AVQA_TINY, num_classes=42)
  model = avqa_head.AVQAHead(**head, rngs=nnx.Rngs(0))
  rng = np.random.default_rng(1)
  d = head["visual_dim"]
  x = (jnp.asarray(rng.standard_normal((3, 10, 4, d)), jnp.float32),
       jnp.asarray(rng.standard_normal((3, 10, 4, d)), jnp.float32),
       jnp.asarray(rng.standard_normal((3, 10, head["audio_dim"])), jnp.float32),
       jnp.asarray(rng.integers(0, 93, (3, 14)), jnp.int32))
  return model, x


@nnx.jit(static_argnames="deterministic")
def apply(model, x, rngs=None, deterministic=True):
  return model(*x, deterministic=deterministic, rngs=rngs)


def test_all_parameters_trainable_and_torch_init(tiny):
  model, _ = tiny
  assert {type(v) for _, v in nnx.state(model).flat_state()} == {layers.Trainable}
  # nn.Embedding: N(0, 1); nn.MultiheadAttention: zero in_proj bias.
  np.testing.assert_allclose(np.std(model.question_encoder.word2vec.weight.get_value()), 1.0,
                             rtol=0.1)
  assert not np.any(model.attn_v.in_proj_bias.get_value())


def test_dropout_only_in_training(tiny):
  """The attention and MLP dropouts change the answer logits in training, not the match
  logits (no dropout on that path); evaluation is deterministic."""
  model, x = tiny
  evaluated = apply(model, x)
  assert np.array_equal(apply(model, x)["out_qa"], evaluated["out_qa"])
  trained = apply(model, x, nnx.Rngs(dropout=0), deterministic=False)
  assert not np.allclose(trained["out_qa"], evaluated["out_qa"], atol=1e-6)
  for key in ("out_match_posi", "out_match_nega"):
    np.testing.assert_allclose(trained[key], evaluated[key], rtol=1e-6, atol=1e-6)
    assert trained[key].shape == (3, 10, 2)


def test_padding_is_read_unless_packed(tiny):
  """Faithful: trailing <pad> tokens change the question vector, as in the reference;
  `pack_questions` stops at the last real token."""
  model, _ = tiny
  question = jnp.asarray([[5, 6, 7] + [0] * 11], jnp.int32)
  shorter = question[:, :10]
  assert not np.allclose(model.question_encoder(question), model.question_encoder(shorter),
                         atol=1e-6)
  packed = avqa_head.QstEncoder(93, 16, 16, 16, pack=True, rngs=nnx.Rngs(0))
  np.testing.assert_allclose(packed(question), packed(question[:, :3]), rtol=1e-6)
