"""PyTorch-exact bicubic resizing as precomputed interpolation matrices.

`torch.nn.functional.interpolate(mode="bicubic", antialias=False)` is separable:
each output sample is a 4-tap cubic-convolution (Keys, A = -0.75) of the input
along each axis, with the tap indices clamped to the border. Because sizes are
static, each axis is a fixed (out, in) matrix, so resizing is one or two matmuls
that run anywhere (numpy on the host for the AVE frames, jnp on the accelerator
for the HTS-AT time axis) and are differentiable for free.

`jax.image.resize` is not a substitute: its "cubic" uses A = -0.5, half-pixel
centres only, and antialiasing when downsampling (spec §8.12).

The tap builder follows PyTorch's CPU kernel (`compute_indices_weights_cubic`)
operation by operation: float32 scale, float32 source coordinate rounded from
a double expression (the kernel's `+ 0.5` literal), the index/fraction guard,
and float32 Keys coefficients whose outer taps the compiled kernel evaluates
with two fused multiply-adds (emulated exactly through float64). The weights
equal PyTorch's bit for bit, except in rows whose first tap clamps onto pixel 0
(0 < src < 1), where a few differ by 1 ulp (≤ 1.2e-7); before this matching
they differed by up to 7e-7 in hundreds of entries. Taps that clamp onto the
same border pixel are summed in tap order. Outputs then differ from PyTorch
only by the summation order of the matmuls (a few 1e-7 on unit-scale data).

  align_corners=True:  src = dst * (in - 1) / (out - 1)          (0 when out == 1)
  align_corners=False: src = (dst + 0.5) * in / out - 0.5        (no clamp at 0 for cubic)

float64. For double inputs PyTorch does all of the above in double ("opmath"):
double scale and coordinates, double Keys weights. `dtype=np.float64` builds
those taps, so a float64 run matches the reference's float64 run (the float32
taps differ from them by the float32 rounding of the scale, which moves the
source coordinates of the 1001 → 1024 HTS-AT resize by up to ~3e-5 frames).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

CUBIC_A = -0.75  # PyTorch's bicubic constant (OpenCV uses the same; PIL/jax use -0.5).


def _fma(x, y, z):
  """float32 fused multiply-add x*y + z, rounded once.

  Exact through float64 for the Keys terms: x*y fits in 48 bits and the sum
  with z (same few binades) in 53, so the only rounding is the final one.
  """
  return (x.astype(np.float64) * np.float64(y) + np.float64(z)).astype(np.float32)


def _cubic_coefficients(t: np.ndarray, a: float) -> np.ndarray:
  """The four float32 Keys weights for fractional offsets t, shape (..., 4).

  ATen's `cubic_convolution1/2` in float32; the compiler contracts the first two
  multiply-adds of `((A*x - 5A)*x + 8A)*x - 4A` into FMAs (bit-matched against
  torch 2.x), while `((A+2)*x - (A+3))*x*x + 1` matches unfused.
  """
  t = t.astype(np.float32)
  a = np.float32(a)
  one = np.float32(1.0)

  def conv1(x):  # |x| <= 1
    return ((a + 2) * x - (a + 3)) * x * x + one

  def conv2(x):  # 1 < |x| < 2
    return _fma(_fma(x, a, -5 * a), x, 8 * a) * x - 4 * a

  x2 = one - t  # ATen evaluates the last tap at (1 - t) + 1, not 2 - t.
  return np.stack([conv2(t + one), conv1(t), conv1(x2), conv2(x2 + one)], axis=-1)


def _source_coordinates(in_size: int, out_size: int, align_corners: bool) -> np.ndarray:
  """ATen's area_pixel_compute_source_index (cubic: no clamp at 0), as float32."""
  dst = np.arange(out_size, dtype=np.float64)
  if align_corners:
    scale = (np.float32(in_size - 1) / np.float32(out_size - 1) if out_size > 1
             else np.float32(0.0))
    src = np.float64(scale) * dst
  else:
    scale = np.float32(in_size) / np.float32(out_size)
    src = np.float64(scale) * (dst + 0.5) - 0.5
  return src.astype(np.float32)


def _source_coordinates_f64(in_size: int, out_size: int, align_corners: bool) -> np.ndarray:
  """The same in double, as ATen computes it for double tensors."""
  dst = np.arange(out_size, dtype=np.float64)
  if align_corners:
    return dst * ((in_size - 1) / (out_size - 1)) if out_size > 1 else dst * 0.0
  return (in_size / out_size) * (dst + 0.5) - 0.5


def _cubic_coefficients_f64(t: np.ndarray, a: float) -> np.ndarray:
  conv1 = lambda x: ((a + 2) * x - (a + 3)) * x * x + 1
  conv2 = lambda x: ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
  x2 = 1.0 - t
  return np.stack([conv2(t + 1.0), conv1(t), conv1(x2), conv2(x2 + 1.0)], axis=-1)


