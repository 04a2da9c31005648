"""Swin Transformer V2 (timm `SwinTransformerV2`) in Flax NNX.

Numerically equal to timm's implementation (1.0.x, and 0.6.12 wherever 0.6.12
is defined, i.e. token grids divisible by the windows and by 2 at every patch
merging) for any depths, widths, heads, window sizes, pretrained window sizes
and image sizes, square or not:

* cosine window attention, logits × exp(min(logit_scale, ln 100)), q/v biases
  (k bias fixed at 0);
* continuous position bias: `cpb_mlp` (2→512, ReLU, 512→heads) on log-spaced
  relative coordinates normalised by `pretrained_window_size − 1` (or the
  current window − 1 when 0), bias = 16·sigmoid(·);
* res-post-norm blocks `x + DropPath(LN(f(x)))`, shifted windows with −100
  masks, V2 patch merging (2×2 concat → Linear(4C→2C) → LN(2C)), final norm;
* window clamping as timm: where a stage's grid is ≤ the window along an axis,
  the window becomes the grid and the shift 0 along that axis;
* timm 1.x padding: a grid that is not a multiple of the window is padded with
  zero tokens (after the cyclic shift) before partitioning, odd grids are
  zero-padded before patch merging.

Layout (the timm 0.6.x one, as in the official DG-SCT checkpoints): patch
merging is `layers[i].downsample` at the *end* of stage i, None for the last
stage. Attribute names mirror timm (`patch_embed.proj`, `layers[i].blocks[j].
attn.{qkv, q_bias, v_bias, logit_scale, cpb_mlp, proj}`, `norm1`, `mlp.fc1`,
...), so weight conversion is a rename table (weight_conversion/maps/swinv2.py).

The DG-SCT model runs each block's attention half and MLP half separately with
its adapters in between, so every block exposes `attn_residual` and
`mlp_residual` (`__call__` runs both). `SwinTransformerV2.__call__` returns the
final features and the output of every stage before its patch merging.

Relative position tables and indices and the shifted-window masks are numpy
constants of the geometry (cached functions of the window/shift/grid sizes),
not variables; they are embedded in the compiled program.
"""
import functools
import math
from typing import Sequence

import flax.linen as nn_linen
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dgsct_jax.models import layers
from dgsct_jax.models import matmul
from dgsct_jax.models import remat as remat_lib

# Logical axis names of activations (B, L, C). Without logical-axis rules in
# context (`flax.linen.logical_axis_rules`) the constraint is a no-op.
ACT_AXES = ("batch", "act_length", "act_embed")

LOGIT_SCALE_MAX = math.log(1.0 / 0.01)


def constrain(x, axes=ACT_AXES):
  """Names the axes of an activation for the sharding rules (no-op without rules)."""
  return nn_linen.with_logical_constraint(x, axes)


def to_2tuple(x) -> tuple[int, int]:
  if isinstance(x, (list, tuple)):
    if len(x) != 2:
      raise ValueError(f"expected an int or a pair, got {x!r}")
    return int(x[0]), int(x[1])
  return int(x), int(x)


def stage_window_sizes(window_size, num_stages: int) -> tuple[tuple[int, int], ...]:
  """timm's `resolve_stage_window_sizes`: an int or (h, w) for all stages, or one per stage
  (a sequence of two ints is always a single (h, w))."""
  if not isinstance(window_size, (list, tuple)):
    window_size = (window_size,) * num_stages
  elif len(window_size) == 2 and not isinstance(window_size[0], (list, tuple)):
    window_size = (tuple(window_size),) * num_stages
  if len(window_size) != num_stages:
    raise ValueError(f"expected {num_stages} stage window sizes, got {window_size!r}")
  sizes = tuple(to_2tuple(w) for w in window_size)
  if any(w <= 0 for ws in sizes for w in ws):
    raise ValueError(f"window sizes must be positive, got {sizes}")
  return sizes


def window_and_shift(resolution, window, shift) -> tuple[tuple[int, int], tuple[int, int]]:
  """timm `_calc_window_shift`: clamp the window to the grid, no shift where the grid fits."""
  window = tuple(r if r <= w else w for r, w in zip(resolution, window))
  shift = tuple(0 if r <= w else s for r, w, s in zip(resolution, window, shift))
  return window, shift


