"""The DG-SCT adapter against the official `VisualAdapter` (golden fixture 2, `adapter_small`).

Weights are regenerated from the golden rule, converted with the DG-SCT adapter
rules, and both directions are run in eval and train mode (BatchNorm batch
statistics and running-stat updates). Also: layouts and initialisation of a
fresh adapter, and the ablation switches' parameter sets.
"""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from dgsct_jax.models import adapter as adapter_lib
from dgsct_jax.models import layers
from golden_weights import golden_state_dict
from weight_conversion import engine

NAMES = ("audio_adapter", "vis_adapter")


@pytest.fixture(scope="module")
def golden(golden_dir):
  manifest = json.loads((golden_dir / "adapter_small_manifest.json").read_text())
  state = golden_state_dict(golden_dir / "adapter_small_manifest.json")
  io = dict(np.load(golden_dir / "adapter_small_io.npz"))
  return manifest, state, io


def token_major(x):
  """Official (BT, C, N, 1) → ours (BT, N, C)."""
  return np.asarray(x, np.float32)[..., 0].transpose(0, 2, 1)


def build_converted(name, manifest, state):
  args = manifest["constructor_args"][name]
  model = adapter_lib.Adapter(
      tokens=args["conv_dim_out"], dim=args["output_dim"], guide_tokens=args["conv_dim_in"],
      guide_dim=args["linear_in"], use_gate=args["use_gate"],
      config=adapter_lib.AdapterConfig(reduction_factor=args["reduction_factor"],
                                       num_tokens=args["num_tk"]),
      rngs=nnx.Rngs(0))
  rules = engine.prefixed([engine.ignore(r"bn[12]\.num_batches_tracked", "BN counter"),
                              engine.IDENTITY], f"{name}.", "")
  rules.append(engine.ignore(r".*", "the other adapter of the fixture"))
  result = engine.convert(state, model, rules)
  return engine.assign(model, result.values)


def inputs(io, name):
  a, v = token_major(io["input_a_f16"]), token_major(io["input_v_f16"])
  return (a, v) if name == "audio_adapter" else (v, a)


