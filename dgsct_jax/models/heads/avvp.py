"""The AVVP head of DG-SCT: MGN (class-aware grouping) with a temporal gate (spec
dgsct_tasks.md §1.2; `DG-SCT/AVVP/nets/mgn.py::MGN_Net` after the encoders).

Per video: pooled segment features v (T, 1536), a (T, 768) and the R(2+1)D
snippet features `video_st` (T, 512) →
1. x1_0 = fc_a(a); vid_s = fc_v(v); vid_s ← vid_s + γ·g_a ⊙ vid_s, g_a the audio
   gate of `temporal_attn`;
2. x2_0 = fc_fusion([vid_s; fc_st(video_st)]);
3. visual_cug groups x2_0 into the 25 `visual_token`s, audio_cug groups x1_0 (after
   its HAN block grouped them into x2_0) into the 25 `audio_token`s;
4. av_mcg groups the audio groups into the visual groups;
5. probabilities: `global_prob` (B, C) from the audio-visual groups, `a_prob`/`v_prob`
   from the unimodal groups, per-segment `a_frame_prob`/`v_frame_prob` (B, T, C) =
   prob × the assignment's 'soft' weights (in (1, 2): up to 2·prob), and the class-token
   logits `aud_cls_prob`/`vis_cls_prob` (C, C) = fc_cls(tokens) (input-independent).

Attribute names mirror `MGN_Net`, so its state dict converts by identity (under
`head.` in `models.avvp.AVVPModel`). The MGN layers get MGN's initialisation
(trunc-normal 0.02 Linear weights, zero biases) and `temporal_attn` PyTorch's, as
the reference builds it after `self.apply(self._init_weights)`.

Dead weights (faithful `keep_dead_params=True` builds them, so checkpoints
convert strictly): the template `encoder_layer` of both temporal encoders. The
visual path of `temporal_attn` (`visual_rnn`, `video_encoder`, `video_gated`)
runs as in the reference but its result (the gated audio) is discarded by MGN.
"""
import jax
import jax.numpy as jnp
from flax import nnx

from dgsct_jax.models import layers
from dgsct_jax.models.heads import ave as ave_head
from dgsct_jax.models.heads import grouping

ASSIGN = ("soft", "hard")


class TemporalAttention(nnx.Module):
  """`mgn.py::TemporalAttention`: LSTMs and self-attention encoders over time give
  sigmoid gates; the visual features are scaled by (1 + γ·audio gate).

  __call__(visual (B, T, D), audio (B, T, D)) → (gated visual, gated audio (unused by MGN)).
  """

  def __init__(self, *, input_dim: int = 128, d_model: int = 64, nhead: int = 4,
               feedforward_dim: int = 1024, num_layers: int = 2, dropout_rate: float = 0.1,
               gamma: float = 0.05, keep_dead_params: bool = True, rngs: nnx.Rngs):
    self.gamma = gamma
    common = dict(d_model=d_model, nhead=nhead, feedforward_dim=feedforward_dim,
                  num_layers=num_layers, dropout_rate=dropout_rate,
                  keep_dead_params=keep_dead_params, rngs=rngs)
    self.video_encoder = ave_head.InternalTemporalRelationModule(input_dim, **common)
    self.audio_encoder = ave_head.InternalTemporalRelationModule(input_dim, **common)
    self.audio_visual_rnn_layer = ave_head.RNNEncoder(input_dim, input_dim, d_model, d_model,
                                                      rngs=rngs)
    self.audio_gated = nnx.List([layers.linear(d_model, 1, rngs=rngs)])
    self.video_gated = nnx.List([layers.linear(d_model, 1, rngs=rngs)])

  def __call__(self, visual, audio, *, deterministic: bool = True,
               rngs: nnx.Rngs | None = None):
    kw = dict(deterministic=deterministic, rngs=rngs)
    audio_rnn, visual_rnn = self.audio_visual_rnn_layer(audio, visual)
    video_key_value = self.video_encoder(visual_rnn.transpose(1, 0, 2), **kw)  # (T, B, d)
    audio_key_value = self.audio_encoder(audio_rnn.transpose(1, 0, 2), **kw)
    audio_gate = jax.nn.sigmoid(self.audio_gated[0](audio_key_value)).transpose(1, 0, 2)
    video_gate = jax.nn.sigmoid(self.video_gated[0](video_key_value)).transpose(1, 0, 2)
    return (visual + audio_gate * visual * self.gamma, audio + video_gate * audio * self.gamma)


def init_weights(module: nnx.Module, key) -> None:
  """MGN's `_init_weights` on every Linear inside `module`: trunc-normal(0.02) weights
  (timm's absolute ±2 bounds), zero biases. LayerNorms are already 1 / 0."""
  init = layers.trunc_normal(0.02)
  for i, (_, node) in enumerate(nnx.iter_modules(module)):
    if isinstance(node, nnx.Linear):
      kernel = node.kernel.get_value()
      node.kernel.set_value(init(jax.random.fold_in(key, i), kernel.shape, kernel.dtype))
      if node.bias is not None:
        node.bias.set_value(jnp.zeros_like(node.bias.get_value()))


