"""Building blocks shared by Swin-V2, HTS-AT, the DG-SCT adapters and the heads.

Numerics follow PyTorch: LayerNorm/BatchNorm eps 1e-5, exact (erf) GELU,
PyTorch default initialisers, BatchNorm running variance updated with the
unbiased batch variance. Attribute names follow the PyTorch modules so that
weight conversion is a rename table (`fc1`, `fc2`, `reduction`, `norm`, ...).

Conventions used by every module of the package:
* tokens are (B, L, C), row-major over an (H, W) grid known at construction;
* `__call__(x, *, deterministic=True, rngs=None)`: stochastic parts (drop
  path, SpecAugment, dropout) run only when `deterministic=False` and draw
  from `rngs` (an `nnx.Rngs` with a `dropout` stream) given at call time;
* frozen backbone weights are `nnx.Param`; weights that train are `Trainable`
  (see `mark_trainable`); BatchNorm statistics are `nnx.BatchStat`.
"""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dgsct_jax.models import initializers
from dgsct_jax.models import matmul

class Trainable(nnx.Param):
  """A parameter that receives gradients and optimizer state (adapters, heads)."""


def mark_trainable(module: nnx.Module) -> nnx.Module:
  """Turns every plain `nnx.Param` inside `module` into a `Trainable`, in place."""
  for _, node in nnx.iter_graph(module):
    if isinstance(node, nnx.Module):
      for name, value in list(vars(node).items()):
        if type(value) is nnx.Param:  # pylint: disable=unidiomatic-typecheck
          setattr(node, name, Trainable(value.get_value(), **value.get_metadata()))
  return module


class KeyStream:
  """Stands in for `nnx.Rngs` while building a module with many parameters: `params()`
  folds a counter into one key drawn from the caller's Rngs.

  Every `nnx.Rngs` draw updates an RNG-count variable, and under `nnx.eval_shape`
  each such update inspects the whole trace so far (flax 0.12 / jax 0.10), which
  makes abstract construction quadratic in the number of draws (48 adapters, or the
  AVS head's ~400 parameters, cost minutes). One draw per module keeps it linear.
  """

  def __init__(self, key):
    self._key = key
    self._count = 0

  def params(self):
    self._count += 1
    return jax.random.fold_in(self._key, self._count)


class DropoutStream:
  """Stands in for `nnx.Rngs(key)` in a forward pass: the n-th `dropout()` (n = 0, 1, ...)
  is the key `nnx.Rngs(key).dropout()` gives, fold_in(key, n), counted in Python.

  An `nnx.Rngs` draw writes its count variable, and under a trace each write inspects the
  trace so far (see `KeyStream`): tracing a train step grew quadratically with its random
  draws (dropout, drop path, SpecAugment, mixup)."""

  def __init__(self, key):
    if isinstance(key, int):
      key = jax.random.key(key)
    elif not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
      key = jax.random.wrap_key_data(key)
    self._key = key
    self._count = 0

  def dropout(self):
    key = jax.random.fold_in(self._key, self._count)
    self._count += 1
    return key


def key_stream(rngs) -> KeyStream:
  """`rngs` as a `KeyStream` (one draw from an `nnx.Rngs`; a KeyStream is kept): model
  constructors call it first, so that building a whole model abstractly
  (`nnx.eval_shape`: conversion, the trainer's layout) stays linear in its parameters."""
  return rngs if isinstance(rngs, KeyStream) else KeyStream(rngs.params())


gelu = functools.partial(jax.nn.gelu, approximate=False)


def with_axes(init, axes):
  """`init` with logical axis names (or `init` itself when `axes` is None).

  Only names: the trainer places every array from them and the config's
  sharding rules, so a module never shards itself at creation (no eager
  sharding) and can be built outside any mesh.
  """
  return nnx.with_partitioning(init, axes, eager_sharding=False) if axes else init


def trunc_normal(std: float, axes=None):
  """timm's trunc_normal_(std) with bounds ±2 (absolute, i.e. ≈ ±100σ: a plain normal)."""
  return with_axes(initializers.truncated_normal(std, -2.0 / std, 2.0 / std),
                   axes)


def param(value, axes, kind=nnx.Param) -> nnx.Variable:
  """A variable holding `value`, with logical axis names (see `with_axes`)."""
  return kind(value, out_sharding=axes, eager_sharding=False)


def torch_kernel_init(axes=None):
  """PyTorch's Linear/Conv default: U(±1/sqrt(fan_in)) (kaiming_uniform, a=√5)."""
  return with_axes(initializers.variance_scaling_uniform(1.0 / 3.0, "fan_in"), axes)


def torch_bias_init(fan_in: int, axes=None):
  bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0

  def init(key, shape, dtype=jnp.float32):
    return initializers.uniform(key, shape, dtype, -bound, bound)

  return with_axes(init, axes)


