"""HTS-AT module behaviour without PyTorch: geometry, block API, train mode, remat, bad input."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from dgsct_jax.models.encoders import htsat

TINY = dict(sample_rate=16000, window=512, hop=160, mel_bins=32, fmin=50.0, fmax=8000.0,
            num_samples=16000, spec_size=64, patch_size=4, num_classes=10, embed_dim=16,
            depths=(2, 2), num_heads=(2, 4), window_size=4)


def tiny(**overrides):
  return htsat.HTSAT(**dict(TINY, **overrides), rngs=nnx.Rngs(0))


def waves(batch=2, seed=0):
  return (0.1 * np.random.default_rng(seed).standard_normal((batch, 16000))).astype(np.float32)


def test_audioset_geometry_matches_the_spec():
  model = nnx.eval_shape(lambda: htsat.HTSAT(rngs=nnx.Rngs(0)))
  assert model.stage_geometry() == [(4096, 96), (1024, 192), (256, 384), (64, 768)]
  shapes = [(layer.resolution, layer.blocks[0].window_size, [b.shift_size for b in layer.blocks],
             layer.downsample is not None) for layer in model.layers]
  assert shapes == [((64, 64), 8, [0, 4], True), ((32, 32), 8, [0, 4], True),
                    ((16, 16), 8, [0, 4] * 3, True), ((8, 8), 8, [0, 0], False)]
  rates = [b.drop_path.rate for layer in model.layers for b in layer.blocks]
  np.testing.assert_allclose(rates, np.linspace(0, 0.1, 12), rtol=1e-6)
  n_params = sum(int(np.prod(v.shape)) for v in jax.tree.leaves(nnx.state(model, nnx.Param)))
  assert n_params == 30_241_687  # the official model's nn.Parameters less the frozen STFT/mel ones


def test_logical_axis_names_are_attached():
  model = nnx.eval_shape(lambda: tiny())
  attn = model.layers[0].blocks[0].attn
  assert attn.qkv.kernel.get_metadata()["out_sharding"] == ("embed", "qkv")
  assert attn.relative_position_bias_table.get_metadata()["out_sharding"] == (None, "heads")


def test_block_api_composes_and_is_pre_norm():
  model = tiny()
  block = model.layers[0].blocks[1]
  x = jax.random.normal(jax.random.key(1), (2, 256, 16))

  @nnx.jit
  def outputs(block, x):
    # pre-norm: the residual branch reads norm1(x) and adds to the un-normalised x
    return (block(x), block.mlp_residual(block.attn_residual(x)), block.attn_residual(x),
            x + block.window_attention(block.norm1(x)))

  whole, halves, attn, manual = outputs(block, x)
  np.testing.assert_allclose(whole, halves, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(attn, manual, rtol=1e-6, atol=1e-6)
  assert block.shift_size == 2 and block.attn_mask.shape == (16, 16, 16)
  with pytest.raises(ValueError, match=r"block expects tokens \(B, 256, 16\)"):
    block(x[:, :100])


def test_call_aux_and_embed_are_consistent():
  model = tiny()
  features, aux = model(waves())
  assert sorted(aux) == ["image", "logmel", "stage0", "stage1"]
  assert aux["logmel"].shape == (2, 101, 32) and aux["image"].shape == (2, 64, 64, 1)
  np.testing.assert_array_equal(features, aux["stage1"])
  tokens = model.embed(waves())
  np.testing.assert_allclose(model.layers[0](tokens), aux["stage0"], rtol=1e-6, atol=1e-6)
  head = model.head_outputs(features)
  assert head["clipwise_output"].shape == (2, 10) and head["framewise_output"].shape == (2, 512, 10)
  tag = model.tag(waves())
  np.testing.assert_allclose(tag["clipwise_output"], head["clipwise_output"], rtol=1e-6)


def test_linear_head_variant_runs():
  model = tiny(enable_tscam=False)
  assert model.tscam_conv is None
  out = model.head_outputs(model(waves())[0])
  assert out["clipwise_output"].shape == (2, 10) and np.isfinite(out["framewise_output"]).all()


def test_train_mode_is_selectable_and_differs_from_eval():
  model = tiny(drop_path_rate=0.5)
  eval_feat, eval_aux = model(waves())
  mean0 = np.asarray(model.frontend.bn0.mean.get_value())
  # frozen-train: drop path on, bn0 running statistics and no SpecAugment
  feat, aux = model(waves(), deterministic=False, rngs=nnx.Rngs(dropout=1), bn0_batch_stats=False,
                    spec_augment=False)
  np.testing.assert_array_equal(aux["logmel"], eval_aux["logmel"])
  np.testing.assert_array_equal(model.frontend.bn0.mean.get_value(), mean0)
  assert not np.allclose(feat, eval_feat, atol=1e-3)
  # reference train mode: bn0 batch statistics (+ running-stat update) and SpecAugment
  _, aux = model(waves(), deterministic=False, rngs=nnx.Rngs(dropout=2))
  assert not np.allclose(model.frontend.bn0.mean.get_value(), mean0)
  assert (np.asarray(aux["logmel"]) == 0).any()          # SpecAugment stripes
  with pytest.raises(ValueError, match="rngs"):
    model(waves(), deterministic=False)


def test_remat_gives_the_same_values_and_gradients():
  x = jax.random.normal(jax.random.key(2), (2, 256, 16))

  @nnx.jit
  def value_and_grad(block):
    return nnx.value_and_grad(lambda b: jnp.sum(b(x) ** 2))(block)

  plain = tiny().layers[0].blocks[1]
  remat = tiny(remat=True).layers[0].blocks[1]
  assert remat.remat and not plain.remat
  (v_plain, g_plain), (v_remat, g_remat) = value_and_grad(plain), value_and_grad(remat)
  np.testing.assert_allclose(v_remat, v_plain, rtol=1e-6)
  for a, b in zip(jax.tree.leaves(g_plain), jax.tree.leaves(g_remat)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(np.max(np.abs(a))))


def test_bfloat16_compute():
  forward = nnx.jit(lambda m, w: m(w)[0])
  feat = forward(tiny(dtype=jnp.bfloat16), waves())
  ref = forward(tiny(), waves())
  assert feat.dtype == jnp.bfloat16
  assert np.max(np.abs(np.asarray(feat, np.float32) - ref)) <= 0.1 * np.max(np.abs(ref))


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 16001), np.float32), r"16001 samples per example, expected 16000"),
    (np.zeros((2, 1, 16000), np.float32), r"rank 2 \(batch, samples\)"),
    (np.zeros(16000, np.float32), r"rank 2"),
])
def test_bad_shapes_raise_even_under_jit(bad, message):
  model = tiny()
  with pytest.raises(ValueError, match=message):
    model(bad)
  with pytest.raises(ValueError, match=message):
    nnx.jit(lambda m, w: m(w)[0])(model, bad)
  with pytest.raises(ValueError, match=message):
    htsat.validate_waveforms(bad, num_samples=16000)


def test_nan_raises_eagerly_and_propagates_per_example_under_jit():
  bad = waves()
  bad[1, 123] = np.nan
  model = tiny()
  with pytest.raises(ValueError, match=r"example 1 contains NaN at sample 123"):
    model(bad)
  with pytest.raises(ValueError, match=r"example 1 contains NaN"):
    htsat.validate_waveforms(bad, num_samples=16000)
  # documented: inside jit nothing can raise; in eval mode the NaN stays in its example
  feat = np.asarray(nnx.jit(lambda m, w: m(w)[0])(model, bad))
  assert np.isfinite(feat[0]).all() and np.isnan(feat[1]).any()
