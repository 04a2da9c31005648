"""The AVS head (temporal gate, TPAVI, decoder) against the golden `avs_head` fixture
(S4, and MS3's γ = 0.1), its dead weights, and its behaviour in training."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import golden_weights
from dgsct_jax.models import layers
from dgsct_jax.models.heads import avs as avs_head
from weight_conversion import archs
from weight_conversion import convert
from weight_conversion import engine
from weight_conversion import store
from weight_conversion.maps import avs as avs_map

FULL_MAPS = ("ta_out_stage3", "ta_out_stage4", "dec_in_stage3", "dec_in_stage4")
SUMMARISED_MAPS = ("ta_out_stage1", "ta_out_stage2", "dec_in_stage1", "dec_in_stage2")
SMALL_MAPS = dict(feature_sizes=(8, 4, 2, 1))  # output 32²


def _rel(a, b):
  return float(np.abs(np.asarray(a, np.float64) - b).max() / np.abs(b).max())


@pytest.fixture(scope="module")
def golden_state(golden_dir):
  return golden_weights.golden_state_dict(golden_dir / "avs_head_manifest.json")


@pytest.fixture(scope="module")
def golden_io(golden_dir):
  with np.load(golden_dir / "avs_head_io.npz") as data:
    return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def manifest(golden_dir):
  return json.loads((golden_dir / "avs_head_manifest.json").read_text())


def _inputs(io):
  inputs = {s: io[f"input_{s}_f16"].astype(np.float32) for s in avs_map.STAGES}
  inputs["audio"] = io["input_audio_f16"].astype(np.float32)
  return inputs


@pytest.fixture(scope="module")
def converted(golden_state, golden_io, tmp_path_factory):
  """Rule weights → .npz → `convert_file` → store → materialize → arch.run."""
  tmp = tmp_path_factory.mktemp("avs_head")
  np.savez(tmp / "src.npz", **golden_state)
  conversion = convert.convert_file("avs_head", tmp / "src.npz", tmp / "converted")
  values, stored = store.load(tmp / "converted")
  model = archs.materialize(archs.get(stored["arch"]), stored["model_config"], values)
  return values, model, archs.get("avs_head").run(model, _inputs(golden_io)), conversion


@pytest.mark.parametrize("name", avs_map.OUTPUTS)
def test_golden_parity(converted, golden_io, name):
  _, _, outputs, _ = converted
  ref = golden_io[f"out_{name}"]
  assert outputs[name].shape == ref.shape
  assert _rel(outputs[name], ref) <= 1e-4
  assert _rel(outputs[name], golden_io[f"out64_{name}"]) <= 1e-4


def test_golden_intermediates(converted, golden_io):
  _, model, _, _ = converted
  inputs = _inputs(golden_io)
  stages = [jnp.asarray(inputs[s]) for s in avs_map.STAGES]
  out = nnx.jit(lambda m, s, a: m(s, a, capture=True))(model, stages, jnp.asarray(inputs["audio"]))
  inter = {k: np.asarray(v) for k, v in avs_head.to_official_layout(out["inter"]).items()}
  assert _rel(inter["ta_audio"], golden_io["out_ta_audio"]) <= 1e-4
  for name in FULL_MAPS:
    assert inter[name].shape == golden_io[f"out_{name}"].shape, name
    assert _rel(inter[name], golden_io[f"out_{name}"]) <= 1e-4, name
  for name in SUMMARISED_MAPS:
    ours, ref = inter[name], f"out_{name}__"
    assert ours.shape == tuple(golden_io[ref + "shape"]), name
    assert _rel(ours.reshape(-1)[:256], golden_io[ref + "first256"]) <= 1e-4, name
    assert _rel(ours.mean(axis=(2, 3)), golden_io[ref + "chanmean"]) <= 1e-4, name
    np.testing.assert_allclose(ours.std(dtype=np.float64), golden_io[ref + "std"], rtol=1e-5)
  # The maps the reference returns are the TPAVI outputs after the decoder's in-place ReLU.
  v_map = np.asarray(out["v_map_stage4"]).transpose(0, 3, 1, 2)
  np.testing.assert_array_equal(v_map, np.maximum(inter["dec_in_stage4"], 0))


def test_ms3_gamma(converted, golden_io):
  """MS3's head is S4's with γ = 0.1 (its training default)."""
  values, _, _, _ = converted
  arch = archs.get("avs_head")
  outputs = arch.run(archs.materialize(arch, {"gamma": 0.1}, values), _inputs(golden_io))
  for name in avs_map.OUTPUTS:
    assert _rel(outputs[name], golden_io[f"out_gamma0p1_{name}"]) <= 1e-4, name
  assert _rel(golden_io["out_gamma0p1_pred"], golden_io["out_pred"]) > 1e-3  # γ matters


def test_conversion_uses_every_key(converted, golden_state):
  _, _, _, conversion = converted
  ignored = {m["source"] for m in conversion["ignored"]}
  assert ignored == {f"tpavi_b{i}.W_z.1.num_batches_tracked" for i in range(1, 5)}
  assert len(conversion["mapping"]) + len(ignored) == len(golden_state)
  how = {m["target"]: m["transform"] for m in conversion["mapping"]}
  assert how["tpavi_b1.W_z.0.kernel"] == "conv1x1x1_to_linear"
  assert how["path4.resConfUnit1.conv1.kernel"] == "OIHW->HWIO"
  assert how["temporal_attn.audio_gated.3.0.kernel"] == "transpose"
  assert how["tpavi_b2.W_z.1.scale"] == how["tpavi_b2.W_z.1.mean"] == "identity"


@pytest.fixture(scope="module")
def small(converted):
  """The golden model with small maps (parameter shapes do not depend on them), B = 2."""
  values, _, _, _ = converted
  model = archs.materialize(archs.get("avs_head"), SMALL_MAPS, values)
  rng = np.random.default_rng(0)
  stages = [jnp.asarray(rng.standard_normal((10, n * n, d)), jnp.float32)
            for n, d in zip((4, 2, 2, 1), (192, 384, 768, 1536))]
  return model, stages, jnp.asarray(rng.standard_normal((2, 5, 768)), jnp.float32)


@nnx.jit(static_argnames="deterministic")
def apply(model, stages, audio, rngs=None, deterministic=True):
  return model(stages, audio, deterministic=deterministic, rngs=rngs)


def test_dead_weights_match_the_fixture(converted, small, manifest):
  """The fixture marks which head keys influence the outputs; ours get gradients exactly there."""
  _, _, _, conversion = converted
  model, stages, audio = small

  def loss(m):
    return sum(jnp.sum(v) for v in m(stages, audio).values())

  grads = nnx.jit(nnx.grad(loss))(model)
  live = {".".join(map(str, p)): bool(np.abs(np.asarray(g.get_value())).max() > 0)
          for p, g in grads.flat_state()}
  source_of = {m["target"]: m["source"] for m in conversion["mapping"]}
  influences = {k: info.get("influences_outputs") for k, info in manifest["keys"].items()}
  assert len(live) == sum(v is not None for v in influences.values())
  for target, alive in live.items():
    assert alive == influences[source_of[target]], target


def test_dead_params_can_be_left_out(golden_state, manifest):
  model = nnx.eval_shape(lambda: avs_head.AVSHead(keep_dead_params=False, rngs=nnx.Rngs(0)))
  result = engine.convert(golden_state, model,
                          avs_map.rules(list(golden_state), keep_dead_params=False))
  dead = {k for k, info in manifest["keys"].items() if info.get("influences_outputs") is False}
  reasons = dict(result.ignored)
  assert {k for k in reasons if not k.endswith("num_batches_tracked")} == dead
  assert "never called" in reasons["path4.resConfUnit1.conv2.bias"]
  assert "discards" in reasons["temporal_attn.audio_decoder.0.affine_matrix.weight"]


def test_full_checkpoint_keys_outside_the_head_are_ignored(golden_state):
  model = nnx.eval_shape(lambda: avs_head.AVSHead(rngs=nnx.Rngs(0)))
  extra = {"x1_linear.weight": np.zeros((64, 192), np.float32),
           "encoder_backbone.block1.0.norm1.weight": np.ones((64,), np.float32),
           "swin.norm.weight": np.ones((1536,), np.float32)}
  result = engine.convert(dict(golden_state, **extra), model,
                          archs.get("avs_head").rules(list(golden_state) + list(extra)))
  reasons = dict(result.ignored)
  assert "not called" in reasons["x1_linear.weight"]
  assert "PVT" in reasons["encoder_backbone.block1.0.norm1.weight"]
  assert "outside the AVS head" in reasons["swin.norm.weight"]


def test_dot_nonlocal_equals_the_explicit_product():
  """θ·(φᵀg)/N equals the reference's (θφᵀ/N)·g with φ broadcast over (H, W)."""
  rng = np.random.default_rng(0)
  b, t, h, w, c = 2, 3, 4, 5, 6
  theta, g = rng.standard_normal((2, b, t, h, w, c))
  phi = rng.standard_normal((b, t, c))
  n = t * h * w
  phi_n = np.broadcast_to(phi[:, :, None, None], (b, t, h, w, c)).reshape(b, n, c)
  f = theta.reshape(b, n, c) @ phi_n.transpose(0, 2, 1) / n          # (B, N, N)
  expected = (f @ g.reshape(b, n, c)).reshape(b, t, h, w, c)
  ours = avs_head.dot_nonlocal(*(jnp.asarray(x, jnp.float32) for x in (theta, phi, g)))
  np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_bilinear_upsampling():
  ramp = np.add.outer(np.arange(7.0), 10 * np.arange(7.0))
  up = avs_head.upsample2x(jnp.asarray(ramp, jnp.float32)[None, ..., None], align_corners=True)
  up = up[0, ..., 0]
  grid = np.linspace(0, 6, 14)
  np.testing.assert_allclose(up, np.add.outer(grid, 10 * grid), rtol=1e-6, atol=1e-5)
  x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 5, 3, 4)), jnp.float32)
  np.testing.assert_allclose(avs_head.upsample2x(x, align_corners=False),
                             jax.image.resize(x, (2, 10, 6, 4), "linear"), rtol=1e-6, atol=1e-6)


