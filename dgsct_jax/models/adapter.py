"""The DG-SCT adapter (official class `VisualAdapter`, spec §3), both directions.

One adapter modulates a *target* stream x (BT, N, C) under the guidance of the
other modality's tokens g (BT, N_g, C_g) and returns a residual that the caller
adds to the target stream, plus the softmax spatial map used for pooling:

1. cross-modal projection to the target's tokens and channels: ĝ =
   fc(conv_adapter(g)), a dense N_g→N mixing over token positions (the official
   1×1 Conv2d with tokens as channels) and a Linear C_g→C over channels; or, with
   `guide_alignment='resize'` (the AVS adapters), fc on channels and then a bicubic
   resize (align_corners=False) of the guide's square token grid to the target's;
2. latent-token cross-attention (LAVisH): L' = L + softmax_N(L ĝᵀ) ĝ,
   x ← x + gate_av · softmax_32(x L'ᵀ) L'  (unscaled softmaxes);
3. channel map M_c (BT, 1, C) and spatial maps M_s = sigmoid(s), S = softmax_N(tanh s);
4. x ← x ⊙ (α M_c + β M_s + γ G_t + 1 − α), G_t the optional per-segment gate;
5. gated bottleneck: gate · ln_post(bn2(up(relu(bn1(down(ln_before(x))))))), with
   grouped (groups=2) 1×1 convs done as per-group matmuls; the AVS adapters apply
   the gate before ln_post (`gate_before_ln_post`).

Layout is token-major (BT, N, C) throughout; the official (BT, C, N, 1) layout
only appears in the conversion rules and the tests. Parameter names mirror the
PyTorch module so that conversion is an identity table; the 1×1 convs keep the
Conv HWIO kernel layout (1, 1, in/groups, out) for the same reason.

The `channel`, `spatial`, `temporal` and `latent_tokens` switches remove the
corresponding branch *and its parameters* (ablations, LAVisH-style adapters);
the defaults are the official AVE adapter. The per-task variants of the reference
(spec dgsct_tasks.md §0: AVS aligns by resizing, has no `ln_before` in its
multimodal branch, gates before `ln_post`, zero-initialises its tokens and builds
no `gate_tk`) are fields of `AdapterConfig` too (presets.ADAPTER_*). All weights are `Trainable`; the BN
statistics are `nnx.BatchStat` (batch statistics over (BT, N) when
`deterministic=False`).
"""
import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

from dgsct_jax.models import initializers
from dgsct_jax.models import layers
from dgsct_jax.models import matmul
from dgsct_jax.models import resize


GUIDE_ALIGNMENTS = ("token_mix", "resize")
TOKEN_INITS = ("uniform", "zeros")


