"""Bicubic taps/matrices vs torch.nn.functional.interpolate (A = -0.75, no antialias).

Weights: bit-equal to PyTorch's except rows whose first tap clamps onto pixel
0, which may differ by 1 ulp (≤ 1.2e-7). Outputs on standard-normal inputs
differ only by matmul summation order (atol 5e-6 on unit-scale data).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dgsct_jax.models import resize
from torch_refs import import_torch

SIZES = [(1001, 1024), (10, 37), (37, 10), (224, 192), (192, 224), (100, 99), (3, 4),
         (64, 256), (256, 64), (5, 1), (1, 5), (7, 7)]
FRAME_SIZES = [(640, 192), (360, 192), (333, 192), (100, 192), (40, 192), (9, 192), (5, 3)]


def torch_resize(x: np.ndarray, size, align_corners: bool) -> np.ndarray:
  torch = import_torch()
  return torch.nn.functional.interpolate(torch.from_numpy(x), size=size, mode="bicubic",
                                         align_corners=align_corners).numpy()


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("in_size,out_size", SIZES)
def test_axis_matches_torch(in_size, out_size, align_corners):
  x = np.random.default_rng(in_size * 1000 + out_size).standard_normal(
      (2, 1, in_size, 3)).astype(np.float32)
  ref = torch_resize(x, (out_size, 3), align_corners)
  ours_np = resize.resize_axis(x, out_size, 2, align_corners=align_corners, xp=np)
  ours_jnp = np.asarray(resize.resize_axis(jnp.asarray(x), out_size, 2,
                                           align_corners=align_corners))
  assert ours_np.shape == ours_jnp.shape == ref.shape
  np.testing.assert_allclose(ours_np, ref, rtol=0, atol=5e-6)
  np.testing.assert_allclose(ours_jnp, ref, rtol=0, atol=5e-6)


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("in_size,out_size", [(1001, 1024), (37, 10), (224, 192), (3, 4)])
def test_float64_follows_torch_double_kernel(in_size, out_size, align_corners):
  """float64 input → PyTorch's double taps (double scale and weights), not the float ones."""
  x = np.random.default_rng(in_size + out_size).standard_normal((1, 1, in_size, 2))
  ref = torch_resize(x, (out_size, 2), align_corners)
  ours = resize.resize_axis(x, out_size, 2, align_corners=align_corners, xp=np)
  assert ours.dtype == np.float64
  np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-13)
  taps32 = resize.bicubic_matrix(in_size, out_size, align_corners=align_corners)
  taps64 = resize.bicubic_matrix(in_size, out_size, align_corners=align_corners,
                                 dtype=np.float64)
  assert taps32.dtype == np.float32 and taps64.dtype == np.float64
  if (in_size, out_size, align_corners) == (1001, 1024, True):
    # float32 1000/1023 moves the source coordinates by up to ~3e-5 (1001/1024 is exact).
    assert np.abs(taps64 - taps32).max() > 1e-5


@pytest.mark.parametrize("align_corners", [True, False])
def test_matrix_equals_torch_weights(align_corners):
  """Interpolating the identity reads PyTorch's weights (clamped taps summed)."""
  for in_size, out_size in SIZES + FRAME_SIZES:
    eye = np.eye(in_size, dtype=np.float32)[None, None]
    ref = torch_resize(eye, (out_size, in_size), align_corners)[0, 0]
    m = resize.bicubic_matrix(in_size, out_size, align_corners=align_corners)
    taps, weights = resize.bicubic_taps(in_size, out_size, align_corners=align_corners)
    interior = (np.diff(taps, axis=1) > 0).all(1)  # 4 distinct taps: no clamping
    np.testing.assert_array_equal(m[interior], ref[interior])
    np.testing.assert_array_equal(np.take_along_axis(ref, taps, 1)[interior], weights[interior])
    np.testing.assert_allclose(m, ref, rtol=0, atol=1.2e-7)
    np.testing.assert_allclose(m.sum(1), 1.0, atol=1e-6)  # partition of unity


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("in_hw,out_hw", [((224, 160), (192, 192)), ((50, 40), (96, 17)),
                                          ((192, 192), (192, 192))])
def test_2d_nchw_and_nhwc(in_hw, out_hw, align_corners):
  x = np.random.default_rng(0).standard_normal((2, 3) + in_hw).astype(np.float32)
  ref = torch_resize(x, out_hw, align_corners)
  np.testing.assert_allclose(resize.resize_2d(x, out_hw, align_corners=align_corners, xp=np),
                             ref, rtol=0, atol=5e-6)
  nhwc = jnp.asarray(x.transpose(0, 2, 3, 1))
  ours = resize.resize_2d(nhwc, out_hw, align_corners=align_corners, axes=(1, 2))
  np.testing.assert_allclose(np.asarray(ours).transpose(0, 3, 1, 2), ref, rtol=0, atol=5e-6)


def test_align_corners_keeps_endpoints_and_identity():
  x = np.random.default_rng(1).standard_normal((4, 1001)).astype(np.float32)
  y = resize.resize_axis(x, 1024, 1, align_corners=True, xp=np)
  np.testing.assert_array_equal(y[:, 0], x[:, 0])
  np.testing.assert_allclose(y[:, -1], x[:, -1], atol=1e-6)
  for ac in (True, False):
    np.testing.assert_array_equal(resize.bicubic_matrix(9, 9, align_corners=ac), np.eye(9))


def test_jittable_and_differentiable():
  f = jax.jit(lambda v: resize.resize_axis(v, 12, 0, align_corners=False).sum())
  g = jax.grad(f)(jnp.ones((5,)))
  np.testing.assert_allclose(np.asarray(g), resize.bicubic_matrix(5, 12, align_corners=False).sum(0),
                             rtol=1e-6)


def test_matrix_is_read_only_and_sizes_validated():
  m = resize.bicubic_matrix(4, 8, align_corners=True)
  for array in (m,) + resize.bicubic_taps(4, 8, align_corners=True):
    with pytest.raises(ValueError):
      array[0, 0] = 1
  with pytest.raises(ValueError, match="positive"):
    resize.bicubic_matrix(0, 8, align_corners=True)


def test_jax_image_resize_and_pil_differ_from_torch():
  """Why not jax.image.resize or PIL: Keys A = -0.5 and antialiasing."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  image = np.random.default_rng(2).integers(0, 256, (360, 640, 3), dtype=np.uint8)
  chw = image.transpose(2, 0, 1).astype(np.float32)[None]
  ref = torch_resize(chw, (192, 192), False)[0]
  ours = resize.resize_2d(chw, (192, 192), align_corners=False, xp=np)[0]
  via_jax = np.asarray(jax.image.resize(jnp.asarray(image, jnp.float32), (192, 192, 3), "cubic"))
  via_pil = np.asarray(Image.fromarray(image).resize((192, 192), Image.BICUBIC), np.float32)
  assert np.abs(ours - ref).max() < 1e-3  # In 0..255 units.
  assert np.abs(via_jax.transpose(2, 0, 1) - ref).max() > 20
  assert np.abs(via_pil.transpose(2, 0, 1) - ref).max() > 20
  # Even without antialiasing, jax's cubic (Keys A=-0.5) differs from torch's A=-0.75.
  up = np.random.default_rng(3).random((20, 30), dtype=np.float32)
  ref_up = torch_resize(up[None, None], (64, 64), False)[0, 0]
  jax_up = np.asarray(jax.image.resize(up, (64, 64), "cubic", antialias=False))
  assert np.abs(jax_up - ref_up).max() > 1e-2
