"""Swin-V2 parity with timm's SwinTransformerV2 (float32, CPU), random weights converted
by the real rules of weight_conversion/maps/swinv2.py.

Error measure everywhere: max|ours − timm| / max|timm| per output (stage0.., features),
required ≤ 1e-4. The figures are printed (run with `pytest -s` to see them).
"""
import numpy as np
import pytest
import torch_refs

import jax
import jax.numpy as jnp
from flax import nnx

from dgsct_jax.models import presets
from dgsct_jax.models.encoders import swinv2
from weight_conversion import archs as archs_lib
from weight_conversion import engine
from weight_conversion.maps import swinv2 as swinv2_map

TOL = 1e-4

# Divisible everywhere (timm 0.6.12 and 1.x agree): non-square image, 3 stages with
# shifted windows in stages 0-1, window clamped in stage 2 (4×6 grid, window 4 → no
# shift along H, shift 2 along W), pretrained_window_sizes ≠ 0, drop path.
TINY = dict(img_size=[64, 96], patch_size=4, in_chans=3, embed_dim=16, depths=[2, 3, 2],
            num_heads=[2, 2, 4], window_size=4, pretrained_window_sizes=[3, 0, 5],
            mlp_ratio=2.0, drop_path_rate=0.2)
# timm 1.x only: grids not multiples of the (non-square) window → zero padding, odd
# grids at patch merging (10×14 → 5×7 → 3×4).
TINY_PADDED = dict(img_size=[40, 56], patch_size=4, in_chans=3, embed_dim=16, depths=[2, 2, 2],
                   num_heads=[2, 2, 4], window_size=[4, 3], pretrained_window_sizes=[0, 6, 0],
                   mlp_ratio=4.0, drop_path_rate=0.1)


def rel_err(ours, ref) -> float:
  ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
  return float(np.abs(ours - ref).max() / np.abs(ref).max())


def timm_swinv2(config, seed=0):
  """A timm SwinTransformerV2 (no head) with random weights that exercise every parameter:
  res-post-norm weights are not zero, some logit scales exceed the clamp ln(100)."""
  torch = torch_refs.import_torch()
  torch_refs.import_timm()
  from timm.models.swin_transformer_v2 import SwinTransformerV2  # pylint: disable=import-outside-toplevel
  kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in config.items()}
  model = SwinTransformerV2(num_classes=0, **kwargs)
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in model.named_parameters():
      noise = torch.randn(p.shape, generator=gen)
      if name.endswith("logit_scale"):
        p.copy_(np.log(10.0) + 1.5 * noise)
      elif "norm" in name and name.endswith("weight"):
        p.copy_(1.0 + 0.3 * noise)
      elif p.ndim == 1:
        p.copy_(0.3 * noise)
      else:
        p.copy_(noise / np.sqrt(np.prod(p.shape[1:])))
  return model.eval()


def timm_state(model) -> dict[str, np.ndarray]:
  return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def timm_outputs(model, images: np.ndarray) -> dict[str, np.ndarray]:
  """{'stage{i}': (B, L_i, C_i) before the next merging, 'features': (B, L, C) after the norm}."""
  torch = torch_refs.import_torch()
  with torch.no_grad():
    x = model.patch_embed(torch.from_numpy(images))
    out = {}
    for i, stage in enumerate(model.layers):
      x = stage(x)
      out[f"stage{i}"] = x.reshape(x.shape[0], -1, x.shape[-1]).float().numpy().copy()
    x = model.norm(x)
    out["features"] = x.reshape(x.shape[0], -1, x.shape[-1]).float().numpy().copy()
  return out


def convert(state: dict, config: dict, arch="swinv2", **model_kwargs) -> swinv2.SwinTransformerV2:
  """The real conversion rules onto the abstract model, then a concrete model from the values."""
  arch = archs_lib.get(arch)
  config = dict(arch.config, **config)
  abstract = archs_lib.abstract_model(arch, config)
  values = engine.convert(state, abstract, arch.rules(list(state))).values
  if not model_kwargs:
    return archs_lib.materialize(arch, config, values)
  graphdef, st = nnx.split(nnx.eval_shape(lambda: swinv2_map.build(**config, **model_kwargs)))
  for path, var in st.flat_state():
    var.set_value(jnp.asarray(values[".".join(str(p) for p in path)]))
  return nnx.merge(graphdef, st)


def images_for(config, batch=2, seed=1) -> np.ndarray:
  h, w = swinv2.to_2tuple(config["img_size"])
  return np.random.default_rng(seed).standard_normal((batch, 3, h, w)).astype(np.float32)


