"""The AVS (AVSBench S4/MS3) head of DG-SCT: everything after the encoders.

Reference: `Pred_endecoder.forward` after the encoder loop, its
`TemporalAttention`, `TPAVIModule` (model/TPAVI.py) and the decoder blocks
(`FeatureFusionBlock`, `ResidualConvUnit`) of
`DG-SCT/AVS/avs_scripts/avs_{s4,ms3}/model/PVT_AVSModel.py`; spec
dgsct_tasks.md §2.2. The S4 and MS3 heads differ only in γ (`gamma`: 0.05 for
S4 and MS3's test.sh, 0.1 for MS3's training default).

Per clip of T = 5 frames (BF = B·T):
1. each Swin stage's tokens (BF, N_i, C_i) (square grids 48², 24², 12², 6²) →
   `x{i}_linear_` (C_i → 256) → bicubic resize (align_corners=False) to 56, 28,
   14, 7; the pooled audio (B, T, 768) → `audio_linear` → (B, T, 128);
2. `temporal_attn`: per stage a CMBS-style gate (LSTMs + self-attention over
   time) scales each map by 1 + γ·g_a and the audio by 1 + γ·mean_i(g_v);
3. `tpavi_b{i}`: audio-visual non-local block ("dot" mode, no softmax) with a
   BatchNorm'd 1×1 projection, a residual and a LayerNorm; it also returns the
   aligned audio `a_fea` (B, T, 256) that the MS3 loss uses;
4. decoder `path4 … path1` (fusion blocks of residual conv units, bilinear ×2
   with align_corners=True) from 7² to 112², then `output_conv` → logits 224².

Layout: NHWC inside. `AVSHead` returns `pred` (BF, 224, 224, 1) logits and the
maps NHWC; `to_official_layout` gives the reference's NCHW ((BF, 1, 224, 224)).

Numerics. The reference's "dot" non-local product y = (θᵀφ / N)·g builds an
N×N matrix (N = T·H·W = 15 680 at stage 1, ~1 GB per clip). Without a softmax
the product is associative, so y = θ·(φᵀg) / N with a C'×C' middle factor;
φ is the broadcast audio, constant over (H, W), so φᵀg only needs g summed over
(H, W) per frame (`dot_nonlocal`). With rule weights this term dominates the
residual and its cancellation errors pass through the LayerNorm, so its two
small matmuls run at full float32 precision.

In-place ReLUs of the reference, reproduced: `ResidualConvUnit` adds ReLU(x),
not x, and the feature maps `Pred_endecoder` returns (used by the MS3 loss)
are the ReLU'd TPAVI outputs (`v_map_stage{i}` here).

Training mode (`deterministic=False`): dropout 0.2 after `v_fc`, 0.1 in the
temporal encoders (attention weights and residual branches), and the TPAVI
BatchNorm3d normalises with batch statistics over (B, T, H, W) and updates its
running statistics (PyTorch momentum 0.1, unbiased variance).

Dead parameters, built only with `keep_dead_params=True` (faithful: checkpoints
convert strictly): `temporal_attn.{audio,video}_decoder` (the reference computes
them and discards the result; here they are not called), the template
`encoder_layer` of each temporal encoder, and `path4.resConfUnit1` (path4 has a
single input). Their gradients are zero, as in the reference.
"""
import functools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dgsct_jax.models import layers
from dgsct_jax.models import resize
from dgsct_jax.models import torch_nn
from dgsct_jax.models.heads import ave as ave_head

NUM_STAGES = 4
_CONV_AXES = (None, None, "embed", "mlp")


# ----------------------------------------------------------------------------
# Bilinear ×2 (PyTorch `F.interpolate(mode="bilinear")`), as one matrix per axis
# ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def bilinear_matrix(in_size: int, out_size: int, align_corners: bool,
                    dtype: str = "float32") -> np.ndarray:
  """(out_size, in_size) matrix of PyTorch's linear interpolation along one axis.

  ATen's `area_pixel_compute_source_index` (negative sources clamp to 0 when
  align_corners=False) and `guard_index_and_lambda`, in the tensor's precision
  (float32 scale and coordinates for float tensors). With align_corners=False
  the scale is in/out, which equals the reference's 1/scale_factor for ×2.
  Read-only and cached.
  """
  f = np.dtype(dtype).type
  dst = np.arange(out_size, dtype=f)
  if align_corners:
    src = (f(in_size - 1) / f(out_size - 1) if out_size > 1 else f(0)) * dst
  else:
    src = np.maximum((f(in_size) / f(out_size)) * (dst + f(0.5)) - f(0.5), f(0))
  low = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
  frac = np.clip(src - low.astype(f), 0, 1).astype(f)
  high = low + (low < in_size - 1)
  matrix = np.zeros((out_size, in_size), f)
  rows = np.arange(out_size)
  np.add.at(matrix, (rows, low), f(1) - frac)
  np.add.at(matrix, (rows, high), frac)
  matrix.setflags(write=False)
  return matrix