# ----------------------------------------------------------------------------
# Geometry constants (numpy, cached)
# ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def relative_coords_table(window: tuple[int, int], pretrained_window: tuple[int, int]) -> np.ndarray:
  """(2Wh−1, 2Ww−1, 2) log-spaced relative coordinates, the input of `cpb_mlp`."""
  coords = np.stack(np.meshgrid(np.arange(-(window[0] - 1), window[0], dtype=np.float32),
                                np.arange(-(window[1] - 1), window[1], dtype=np.float32),
                                indexing="ij"), axis=-1)
  norm = pretrained_window if pretrained_window[0] > 0 else window
  coords[..., 0] /= max(norm[0] - 1, 1)
  coords[..., 1] /= max(norm[1] - 1, 1)
  coords *= 8
  coords = (np.sign(coords) * np.log2(np.abs(coords) + 1.0) / math.log2(8)).astype(np.float32)
  coords.setflags(write=False)
  return coords


# ----------------------------------------------------------------------------
# Modules
# ----------------------------------------------------------------------------


class ReLU(nnx.Module):
  """Parameterless, so that `cpb_mlp` indexes like timm's Sequential (0: Linear, 1: ReLU, 2: Linear)."""

  def __call__(self, x):
    return jax.nn.relu(x)


def _l2_normalize(x, eps: float = 1e-12):
  """torch.nn.functional.normalize: x / max(‖x‖, eps)."""
  norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True))
  return x / jnp.maximum(norm, eps)


