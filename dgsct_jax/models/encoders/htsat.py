"""HTS-AT (Chen et al., ICASSP 2022), the frozen audio encoder of DG-SCT, in Flax NNX.

Mirrors `HTSAT_Swin_Transformer` of the official code (DG-SCT/AVE/nets/htsat.py,
the same class as laion_clap/clap_module/htsat.py with `enable_fusion=False`):

  waveform (B, samples) 32 kHz
    → `frontend` (LogMelFrontend: STFT, log-mel, `bn0`, SpecAugment, reshape_wav2img)
    → image (B, 256, 256, 1) NHWC
    → `patch_embed` (Conv 4×4 stride 4 + LayerNorm)     (B, 4096, 96)
    → `layers[i]`: Swin-V1 pre-norm blocks, then `downsample` (V1 patch merging,
      at the END of stages 0..2 as in the reference)
    → `norm` (final LayerNorm; DG-SCT does NOT apply it, spec §1.2)
    → token-semantic head: `tscam_conv` + averaging → AudioSet logits (527).

Attribute names follow the PyTorch module names (`layers.0.blocks.1.attn.qkv`,
`relative_position_bias_table`, `downsample.reduction`, `tscam_conv`, `head`)
so that weight conversion is a rename table (weight_conversion/maps/htsat.py);
only `bn0` moves, to `frontend.bn0`.

Block-level API (shared with Swin-V2 and used by the DG-SCT wrapper, spec §2.2):
  block(x, *, deterministic, rngs)            the whole pre-norm block
  block.attn_residual(x, ...) = x + DropPath(attn(norm1(x)))
  block.mlp_residual(x, ...)  = x + DropPath(mlp(norm2(x)))
  layers[i].resolution, .dim, .blocks, .downsample (None in the last stage)
  model.embed(waveforms) → tokens (B, 4096, 96); model.finalize(x) = final norm.

Train vs eval. `deterministic=False` turns on drop path (and dropout when
configured) and, by default, the front end's train behaviour (bn0 batch
statistics + running-stat update, SpecAugment), which is what the reference
does with its frozen HTS-AT in `train()` mode (spec §8.3). `bn0_batch_stats`
and `spec_augment` select the front-end parts independently.

Bad input. The front end checks rank, dtype and sample count before tracing
(ValueError naming the problem) and NaN/Inf on concrete arrays; under `jit`
non-finite values propagate silently, so validate on the host with
`validate_waveforms` (as `weight_conversion.run` does).
"""
import functools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dgsct_jax.models import layers
from dgsct_jax.models import matmul
from dgsct_jax.models import remat as remat_lib
from dgsct_jax.models.encoders import audio_frontend


def _dropout(rate: float):
  return nnx.Dropout(rate) if rate > 0 else None


def _maybe_drop(drop, x, deterministic, rngs):
  return x if drop is None else drop(x, deterministic=deterministic, rngs=rngs)