def linear(in_features: int, out_features: int, *, use_bias: bool = True,
           axes=("embed", "mlp"), dtype=None, param_dtype=jnp.float32,
           rngs: nnx.Rngs) -> nnx.Linear:
  """A Linear layer with PyTorch's default initialisation and logical axis names.

  Its matmul follows the operand dtype in force (`matmul.operand_dtype`).
  """
  return nnx.Linear(
      in_features, out_features, use_bias=use_bias, dtype=dtype, param_dtype=param_dtype,
      dot_general=matmul.dot_general,
      kernel_init=torch_kernel_init(axes),
      bias_init=torch_bias_init(in_features, axes[-1:] if axes else None),
      rngs=rngs)


def layer_norm(num_features: int, *, eps: float = 1e-5, dtype=None,
               param_dtype=jnp.float32, rngs: nnx.Rngs) -> nnx.LayerNorm:
  """PyTorch's LayerNorm: two-pass variance E[(x - mean)²], not E[x²] - mean².

  Flax's default "fast" variance cancels catastrophically when |mean| ≫ std (the
  residual streams here), and this network amplifies such 1e-6 errors ~10³×.
  """
  return nnx.LayerNorm(num_features, epsilon=eps, dtype=dtype, param_dtype=param_dtype,
                       use_fast_variance=False,
                       scale_init=with_axes(initializers.ones, ("norm",)),
                       bias_init=with_axes(initializers.zeros, ("norm",)),
                       rngs=rngs)


def at_least_f32(dtype):
  """The dtype for numerically delicate parts: float32 for bf16/f16/f32, float64 for float64.

  Used instead of a hard-coded float32 so that a float64 run (jax_enable_x64) stays
  float64 end to end; that run is how parity with the reference's float64 outputs
  is proven (tests/test_dgsct_ave_golden_f64.py).
  """
  return jnp.promote_types(dtype, jnp.float32)


class BatchNorm(nnx.Module):
  """PyTorch BatchNorm over the last axis (`scale`, `bias`, `mean`, `var`).

  In training (`use_running_average=False`) it normalises with the biased batch
  variance and updates the running statistics with momentum 0.1 (PyTorch
  convention) and the *unbiased* batch variance, as PyTorch does; Flax's own
  BatchNorm uses the biased one.
  """

  def __init__(self, num_features: int, *, momentum: float = 0.1, eps: float = 1e-5,
               dtype=None, param_dtype=jnp.float32, rngs: nnx.Rngs | None = None):
    del rngs
    self.num_features = num_features
    self.momentum = momentum
    self.eps = eps
    self.dtype = dtype
    self.scale = nnx.Param(initializers.ones(None, (num_features,), param_dtype))
    self.bias = nnx.Param(initializers.zeros(None, (num_features,), param_dtype))
    self.mean = nnx.BatchStat(initializers.zeros(None, (num_features,)))
    self.var = nnx.BatchStat(initializers.ones(None, (num_features,)))

  def __call__(self, x, *, use_running_average: bool = True):
    reduce_axes = tuple(range(x.ndim - 1))
    if use_running_average:
      mean, var = self.mean.get_value(), self.var.get_value()
    else:
      xf = x.astype(at_least_f32(x.dtype))
      mean = xf.mean(reduce_axes)
      var = jnp.square(xf - mean).mean(reduce_axes)
      count = math.prod(x.shape[:-1])
      unbiased = var * (count / max(count - 1, 1))
      self.mean.set_value((1 - self.momentum) * self.mean.get_value() + self.momentum * mean)
      self.var.set_value((1 - self.momentum) * self.var.get_value() + self.momentum * unbiased)
    y = (x - mean) * jax.lax.rsqrt(var + self.eps) * self.scale.get_value() + self.bias.get_value()
    return y.astype(self.dtype or x.dtype)


class DropPath(nnx.Module):
  """Stochastic depth per sample (timm `DropPath`, scale_by_keep=True)."""

  def __init__(self, rate: float):
    self.rate = float(rate)

  def __call__(self, x, *, deterministic: bool = True, rngs: nnx.Rngs | None = None):
    if deterministic or self.rate == 0.0:
      return x
    if rngs is None:
      raise ValueError("DropPath needs `rngs` (with a 'dropout' stream) when deterministic=False")
    keep = 1.0 - self.rate
    mask = jax.random.bernoulli(rngs.dropout(), keep, (x.shape[0],) + (1,) * (x.ndim - 1))
    return jnp.where(mask, x / keep, 0).astype(x.dtype)