@dataclasses.dataclass(frozen=True)
class AdapterConfig:
  """Hyper-parameters shared by every adapter of a model (official `opt` flags).

  Attributes:
    reduction_factor: bottleneck width C / reduction_factor (`Adapter_downsample`).
    num_conv_group: groups of the two bottleneck 1×1 convs (`num_conv_group`).
    num_tokens: latent tokens per adapter (`num_tokens`).
    use_bn: BatchNorm after the down and up projections (`is_bn`).
    ln_before, ln_post: LayerNorm before / after the bottleneck.
    audio_gate: zero-init output gate on the audio-target adapters (`is_gate`);
      the visual-target adapters always have one.
    latent_tokens: the LAVisH latent-token cross-attention (my_tokens, gate_av, gate_tk).
    channel: the channel map M_c (its α term and the (M_c + 1) pre-scaling of the
      spatial branch input). Off = "w/o C".
    spatial: the spatial maps M_s and S (β term, pooling map). Off = "w/o S"; the
      stream is then pooled by the mean (a uniform map).
    temporal: the per-segment temporal gate G_t = sigmoid(Linear(ā)) of the
      few-/zero-shot adapters (`temporal_gated`); absent from the AVE code.
    alpha, beta, gamma: the constants of step 4 (AVE: 0.3, 0.05; γ only with `temporal`).
    guide_alignment: 'token_mix' (conv_adapter + fc) or 'resize' (fc, then bicubic
      resize of the guide grid; AVS). Both grids must be square for 'resize'.
    gate_before_ln_post: gate · then ln_post (AVS) instead of ln_post then gate.
    token_init: the latent tokens' initialisation, 'uniform' (U[0, 1): AVE, AVVP) or
      'zeros' (AVS, AVQA); a converted checkpoint overwrites it.
    gate_tk: build the reference's unused `gate_tk` parameter (AVE/AVVP's VisualAdapter
      has it, AVS's does not), so that checkpoints convert strictly.
  """
  reduction_factor: int = 8
  num_conv_group: int = 2
  num_tokens: int = 32
  use_bn: bool = True
  ln_before: bool = True
  ln_post: bool = True
  audio_gate: bool = True
  latent_tokens: bool = True
  channel: bool = True
  spatial: bool = True
  temporal: bool = False
  alpha: float = 0.3
  beta: float = 0.05
  gamma: float = 0.05
  guide_alignment: str = "token_mix"
  gate_before_ln_post: bool = False
  token_init: str = "uniform"
  gate_tk: bool = True

  def __post_init__(self):
    for field, value, allowed in (("guide_alignment", self.guide_alignment, GUIDE_ALIGNMENTS),
                                  ("token_init", self.token_init, TOKEN_INITS)):
      if value not in allowed:
        raise ValueError(f"adapter config: {field}={value!r}; choose one of {allowed}")

  @classmethod
  def from_dict(cls, d) -> "AdapterConfig":
    d = dict(d or {})
    unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
      raise ValueError(f"adapter config: unknown field(s) {sorted(unknown)}; "
                       f"known: {[f.name for f in dataclasses.fields(cls)]}")
    return cls(**d)