class WindowAttention(nnx.Module):
  """Swin-V1 window attention: scaled dot product + learned relative position bias."""

  def __init__(self, dim: int, window_size: int, num_heads: int, *, qkv_bias: bool = True,
               qk_scale: float | None = None, attn_drop: float = 0.0, proj_drop: float = 0.0,
               dtype=None, param_dtype=jnp.float32, rngs: nnx.Rngs):
    if dim % num_heads:
      raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
    self.dim, self.window_size, self.num_heads = dim, window_size, num_heads
    self.scale = qk_scale or (dim // num_heads) ** -0.5
    self.dtype = dtype
    self.relative_position_bias_table = nnx.Param(
        layers.trunc_normal(0.02, (None, "heads"))(
            rngs.params(), ((2 * window_size - 1) ** 2, num_heads), param_dtype))
    self.qkv = layers.linear(dim, 3 * dim, use_bias=qkv_bias, axes=("embed", "qkv"), dtype=dtype,
                             param_dtype=param_dtype, rngs=rngs)
    self.proj = layers.linear(dim, dim, axes=("qkv", "embed"), dtype=dtype,
                              param_dtype=param_dtype, rngs=rngs)
    self.attn_drop = _dropout(attn_drop)
    self.proj_drop = _dropout(proj_drop)

  @property
  def relative_position_index(self) -> np.ndarray:
    return layers.relative_position_index(self.window_size, self.window_size)

  def relative_position_bias(self):
    """(heads, N, N) bias gathered from the table."""
    n = self.window_size ** 2
    table = self.relative_position_bias_table.get_value()
    bias = table[self.relative_position_index.reshape(-1)].reshape(n, n, self.num_heads)
    return bias.transpose(2, 0, 1)

  def __call__(self, x, mask=None, *, deterministic: bool = True, rngs=None):
    """x: (B·nW, N, C) windows; mask: (nW, N, N) additive (0 / -100) or None."""
    bw, n, c = x.shape
    qkv = self.qkv(x).reshape(bw, n, 3, self.num_heads, c // self.num_heads)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]          # (B·nW, N, heads, hd)
    attn = matmul.einsum("bqhd,bkhd->bhqk", q * self.scale, k)
    f32 = layers.at_least_f32(attn.dtype)
    attn = attn.astype(f32) + self.relative_position_bias().astype(f32)[None]
    if mask is not None:
      nw = mask.shape[0]
      attn = attn.reshape(bw // nw, nw, self.num_heads, n, n) + jnp.asarray(mask)[None, :, None]
      attn = attn.reshape(bw, self.num_heads, n, n)
    attn = jax.nn.softmax(attn, axis=-1).astype(v.dtype)
    attn = _maybe_drop(self.attn_drop, attn, deterministic, rngs)
    out = matmul.einsum("bhqk,bkhd->bqhd", attn, v).reshape(bw, n, c)
    return _maybe_drop(self.proj_drop, self.proj(out), deterministic, rngs)


class SwinTransformerBlock(nnx.Module):
  """Swin-V1 pre-norm block: x + DP(attn(LN1 x)), then x + DP(MLP(LN2 x)).

  As in the reference, a grid not larger than the window uses one window of
  the grid's size and no shift (HTS-AT stage 4: 8×8 grid, window 8).
  """

  def __init__(self, dim: int, resolution: tuple[int, int], num_heads: int, *,
               window_size: int = 8, shift_size: int = 0, mlp_ratio: float = 4.0,
               qkv_bias: bool = True, qk_scale: float | None = None, drop: float = 0.0,
               attn_drop: float = 0.0, drop_path: float = 0.0, remat: bool = False, dtype=None,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    self.dim, self.resolution, self.num_heads = dim, tuple(resolution), num_heads
    self.remat = remat
    if min(self.resolution) <= window_size:
      shift_size, window_size = 0, min(self.resolution)
    if not 0 <= shift_size < window_size:
      raise ValueError(f"shift_size {shift_size} must be in [0, window_size {window_size})")
    h, w = self.resolution
    if h % window_size or w % window_size:
      raise ValueError(f"token grid {h}x{w} is not divisible by window {window_size}")
    self.window_size, self.shift_size = window_size, shift_size
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.norm1 = layers.layer_norm(dim, **kw)
    self.attn = WindowAttention(dim, window_size, num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale,
                                attn_drop=attn_drop, proj_drop=drop, **kw)
    self.drop_path = layers.DropPath(drop_path)
    self.norm2 = layers.layer_norm(dim, **kw)
    self.mlp = layers.Mlp(dim, int(dim * mlp_ratio), **kw)
    self.mlp_drop = _dropout(drop)

  @property
  def attn_mask(self) -> np.ndarray | None:
    return layers.shifted_window_mask(self.resolution, (self.window_size,) * 2,
                                      (self.shift_size,) * 2)

  def window_attention(self, x, *, deterministic: bool = True, rngs=None):
    """(B, L, C) normalised tokens → attention output (B, L, C), shift and windows undone."""
    b, _, c = x.shape
    h, w = self.resolution
    ws, shift = self.window_size, self.shift_size
    x = x.reshape(b, h, w, c)
    if shift:
      x = jnp.roll(x, (-shift, -shift), axis=(1, 2))
    windows = self.attn(layers.window_partition(x, ws), self.attn_mask,
                        deterministic=deterministic, rngs=rngs)
    x = layers.window_reverse(windows, ws, h, w)
    if shift:
      x = jnp.roll(x, (shift, shift), axis=(1, 2))
    return x.reshape(b, h * w, c)

  def mlp_branch(self, x, *, deterministic: bool = True, rngs=None):
    if self.mlp_drop is None:
      return self.mlp(x)
    x = _maybe_drop(self.mlp_drop, layers.gelu(self.mlp.fc1(x)), deterministic, rngs)
    return _maybe_drop(self.mlp_drop, self.mlp.fc2(x), deterministic, rngs)

  def attn_residual(self, x, *, deterministic: bool = True, rngs=None):
    """x + DropPath(attn(norm1(x)))."""
    self._check_tokens(x)
    y = self.window_attention(self.norm1(x), deterministic=deterministic, rngs=rngs)
    return x + self.drop_path(y, deterministic=deterministic, rngs=rngs)

  def mlp_residual(self, x, *, deterministic: bool = True, rngs=None):
    """x + DropPath(mlp(norm2(x)))."""
    y = self.mlp_branch(self.norm2(x), deterministic=deterministic, rngs=rngs)
    return x + self.drop_path(y, deterministic=deterministic, rngs=rngs)

  def __call__(self, x, *, deterministic: bool = True, rngs=None):
    """The whole block (rematerialised in the backward pass when `remat`)."""

    def run(block, x, rngs):
      x = block.attn_residual(x, deterministic=deterministic, rngs=rngs)
      return block.mlp_residual(x, deterministic=deterministic, rngs=rngs)

    if not self.remat:
      return run(self, x, rngs)
    return remat_lib.module_checkpoint(run)(self, x, rngs=rngs)

  def _check_tokens(self, x):
    h, w = self.resolution
    if x.ndim != 3 or x.shape[1] != h * w or x.shape[2] != self.dim:
      raise ValueError(f"block expects tokens (B, {h * w}, {self.dim}), got {tuple(x.shape)}")


class BasicLayer(nnx.Module):
  """One stage: `blocks` (shift 0, w/2, 0, ...) and `downsample` (None in the last stage).

  `__call__` runs the blocks only; the caller applies `downsample`, so that it
  can read the stage output first (the Swin-V2 stage API).
  """

  def __init__(self, dim: int, resolution: tuple[int, int], depth: int, num_heads: int, *,
               window_size: int, mlp_ratio: float, qkv_bias: bool, qk_scale: float | None,
               drop: float, attn_drop: float, drop_path: Sequence[float], downsample: bool,
               remat: bool = False, dtype=None, param_dtype=jnp.float32, rngs: nnx.Rngs):
    self.dim, self.resolution, self.depth = dim, tuple(resolution), depth
    self.blocks = nnx.List([
        SwinTransformerBlock(dim, resolution, num_heads, window_size=window_size,
                             shift_size=0 if i % 2 == 0 else window_size // 2,
                             mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, qk_scale=qk_scale, drop=drop,
                             attn_drop=attn_drop, drop_path=drop_path[i], remat=remat, dtype=dtype,
                             param_dtype=param_dtype, rngs=rngs)
        for i in range(depth)])
    self.downsample = (layers.PatchMerging(resolution, dim, dtype=dtype,
                                           param_dtype=param_dtype, rngs=rngs)
                       if downsample else None)

  def __call__(self, x, *, deterministic: bool = True, rngs=None):
    for block in self.blocks:
      x = block(x, deterministic=deterministic, rngs=rngs)
    return x


class PatchEmbed(nnx.Module):
  """Conv(in_chans → embed_dim, patch_size, stride patch_stride) + LayerNorm, NHWC."""

  def __init__(self, img_size: int, patch_size: int, patch_stride: tuple[int, int], in_chans: int,
               embed_dim: int, *, patch_norm: bool, dtype=None, param_dtype=jnp.float32,
               rngs: nnx.Rngs):
    ps = (patch_size, patch_size)
    pad = ((ps[0] - patch_stride[0]) // 2, (ps[1] - patch_stride[1]) // 2)
    self.img_size, self.in_chans = (img_size, img_size), in_chans
    self.grid_size = (img_size // patch_stride[0], img_size // patch_stride[1])
    fan_in = in_chans * ps[0] * ps[1]
    self.proj = nnx.Conv(in_chans, embed_dim, ps, tuple(patch_stride),
                         padding=((pad[0], pad[0]), (pad[1], pad[1])), dtype=dtype,
                         param_dtype=param_dtype,
                         kernel_init=layers.torch_kernel_init((None, None, None, "embed")),
                         bias_init=layers.torch_bias_init(fan_in, ("embed",)), rngs=rngs)
    self.norm = (layers.layer_norm(embed_dim, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
                 if patch_norm else None)

  def __call__(self, image):
    """(B, H, W, C) image → (B, H'·W', embed_dim) tokens, row-major."""
    if image.ndim != 4 or image.shape[1:] != self.img_size + (self.in_chans,):
      raise ValueError(f"patch_embed expects images (B, {self.img_size[0]}, {self.img_size[1]}, "
                       f"{self.in_chans}), got {tuple(image.shape)}")
    x = self.proj(image)
    grid = x.shape[1:3]
    if tuple(grid) != self.grid_size:
      raise ValueError(f"patch grid {grid} differs from {self.grid_size}")
    x = x.reshape(x.shape[0], grid[0] * grid[1], x.shape[-1])
    return x if self.norm is None else self.norm(x)


class HTSAT(nnx.Module):
  """HTS-AT with its log-mel front end (defaults: the AudioSet model DG-SCT uses).

  Constructor arguments mirror `HTSAT_Swin_Transformer` (+ its `config`'s audio
  settings). Not supported from the reference: `norm_before_mlp='bn'` (the
  reference builds a fresh BatchNorm1d at every call, so it cannot be trained
  or converted), `use_checkpoint` (use `remat`), laion-clap's fusion variants.
  """

  def __init__(self, *, spec_size: int = 256, patch_size: int = 4,
               patch_stride: Sequence[int] = (4, 4), in_chans: int = 1, num_classes: int = 527,
               embed_dim: int = 96, depths: Sequence[int] = (2, 2, 6, 2),
               num_heads: Sequence[int] = (4, 8, 16, 32), window_size: int = 8,
               mlp_ratio: float = 4.0, qkv_bias: bool = True, qk_scale: float | None = None,
               drop_rate: float = 0.0, attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1,
               ape: bool = False, patch_norm: bool = True, enable_tscam: bool = True,
               norm_before_mlp: str = "ln",
               sample_rate: int = 32000, window: int = 1024, hop: int = 320, mel_bins: int = 64,
               fmin: float = 50.0, fmax: float = 14000.0, num_samples: int | None = 320000,
               stft: str = "fft",
               dtype=None, param_dtype=jnp.float32, remat: bool = False,
               rngs: nnx.Rngs | None = None):
    if norm_before_mlp != "ln":
      raise ValueError(f"norm_before_mlp={norm_before_mlp!r} is not supported (only 'ln'; the "
                       "reference's 'bn' creates an untrained BatchNorm1d at every call)")
    if len(depths) != len(num_heads):
      raise ValueError(f"depths {tuple(depths)} and num_heads {tuple(num_heads)} differ in length")
    patch_stride = tuple(patch_stride) if isinstance(patch_stride, Sequence) else (patch_stride,) * 2
    rngs = layers.key_stream(rngs if rngs is not None else nnx.Rngs(0))
    kw = dict(dtype=dtype, param_dtype=param_dtype)
    self.spec_size, self.patch_stride, self.embed_dim = spec_size, patch_stride, embed_dim
    self.depths, self.num_heads = tuple(depths), tuple(num_heads)
    self.num_layers = len(depths)
    self.num_features = int(embed_dim * 2 ** (self.num_layers - 1))
    self.num_classes, self.enable_tscam = num_classes, enable_tscam
    self.freq_ratio = spec_size // mel_bins
    self.dtype = dtype

    self.frontend = audio_frontend.LogMelFrontend(
        sample_rate=sample_rate, n_fft=window, hop=hop, mel_bins=mel_bins, fmin=fmin, fmax=fmax,
        spec_size=spec_size, num_samples=num_samples, stft=stft)
    self.patch_embed = PatchEmbed(spec_size, patch_size, patch_stride, in_chans, embed_dim,
                                  patch_norm=patch_norm, rngs=rngs, **kw)
    grid = self.patch_embed.grid_size
    self.absolute_pos_embed = (
        nnx.Param(layers.trunc_normal(0.02, (None, None, "embed"))(
            rngs.params(), (1, grid[0] * grid[1], embed_dim), param_dtype)) if ape else None)
    self.pos_drop = _dropout(drop_rate)
    dpr = np.linspace(0, drop_path_rate, sum(depths)).tolist()
    self.layers = nnx.List()
    for i, depth in enumerate(depths):
      self.layers.append(BasicLayer(
          embed_dim * 2 ** i, (grid[0] // 2 ** i, grid[1] // 2 ** i), depth, num_heads[i],
          window_size=window_size, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, qk_scale=qk_scale,
          drop=drop_rate, attn_drop=attn_drop_rate,
          drop_path=dpr[sum(depths[:i]):sum(depths[:i + 1])],
          downsample=i < self.num_layers - 1, remat=remat, rngs=rngs, **kw))
    self.norm = layers.layer_norm(self.num_features, rngs=rngs, **kw)
    if enable_tscam:
      sf = spec_size // 2 ** (self.num_layers - 1) // patch_stride[0] // self.freq_ratio
      self.tscam_conv = nnx.Conv(
          self.num_features, num_classes, (sf, 3), padding=((0, 0), (1, 1)),
          kernel_init=layers.torch_kernel_init((None, None, "embed", "classes")),
          bias_init=layers.torch_bias_init(self.num_features * sf * 3, ("classes",)),
          rngs=rngs, **kw)
      self.head = layers.linear(num_classes, num_classes, axes=("classes", "classes"), rngs=rngs, **kw)
    else:
      self.tscam_conv = None
      self.head = layers.linear(self.num_features, num_classes, axes=("embed", "classes"),
                                rngs=rngs, **kw)

  # -- geometry ----------------------------------------------------------------

  def stage_geometry(self) -> list[tuple[int, int]]:
    """(tokens, dim) of every stage's output (before its patch merging), as Swin-V2."""
    return [(layer.resolution[0] * layer.resolution[1], layer.dim) for layer in self.layers]

  # -- pieces --------------------------------------------------------------------

  def front(self, waveforms, *, deterministic: bool = True, rngs=None,
            bn0_batch_stats: bool | None = None, spec_augment: bool | None = None,
            mixup_lambda=None):
    """waveforms (B, samples) → (logmel after bn0 [+ SpecAugment] [+ mixup] (B, frames, mel),
    image NHWC). `mixup_lambda` (B,): HTS-AT's `do_mixup` of the log-mels with the
    batch reversed, x ← λ·x + (1 − λ)·x[::-1] (labels are the caller's business)."""
    fe = self.frontend
    batch_stats, augment = fe._modes(deterministic, rngs, bn0_batch_stats, spec_augment)  # pylint: disable=protected-access
    x = fe.normalize(fe.logmel(waveforms), batch_stats=batch_stats)
    if augment:
      x = fe.spec_augment(x, rngs)
    if mixup_lambda is not None:
      lam = mixup_lambda.astype(x.dtype)[:, None, None]
      x = lam * x + (1 - lam) * x[::-1]
    return x, fe.to_image(x)

  def embed_image(self, image, *, deterministic: bool = True, rngs=None):
    """Image (B, spec, spec, in_chans) → tokens (B, L, embed_dim) (+ ape, pos_drop).

    The tokens take `dtype`, or else the dtype the weights are stored in (the front
    end before this always runs in at least float32).
    """
    dtype = self.dtype or self.patch_embed.proj.kernel.get_value().dtype
    x = self.patch_embed(image.astype(dtype))
    if self.absolute_pos_embed is not None:
      x = x + self.absolute_pos_embed.get_value()
    return _maybe_drop(self.pos_drop, x, deterministic, rngs)

  def embed(self, waveforms, *, deterministic: bool = True, rngs=None,
            bn0_batch_stats: bool | None = None, spec_augment: bool | None = None,
            mixup_lambda=None):
    """Front end + patch embedding: waveforms (B, samples) → tokens (B, 4096, 96)."""
    _, image = self.front(waveforms, deterministic=deterministic, rngs=rngs,
                          bn0_batch_stats=bn0_batch_stats, spec_augment=spec_augment,
                          mixup_lambda=mixup_lambda)
    return self.embed_image(image, deterministic=deterministic, rngs=rngs)

  def finalize(self, x):
    """The final LayerNorm (`norm`); DG-SCT skips it (spec §8.9)."""
    return self.norm(x)

  def forward_tokens(self, x, *, deterministic: bool = True, rngs=None):
    """Tokens after patch embedding → (last-stage tokens before `norm`, per-stage aux)."""
    return layers.run_stages(self.layers, x, deterministic=deterministic, rngs=rngs)

  # -- whole model -----------------------------------------------------------------

  def __call__(self, waveforms, *, deterministic: bool = True, rngs=None,
               bn0_batch_stats: bool | None = None, spec_augment: bool | None = None):
    """waveforms (B, samples) → (features (B, 64, 768) without final norm, aux).

    aux: 'logmel' (B, frames, mel) after bn0 (and SpecAugment when on), before
    resizing/folding; 'image' (B, 256, 256, 1); 'stage0'..'stage{n-1}' (B, L_i, C_i)
    after the blocks of stage i, before merging. `features` equals the last stage.
    """
    logmel, image = self.front(waveforms, deterministic=deterministic, rngs=rngs,
                               bn0_batch_stats=bn0_batch_stats, spec_augment=spec_augment)
    x = self.embed_image(image, deterministic=deterministic, rngs=rngs)
    x, aux = self.forward_tokens(x, deterministic=deterministic, rngs=rngs)
    return x, dict(logmel=logmel, image=image, **aux)

  def head_outputs(self, features) -> dict:
    """The reference's `forward_features` after the blocks, eval mode.

    features: last-stage tokens (B, L, C) before `norm`. With the token-semantic
    head (enable_tscam): 'clipwise_logits' (B, classes), 'clipwise_output' =
    sigmoid, 'framewise_output' (B, 1024, classes) already sigmoided,
    'latent_output' = laion's 'embedding' (B, C), 'fine_grained_embedding'
    (B, 1024, C) (laion-clap only). Without it, DG-SCT's linear-head branch:
    'clipwise_output', 'framewise_output' (sigmoided `head` of pooled tokens).
    Note that `head` exists in the tscam model but, as in the reference, is unused.
    """
    x = self.norm(features)
    b, n, c = x.shape
    h, w = self.layers[-1].resolution
    if h * w != n:
      raise ValueError(f"head expects {h * w} tokens, got {n}")
    upsample = 8 * self.patch_stride[1]
    grid = x.reshape(b, h, w, c)                             # torch (B, C, F, T)
    cfb = h // self.freq_ratio
    if self.tscam_conv is None:
      fpx = grid.reshape(b, h // cfb, cfb, w, c).transpose(0, 2, 1, 3, 4).reshape(b, cfb, -1, c)
      fpx = fpx.sum(axis=1)                                  # (B, T', C)
      pooled = x.mean(axis=1)
      logits, fpx = self.head(pooled), self.head(fpx)
      return dict(clipwise_logits=logits, clipwise_output=jax.nn.sigmoid(logits),
                  framewise_output=jnp.repeat(jax.nn.sigmoid(fpx), upsample, axis=1))
    # group 2D CNN: (B, F//cfb, cfb, T, C) → (B, cfb, F//cfb·T, C)
    grid = grid.reshape(b, h // cfb, cfb, w, c).transpose(0, 2, 1, 3, 4).reshape(b, cfb, -1, c)
    latent = grid.reshape(b, -1, c).mean(axis=1)
    fine = jnp.repeat(grid.mean(axis=1), upsample, axis=1)
    cam = self.tscam_conv(grid)                              # (B, 1, T'', classes)
    cam = cam.reshape(b, -1, self.num_classes)
    logits = cam.mean(axis=1)
    return dict(clipwise_logits=logits, clipwise_output=jax.nn.sigmoid(logits),
                framewise_output=jnp.repeat(jax.nn.sigmoid(cam), upsample, axis=1),
                latent_output=latent, fine_grained_embedding=fine)

  def tag(self, waveforms) -> dict:
    """Standalone AudioSet tagging (eval mode): waveforms → `head_outputs`."""
    features, _ = self(waveforms, deterministic=True)
    return self.head_outputs(features)


def validate_waveforms(waveforms, *, num_samples: int | None = 320000,
                       min_samples: int = 513) -> np.ndarray:
  """Host-side check before jit: rank 2 (B, samples), floating dtype, the expected
  sample count, all finite. Returns float32 or raises ValueError naming the problem."""
  return audio_frontend.validate_waveform(waveforms, num_samples=num_samples,
                                          min_samples=min_samples)


def num_parameters(model: nnx.Module) -> int:
  return sum(math.prod(v.shape) for v in jax.tree.leaves(nnx.state(model, nnx.Param)))