@nnx.jit
def forward(model, images):
  features, aux = model(images)
  return dict(features=features, **aux)


def check_parity(ours: dict, ref: dict, label: str) -> dict[str, float]:
  assert sorted(ours) == sorted(ref), (sorted(ours), sorted(ref))
  errors = {}
  for key in ref:
    assert ours[key].shape == ref[key].shape, (key, ours[key].shape, ref[key].shape)
    errors[key] = rel_err(ours[key], ref[key])
  print(f"\n{label} max relative errors: " + ", ".join(f"{k} {v:.2e}" for k, v in errors.items()))
  assert max(errors.values()) <= TOL, errors
  return errors


@pytest.mark.parametrize("config", [TINY, TINY_PADDED], ids=["tiny", "tiny_padded"])
def test_tiny_parity_with_timm(config):
  ref_model = timm_swinv2(config)
  if config is TINY:  # the clamp at ln(100) is exercised
    scales = np.concatenate([v.ravel() for k, v in timm_state(ref_model).items()
                             if "logit_scale" in k])
    assert (scales > swinv2.LOGIT_SCALE_MAX).any() and (scales < swinv2.LOGIT_SCALE_MAX).any()
  model = convert(timm_state(ref_model), config)
  images = images_for(config)
  check_parity(forward(model, jnp.asarray(images)), timm_outputs(ref_model, images),
               f"tiny {config['img_size']}")


@pytest.fixture(scope="module")
def large_pair():
  """swinv2_large_window12_192 (≈197 M parameters) from timm and converted, batch 1."""
  timm = torch_refs.import_timm()
  ref_model = timm.create_model("swinv2_large_window12_192", pretrained=False, num_classes=0)
  torch = torch_refs.import_torch()
  gen = torch.Generator().manual_seed(0)
  with torch.no_grad():  # not timm's init: norm1/norm2 weights are zero there
    for name, p in ref_model.named_parameters():
      if "norm" in name and name.endswith("weight"):
        p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=gen))
      elif name.endswith("logit_scale"):
        p.copy_(np.log(10.0) + torch.randn(p.shape, generator=gen))
      elif p.ndim == 1:
        p.copy_(0.1 * torch.randn(p.shape, generator=gen))
  ref_model.eval()
  model = convert(timm_state(ref_model), {}, arch="swinv2_large_window12_192")
  return ref_model, model


def test_large_parity_with_timm(large_pair):
  ref_model, model = large_pair
  images = images_for(presets.SWINV2_LARGE_192, batch=1)
  ours = forward(model, jnp.asarray(images))
  assert {k: v.shape for k, v in ours.items()} == {
      "stage0": (1, 2304, 192), "stage1": (1, 576, 384), "stage2": (1, 144, 768),
      "stage3": (1, 36, 1536), "features": (1, 36, 1536)}
  check_parity(ours, timm_outputs(ref_model, images), "swinv2_large_window12_192")


def test_large_geometry_matches_spec_and_timm():
  model = nnx.eval_shape(lambda: swinv2_map.build(**presets.SWINV2_LARGE_192))
  assert model.stage_geometry() == [(2304, 192), (576, 384), (144, 768), (36, 1536)]
  got = [(layer.resolution, layer.blocks[1].window_size, layer.blocks[1].shift_size,
          layer.blocks[0].shift_size) for layer in model.layers]
  assert got == [((48, 48), (12, 12), (6, 6), (0, 0)), ((24, 24), (12, 12), (6, 6), (0, 0)),
                 ((12, 12), (12, 12), (0, 0), (0, 0)), ((6, 6), (6, 6), (0, 0), (0, 0))]
  assert [layer.downsample is None for layer in model.layers] == [False, False, False, True]
  rates = [b.drop_path1.rate for layer in model.layers for b in layer.blocks]
  np.testing.assert_allclose(rates, np.linspace(0, 0.1, 24), atol=1e-7)


def test_constants_equal_timm_buffers():
  ref_model = timm_swinv2(TINY_PADDED)
  model = nnx.eval_shape(lambda: swinv2_map.build(**TINY_PADDED))
  for layer, ref_layer in zip(model.layers, ref_model.layers):
    for block, ref_block in zip(layer.blocks, ref_layer.blocks):
      assert block.window_size == tuple(ref_block.window_size)
      assert block.shift_size == tuple(ref_block.shift_size)
      np.testing.assert_array_equal(block.attn.relative_position_index,
                                    ref_block.attn.relative_position_index.numpy())
      np.testing.assert_allclose(block.attn.relative_coords_table,
                                 ref_block.attn.relative_coords_table.numpy()[0], rtol=0, atol=1e-7)
      if ref_block.attn_mask is None:
        assert block.attn_mask is None
      else:
        np.testing.assert_array_equal(block.attn_mask, ref_block.attn_mask.numpy())


