"""AVE head (`temporal_attn` + `CMBS`) against golden fixture 4 and structural checks."""
import json

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import golden_weights
from dgsct_jax.models import layers
from dgsct_jax.models.heads import ave as ave_head
from weight_conversion import archs
from weight_conversion import convert
from weight_conversion import engine
from weight_conversion import store
from weight_conversion.maps import ave as ave_map

# our official-layout output → fixture key
GOLDEN = {
    "video_query_output": "ta_video_query_output",
    "audio_query_output": "ta_audio_query_output",
    "audio_visual_gate": "ta_audio_visual_gate",
    "is_event_scores": "cmbs_is_event_scores",
    "event_scores": "cmbs_event_scores",
    "av_score": "cmbs_av_score",
}

TINY = dict(visual_dim=64, audio_dim=32, video_fc_dim=48, audio_fc_dim=16, d_model=32,
            feedforward_dim=64, num_classes=5)


@pytest.fixture(scope="module")
def golden_state(golden_dir):
  return golden_weights.golden_state_dict(golden_dir / "ave_head_manifest.json")


@pytest.fixture(scope="module")
def golden_io(golden_dir):
  with np.load(golden_dir / "ave_head_io.npz") as data:
    return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def converted_outputs(golden_state, golden_io, tmp_path_factory):
  """Real pipeline: rule weights → .npz → `convert_file` → store → materialize → arch.run.

  (`weight_conversion.run.run_directory` does the last three steps, but run.py and convert.py
  both define the absl flag --arch, so they cannot be imported into one process.)"""
  tmp = tmp_path_factory.mktemp("ave_head")
  np.savez(tmp / "src.npz", **golden_state)
  manifest = convert.convert_file("ave_head", tmp / "src.npz", tmp / "converted")
  inputs = {"visual": golden_io["input_vis_f16"].astype(np.float32),
            "audio": golden_io["input_audio_f16"].astype(np.float32)}
  values, stored = store.load(tmp / "converted")
  arch = archs.get(stored["arch"])
  model = archs.materialize(arch, stored["model_config"], values)
  return arch.run(model, inputs), manifest


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_parity(converted_outputs, golden_io, name):
  outputs, _ = converted_outputs
  ref = golden_io[GOLDEN[name]]
  assert outputs[name].shape == ref.shape
  rel = np.abs(outputs[name] - ref).max() / np.abs(ref).max()
  assert rel <= 1e-4, f"{name}: relative error {rel:.2e}"


def test_conversion_uses_every_key(converted_outputs, golden_state):
  _, manifest = converted_outputs
  assert len(manifest["mapping"]) == len(golden_state) and not manifest["ignored"]
  targets = {m["target"] for m in manifest["mapping"]}
  assert "temporal_attn.audio_visual_rnn_layer.visual_rnn.weight_hh_l0_reverse" in targets
  assert "CMBS.localize_module.event_classifier.kernel" in targets


def test_dead_parameters_can_be_left_out(golden_state):
  model = nnx.eval_shape(lambda: ave_head.AVEHead(keep_dead_params=False, rngs=nnx.Rngs(0)))
  result = engine.convert(golden_state, model,
                          ave_map.rules(list(golden_state), keep_dead_params=False))
  reasons = dict(result.ignored)
  assert len(reasons) == 80  # 2×12 templates-enc, 2×16 templates-dec, 2×4 self_attn, 2×6 Inter, 4 norms
  assert "never called" in reasons["temporal_attn.audio_decoder.decoder.layers.0.self_attn.in_proj_bias"]
  assert "discards" in reasons["CMBS.AVInter.norm1.weight"]


def test_prefixed_rules_for_the_full_model(golden_state):
  """The head rules with a source prefix and a target prefix, as the full converter uses them."""

  class Outer(nnx.Module):

    def __init__(self):
      self.head = ave_head.AVEHead(rngs=nnx.Rngs(0))

  source = {f"module.{k}": v for k, v in golden_state.items()}
  result = engine.convert(source, nnx.eval_shape(Outer),
                          ave_map.rules(list(source), source_prefix="module.",
                                             target_prefix="head."))
  np.testing.assert_array_equal(result.values["head.CMBS.audio_cas.kernel"],
                                golden_state["CMBS.audio_cas.weight"].T)


@pytest.fixture(scope="module")
def tiny():
  rng = np.random.default_rng(0)
  v = jnp.asarray(rng.standard_normal((3, 10, 64)), jnp.float32)
  a = jnp.asarray(rng.standard_normal((3, 10, 32)), jnp.float32)
  return ave_head.AVEHead(**TINY, rngs=nnx.Rngs(0)), v, a


@nnx.jit(static_argnames="deterministic")
def apply(model, v, a, rngs=None, deterministic=True):
  return model(v, a, deterministic=deterministic, rngs=rngs)