def upsample2x(x, *, align_corners: bool):
  """`F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=...)` for NHWC x."""
  dtype = "float64" if x.dtype == jnp.float64 else "float32"
  for axis in (1, 2):
    m = bilinear_matrix(x.shape[axis], 2 * x.shape[axis], align_corners, dtype)
    x = jnp.moveaxis(jnp.tensordot(jnp.asarray(m), x, axes=([1], [axis]),
                                   precision=jax.lax.Precision.HIGHEST), 0, axis)
  return x


class Interpolate(nnx.Module):
  """The reference's `Interpolate` (bilinear ×2) inside `output_conv`; no parameters."""

  def __init__(self, align_corners: bool = False):
    self.align_corners = align_corners

  def __call__(self, x):
    return upsample2x(x, align_corners=self.align_corners)


def conv2d(in_features: int, out_features: int, kernel_size: int, *,
           rngs: nnx.Rngs) -> nnx.Conv:
  """Conv2d(stride 1, padding k//2, bias) with PyTorch's default initialisation, NHWC."""
  pad = kernel_size // 2
  return nnx.Conv(in_features, out_features, (kernel_size, kernel_size),
                  padding=((pad, pad), (pad, pad)),
                  kernel_init=layers.torch_kernel_init(_CONV_AXES),
                  bias_init=layers.torch_bias_init(in_features * kernel_size ** 2, ("mlp",)),
                  rngs=rngs)


# ----------------------------------------------------------------------------
# Temporal gate (4 stages)
# ----------------------------------------------------------------------------