def test_block_halves_match_timm_and_compose():
  """attn_residual / mlp_residual are timm's two residual halves; __call__ is both."""
  torch = torch_refs.import_torch()
  ref_model = timm_swinv2(TINY)
  model = convert(timm_state(ref_model), TINY)
  block, ref_block = model.layers[1].blocks[1], ref_model.layers[1].blocks[1]  # shifted, 8×12 grid
  (h, w), c = block.resolution, block.dim
  x = np.random.default_rng(2).standard_normal((2, h * w, c)).astype(np.float32)
  with torch.no_grad():
    xt = torch.from_numpy(x)
    ref_attn = xt + ref_block.norm1(ref_block._attn(xt.reshape(2, h, w, c)).reshape(2, h * w, c))  # pylint: disable=protected-access
    ref_mlp = ref_attn + ref_block.norm2(ref_block.mlp(ref_attn))
  ours_attn = block.attn_residual(jnp.asarray(x))
  ours_mlp = block.mlp_residual(ours_attn)
  assert rel_err(ours_attn, ref_attn.numpy()) <= TOL
  assert rel_err(ours_mlp, ref_mlp.numpy()) <= TOL
  np.testing.assert_allclose(block(jnp.asarray(x)), ours_mlp, rtol=1e-6, atol=1e-6)


def test_drop_path_is_stochastic_and_matches_timm_in_distribution():
  """Train mode: every sample's residual branch is kept (×1/keep) or dropped, as in timm,
  the drop frequency is the block's rate, and the mean over draws is the eval output."""
  torch = torch_refs.import_torch()
  ref_model = timm_swinv2(TINY)
  model = convert(timm_state(ref_model), TINY)
  block, ref_block = model.layers[2].blocks[1], ref_model.layers[2].blocks[1]
  rate = block.drop_path2.rate
  assert rate == pytest.approx(0.2) and ref_block.drop_path2.drop_prob == pytest.approx(rate)
  n, (h, w), c = 4000, block.resolution, block.dim
  x = np.random.default_rng(3).standard_normal((1, h * w, c)).astype(np.float32)
  x = np.repeat(x, n, axis=0)
  branch = np.asarray(block.norm2(block.mlp(jnp.asarray(x[:1]))))[0]
  keep = 1.0 - rate

  def kept_fraction(y):
    dropped = np.all(np.abs(y - x) <= 1e-6, axis=(1, 2))
    kept = np.all(np.abs(y - x - branch / keep) <= 1e-4 * np.abs(branch).max() / keep, axis=(1, 2))
    assert np.all(dropped ^ kept), "each sample must be either kept (scaled by 1/keep) or dropped"
    return kept.mean()

  ours = np.asarray(jax.jit(lambda x, key: block.mlp_residual(
      x, deterministic=False, rngs=nnx.Rngs(dropout=key)))(jnp.asarray(x), jax.random.key(0)))
  ref_block.train()
  with torch.no_grad():
    xt = torch.from_numpy(x)
    ref = (xt + ref_block.drop_path2(ref_block.norm2(ref_block.mlp(xt)))).numpy()
  # binomial(4000, 0.8): sd 0.0063; 5 sd bounds
  for fraction in (kept_fraction(ours), kept_fraction(ref)):
    assert abs(fraction - keep) < 0.032, fraction
  eval_out = np.asarray(block.mlp_residual(jnp.asarray(x[:1])))[0]
  np.testing.assert_allclose(ours.mean(0), eval_out, atol=0.05 * np.abs(branch).max())

  # The whole model: train mode changes the outputs, each key differently; eval is unchanged.
  images = jnp.asarray(images_for(TINY))
  train = nnx.jit(lambda m, x, key: m(x, deterministic=False, rngs=nnx.Rngs(dropout=key))[0])
  a, b = train(model, images, jax.random.key(1)), train(model, images, jax.random.key(2))
  eval_features = forward(model, images)["features"]
  assert not np.allclose(a, eval_features) and not np.allclose(a, b)
  np.testing.assert_array_equal(forward(model, images)["features"], eval_features)