class Mlp(nnx.Module):
  """timm `Mlp`: fc1 → exact GELU → fc2 (dropout 0 in every model here)."""

  def __init__(self, in_features: int, hidden_features: int, *, dtype=None,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    self.fc1 = linear(in_features, hidden_features, axes=("embed", "mlp"), dtype=dtype,
                      param_dtype=param_dtype, rngs=rngs)
    self.fc2 = linear(hidden_features, in_features, axes=("mlp", "embed"), dtype=dtype,
                      param_dtype=param_dtype, rngs=rngs)

  def __call__(self, x):
    return self.fc2(gelu(self.fc1(x)))


# ----------------------------------------------------------------------------
# Windows (Swin V1 and V2 share these)
# ----------------------------------------------------------------------------


def window_partition(x, window: int):
  """(B, H, W, C) → (B·nW, window·window, C), windows in row-major order."""
  b, h, w, c = x.shape
  x = x.reshape(b, h // window, window, w // window, window, c)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def window_reverse(windows, window: int, h: int, w: int):
  """Inverse of `window_partition`: (B·nW, window·window, C) → (B, H, W, C)."""
  c = windows.shape[-1]
  x = windows.reshape(-1, h // window, w // window, window, window, c)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


@functools.lru_cache(maxsize=None)
def shifted_window_mask(grid: tuple[int, int], window: tuple[int, int],
                        shift: tuple[int, int]) -> np.ndarray | None:
  """The additive attention mask of shifted windows over a (padded) token grid:
  (nW, N, N) of 0 / -100, read-only and cached (kept out of `nnx.state`).

  Regions are labelled as in the Swin reference (three slices per axis) and
  token pairs from different regions get -100. None when there is no shift.
  """
  if not any(shift):
    return None
  img = np.zeros(grid, np.float32)
  count = 0
  for hs in (slice(0, -window[0]), slice(-window[0], -shift[0]), slice(-shift[0], None)):
    for ws in (slice(0, -window[1]), slice(-window[1], -shift[1]), slice(-shift[1], None)):
      img[hs, ws] = count
      count += 1
  h, w = grid
  windows = img.reshape(h // window[0], window[0], w // window[1], window[1])
  windows = windows.transpose(0, 2, 1, 3).reshape(-1, window[0] * window[1])  # (nW, N)
  diff = windows[:, None, :] - windows[:, :, None]
  mask = np.where(diff != 0, -100.0, 0.0).astype(np.float32)
  mask.setflags(write=False)
  return mask


@functools.lru_cache(maxsize=None)
def relative_position_index(window_h: int, window_w: int) -> np.ndarray:
  """Index into the (2Wh-1)(2Ww-1) relative-position table for each token pair
  (read-only and cached, kept out of `nnx.state`)."""
  coords = np.stack(np.meshgrid(np.arange(window_h), np.arange(window_w), indexing="ij"))
  coords = coords.reshape(2, -1)
  rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0)
  rel[:, :, 0] += window_h - 1
  rel[:, :, 1] += window_w - 1
  rel[:, :, 0] *= 2 * window_w - 1
  index = rel.sum(-1).astype(np.int32)
  index.setflags(write=False)
  return index


def merge_2x2(x, h: int, w: int):
  """(B, H·W, C) → (B, H/2·W/2, 4C), neighbours concatenated as the references do:
  [(even row, even col), (odd row, even col), (even row, odd col), (odd row, odd col)]."""
  b, _, c = x.shape
  x = x.reshape(b, h, w, c)
  parts = [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]]
  return jnp.concatenate(parts, axis=-1).reshape(b, (h // 2) * (w // 2), 4 * c)


class PatchMerging(nnx.Module):
  """Swin-V1 / HTS-AT 2×2 patch merging: LayerNorm(4C) then Linear(4C → 2C, no bias).
  (Swin-V2's reduction-then-norm variant is `swinv2.PatchMerging`.)"""

  def __init__(self, resolution: tuple[int, int], dim: int, *, dtype=None,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    self.resolution = tuple(resolution)
    self.reduction = linear(4 * dim, 2 * dim, use_bias=False, axes=("mlp", "embed"),
                            dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.norm = layer_norm(4 * dim, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

  def __call__(self, x):
    h, w = self.resolution
    if h % 2 or w % 2:
      raise ValueError(f"PatchMerging needs an even token grid, got {h}x{w}")
    return self.reduction(self.norm(merge_2x2(x, h, w)))


def run_stages(layers, x, *, deterministic: bool = True, rngs: nnx.Rngs | None = None):
  """Runs Swin-style stages (blocks, then the optional end-of-stage merging).

  Returns the last stage's tokens and {'stage{i}': tokens after the blocks of
  stage i, before its patch merging}, the per-stage features heads consume.
  """
  stages = {}
  for i, layer in enumerate(layers):
    x = layer(x, deterministic=deterministic, rngs=rngs)
    stages[f"stage{i}"] = x
    if layer.downsample is not None:
      x = layer.downsample(x)
  return x, stages