def rel_err(ours, ref):
  ref = np.asarray(ref, np.float64)
  return float(np.abs(np.asarray(ours, np.float64) - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize("name", NAMES)
def test_eval_mode_matches_official(golden, name):
  manifest, state, io = golden
  model = build_converted(name, manifest, state)
  x, g = inputs(io, name)
  res, smap = model(jnp.asarray(x), jnp.asarray(g))
  assert res.shape == x.shape and smap.shape == x.shape[:2]
  assert rel_err(res, token_major(io[f"{name}__eval_res"])) < 1e-5
  assert rel_err(smap, io[f"{name}__eval_smap"][:, 0]) < 1e-5


@pytest.mark.parametrize("name", NAMES)
def test_train_mode_batch_statistics_and_running_stats(golden, name):
  manifest, state, io = golden
  model = build_converted(name, manifest, state)
  x, g = inputs(io, name)
  res, smap = model(jnp.asarray(x), jnp.asarray(g), deterministic=False)
  assert rel_err(res, token_major(io[f"{name}__train_res"])) < 1e-5
  assert rel_err(smap, io[f"{name}__train_smap"][:, 0]) < 1e-5
  assert not np.allclose(io[f"{name}__train_res"], io[f"{name}__eval_res"], atol=1e-3)
  for bn in ("bn1", "bn2"):
    module = getattr(model, bn)
    before = state[f"{name}.{bn}.running_var"]
    after = io[f"{name}__after_train_{bn}_running_var"]
    assert not np.allclose(before, after)
    np.testing.assert_allclose(module.mean.get_value(),
                               io[f"{name}__after_train_{bn}_running_mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(module.var.get_value(), after, rtol=1e-5, atol=1e-6)


def test_fresh_adapter_init_and_marking():
  model = adapter_lib.Adapter(tokens=12, dim=32, guide_tokens=20, guide_dim=16, rngs=nnx.Rngs(3))
  assert float(model.gate.get_value()[0]) == 0.0 and float(model.gate_av.get_value()[0]) == 0.0
  assert float(model.gate_tk.get_value()[0]) == 1.0
  tokens = np.asarray(model.my_tokens.get_value())
  assert tokens.shape == (32, 32) and tokens.min() >= 0 and tokens.max() < 1 and tokens.std() > 0.2
  bound = 1 / np.sqrt(20)  # conv_adapter: fan_in = guide tokens
  kernel = np.asarray(model.conv_adapter.kernel.get_value())
  assert kernel.shape == (1, 1, 20, 12) and np.abs(kernel).max() <= bound
  assert np.abs(kernel).max() > 0.8 * bound
  assert model.down_sampler.kernel.get_value().shape == (1, 1, 16, 4)  # groups=2: in/2 per group
  # Every parameter trains; BN statistics are BatchStat; nothing is a plain frozen Param.
  params = nnx.state(model, nnx.Param)
  assert all(isinstance(v, layers.Trainable) for _, v in params.flat_state())
  assert len(nnx.state(model, nnx.BatchStat).flat_state()) == 4
  # Zero gate: zero residual whatever the input.
  x = jax.random.normal(jax.random.key(0), (3, 12, 32))
  g = jax.random.normal(jax.random.key(1), (3, 20, 16))
  res, smap = model(x, g)
  assert float(jnp.abs(res).max()) == 0.0
  np.testing.assert_allclose(smap.sum(-1), 1.0, rtol=1e-6)


def test_grouped_pointwise_is_torch_grouped_conv():
  torch = pytest.importorskip("torch")
  conv = adapter_lib.GroupedPointwise(8, 6, 2, rngs=nnx.Rngs(0))
  weight = np.asarray(conv.kernel.get_value())[0, 0].T[:, :, None, None]  # (out, in/g, 1, 1)
  x = np.random.default_rng(0).standard_normal((2, 5, 8)).astype(np.float32)
  ref = torch.nn.functional.conv2d(torch.from_numpy(x.transpose(0, 2, 1)[..., None]),
                                   torch.from_numpy(np.ascontiguousarray(weight)), groups=2)
  np.testing.assert_allclose(conv(jnp.asarray(x)), ref.numpy()[..., 0].transpose(0, 2, 1),
                             rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="not divisible by groups=2"):
    adapter_lib.GroupedPointwise(8, 3, 2, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("switch, absent", [
    ({"channel": False}, ["fc_affine_audio_1", "fc_affine_video_1", "fc_affine_bottleneck",
                          "fc_affine_v_c_att"]),
    ({"spatial": False}, ["fc_affine_video_2", "fc_affine_audio_2", "fc_affine_v_s_att"]),
    ({"latent_tokens": False}, ["my_tokens", "gate_tk", "gate_av"]),
    ({"use_bn": False}, ["bn1", "bn2"]),
])
def test_switches_remove_their_parameters(switch, absent):
  cfg = adapter_lib.AdapterConfig(**switch)
  model = adapter_lib.Adapter(tokens=12, dim=32, guide_tokens=20, guide_dim=16, config=cfg,
                              rngs=nnx.Rngs(0))
  full = adapter_lib.Adapter(tokens=12, dim=32, guide_tokens=20, guide_dim=16, rngs=nnx.Rngs(0))
  names = lambda m: {str(p[0]) for p, _ in nnx.state(m).flat_state()}
  assert names(full) - names(model) == set(absent)
  temporal = adapter_lib.Adapter(tokens=12, dim=32, guide_tokens=20, guide_dim=16,
                                 config=adapter_lib.AdapterConfig(temporal=True), rngs=nnx.Rngs(0))
  assert names(temporal) - names(full) == {"temporal_gated"}


def test_unknown_config_field_is_named():
  with pytest.raises(ValueError, match=r"unknown field\(s\) \['alhpa'\]"):
    adapter_lib.AdapterConfig.from_dict({"alhpa": 0.1})


AVS_S4 = adapter_lib.AdapterConfig(use_bn=False, ln_before=False, guide_alignment="resize",
                                   gate_before_ln_post=True, token_init="zeros", gate_tk=False)


def test_resize_alignment_is_torch_fc_then_bicubic():
  """AVS-S4's guide alignment: Linear on channels, the square guide grid bicubic-resized
  (align_corners=False) to the target grid, as `F.interpolate` on the official layout."""
  torch = pytest.importorskip("torch")
  model = adapter_lib.Adapter(tokens=36, dim=16, guide_tokens=64, guide_dim=4, config=AVS_S4,
                              rngs=nnx.Rngs(0))
  assert not hasattr(model, "conv_adapter")
  g = np.random.default_rng(0).standard_normal((2, 64, 4)).astype(np.float32)
  fc = torch.nn.Linear(4, 16)
  with torch.no_grad():
    fc.weight.copy_(torch.from_numpy(np.asarray(model.fc.kernel.get_value()).T.copy()))
    fc.bias.copy_(torch.from_numpy(np.array(model.fc.bias.get_value())))
    t = fc(torch.from_numpy(g)).view(2, 8, 8, 16).permute(0, 3, 1, 2)  # (BF, C, 8, 8)
    ref = torch.nn.functional.interpolate(t, mode="bicubic", size=[6, 6])
  ref = ref.reshape(2, 16, 36).permute(0, 2, 1).numpy()
  assert rel_err(model.project_guide(jnp.asarray(g)), ref) <= 1e-6


def test_avs_variant_gates_before_ln_post_and_zero_tokens():
  model = adapter_lib.Adapter(tokens=16, dim=16, guide_tokens=36, guide_dim=4, config=AVS_S4,
                              rngs=nnx.Rngs(0))
  assert not hasattr(model, "gate_tk") and not hasattr(model, "ln_before")
  assert not hasattr(model, "bn1")
  assert float(jnp.abs(model.my_tokens.get_value()).max()) == 0.0
  model.ln_post.bias.set_value(jnp.arange(16.0))
  x = jax.random.normal(jax.random.key(0), (2, 16, 16))
  g = jax.random.normal(jax.random.key(1), (2, 36, 4))
  res, _ = model(x, g)
  # gate = 0 before ln_post: the residual is LayerNorm(0) = its bias, on every token.
  np.testing.assert_array_equal(np.asarray(res), np.broadcast_to(np.arange(16.0), (2, 16, 16)))
  model.gate.set_value(jnp.full((1,), 10.0))
  res_2, _ = model(x, g)
  model.gate.set_value(jnp.full((1,), 100.0))
  res_5, _ = model(x, g)
  # After the LayerNorm only the gate's sign survives (up to LayerNorm's eps).
  np.testing.assert_allclose(res_2, res_5, rtol=1e-3, atol=1e-3)
  assert float(jnp.abs(res_2 - jnp.arange(16.0)).max()) > 0.1
  with pytest.raises(ValueError, match="square token grids; the guide has 20 tokens"):
    adapter_lib.Adapter(tokens=16, dim=16, guide_tokens=20, guide_dim=4, config=AVS_S4,
                        rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="guide_alignment='conv'"):
    adapter_lib.AdapterConfig(guide_alignment="conv")