def test_bfloat16_compute_stays_close_to_float32():
  """dtype=bfloat16 (float32 parameters) runs and stays as close to float32 as timm itself under
  torch.autocast(bfloat16). These random weights are a hard case: logit scales up to 100 make
  cosine attention sensitive to the 8-bit mantissa of q/k."""
  torch = torch_refs.import_torch()
  ref_model = timm_swinv2(TINY)
  state = timm_state(ref_model)
  f32 = convert(state, TINY)
  bf16 = convert(state, TINY, dtype=jnp.bfloat16)
  images = images_for(TINY)
  ours, ref = forward(bf16, jnp.asarray(images)), forward(f32, jnp.asarray(images))
  assert ours["features"].dtype == jnp.bfloat16
  assert bf16.layers[0].blocks[0].attn.qkv.kernel.get_value().dtype == jnp.float32
  timm_f32 = timm_outputs(ref_model, images)
  with torch.autocast("cpu", dtype=torch.bfloat16):
    timm_bf16 = timm_outputs(ref_model, images)
  errors = {k: rel_err(np.asarray(ours[k], np.float32), ref[k]) for k in ref}
  timm_errors = {k: rel_err(timm_bf16[k], timm_f32[k]) for k in ref}
  print("\nbf16 vs f32 max relative errors, ours: " +
        ", ".join(f"{k} {v:.2e}" for k, v in errors.items()) +
        "; timm autocast: " + ", ".join(f"{k} {v:.2e}" for k, v in timm_errors.items()))
  assert all(np.isfinite(np.asarray(v, np.float32)).all() for v in ours.values())
  for key, err in errors.items():
    assert err <= max(1.5 * timm_errors[key], 0.02), (key, errors, timm_errors)


def test_remat_gives_identical_values_and_gradients():
  """Functional style, as a trainer uses it: the model is merged inside the differentiated
  function; gradients w.r.t. the input image and the parameters, train mode."""
  config = dict(TINY, depths=[1, 2, 1])  # stage 1 keeps a shifted block
  state = timm_state(timm_swinv2(config))
  images = jnp.asarray(images_for(config))
  results = []
  for remat in (False, True):
    graphdef, params = nnx.split(convert(state, config, remat=remat))

    def loss(params, x, graphdef=graphdef):
      features, aux = nnx.merge(graphdef, params)(x, deterministic=False,
                                                  rngs=nnx.Rngs(dropout=7))
      return jnp.sum(features ** 2) + jnp.sum(aux["stage1"])

    fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    value, (grad_params, grad_x) = fn(params, images)
    results.append((value, grad_x, grad_params))
    if remat:
      jaxpr = str(jax.make_jaxpr(jax.grad(loss, argnums=1))(params, images))
      assert "checkpoint" in jaxpr or "remat" in jaxpr
  (v0, gx0, gp0), (v1, gx1, gp1) = results
  np.testing.assert_allclose(v1, v0, rtol=1e-5)
  np.testing.assert_allclose(gx1, gx0, rtol=1e-4, atol=1e-4 * np.abs(gx0).max())
  qkv = lambda g: np.asarray(g["layers"][1]["blocks"][0]["attn"]["qkv"]["kernel"].get_value())
  np.testing.assert_allclose(qkv(gp1), qkv(gp0), rtol=1e-4, atol=1e-4 * np.abs(qkv(gp0)).max())


def test_logical_axis_names():
  model = nnx.eval_shape(lambda: swinv2_map.build(**TINY))
  attn = model.layers[0].blocks[0].attn
  assert attn.qkv.kernel.get_metadata()["out_sharding"] == ("embed", "heads")
  assert attn.proj.kernel.get_metadata()["out_sharding"] == ("heads", "embed")
  assert model.layers[0].blocks[0].mlp.fc1.kernel.get_metadata()["out_sharding"] == ("embed", "mlp")
  assert model.patch_embed.proj.kernel.get_metadata()["out_sharding"] == (None, None, None, "embed")
  # Activations: with rules mapping the batch axis to a mesh axis, the tokens are constrained.
  import flax.linen as nn_linen  # pylint: disable=import-outside-toplevel
  devices = np.array(jax.devices()[:2])
  mesh = jax.sharding.Mesh(devices, ("data",))
  model = swinv2_map.build(**dict(TINY, depths=[1, 1, 1], drop_path_rate=0.0))
  lower = lambda: nnx.jit(lambda m, x: m(x)[0]).lower(model, jnp.asarray(images_for(TINY))).as_text()
  with jax.set_mesh(mesh), nn_linen.logical_axis_rules([("batch", "data")]):
    hlo = lower()
  assert hlo.count("sharding_constraint") >= 2 * 3 + 1, hlo.count("sharding_constraint")
  assert '"data"' in hlo
  assert "sharding_constraint" not in lower()  # no rules, no mesh: no-op