class TemporalAttention(nnx.Module):
  """`PVT_AVSModel.py::TemporalAttention`: one CMBS-style gate per stage.

  __call__(maps: 4 × (BF, H, W, C), audio (B, T, A)) → (gated maps, gated audio (BF, A)).
  Per stage: spatial mean → `v_fc` → ReLU → dropout → bidirectional LSTMs with the audio
  → self-attention encoders over time → sigmoid gates g_a (per frame, scales the map)
  and g_v (averaged over the stages, scales the audio).
  """

  def __init__(self, *, channel: int = 256, audio_channels: int = 128, d_model: int = 256,
               nhead: int = 4, feedforward_dim: int = 1024, num_encoder_layers: int = 2,
               num_decoder_layers: int = 1, input_dropout: float = 0.2,
               attention_dropout: float = 0.1, gamma: float = 0.05,
               keep_dead_params: bool = True, rngs: nnx.Rngs):
    if d_model % 2:
      raise ValueError(f"d_model must be even (the audio LSTM has d_model/2 units), got {d_model}")
    self.gamma = gamma
    self.input_dropout = input_dropout
    common = dict(d_model=d_model, nhead=nhead, feedforward_dim=feedforward_dim,
                  dropout_rate=attention_dropout, keep_dead_params=keep_dead_params, rngs=rngs)
    per_stage = lambda make: nnx.List([make() for _ in range(NUM_STAGES)])
    self.v_fc = per_stage(lambda: layers.linear(channel, channel, rngs=rngs))
    # Bidirectional LSTM widths: visual 2·d_model, audio 2·(d_model/2) = d_model.
    self.video_encoder = per_stage(lambda: ave_head.InternalTemporalRelationModule(
        2 * d_model, num_layers=num_encoder_layers, **common))
    if keep_dead_params:  # computed and discarded by the reference; never called here
      self.video_decoder = per_stage(lambda: ave_head.CrossModalRelationAttModule(
          2 * d_model, num_layers=num_decoder_layers, **common))
    self.audio_encoder = per_stage(lambda: ave_head.InternalTemporalRelationModule(
        d_model, num_layers=num_encoder_layers, **common))
    if keep_dead_params:
      self.audio_decoder = per_stage(lambda: ave_head.CrossModalRelationAttModule(
          d_model, num_layers=num_decoder_layers, **common))
    self.audio_visual_rnn_layer = per_stage(lambda: ave_head.RNNEncoder(
        audio_channels, channel, d_model // 2, d_model, rngs=rngs))
    # nn.Sequential(Linear, Sigmoid) per stage: keys audio_gated.{i}.0.*
    self.audio_gated = per_stage(lambda: nnx.List([layers.linear(d_model, 1, rngs=rngs)]))
    self.video_gated = per_stage(lambda: nnx.List([layers.linear(d_model, 1, rngs=rngs)]))

  def _gates(self, i: int, pooled, audio, kw):
    """Stage i: (B, T, C) pooled map, (B, T, A) audio → audio gate, video gate (B, T, 1)."""
    visual = torch_nn.dropout(jax.nn.relu(self.v_fc[i](pooled)), self.input_dropout, **kw)
    audio_rnn, visual_rnn = self.audio_visual_rnn_layer[i](audio, visual)
    video_key_value = self.video_encoder[i](visual_rnn.transpose(1, 0, 2), **kw)  # (T, B, d)
    audio_key_value = self.audio_encoder[i](audio_rnn.transpose(1, 0, 2), **kw)
    audio_gate = jax.nn.sigmoid(self.audio_gated[i][0](audio_key_value))
    video_gate = jax.nn.sigmoid(self.video_gated[i][0](video_key_value))
    return audio_gate.transpose(1, 0, 2), video_gate.transpose(1, 0, 2)

  def __call__(self, maps: Sequence[jax.Array], audio, *, deterministic: bool = True,
               rngs: nnx.Rngs | None = None):
    kw = dict(deterministic=deterministic, rngs=rngs)
    b, t, _ = audio.shape
    gated, video_gates = [], []
    for i, x in enumerate(maps):
      audio_gate, video_gate = self._gates(i, x.mean(axis=(1, 2)).reshape(b, t, -1), audio, kw)
      gated.append(x + audio_gate.reshape(b * t, 1, 1, 1) * x * self.gamma)
      video_gates.append(video_gate.reshape(b * t, 1))
    video_gate = sum(video_gates) / len(video_gates)
    audio = audio.reshape(b * t, -1)
    return gated, audio + video_gate * audio * self.gamma


# ----------------------------------------------------------------------------
# TPAVI
# ----------------------------------------------------------------------------


def dot_nonlocal(theta, phi, g):
  """The "dot" non-local product y = (θφᵀ / N)·g without the N×N matrix.

  theta, g: (B, T, H, W, C'); phi: (B, T, C'), the audio term, constant over (H, W).
  With N = T·H·W positions, y_n = θ_n Σ_m φ_m g_mᵀ / N and Σ_m φ_m g_mᵀ =
  Σ_t φ_t (Σ_hw g_t,hw)ᵀ: O(N·C'²) instead of O(N²·C').
  """
  n = math.prod(theta.shape[1:4])
  hi = jax.lax.Precision.HIGHEST
  phi_g = jnp.einsum("btc,btd->bcd", phi, g.sum(axis=(2, 3)), precision=hi) / n
  return jnp.einsum("bthwc,bcd->bthwd", theta, phi_g, precision=hi)


class TPAVIModule(nnx.Module):
  """`TPAVI.py::TPAVIModule(in_channels, mode='dot', dimension=3, bn_layer=True)`, audio-visual.

  __call__(x (B, T, H, W, C), audio (B, T, A)) → (LayerNorm(x + BN(W_z(y))) (B, T, H, W, C),
  audio_temp = align_channel(audio) (B, T, C)), y = `dot_nonlocal`(θ(x), φ(audio_temp), g(x)).
  The Conv3d 1×1×1 layers θ, φ, g, W_z.0 are Linear layers on channels; W_z.1 is the
  BatchNorm3d, whose weight (and bias) the reference initialises to 0.
  """

  def __init__(self, in_channels: int = 256, inter_channels: int | None = None,
               audio_channels: int = 128, *, rngs: nnx.Rngs):
    inter = inter_channels or max(in_channels // 2, 1)
    self.align_channel = layers.linear(audio_channels, in_channels, rngs=rngs)
    self.norm_layer = layers.layer_norm(in_channels, rngs=rngs)
    self.g = layers.linear(in_channels, inter, rngs=rngs)
    w_z = layers.linear(inter, in_channels, axes=("mlp", "embed"), rngs=rngs)
    self.W_z = nnx.List([w_z, layers.BatchNorm(in_channels)])  # pylint: disable=invalid-name
    self.W_z[1].scale.set_value(jnp.zeros((in_channels,)))
    self.theta = layers.linear(in_channels, inter, rngs=rngs)
    self.phi = layers.linear(in_channels, inter, rngs=rngs)

  def __call__(self, x, audio, *, deterministic: bool = True):
    audio_temp = self.align_channel(audio)
    y = dot_nonlocal(self.theta(x), self.phi(audio_temp), self.g(x))
    z = self.W_z[1](self.W_z[0](y), use_running_average=deterministic) + x
    return self.norm_layer(z), audio_temp


# ----------------------------------------------------------------------------
# Decoder
# ----------------------------------------------------------------------------


class ResidualConvUnit(nnx.Module):
  """conv3×3(ReLU(conv3×3(ReLU(x)))) + ReLU(x): the reference's in-place ReLU also
  rewrites the residual input."""

  def __init__(self, features: int, *, rngs: nnx.Rngs):
    self.conv1 = conv2d(features, features, 3, rngs=rngs)
    self.conv2 = conv2d(features, features, 3, rngs=rngs)

  def __call__(self, x):
    x = jax.nn.relu(x)
    return self.conv2(jax.nn.relu(self.conv1(x))) + x


class FeatureFusionBlock(nnx.Module):
  """up×2(RCU₂(x + RCU₁(skip))) (bilinear, align_corners=True); without `skip` (path4)
  RCU₁ is not called, and it is built only when `with_skip_unit`."""

  def __init__(self, features: int, *, with_skip_unit: bool = True, rngs: nnx.Rngs):
    if with_skip_unit:
      self.resConfUnit1 = ResidualConvUnit(features, rngs=rngs)  # pylint: disable=invalid-name
    self.resConfUnit2 = ResidualConvUnit(features, rngs=rngs)  # pylint: disable=invalid-name

  def __call__(self, x, skip=None):
    if skip is not None:
      x = x + self.resConfUnit1(skip)
    return upsample2x(self.resConfUnit2(x), align_corners=True)


def output_conv(channel: int, dims: tuple[int, int], *, rngs: nnx.Rngs) -> nnx.List:
  """The reference's `nn.Sequential`: conv3×3 → bilinear ×2 (align_corners=False) →
  conv3×3 → ReLU → conv1×1 to one logit (keys output_conv.{0,2,4})."""
  return nnx.List([conv2d(channel, dims[0], 3, rngs=rngs), Interpolate(align_corners=False),
                   conv2d(dims[0], dims[1], 3, rngs=rngs), jax.nn.relu,
                   conv2d(dims[1], 1, 1, rngs=rngs)])


# ----------------------------------------------------------------------------
# The head
# ----------------------------------------------------------------------------


def token_grid(tokens):
  """(BF, N, C) row-major tokens of a square grid → (BF, √N, √N, C)."""
  bf, n, c = tokens.shape
  side = math.isqrt(n)
  if side * side != n:
    raise ValueError(f"stage tokens must form a square grid, got N={n}")
  return tokens.reshape(bf, side, side, c)


class AVSHead(nnx.Module):
  """`Pred_endecoder` after the encoders; every parameter is `Trainable`.

  __call__(stages: 4 × (BF, N_i, C_i) Swin tokens, audio (B, T, audio_dim) pooled
  HTS-AT features, BF = B·T) → dict:
  * `pred` (BF, H_out, W_out, 1) mask logits (224² at the reference sizes; NHWC);
  * `a_fea_stage{i}` (B, T, channel): TPAVI's aligned audio per stage (MS3 loss);
  * `v_map_stage{i}` (BF, H_i, W_i, channel): the ReLU'd TPAVI outputs, the feature
    maps the reference returns (MS3 loss);
  * with `capture`, `inter`: `ta_out_stage{i}` (gated maps, TPAVI inputs),
    `dec_in_stage{i}` (TPAVI outputs before the ReLU), `ta_audio` (BF, audio_channels).
  """

  def __init__(self, *, stage_dims: Sequence[int] = (192, 384, 768, 1536),
               audio_dim: int = 768, channel: int = 256, audio_channels: int = 128,
               feature_sizes: Sequence[int] = (56, 28, 14, 7), d_model: int = 256,
               nhead: int = 4, feedforward_dim: int = 1024, num_encoder_layers: int = 2,
               num_decoder_layers: int = 1, input_dropout: float = 0.2,
               attention_dropout: float = 0.1, gamma: float = 0.05,
               output_dims: Sequence[int] = (128, 32), keep_dead_params: bool = True,
               rngs: nnx.Rngs):
    if len(stage_dims) != NUM_STAGES or len(feature_sizes) != NUM_STAGES:
      raise ValueError(f"AVS head: {NUM_STAGES} stage_dims and feature_sizes expected, got "
                       f"{stage_dims}, {feature_sizes}")
    rngs = layers.KeyStream(rngs.params())
    self.feature_sizes = tuple(feature_sizes)
    for i, dim in enumerate(stage_dims, start=1):
      setattr(self, f"x{i}_linear_", layers.linear(dim, channel, rngs=rngs))
    self.audio_linear = layers.linear(audio_dim, audio_channels, rngs=rngs)
    self.temporal_attn = TemporalAttention(
        channel=channel, audio_channels=audio_channels, d_model=d_model, nhead=nhead,
        feedforward_dim=feedforward_dim, num_encoder_layers=num_encoder_layers,
        num_decoder_layers=num_decoder_layers, input_dropout=input_dropout,
        attention_dropout=attention_dropout, gamma=gamma, keep_dead_params=keep_dead_params,
        rngs=rngs)
    for i in range(1, NUM_STAGES + 1):
      setattr(self, f"tpavi_b{i}", TPAVIModule(channel, audio_channels=audio_channels, rngs=rngs))
    for i in range(1, NUM_STAGES + 1):
      setattr(self, f"path{i}", FeatureFusionBlock(
          channel, with_skip_unit=i < NUM_STAGES or keep_dead_params, rngs=rngs))
    self.output_conv = output_conv(channel, tuple(output_dims), rngs=rngs)
    layers.mark_trainable(self)

  def _stage_map(self, i: int, tokens):
    """Stage i tokens → `x{i}_linear_` → bicubic resize to feature_sizes[i] (NHWC)."""
    x = getattr(self, f"x{i + 1}_linear_")(token_grid(tokens))
    size = self.feature_sizes[i]
    return resize.resize_2d(x, (size, size), align_corners=False, axes=(1, 2))

  def _decode(self, maps):
    x = self.path4(maps[3])
    for i in (3, 2, 1):
      x = getattr(self, f"path{i}")(x, maps[i - 1])
    for layer in self.output_conv:
      x = layer(x)
    return x

  def __call__(self, stages: Sequence[jax.Array], audio, *, deterministic: bool = True,
               rngs: nnx.Rngs | None = None, capture: bool = False):
    if len(stages) != NUM_STAGES or audio.ndim != 3:
      raise ValueError(f"AVS head: {NUM_STAGES} stage token maps and audio (B, T, C) expected, "
                       f"got {len(stages)} maps and audio {audio.shape}")
    b, t, _ = audio.shape
    if any(s.shape[0] != b * t for s in stages):
      raise ValueError(f"AVS head: stage maps need B·T = {b * t} frames (audio {audio.shape}), "
                       f"got {[s.shape for s in stages]}")
    maps = [self._stage_map(i, s) for i, s in enumerate(stages)]
    gated, ta_audio = self.temporal_attn(maps, self.audio_linear(audio),
                                         deterministic=deterministic, rngs=rngs)
    out, dec_in = {}, []
    for i, x in enumerate(gated, start=1):
      z, out[f"a_fea_stage{i}"] = getattr(self, f"tpavi_b{i}")(
          x.reshape(b, t, *x.shape[1:]), ta_audio.reshape(b, t, -1), deterministic=deterministic)
      dec_in.append(z.reshape(x.shape))
      out[f"v_map_stage{i}"] = jax.nn.relu(dec_in[-1])
    out["pred"] = self._decode(dec_in)
    if capture:
      out["inter"] = {"ta_audio": ta_audio}
      for i, (x, z) in enumerate(zip(gated, dec_in), start=1):
        out["inter"][f"ta_out_stage{i}"] = x
        out["inter"][f"dec_in_stage{i}"] = z
    return out


def to_official_layout(outputs: dict) -> dict:
  """Our outputs → the reference's layouts: NHWC maps (`pred`, `v_map_*` and the
  captured maps) become NCHW ((BF, 1, 224, 224) for `pred`); the rest is unchanged."""
  nchw = lambda v: v.transpose(0, 3, 1, 2) if v.ndim == 4 else v
  return {k: to_official_layout(v) if isinstance(v, dict) else nchw(v)
          for k, v in outputs.items()}