@functools.lru_cache(maxsize=64)
def _bicubic_taps_cached(in_size: int, out_size: int, align_corners: bool, a: float,
                         dtype: str = "float32"):
  if in_size < 1 or out_size < 1:
    raise ValueError(f"sizes must be positive, got in_size={in_size}, out_size={out_size}")
  if dtype not in ("float32", "float64"):
    raise ValueError(f"bicubic taps are float32 or float64, got {dtype}")
  double = dtype == "float64"
  src = (_source_coordinates_f64 if double else _source_coordinates)(in_size, out_size,
                                                                     align_corners)
  # PyTorch's guard_index_and_lambda: index capped at in-1, fraction clamped to [0, 1].
  base = np.minimum(np.floor(src), src.dtype.type(in_size - 1))
  t = np.clip(src - base, 0, 1).astype(src.dtype)
  weights = _cubic_coefficients_f64(t, a) if double else _cubic_coefficients(t, a)
  taps = base.astype(np.int64)[:, None] + np.arange(-1, 3)[None, :]
  taps = np.clip(taps, 0, in_size - 1)
  taps.setflags(write=False)
  weights.setflags(write=False)
  return taps, weights


def bicubic_taps(in_size: int, out_size: int, *, align_corners: bool, a: float = CUBIC_A,
                 dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
  """(indices int64, weights `dtype`), both (out_size, 4): the 4 taps per output.

  Output i is `sum_k weights[i, k] * x[indices[i, k]]`; indices are clamped to
  [0, in_size - 1], so border outputs may repeat an index. Read-only, cached.
  dtype: float32 (PyTorch's float kernel, bit for bit) or float64 (its double one).
  """
  return _bicubic_taps_cached(int(in_size), int(out_size), bool(align_corners), float(a),
                              np.dtype(dtype).name)


@functools.lru_cache(maxsize=64)
def _bicubic_matrix_cached(in_size: int, out_size: int, align_corners: bool, a: float,
                           dtype: str = "float32"):
  taps, weights = _bicubic_taps_cached(in_size, out_size, align_corners, a, dtype)
  matrix = np.zeros((out_size, in_size), weights.dtype)
  for k in range(4):  # in tap order, in the taps' precision, as PyTorch accumulates
    np.add.at(matrix, (np.arange(out_size), taps[:, k]), weights[:, k])
  matrix.setflags(write=False)
  return matrix


def bicubic_matrix(in_size: int, out_size: int, *, align_corners: bool, a: float = CUBIC_A,
                   dtype=np.float32) -> np.ndarray:
  """The (out_size, in_size) matrix M with `y = M @ x` along one axis.

  Equals what `F.interpolate(..., mode="bicubic", align_corners=...)` does along
  that axis for an explicit output size (no `scale_factor`, no antialias), for
  float32 (default) or float64 tensors (`dtype`). The returned array is
  read-only and cached; copy it before modifying.
  """
  return _bicubic_matrix_cached(int(in_size), int(out_size), bool(align_corners), float(a),
                                np.dtype(dtype).name)


def resize_axis(x, out_size: int, axis: int, *, align_corners: bool, xp=jnp,
                precision=jax.lax.Precision.HIGHEST):
  """Bicubic resize of one axis of `x` (numpy when `xp is np`, else jnp).

  float64 input uses PyTorch's double taps; any other input the float32 ones.
  An axis whose size does not change is returned untouched only when
  align_corners=True (then the matrix is exactly the identity); with
  align_corners=False PyTorch's same-size bicubic is also the identity, so
  both short-cut.
  """
  axis = axis % x.ndim
  in_size = x.shape[axis]
  if in_size == out_size:
    return x
  double = np.dtype(x.dtype) == np.float64
  m = bicubic_matrix(in_size, out_size, align_corners=align_corners,
                     dtype=np.float64 if double else np.float32)
  if xp is np:
    y = np.tensordot(m, np.asarray(x, m.dtype), axes=([1], [axis]))
  else:
    y = jnp.tensordot(jnp.asarray(m), x, axes=([1], [axis]), precision=precision)
  return xp.moveaxis(y, 0, axis)


def resize_2d(x, out_hw: tuple[int, int], *, align_corners: bool, axes=(-2, -1), xp=jnp,
              precision=jax.lax.Precision.HIGHEST):
  """Bicubic resize of two axes (default: the last two, i.e. (..., H, W)).

  Matches `F.interpolate(x, size=out_hw, mode="bicubic", align_corners=...)`
  for NCHW input with the default axes; pass `axes=(1, 2)` for NHWC.
  """
  h_axis, w_axis = axes
  x = resize_axis(x, out_hw[0], h_axis, align_corners=align_corners, xp=xp, precision=precision)
  return resize_axis(x, out_hw[1], w_axis, align_corners=align_corners, xp=xp, precision=precision)