class GroupedPointwise(nnx.Module):
  """A bias-free 1×1 Conv2d with `groups` on the channel (last) axis.

  `kernel` has the Conv HWIO layout (1, 1, in/groups, out) of the PyTorch
  weight (out, in/groups, 1, 1); the product is one matmul per group.
  """

  def __init__(self, in_features: int, out_features: int, groups: int, *, rngs: nnx.Rngs):
    if in_features % groups or out_features % groups:
      raise ValueError(f"grouped 1x1 conv: {in_features}->{out_features} channels are not "
                       f"divisible by groups={groups} (choose reduction_factor/num_conv_group)")
    self.groups = groups
    init = layers.torch_kernel_init((None, None, "embed", "mlp"))
    self.kernel = nnx.Param(init(rngs.params(), (1, 1, in_features // groups, out_features)))

  def __call__(self, x):
    g = self.groups
    k = self.kernel.get_value()[0, 0]                                   # (in/g, out)
    k = k.reshape(k.shape[0], g, k.shape[1] // g)                       # (in/g, g, out/g)
    xg = x.reshape(*x.shape[:-1], g, x.shape[-1] // g)
    y = matmul.einsum("...gi,igo->...go", xg, k)
    return y.reshape(*x.shape[:-1], k.shape[1] * k.shape[2])


class TokenMixer(nnx.Module):
  """`conv_adapter`: Conv2d(N_g → N, kernel 1, bias) with the token axis as channels.

  (BT, N_g, D) → (BT, N, D): out[b, n, d] = Σ_m W[m, n] g[b, m, d] + bias[n].
  """

  def __init__(self, in_tokens: int, out_tokens: int, *, rngs: nnx.Rngs):
    init = layers.torch_kernel_init((None, None, "embed", "mlp"))
    self.kernel = nnx.Param(init(rngs.params(), (1, 1, in_tokens, out_tokens)))
    self.bias = nnx.Param(layers.torch_bias_init(in_tokens, ("mlp",))(rngs.params(), (out_tokens,)))

  def __call__(self, g):
    y = matmul.einsum("bmd,mn->bnd", g, self.kernel.get_value()[0, 0])
    return y + self.bias.get_value()[:, None]


class Adapter(nnx.Module):
  """One DG-SCT adapter: target (N tokens, C channels) guided by (N_g, C_g).

  Returns `(residual (BT, N, C), smap (BT, N) or None)`; `smap` is the softmax
  spatial map (None when `spatial` is off).
  """

  def __init__(self, *, tokens: int, dim: int, guide_tokens: int, guide_dim: int,
               use_gate: bool = True, config: AdapterConfig = AdapterConfig(),
               rngs: nnx.Rngs):
    cfg = config
    rngs = layers.KeyStream(rngs.params())
    self.config = cfg
    self.tokens, self.dim = tokens, dim
    d_model = dim // 2
    lin = lambda i, o: layers.linear(i, o, rngs=rngs)
    if cfg.guide_alignment == "token_mix":
      self.conv_adapter = TokenMixer(guide_tokens, tokens, rngs=rngs)
    else:
      self.guide_grid = _square_grid(guide_tokens, "guide")
      self.grid = _square_grid(tokens, "target")
    self.fc = lin(guide_dim, dim)
    if cfg.channel:
      self.fc_affine_audio_1 = lin(dim, dim)
      self.fc_affine_video_1 = lin(dim, dim)
      self.fc_affine_bottleneck = lin(dim, d_model)
      self.fc_affine_v_c_att = lin(d_model, dim)
    if cfg.spatial:
      self.fc_affine_video_2 = lin(dim, d_model)
      self.fc_affine_audio_2 = lin(dim, d_model)
      self.fc_affine_v_s_att = lin(d_model, 1)
    if cfg.temporal:
      self.temporal_gated = nnx.List([lin(dim, 1)])
    self.gate = nnx.Param(jnp.zeros((1,))) if use_gate else None
    if cfg.latent_tokens:
      shape = (cfg.num_tokens, dim)
      self.my_tokens = nnx.Param(initializers.uniform(rngs.params(), shape)
                                 if cfg.token_init == "uniform" else jnp.zeros(shape))
      if cfg.gate_tk:
        self.gate_tk = nnx.Param(jnp.ones((1,)))  # built by the reference, never used
      self.gate_av = nnx.Param(jnp.zeros((1,)))
    width = dim // cfg.reduction_factor
    self.down_sampler = GroupedPointwise(dim, width, cfg.num_conv_group, rngs=rngs)
    self.up_sampler = GroupedPointwise(width, dim, cfg.num_conv_group, rngs=rngs)
    if cfg.use_bn:
      self.bn1 = layers.BatchNorm(width)
      self.bn2 = layers.BatchNorm(dim)
    if cfg.ln_before:
      self.ln_before = layers.layer_norm(dim, rngs=rngs)
    if cfg.ln_post:
      self.ln_post = layers.layer_norm(dim, rngs=rngs)
    layers.mark_trainable(self)

  def project_guide(self, g):
    """(BT, N_g, C_g) → (BT, N, C): fc(conv_adapter(g)), or fc then a grid resize.

    Both maps are linear, so the dense N_g×N token mixing runs on the narrower
    of C_g and C: when C_g > C (visual guides audio, C_g = 2C) the channel
    Linear goes first and the biases are folded in exactly:
    fc(W g + b) = W (g Fᵀ) + b ⊗ (F 1) + f_b. This halves the largest matmul of
    the audio adapters (2304×4096 at stage 1).

    With `guide_alignment='resize'`: fc on channels, then the guide's token grid
    (row-major, as the reference views it) is bicubic-resized to the target's.
    """
    if self.config.guide_alignment == "resize":
      g = self.fc(g)
      g = g.reshape(g.shape[0], self.guide_grid, self.guide_grid, g.shape[-1])
      g = resize.resize_2d(g, (self.grid, self.grid), align_corners=False, axes=(1, 2))
      return g.reshape(g.shape[0], self.grid * self.grid, g.shape[-1])
    if g.shape[-1] <= self.dim:
      return self.fc(self.conv_adapter(g))
    kernel = self.fc.kernel.get_value()                                  # (C_g, C)
    mixed = matmul.einsum("bmd,mn->bnd", matmul.einsum("bmc,cd->bmd", g, kernel),
                          self.conv_adapter.kernel.get_value()[0, 0])
    bias = self.conv_adapter.bias.get_value()[:, None] * kernel.sum(0) + self.fc.bias.get_value()
    return mixed + bias

  def latent_attention(self, x, g):
    """LAVisH latent tokens, in at least float32 with exact matmuls whatever the compute
    and operand dtypes: unscaled softmaxes over logits in the hundreds (and few FLOPs)."""
    f32 = layers.at_least_f32(x.dtype)
    tk = self.my_tokens.get_value().astype(f32)                         # (T, C)
    g = g.astype(f32)
    att = jax.nn.softmax(jnp.einsum("tc,bnc->btn", tk, g), axis=-1)
    tk = tk + jnp.einsum("btn,bnc->btc", att, g)                        # (BT, T, C)
    att = jax.nn.softmax(jnp.einsum("bnc,btc->bnt", x.astype(f32), tk), axis=-1)
    update = self.gate_av.get_value().astype(f32) * jnp.einsum("bnt,btc->bnc", att, tk)
    return x + update.astype(x.dtype)

  def __call__(self, x, guide, *, deterministic: bool = True, rngs: nnx.Rngs | None = None):
    del rngs  # the adapter has no randomness; `deterministic` only selects BN statistics
    cfg = self.config
    g = self.project_guide(guide)
    if cfg.latent_tokens:
      x = self.latent_attention(x, g)
    g_mean = g.mean(axis=1)                                             # ā (BT, C)
    modulation = 1.0
    x_spatial = x
    if cfg.channel:
      q_a = jax.nn.relu(self.fc_affine_audio_1(g_mean))[:, None]
      q_v = jax.nn.relu(self.fc_affine_video_1(x))
      z = jax.nn.relu(self.fc_affine_bottleneck((q_a * q_v).mean(axis=1)))
      m_c = jax.nn.sigmoid(self.fc_affine_v_c_att(z))[:, None]         # (BT, 1, C)
      x_spatial = x * (m_c + 1)
      modulation = cfg.alpha * m_c
    smap = None
    if cfg.spatial:
      p_v = jax.nn.relu(self.fc_affine_video_2(x_spatial))
      p_a = jax.nn.relu(self.fc_affine_audio_2(g_mean))[:, None]
      s = self.fc_affine_v_s_att(p_v * p_a)                            # (BT, N, 1)
      smap = jax.nn.softmax(jnp.tanh(s[..., 0]), axis=-1)               # (BT, N)
      modulation = modulation + cfg.beta * jax.nn.sigmoid(s)
    if cfg.temporal:
      g_t = jax.nn.sigmoid(self.temporal_gated[0](g_mean))[:, None]    # (BT, 1, 1)
      modulation = modulation + cfg.gamma * g_t
    if cfg.channel or cfg.spatial or cfg.temporal:
      x = x * (modulation + 1 - (cfg.alpha if cfg.channel else 0.0))
    return self.bottleneck(x, deterministic=deterministic), smap

  def bottleneck(self, x, *, deterministic: bool):
    cfg = self.config
    if cfg.ln_before:
      x = self.ln_before(x)
    z = self.down_sampler(x)
    if cfg.use_bn:
      z = self.bn1(z, use_running_average=deterministic)
    out = self.up_sampler(jax.nn.relu(z))
    if cfg.use_bn:
      out = self.bn2(out, use_running_average=deterministic)
    if self.gate is not None and cfg.gate_before_ln_post:
      out = self.gate.get_value() * out
    if cfg.ln_post:
      out = self.ln_post(out)
    if self.gate is not None and not cfg.gate_before_ln_post:
      out = self.gate.get_value() * out
    return out


def _square_grid(tokens: int, what: str) -> int:
  side = math.isqrt(tokens)
  if side * side != tokens:
    raise ValueError(f"guide_alignment='resize' needs square token grids; the {what} has "
                     f"{tokens} tokens")
  return side
