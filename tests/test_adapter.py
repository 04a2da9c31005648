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
