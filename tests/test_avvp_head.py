"""The AVVP head (MGN + temporal gate) against the golden `avvp_head` fixture, and its
behaviour in training (Gumbel assignment, drop path, dead weights)."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import golden_weights
import golden_f64
from dgsct_jax.models import layers
from dgsct_jax.models import presets
from dgsct_jax.models.heads import avvp as avvp_head
from dgsct_jax.models.heads import grouping
from weight_conversion import archs
from weight_conversion import convert
from weight_conversion import engine
from weight_conversion import store
from weight_conversion.maps import avvp as avvp_map

INTERMEDIATES = ("x1_0", "vid_s_in", "ta_video_out", "x2_0", "x2_visual_groups",
                 "x1_audio_groups", "x_av_groups", "attn_audio_soft", "attn_visual_soft")


@pytest.fixture(scope="module")
def golden_state(golden_dir):
  return golden_weights.golden_state_dict(golden_dir / "avvp_head_manifest.json")


@pytest.fixture(scope="module")
def golden_io(golden_dir):
  with np.load(golden_dir / "avvp_head_io.npz") as data:
    return {k: data[k] for k in data.files}


def _inputs(io):
  return {"visual": io["input_vis_f16"].astype(np.float32),
          "audio": io["input_audio_f16"].astype(np.float32),
          "video_st": io["input_video_st_f16"].astype(np.float32)}


@pytest.fixture(scope="module")
def converted(golden_state, golden_io, tmp_path_factory):
  """Rule weights → .npz → `convert_file` → store → materialize → arch.run."""
  tmp = tmp_path_factory.mktemp("avvp_head")
  np.savez(tmp / "src.npz", **golden_state)
  manifest = convert.convert_file("avvp_head", tmp / "src.npz", tmp / "converted")
  values, stored = store.load(tmp / "converted")
  model = archs.materialize(archs.get(stored["arch"]), stored["model_config"], values)
  return model, archs.get("avvp_head").run(model, _inputs(golden_io)), manifest


@pytest.mark.parametrize("name", avvp_map.OUTPUTS)
def test_golden_parity(converted, golden_io, name):
  _, outputs, _ = converted
  ref = golden_io[f"out_{name}"]
  assert outputs[name].shape == ref.shape
  assert golden_weights.max_rel(outputs[name], ref) <= 1e-4
  assert golden_weights.max_rel(outputs[name], golden_io[f"out64_{name}"]) <= 1e-4


def test_golden_intermediates(converted, golden_io):
  model, _, _ = converted
  inputs = {k: jnp.asarray(v) for k, v in _inputs(golden_io).items()}
  inter = model(inputs["visual"], inputs["audio"], inputs["video_st"], capture=True)["inter"]
  for name in INTERMEDIATES:
    assert golden_weights.max_rel(inter[name], golden_io[f"inter_{name}"]) <= 1e-4, name


def test_float64_equals_the_official_float64_run(golden_dir, golden_io, tmp_path):
  """In float64 (tests/golden_f64.py, a JAX_ENABLE_X64 subprocess) rounding noise is ~1e-16:
  a wrong formula, order of operations or constant errs by ≥ 1e-7 here."""
  ours = golden_f64.run_subprocess(golden_dir, "avvp_head", tmp_path / "out.npz", timeout=600)
  for name in avvp_map.OUTPUTS:
    assert ours[name].dtype == np.float64
    assert golden_weights.max_rel(ours[name], golden_io[f"out64_{name}"]) <= 1e-10, name


def test_conversion_uses_every_key(converted, golden_state):
  _, _, manifest = converted
  assert len(manifest["mapping"]) == len(golden_state) and not manifest["ignored"]
  targets = {m["target"] for m in manifest["mapping"]}
  assert "audio_cug.han_encoder.assign.proj.kernel" in targets
  assert "temporal_attn.audio_visual_rnn_layer.visual_rnn.weight_hh_l0_reverse" in targets


def test_dead_weights_match_the_fixture(golden_dir, golden_state):
  """The fixture marks which head keys influence the outputs; ours get gradients exactly there."""
  manifest = json.loads((golden_dir / "avvp_head_manifest.json").read_text())
  model = nnx.eval_shape(lambda: avvp_head.MGNHead(rngs=nnx.Rngs(0)))
  result = engine.convert(golden_state, model, avvp_map.rules(list(golden_state)))
  model = archs.materialize(archs.get("avvp_head"), {}, result.values)
  rng = np.random.default_rng(0)
  x = [jnp.asarray(rng.standard_normal((2, 10, d)), jnp.float32) for d in (1536, 768, 512)]

  def loss(m):
    out = m(*x)
    return sum(jnp.sum(v) for v in out.values())

  grads = nnx.jit(nnx.grad(loss))(model)
  live = {".".join(map(str, p)): bool(np.abs(np.asarray(g.get_value())).max() > 0)
          for p, g in grads.flat_state()}
  source_of = {t: s for s, t, _ in result.mapping}
  for target, alive in live.items():
    assert alive == manifest["keys"][source_of[target]]["influences_outputs"], target


def test_dead_templates_can_be_left_out(golden_state):
  model = nnx.eval_shape(lambda: avvp_head.MGNHead(keep_dead_params=False, rngs=nnx.Rngs(0)))
  result = engine.convert(golden_state, model,
                          avvp_map.rules(list(golden_state), keep_dead_params=False))
  reasons = dict(result.ignored)
  assert len(reasons) == 2 * 12 and "never called" in next(iter(reasons.values()))


@pytest.fixture(scope="module")
def tiny():
  head = dict(presets.HEAD_AVVP_TINY, num_classes=6)
  model = avvp_head.MGNHead(**head, rngs=nnx.Rngs(0))
  rng = np.random.default_rng(1)
  x = [jnp.asarray(rng.standard_normal((3, 10, d)), jnp.float32)
       for d in (head["visual_dim"], head["audio_dim"], head["st_dim"])]
  return model, x


@nnx.jit(static_argnames="deterministic")
def apply(model, x, rngs=None, deterministic=True):
  return model(*x, deterministic=deterministic, rngs=rngs)


def test_all_parameters_trainable_and_mgn_init(tiny):
  model, _ = tiny
  assert {type(v) for _, v in nnx.state(model).flat_state()} == {layers.Trainable}
  # MGN's layers: trunc-normal(0.02) weights and zero biases; temporal_attn: PyTorch's init.
  np.testing.assert_allclose(np.std(model.audio_cug.blocks[0].mlp.fc1.kernel.get_value()), 0.02,
                             rtol=0.1)
  assert not np.any(model.fc_cls.bias.get_value())
  assert np.any(model.temporal_attn.audio_gated[0].bias.get_value())


def test_probabilities_and_frame_weights(tiny):
  model, x = tiny
  out = apply(model, x)
  assert out["aud_cls_prob"].shape == (6, 6) and out["a_frame_prob"].shape == (3, 10, 6)
  for name in ("global_prob", "a_prob", "v_prob"):
    assert 0 < float(out[name].min()) and float(out[name].max()) < 1
  # frame prob = prob × (1 + softmax over segments): the weights sum to T + 1 per class.
  ratio = out["a_frame_prob"] / out["a_prob"][:, None, :]
  np.testing.assert_allclose(ratio.sum(axis=1), 11.0, rtol=1e-5)
  assert float(ratio.min()) > 1 and float(ratio.max()) < 2
  # Videos do not interact in evaluation: permuting the batch permutes the outputs.
  flipped = apply(model, [v[::-1] for v in x])
  np.testing.assert_allclose(flipped["global_prob"][::-1], out["global_prob"], rtol=1e-5,
                             atol=1e-6)


def test_training_mode_is_stochastic(tiny):
  model, x = tiny
  ev = apply(model, x)["global_prob"]
  tr1 = apply(model, x, nnx.Rngs(dropout=3), deterministic=False)["global_prob"]
  tr2 = apply(model, x, nnx.Rngs(dropout=4), deterministic=False)["global_prob"]
  assert not np.allclose(tr1, ev) and not np.allclose(tr1, tr2)


def test_hard_assignment_is_one_hot_with_soft_gradient():
  logits = jnp.asarray(np.random.default_rng(0).standard_normal((2, 5, 7)), jnp.float32)
  hard = grouping.hard_softmax(logits, -2)
  np.testing.assert_array_equal(hard, jax.nn.one_hot(logits.argmax(-2), 5, axis=-2))
  weights = jnp.arange(70.0).reshape(2, 5, 7)
  np.testing.assert_allclose(
      jax.grad(lambda l: jnp.sum(grouping.hard_softmax(l, -2) * weights))(logits),
      jax.grad(lambda l: jnp.sum(jax.nn.softmax(l, -2) * weights))(logits), rtol=1e-6)


def test_gumbel_assignment_only_in_training():
  assign = grouping.AssignAttention(8, hard=True, gumbel=True, rngs=nnx.Rngs(0))
  logits = jnp.asarray(np.random.default_rng(0).standard_normal((64, 10, 10)), jnp.float32)
  ev = assign.assignment(logits, deterministic=True, rngs=None)
  np.testing.assert_array_equal(ev, jax.nn.one_hot(logits.argmax(-2), 10, axis=-2))
  tr = assign.assignment(logits, deterministic=False, rngs=nnx.Rngs(dropout=0))
  assert set(np.unique(np.round(np.asarray(tr), 6))) == {0.0, 1.0}
  changed = float(np.mean(np.asarray(tr).argmax(-2) != np.asarray(ev).argmax(-2)))
  assert 0.2 < changed < 0.9  # the noise moves many arg-maxes, not all


def test_arch_checks_inputs(tiny):
  model, _ = tiny
  arch = archs.get("avvp_head")
  with pytest.raises(ValueError, match="the inputs need 'video_st'"):
    arch.run(model, {"visual": np.zeros((1, 10, 256), np.float32),
                     "audio": np.zeros((1, 10, 128), np.float32)})
  with pytest.raises(ValueError, match="equal B, T"):
    arch.run(model, {"visual": np.zeros((1, 10, 256), np.float32),
                     "audio": np.zeros((2, 10, 128), np.float32),
                     "video_st": np.zeros((1, 10, 512), np.float32)})