def test_all_parameters_trainable(tiny):
  kinds = {type(v) for _, v in nnx.state(tiny[0]).flat_state()}
  assert kinds == {layers.Trainable}


def test_tiny_config_shapes_and_layout(tiny):
  model, v, a = tiny
  out = apply(model, v, a)
  assert out["is_event_scores"].shape == (3, 10) and out["audio_visual_gate"].shape == (3, 10)
  assert out["event_scores"].shape == (3, 5) and out["av_score"].shape == (3, 5)
  official = ave_head.to_official_layout(out)
  assert official["is_event_scores"].shape == (10, 3, 1)
  np.testing.assert_array_equal(official["audio_visual_gate"][4, 2, 0], out["audio_visual_gate"][2, 4])
  # Videos do not interact: permuting the batch permutes the outputs.
  flipped = apply(model, v[::-1], a[::-1])
  for name in ("event_scores", "is_event_scores", "audio_query_output"):
    np.testing.assert_allclose(flipped[name][::-1], out[name], rtol=1e-5, atol=1e-6)


def test_av_score_is_top4_mean_of_cas(tiny):
  model, v, a = tiny
  out = apply(model, v, a)
  cmbs = model.CMBS

  def top4(x):  # (B, T, K) → (B, K) with a numpy sort
    return np.sort(np.asarray(x), axis=1)[:, ::-1][:, :4].mean(axis=1)

  want = (top4(cmbs.video_cas(out["video_query_output"]))
          + top4(cmbs.audio_cas(out["audio_query_output"]))) / 2
  np.testing.assert_allclose(out["av_score"], want, rtol=1e-5, atol=1e-6)


def test_dropout_only_when_training(tiny):
  model, v, a = tiny
  ev = apply(model, v, a)["event_scores"]
  tr1 = apply(model, v, a, nnx.Rngs(dropout=3), deterministic=False)["event_scores"]
  tr2 = apply(model, v, a, nnx.Rngs(dropout=4), deterministic=False)["event_scores"]
  assert not np.allclose(tr1, ev) and not np.allclose(tr1, tr2)


def test_gradients_reach_live_params_only(tiny):
  model, v, a = tiny

  def loss(m):
    out = m(v, a)
    return out["event_scores"].sum() + out["audio_visual_gate"].sum()

  grads = nnx.jit(nnx.grad(loss))(model)
  flat = {".".join(map(str, p)): np.abs(np.asarray(g.get_value())).max() for p, g in grads.flat_state()}
  assert flat["temporal_attn.audio_visual_rnn_layer.visual_rnn.weight_hh_l0_reverse"] > 0
  assert flat["temporal_attn.audio_decoder.decoder.layers.0.multihead_attn.in_proj_weight"] > 0
  assert flat["CMBS.AVInter.video_multihead.in_proj_weight"] == 0
  assert flat["temporal_attn.video_encoder.encoder_layer.linear1.kernel"] == 0
  assert flat["temporal_attn.video_decoder.decoder.layers.0.self_attn.in_proj_weight"] == 0


def test_arch_registered_and_checks_inputs(tiny):
  arch = archs.get("ave_head")
  with pytest.raises(ValueError, match="the inputs need 'audio'"):
    arch.run(tiny[0], {"visual": np.zeros((1, 10, 64), np.float32)})
  with pytest.raises(ValueError, match="equal B, T"):
    arch.run(tiny[0], {"visual": np.zeros((1, 10, 64), np.float32),
                       "audio": np.zeros((2, 10, 32), np.float32)})


def test_full_model_outputs_from_pooled_features(golden_dir, golden_state, tmp_path):
  """Fixture 1: the head on the hooked `pooled_*` inputs gives the full model's outputs, with
  the `temporal_attn.*`/`CMBS.*` weights of the full manifest (equal to fixture 4's)."""
  manifest = json.loads((golden_dir / "ave_full_manifest.json").read_text())
  head_keys = {k: v for k, v in manifest["keys"].items() if k.startswith(("temporal_attn.", "CMBS."))}
  assert sorted(head_keys) == sorted(golden_state)
  (tmp_path / "head.json").write_text(json.dumps({"keys": head_keys}))
  state = golden_weights.golden_state_dict(tmp_path / "head.json")
  model = nnx.eval_shape(lambda: ave_head.AVEHead(rngs=nnx.Rngs(0)))
  values = engine.convert(state, model, ave_map.rules(list(state))).values
  model = archs.materialize(archs.get("ave_head"), {}, values)
  with np.load(golden_dir / "ave_full_io.npz") as io:
    out = ave_map.run_head(model, {"visual": io["pooled_vis"], "audio": io["pooled_audio"]})
    for name in ("is_event_scores", "event_scores", "audio_visual_gate", "av_score"):
      ref = io[f"out_{name}"]
      rel = np.abs(out[name] - ref).max() / np.abs(ref).max()
      assert rel <= 1e-4, f"{name}: relative error {rel:.2e}"