class WindowAttention(nnx.Module):
  """Cosine window attention with a continuous position bias (timm `WindowAttention`)."""

  def __init__(self, dim: int, window_size: tuple[int, int], num_heads: int, *,
               pretrained_window_size=(0, 0), dtype=None, param_dtype=jnp.float32,
               rngs: nnx.Rngs):
    if dim % num_heads:
      raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
    self.dim = dim
    self.window_size = to_2tuple(window_size)
    self.pretrained_window_size = to_2tuple(pretrained_window_size)
    self.num_heads = num_heads
    self.dtype = dtype
    self.logit_scale = layers.param(jnp.full((num_heads, 1, 1), math.log(10.0), param_dtype),
                                    ("heads", None, None))
    # The position-bias MLP is tiny and runs in (at least) float32 whatever `dtype` is:
    # its input table is float32 and dtype=None keeps the promotion with the params.
    self.cpb_mlp = nnx.List([
        layers.linear(2, 512, axes=(None, None), dtype=None, param_dtype=param_dtype,
                      rngs=rngs),
        ReLU(),
        layers.linear(512, num_heads, use_bias=False, axes=(None, None), dtype=None,
                      param_dtype=param_dtype, rngs=rngs),
    ])
    self.qkv = layers.linear(dim, 3 * dim, use_bias=False, axes=("embed", "heads"), dtype=dtype,
                             param_dtype=param_dtype, rngs=rngs)
    self.q_bias = layers.param(jnp.zeros((dim,), param_dtype), ("heads",))
    self.v_bias = layers.param(jnp.zeros((dim,), param_dtype), ("heads",))
    self.proj = layers.linear(dim, dim, axes=("heads", "embed"), dtype=dtype,
                              param_dtype=param_dtype, rngs=rngs)
    # Computed once here (cached per geometry); used as constants in __call__.
    relative_coords_table(self.window_size, self.pretrained_window_size)

  @property
  def relative_coords_table(self) -> np.ndarray:
    return relative_coords_table(self.window_size, self.pretrained_window_size)

  @property
  def relative_position_index(self) -> np.ndarray:
    return layers.relative_position_index(*self.window_size)

  def position_bias(self):
    """(heads, N, N) = 16·sigmoid(cpb_mlp(coords))[relative_position_index], float32."""
    table = jnp.asarray(self.relative_coords_table).reshape(-1, 2)
    with matmul.operand_dtype(None):  # tiny, and amplified by 16·sigmoid: always exact
      for layer in self.cpb_mlp:
        table = layer(table)
    n = self.window_size[0] * self.window_size[1]
    bias = table[self.relative_position_index.reshape(-1)].reshape(n, n, self.num_heads)
    return 16.0 * jax.nn.sigmoid(bias.transpose(2, 0, 1).astype(layers.at_least_f32(bias.dtype)))

  def __call__(self, x, mask=None):
    """x: (B, nW, N, C) windows; mask: (nW, N, N) additive or None → (B, nW, N, C)."""
    b, nw, n, c = x.shape
    h = self.num_heads
    dtype = self.dtype or x.dtype
    zero = jnp.zeros_like(self.q_bias.get_value())
    qkv = self.qkv(x) + jnp.concatenate([self.q_bias.get_value(), zero,
                                         self.v_bias.get_value()]).astype(dtype)
    qkv = qkv.reshape(b, nw, n, 3, h, c // h)
    q, k, v = qkv[..., 0, :, :], qkv[..., 1, :, :], qkv[..., 2, :, :]
    # Cosine similarity in float32 whatever `dtype` is: the logits are cos·scale with a
    # scale up to 100, so bfloat16 q/k (8-bit mantissa) would move them by ~0.1-0.5.
    # The per-head logit scale is folded into q; this matmul ignores `matmul.operand_dtype`.
    f32 = layers.at_least_f32(q.dtype)
    scale = jnp.exp(jnp.minimum(self.logit_scale.get_value().astype(f32),
                                LOGIT_SCALE_MAX)).reshape(h, 1)
    q = _l2_normalize(q.astype(f32)) * scale
    k = _l2_normalize(k.astype(f32))
    logits = jnp.einsum("bwnhd,bwmhd->bwhnm", q, k)
    logits = logits + self.position_bias()
    if mask is not None:
      logits = logits + jnp.asarray(mask)[None, :, None]
    attn = jax.nn.softmax(logits, axis=-1).astype(dtype)
    out = matmul.einsum("bwhnm,bwmhd->bwnhd", attn, v).reshape(b, nw, n, c)
    return self.proj(out)


class SwinTransformerV2Block(nnx.Module):
  """Res-post-norm block: `x + DP(norm1(attn(x)))`, then `x + DP(norm2(mlp(x)))`.

  `resolution` is the (H, W) token grid; `window_size` and `shift_size` are the
  requested ones (clamped here as timm does; the effective ones are the
  attributes `window_size`, `shift_size`).
  """

  def __init__(self, dim: int, resolution, num_heads: int, *, window_size=7, shift_size=0,
               mlp_ratio: float = 4.0, drop_path: float = 0.0, pretrained_window_size=0,
               remat: bool = False, dtype=None, param_dtype=jnp.float32, rngs: nnx.Rngs):
    self.dim = dim
    self.resolution = to_2tuple(resolution)
    self.num_heads = num_heads
    self.window_size, self.shift_size = window_and_shift(
        self.resolution, to_2tuple(window_size), to_2tuple(shift_size))
    self.padded = tuple(math.ceil(r / w) * w for r, w in zip(self.resolution, self.window_size))
    self.remat = remat
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.attn = WindowAttention(dim, self.window_size, num_heads,
                                pretrained_window_size=to_2tuple(pretrained_window_size), **kw)
    self.norm1 = layers.layer_norm(dim, **kw)
    self.drop_path1 = layers.DropPath(drop_path)
    self.mlp = layers.Mlp(dim, int(dim * mlp_ratio), **kw)
    self.norm2 = layers.layer_norm(dim, **kw)
    self.drop_path2 = layers.DropPath(drop_path)

  @property
  def attn_mask(self) -> np.ndarray | None:
    return layers.shifted_window_mask(self.padded, self.window_size, self.shift_size)

  def _attn(self, x):
    """Shifted-window attention on tokens (B, L, C) → (B, L, C)."""
    b, _, c = x.shape
    (h, w), (wh, ww), (sh, sw), (hp, wp) = (self.resolution, self.window_size, self.shift_size,
                                            self.padded)
    x = x.reshape(b, h, w, c)
    if sh or sw:
      x = jnp.roll(x, (-sh, -sw), axis=(1, 2))
    if (hp, wp) != (h, w):
      x = jnp.pad(x, ((0, 0), (0, hp - h), (0, wp - w), (0, 0)))
    x = x.reshape(b, hp // wh, wh, wp // ww, ww, c).transpose(0, 1, 3, 2, 4, 5)
    x = x.reshape(b, (hp // wh) * (wp // ww), wh * ww, c)
    x = self.attn(x, self.attn_mask)
    x = x.reshape(b, hp // wh, wp // ww, wh, ww, c).transpose(0, 1, 3, 2, 4, 5)
    x = x.reshape(b, hp, wp, c)[:, :h, :w]
    if sh or sw:
      x = jnp.roll(x, (sh, sw), axis=(1, 2))
    return x.reshape(b, h * w, c)

  def _attn_half(self, x, deterministic, rngs):
    return x + self.drop_path1(self.norm1(self._attn(x)), deterministic=deterministic, rngs=rngs)

  def _mlp_half(self, x, deterministic, rngs):
    return x + self.drop_path2(self.norm2(self.mlp(x)), deterministic=deterministic, rngs=rngs)

  def _residual(self, half: str, x, deterministic: bool, rngs):
    """Runs one half, under `remat.module_checkpoint` when the block was built with remat=True."""
    x = constrain(x)
    if not self.remat:
      return constrain(getattr(self, half)(x, deterministic, rngs))

    def run(block, x, rngs):
      return getattr(block, half)(x, deterministic, rngs)

    return constrain(remat_lib.module_checkpoint(run)(self, x, rngs=rngs))

  def attn_residual(self, x, *, deterministic: bool = True, rngs: nnx.Rngs | None = None):
    """x + drop_path(norm1(window_attention(x))), x: (B, H·W, C)."""
    return self._residual("_attn_half", x, deterministic, rngs)

  def mlp_residual(self, x, *, deterministic: bool = True, rngs: nnx.Rngs | None = None):
    """x + drop_path(norm2(mlp(x))), x: (B, H·W, C)."""
    return self._residual("_mlp_half", x, deterministic, rngs)

  def __call__(self, x, *, deterministic: bool = True, rngs: nnx.Rngs | None = None):
    x = self.attn_residual(x, deterministic=deterministic, rngs=rngs)
    return self.mlp_residual(x, deterministic=deterministic, rngs=rngs)


class PatchMerging(nnx.Module):
  """V2 patch merging: 2×2 neighbours concatenated → Linear(4C→2C, no bias) → LayerNorm(2C).

  An odd grid is zero-padded at the bottom/right first (timm 1.x)."""

  def __init__(self, resolution, dim: int, *, dtype=None, param_dtype=jnp.float32,
               rngs: nnx.Rngs):
    self.resolution = to_2tuple(resolution)
    self.dim = dim
    self.out_resolution = tuple((r + 1) // 2 for r in self.resolution)
    self.reduction = layers.linear(4 * dim, 2 * dim, use_bias=False, axes=("mlp", "embed"),
                                   dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.norm = layers.layer_norm(2 * dim, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

  def __call__(self, x):
    b, _, c = x.shape
    h, w = self.resolution
    if h % 2 or w % 2:
      x = jnp.pad(x.reshape(b, h, w, c), ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
      h, w = h + h % 2, w + w % 2
      x = x.reshape(b, h * w, c)
    return constrain(self.norm(self.reduction(layers.merge_2x2(x, h, w))))


class PatchEmbed(nnx.Module):
  """Conv(k=s=patch) on NCHW images (computed NHWC) → tokens (B, L, C) → LayerNorm."""

  def __init__(self, img_size, patch_size, in_chans: int, embed_dim: int, *, dtype=None,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    self.img_size = to_2tuple(img_size)
    self.patch_size = to_2tuple(patch_size)
    if any(i % p for i, p in zip(self.img_size, self.patch_size)):
      raise ValueError(f"img_size {self.img_size} is not divisible by patch_size {self.patch_size}")
    self.in_chans = in_chans
    self.grid_size = tuple(i // p for i, p in zip(self.img_size, self.patch_size))
    fan_in = in_chans * self.patch_size[0] * self.patch_size[1]
    self.proj = nnx.Conv(in_chans, embed_dim, self.patch_size, self.patch_size, padding="VALID",
                         dtype=dtype, param_dtype=param_dtype,
                         kernel_init=layers.torch_kernel_init((None, None, None, "embed")),
                         bias_init=layers.torch_bias_init(fan_in, ("embed",)), rngs=rngs)
    self.norm = layers.layer_norm(embed_dim, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

  def __call__(self, images):
    b, c, h, w = images.shape
    if (c, h, w) != (self.in_chans,) + self.img_size:
      raise ValueError(f"expected images (B, {self.in_chans}, {self.img_size[0]}, "
                       f"{self.img_size[1]}) (NCHW), got {images.shape}")
    x = self.proj(jnp.transpose(images, (0, 2, 3, 1)))
    return constrain(self.norm(x.reshape(b, -1, x.shape[-1])))


class SwinTransformerV2Stage(nnx.Module):
  """The blocks of one stage, then (except for the last stage) its patch merging."""

  def __init__(self, dim: int, resolution, depth: int, num_heads: int, *, window_size,
               downsample: bool, mlp_ratio: float, drop_path: Sequence[float],
               pretrained_window_size, remat: bool, dtype=None, param_dtype=jnp.float32,
               rngs: nnx.Rngs):
    self.dim = dim
    self.resolution = to_2tuple(resolution)
    self.depth = depth
    window = to_2tuple(window_size)
    shift = tuple(w // 2 for w in window)
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.blocks = nnx.List([
        SwinTransformerV2Block(dim, self.resolution, num_heads, window_size=window,
                               shift_size=0 if j % 2 == 0 else shift, mlp_ratio=mlp_ratio,
                               drop_path=drop_path[j], pretrained_window_size=pretrained_window_size,
                               remat=remat, **kw)
        for j in range(depth)])
    self.downsample = PatchMerging(self.resolution, dim, **kw) if downsample else None

  def __call__(self, x, *, deterministic: bool = True, rngs: nnx.Rngs | None = None):
    """Blocks only (the caller applies `downsample`, so that it can read the stage output)."""
    for block in self.blocks:
      x = block(x, deterministic=deterministic, rngs=rngs)
    return x


class SwinTransformerV2(nnx.Module):
  """timm `SwinTransformerV2` without the classifier head.

  `__call__(images NCHW) -> (features (B, L, C) after the final norm,
  {'stage0': ..., 'stage{n-1}': tokens after the blocks of stage i, before its
  patch merging})`.
  """

  def __init__(self, *, img_size=224, patch_size=4, in_chans: int = 3, embed_dim: int = 96,
               depths: Sequence[int] = (2, 2, 6, 2), num_heads: Sequence[int] = (3, 6, 12, 24),
               window_size=7, pretrained_window_sizes: Sequence = (0, 0, 0, 0),
               mlp_ratio: float = 4.0, drop_path_rate: float = 0.1, dtype=None,
               param_dtype=jnp.float32, remat: bool = False, rngs: nnx.Rngs):
    rngs = layers.key_stream(rngs)
    depths, num_heads = tuple(depths), tuple(num_heads)
    n = len(depths)
    if len(num_heads) != n or len(pretrained_window_sizes) < n:
      raise ValueError(f"depths {depths}, num_heads {num_heads} and pretrained_window_sizes "
                       f"{pretrained_window_sizes} must have one entry per stage")
    self.num_layers = n
    self.embed_dim = embed_dim
    self.num_features = embed_dim * 2 ** (n - 1)
    self.dtype = dtype
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim, **kw)
    windows = stage_window_sizes(window_size, n)
    rates = np.linspace(0.0, drop_path_rate, sum(depths), dtype=np.float32).tolist()
    stages, resolution = [], self.patch_embed.grid_size
    for i in range(n):
      start = sum(depths[:i])
      stages.append(SwinTransformerV2Stage(
          embed_dim * 2 ** i, resolution, depths[i], num_heads[i], window_size=windows[i],
          downsample=i < n - 1, mlp_ratio=mlp_ratio, drop_path=rates[start:start + depths[i]],
          pretrained_window_size=pretrained_window_sizes[i], remat=remat, **kw))
      resolution = tuple((r + 1) // 2 for r in resolution)
    self.layers = nnx.List(stages)
    self.norm = layers.layer_norm(self.num_features, **kw)

  def stage_geometry(self) -> list[tuple[int, int]]:
    """(tokens, dim) of every stage's output (before its patch merging)."""
    return [(layer.resolution[0] * layer.resolution[1], layer.dim) for layer in self.layers]

  def embed(self, images, *, deterministic: bool = True, rngs: nnx.Rngs | None = None):
    """Images (B, C, H, W) like PyTorch → patch tokens (B, L, C).

    The tokens take `dtype`, or else the dtype the weights are stored in: a trainer
    that stores the frozen weights in bf16 gets bf16 activations.
    """
    del deterministic, rngs  # no dropout in the embedding (timm pos_drop is 0)
    images = jnp.asarray(images)
    dtype = self.dtype or self.patch_embed.proj.kernel.get_value().dtype
    return self.patch_embed(images.astype(dtype))

  def finalize(self, x):
    """The final LayerNorm."""
    return self.norm(x)

  def __call__(self, images, *, deterministic: bool = True, rngs: nnx.Rngs | None = None):
    x = self.embed(images, deterministic=deterministic, rngs=rngs)
    x, aux = layers.run_stages(self.layers, x, deterministic=deterministic, rngs=rngs)
    return self.finalize(x), aux