class MGNHead(nnx.Module):
  """MGN on DG-SCT features; every parameter is `Trainable`.

  __call__(visual (B, T, visual_dim), audio (B, T, audio_dim), video_st (B, T, st_dim)) →
  dict: `global_prob`, `a_prob`, `v_prob` (B, C); `a_frame_prob`, `v_frame_prob`
  (B, T, C); `aud_cls_prob`, `vis_cls_prob` (C, C) logits; with `capture`, `inter`
  (the intermediates named as in the golden fixture).
  """

  def __init__(self, *, num_classes: int = 25, num_segments: int = 10, dim: int = 128,
               visual_dim: int = 1536, audio_dim: int = 768, st_dim: int = 512,
               depth_aud: int = 3, depth_vis: int = 3, depth_av: int = 6, num_heads: int = 8,
               drop_path: float = 0.1, unimodal_assign: str = "soft",
               crossmodal_assign: str = "soft", temporal_d_model: int = 64,
               temporal_feedforward_dim: int = 1024, temporal_dropout: float = 0.1,
               temporal_gamma: float = 0.05, keep_dead_params: bool = True, rngs: nnx.Rngs):
    rngs = layers.key_stream(rngs)
    for name, value in (("unimodal_assign", unimodal_assign),
                        ("crossmodal_assign", crossmodal_assign)):
      if value not in ASSIGN:
        raise ValueError(f"MGN head: {name}={value!r}; choose one of {ASSIGN}")
    self.unimodal_assign = unimodal_assign
    lin = lambda i, o: layers.linear(i, o, rngs=rngs)
    self.fc_a = lin(audio_dim, dim)
    self.fc_v = lin(visual_dim, dim)
    self.fc_st = lin(st_dim, dim)
    self.fc_fusion = lin(2 * dim, dim)
    self.audio_token = nnx.Param(jnp.zeros((num_classes, dim)))
    self.visual_token = nnx.Param(jnp.zeros((num_classes, dim)))
    trans = dict(num_heads=num_heads, num_group_tokens=num_classes, num_segments=num_segments,
                 drop_path=drop_path, rngs=rngs)
    self.audio_cug = grouping.ModalityTrans(dim, depth=depth_aud, use_han=True,
                                            hard_assignment=unimodal_assign == "hard", **trans)
    self.visual_cug = grouping.ModalityTrans(dim, depth=depth_vis, use_han=False,
                                             hard_assignment=unimodal_assign == "hard", **trans)
    self.av_mcg = grouping.ModalityTrans(dim, depth=depth_av, use_han=False,
                                         hard_assignment=crossmodal_assign == "hard", **trans)
    self.fc_prob = lin(dim, 1)
    self.fc_prob_a = lin(dim, 1)
    self.fc_prob_v = lin(dim, 1)
    self.fc_cls = lin(dim, num_classes)
    init_weights(self, rngs.params())
    self.temporal_attn = TemporalAttention(
        input_dim=dim, d_model=temporal_d_model, feedforward_dim=temporal_feedforward_dim,
        dropout_rate=temporal_dropout, gamma=temporal_gamma, keep_dead_params=keep_dead_params,
        rngs=rngs)
    layers.mark_trainable(self)

  def __call__(self, visual, audio, video_st, *, deterministic: bool = True,
               rngs: nnx.Rngs | None = None, capture: bool = False):
    kw = dict(deterministic=deterministic, rngs=rngs)
    x1_0 = self.fc_a(audio)
    vid_s_in = self.fc_v(visual)
    vid_s, _ = self.temporal_attn(vid_s_in, x1_0, **kw)
    x2_0 = self.fc_fusion(jnp.concatenate([vid_s, self.fc_st(video_st)], axis=-1))
    x2, attn_visual = self.visual_cug(x2_0, self.visual_token.get_value(), **kw)
    x1, attn_audio = self.audio_cug(x1_0, self.audio_token.get_value(), x2_0, **kw)
    x, _ = self.av_mcg(x1, x2, **kw)

    a_prob = jax.nn.sigmoid(self.fc_prob_a(x1))                         # (B, C, 1)
    v_prob = jax.nn.sigmoid(self.fc_prob_v(x2))
    out = {
        "aud_cls_prob": self.fc_cls(self.audio_token.get_value()),
        "vis_cls_prob": self.fc_cls(self.visual_token.get_value()),
        "global_prob": jax.nn.sigmoid(self.fc_prob(x))[..., 0],
        "a_prob": a_prob[..., 0],
        "v_prob": v_prob[..., 0],
        "a_frame_prob": (a_prob * attn_audio[self.unimodal_assign]).swapaxes(1, 2),
        "v_frame_prob": (v_prob * attn_visual[self.unimodal_assign]).swapaxes(1, 2),
    }
    if capture:
      out["inter"] = {
          "x1_0": x1_0, "vid_s_in": vid_s_in, "ta_video_out": vid_s, "x2_0": x2_0,
          "x2_visual_groups": x2, "x1_audio_groups": x1, "x_av_groups": x,
          "attn_audio_soft": attn_audio["soft"], "attn_visual_soft": attn_visual["soft"]}
    return out