def test_shapes_and_trainable(small):
  model, stages, audio = small
  assert {type(v) for _, v in nnx.state(model, nnx.Param).flat_state()} == {layers.Trainable}
  out = apply(model, stages, audio)
  assert out["pred"].shape == (10, 32, 32, 1)
  assert out["a_fea_stage2"].shape == (2, 5, 256) and out["v_map_stage1"].shape == (10, 8, 8, 256)
  assert avs_head.to_official_layout(out)["pred"].shape == (10, 1, 32, 32)


def test_tpavi_batchnorm_starts_at_zero():
  """The reference zero-initialises W_z's BatchNorm weight: a fresh TPAVI is LayerNorm(x)."""
  tpavi = avs_head.TPAVIModule(16, audio_channels=8, rngs=nnx.Rngs(0))
  assert not np.any(tpavi.W_z[1].scale.get_value())
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((2, 5, 3, 3, 16)), jnp.float32)
  z, audio_temp = tpavi(x, jnp.asarray(rng.standard_normal((2, 5, 8)), jnp.float32))
  np.testing.assert_allclose(z, tpavi.norm_layer(x), rtol=1e-6, atol=1e-6)
  assert audio_temp.shape == (2, 5, 16)


def test_training_mode_is_stochastic_and_updates_bn(small):
  model, stages, audio = small
  model = nnx.clone(model)
  stats = lambda: np.asarray(model.tpavi_b1.W_z[1].mean.get_value()).copy()
  before = stats()
  ev = apply(model, stages, audio)["pred"]
  np.testing.assert_array_equal(stats(), before)
  tr1 = apply(model, stages, audio, nnx.Rngs(dropout=3), deterministic=False)["pred"]
  assert not np.array_equal(stats(), before)  # BatchNorm3d: batch statistics in training
  tr2 = apply(model, stages, audio, nnx.Rngs(dropout=4), deterministic=False)["pred"]
  assert not np.allclose(tr1, ev) and not np.allclose(tr1, tr2)


def test_arch_checks_inputs(small):
  model, stages, audio = small
  arch = archs.get("avs_head")
  inputs = {f"stage{i}": np.asarray(s) for i, s in enumerate(stages, start=1)}
  with pytest.raises(ValueError, match="the inputs need 'audio'"):
    arch.run(model, inputs)
  with pytest.raises(ValueError, match="B·T = 15 frames"):
    arch.run(model, dict(inputs, audio=np.zeros((3, 5, 768), np.float32)))
  with pytest.raises(ValueError, match="square grid"):
    arch.run(model, dict(inputs, stage1=np.zeros((10, 35, 192), np.float32),
                         audio=np.asarray(audio)))
