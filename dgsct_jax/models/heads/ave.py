"""The AVE task head of DG-SCT: CMBS-style `TemporalAttention` and the `CMBS` head.

Reference: `DG-SCT/AVE/nets/net_trans.py` (`TemporalAttention`, `CMBS` and the
modules they use) and `nets/models.py` (the CMRAN `Encoder`/`Decoder` layers);
spec dgsct_core.md §4.1-4.2. Attribute names mirror the reference, so the
state-dict keys `temporal_attn.*` / `CMBS.*` map one-to-one onto `AVEHead`.

Inside the temporal module the sequences are time-major (T, B, C), as in the
reference (its attention is PyTorch's sequence-first `nn.MultiheadAttention`);
`AVEHead` returns batch-major arrays.

Dead parameters (spec §8.6). The reference builds modules whose outputs never
reach the loss: the template `encoder_layer`/`decoder_layer` each
`InternalTemporalRelationModule`/`CrossModalRelationAttModule` cloned its
layers from, every `DecoderLayer.self_attn`, `CMBS.AVInter`/`VAInter` (their
outputs are computed and discarded) and `CMBS.video_norm`/`audio_norm`.
`keep_dead_params=True` (faithful) creates them, so checkpoints convert
strictly and the parameter count matches; they are never called (their
gradients are zero, and Adam without weight decay leaves them unchanged, as
PyTorch does for parameters without a gradient). `False` omits them; the
converter then ignores their keys with a reason.
"""
import jax
import jax.numpy as jnp
from flax import nnx

from dgsct_jax.models import layers
from dgsct_jax.models import torch_nn

_AXES_IN = ("embed", "mlp")
_AXES_OUT = ("mlp", "embed")


class EncoderLayer(nnx.Module):
  """Post-norm layer: self-attention → add → LN → FFN(ReLU) → add → LN (CMRAN)."""

  def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout_rate: float, *,
               rngs: nnx.Rngs):
    self.dropout_rate = dropout_rate
    self.self_attn = torch_nn.MultiheadAttention(d_model, nhead, dropout_rate=dropout_rate, rngs=rngs)
    self.linear1 = layers.linear(d_model, dim_feedforward, axes=_AXES_IN, rngs=rngs)
    self.linear2 = layers.linear(dim_feedforward, d_model, axes=_AXES_OUT, rngs=rngs)
    self.norm1 = layers.layer_norm(d_model, rngs=rngs)
    self.norm2 = layers.layer_norm(d_model, rngs=rngs)

  def _drop(self, x, deterministic, rngs):
    return torch_nn.dropout(x, self.dropout_rate, deterministic=deterministic, rngs=rngs)

  def feed_forward(self, x, *, deterministic, rngs):
    h = self._drop(jax.nn.relu(self.linear1(x)), deterministic, rngs)
    return self.norm2(x + self._drop(self.linear2(h), deterministic, rngs))

  def __call__(self, src, *, deterministic: bool = True, rngs: nnx.Rngs | None = None):
    attn = self.self_attn(src, src, src, deterministic=deterministic, rngs=rngs)
    src = self.norm1(src + self._drop(attn, deterministic, rngs))
    return self.feed_forward(src, deterministic=deterministic, rngs=rngs)


class DecoderLayer(EncoderLayer):
  """Cross-attention layer; the memory is [memory; tgt] along time (CMRAN).

  `self_attn` (inherited) exists in the reference but is never called.
  """

  def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout_rate: float, *,
               keep_dead_params: bool = True, rngs: nnx.Rngs):
    super().__init__(d_model, nhead, dim_feedforward, dropout_rate, rngs=rngs)
    if not keep_dead_params:
      del self.self_attn
    self.multihead_attn = torch_nn.MultiheadAttention(d_model, nhead, dropout_rate=dropout_rate,
                                                      rngs=rngs)

  def __call__(self, tgt, memory, *, deterministic: bool = True, rngs: nnx.Rngs | None = None):
    memory = jnp.concatenate([memory, tgt], axis=0)
    attn = self.multihead_attn(tgt, memory, memory, deterministic=deterministic, rngs=rngs)
    tgt = self.norm1(tgt + self._drop(attn, deterministic, rngs))
    return self.feed_forward(tgt, deterministic=deterministic, rngs=rngs)


class Stack(nnx.Module):
  """`Encoder`/`Decoder` of the reference: `layers` applied in turn, no final norm."""

  def __init__(self, make_layer, num_layers: int):
    self.layers = nnx.List([make_layer() for _ in range(num_layers)])

  def __call__(self, x, *memory, deterministic: bool = True, rngs: nnx.Rngs | None = None):
    for layer in self.layers:
      x = layer(x, *memory, deterministic=deterministic, rngs=rngs)
    return x


class InternalTemporalRelationModule(nnx.Module):
  """`affine_matrix` then a stack of encoder layers (self-attention over time)."""

  def __init__(self, input_dim: int, d_model: int, nhead: int, feedforward_dim: int,
               num_layers: int, dropout_rate: float, *, keep_dead_params: bool, rngs: nnx.Rngs):
    make = lambda: EncoderLayer(d_model, nhead, feedforward_dim, dropout_rate, rngs=rngs)
    if keep_dead_params:
      self.encoder_layer = make()  # the template the reference deep-copies; never called
    self.encoder = Stack(make, num_layers)
    self.affine_matrix = layers.linear(input_dim, d_model, axes=_AXES_IN, rngs=rngs)

  def __call__(self, feature, *, deterministic: bool = True, rngs: nnx.Rngs | None = None):
    return self.encoder(self.affine_matrix(feature), deterministic=deterministic, rngs=rngs)


class CrossModalRelationAttModule(nnx.Module):
  """`affine_matrix` on the query, then decoder layers attending to the memory."""

  def __init__(self, input_dim: int, d_model: int, nhead: int, feedforward_dim: int,
               num_layers: int, dropout_rate: float, *, keep_dead_params: bool, rngs: nnx.Rngs):
    make = lambda: DecoderLayer(d_model, nhead, feedforward_dim, dropout_rate,
                                keep_dead_params=keep_dead_params, rngs=rngs)
    if keep_dead_params:
      self.decoder_layer = make()  # the template the reference deep-copies; never called
    self.decoder = Stack(make, num_layers)
    self.affine_matrix = layers.linear(input_dim, d_model, axes=_AXES_IN, rngs=rngs)

  def __call__(self, query, memory, *, deterministic: bool = True, rngs: nnx.Rngs | None = None):
    return self.decoder(self.affine_matrix(query), memory, deterministic=deterministic, rngs=rngs)


class RNNEncoder(nnx.Module):
  """Bidirectional one-layer LSTMs over audio and visual features (outputs 2·hidden wide)."""

  def __init__(self, audio_dim: int, video_dim: int, audio_hidden: int, video_hidden: int, *,
               rngs: nnx.Rngs):
    self.audio_rnn = torch_nn.LSTM(audio_dim, audio_hidden, rngs=rngs)
    self.visual_rnn = torch_nn.LSTM(video_dim, video_hidden, rngs=rngs)

  def __call__(self, audio_feature, visual_feature):
    return self.audio_rnn(audio_feature), self.visual_rnn(visual_feature)


class TemporalAttention(nnx.Module):
  """CMBS-style temporal module (spec §4.1).

  (B, T, visual_dim), (B, T, audio_dim) → video_query_output (T, B, d_model),
  audio_query_output (T, B, d_model), audio_visual_gate (T, B, 1).
  """

  def __init__(self, *, visual_dim: int = 1536, audio_dim: int = 768, video_fc_dim: int = 512,
               audio_fc_dim: int = 128, d_model: int = 256, nhead: int = 4,
               feedforward_dim: int = 1024, num_encoder_layers: int = 2,
               num_decoder_layers: int = 1, input_dropout: float = 0.2,
               attention_dropout: float = 0.1, gamma: float = 0.1,
               keep_dead_params: bool = True, rngs: nnx.Rngs):
    self.input_dropout = input_dropout
    self.gamma = gamma
    self.v_fc = layers.linear(visual_dim, video_fc_dim, axes=_AXES_IN, rngs=rngs)
    self.a_fc = layers.linear(audio_dim, audio_fc_dim, axes=_AXES_IN, rngs=rngs)
    if d_model % 2:
      raise ValueError(f"d_model must be even (the audio LSTM has d_model/2 units), got {d_model}")
    common = dict(d_model=d_model, nhead=nhead, feedforward_dim=feedforward_dim,
                  dropout_rate=attention_dropout, keep_dead_params=keep_dead_params, rngs=rngs)
    # Bidirectional LSTM widths: audio 2·(d_model/2) = d_model, visual 2·d_model (512 in the
    # reference, where the video modules' input_dim is the hard-coded 512).
    self.video_encoder = InternalTemporalRelationModule(
        2 * d_model, num_layers=num_encoder_layers, **common)
    self.video_decoder = CrossModalRelationAttModule(
        2 * d_model, num_layers=num_decoder_layers, **common)
    self.audio_encoder = InternalTemporalRelationModule(
        d_model, num_layers=num_encoder_layers, **common)
    self.audio_decoder = CrossModalRelationAttModule(
        d_model, num_layers=num_decoder_layers, **common)
    self.audio_visual_rnn_layer = RNNEncoder(audio_fc_dim, video_fc_dim, d_model // 2, d_model,
                                              rngs=rngs)
    self.audio_gated = nnx.List([layers.linear(d_model, 1, axes=_AXES_IN, rngs=rngs)])
    self.video_gated = nnx.List([layers.linear(d_model, 1, axes=_AXES_IN, rngs=rngs)])

  def __call__(self, visual_feature, audio_feature, *, deterministic: bool = True,
               rngs: nnx.Rngs | None = None):
    kw = dict(deterministic=deterministic, rngs=rngs)
    audio = self.a_fc(audio_feature)
    visual = jax.nn.relu(self.v_fc(visual_feature))
    visual = torch_nn.dropout(visual, self.input_dropout, **kw)
    audio_rnn, visual_rnn = self.audio_visual_rnn_layer(audio, visual)
    audio_rnn = audio_rnn.transpose(1, 0, 2)    # (T, B, ·)
    visual_rnn = visual_rnn.transpose(1, 0, 2)

    video_key_value = self.video_encoder(visual_rnn, **kw)
    audio_query_output = self.audio_decoder(audio_rnn, video_key_value, **kw)
    audio_key_value = self.audio_encoder(audio_rnn, **kw)
    video_query_output = self.video_decoder(visual_rnn, audio_key_value, **kw)

    audio_gate = jax.nn.sigmoid(self.audio_gated[0](audio_key_value))
    video_gate = jax.nn.sigmoid(self.video_gated[0](video_key_value))
    audio_visual_gate = audio_gate * video_gate
    video_query_output = video_query_output + audio_gate * video_query_output * self.gamma
    audio_query_output = audio_query_output + video_gate * audio_query_output * self.gamma
    return video_query_output, audio_query_output, audio_visual_gate


class AudioVideoInter(nnx.Module):
  """`CMBS.AVInter`/`VAInter`: built (parameters exist), output unused by the reference."""

  def __init__(self, d_model: int, nhead: int, dropout_rate: float, *, rngs: nnx.Rngs):
    self.video_multihead = torch_nn.MultiheadAttention(d_model, nhead, dropout_rate=dropout_rate,
                                                       rngs=rngs)
    self.norm1 = layers.layer_norm(d_model, rngs=rngs)


class SupvLocalizeModule(nnx.Module):
  """Per-segment event logit and video class logits from the time-max feature."""

  def __init__(self, d_model: int, num_classes: int, *, rngs: nnx.Rngs):
    self.classifier = layers.linear(d_model, 1, axes=_AXES_IN, rngs=rngs)
    self.event_classifier = layers.linear(d_model, num_classes, axes=_AXES_IN, rngs=rngs)

  def __call__(self, fused_content):  # (T, B, C)
    return self.classifier(fused_content), self.event_classifier(fused_content.max(axis=0))


def top_k_mean_over_time(cas, k: int):
  """(T, B, K) class activations → (B, K): mean of the k largest values over time."""
  return jax.lax.top_k(cas.transpose(1, 2, 0), k)[0].mean(axis=-1)


class CMBS(nnx.Module):
  """CMBS head (spec §4.2): (T, B, C) query outputs → (is_event (T, B, 1), event (B, K), av (B, K))."""

  def __init__(self, *, d_model: int = 256, num_classes: int = 28, nhead: int = 4,
               inter_dropout: float = 0.2, av_score_weight: float = 0.3, top_k: int = 4,
               keep_dead_params: bool = True, rngs: nnx.Rngs):
    self.av_score_weight = av_score_weight
    self.top_k = top_k
    if keep_dead_params:
      self.AVInter = AudioVideoInter(d_model, nhead, inter_dropout, rngs=rngs)  # pylint: disable=invalid-name
      self.VAInter = AudioVideoInter(d_model, nhead, inter_dropout, rngs=rngs)  # pylint: disable=invalid-name
    self.localize_module = SupvLocalizeModule(d_model, num_classes, rngs=rngs)
    if keep_dead_params:
      self.video_norm = layers.layer_norm(d_model, rngs=rngs)
      self.audio_norm = layers.layer_norm(d_model, rngs=rngs)
    self.audio_cas = layers.linear(d_model, num_classes, axes=_AXES_IN, rngs=rngs)
    self.video_cas = layers.linear(d_model, num_classes, axes=_AXES_IN, rngs=rngs)

  def __call__(self, visual_feature, audio_feature):
    if visual_feature.shape[0] < self.top_k:
      raise ValueError(f"CMBS top-{self.top_k} needs at least {self.top_k} segments, "
                       f"got {visual_feature.shape[0]}")
    score_video = top_k_mean_over_time(self.video_cas(visual_feature), self.top_k)
    score_audio = top_k_mean_over_time(self.audio_cas(audio_feature), self.top_k)
    av_score = (score_video + score_audio) / 2
    is_event_scores, event_scores = self.localize_module((visual_feature + audio_feature) / 2)
    return is_event_scores, event_scores + self.av_score_weight * av_score, av_score


class AVEHead(nnx.Module):
  """`temporal_attn` + `CMBS`; every parameter is `Trainable`.

  __call__((B, T, visual_dim), (B, T, audio_dim)) → dict of batch-major arrays:
  `is_event_scores` (B, T) logits, `event_scores` (B, K) logits (+ 0.3·av_score),
  `audio_visual_gate` (B, T) (a product of two sigmoids), `av_score` (B, K),
  `video_query_output`, `audio_query_output` (B, T, d_model).
  """

  def __init__(self, *, num_classes: int = 28, visual_dim: int = 1536, audio_dim: int = 768,
               video_fc_dim: int = 512, audio_fc_dim: int = 128, d_model: int = 256,
               nhead: int = 4, feedforward_dim: int = 1024, gamma: float = 0.1,
               av_score_weight: float = 0.3, top_k: int = 4, input_dropout: float = 0.2,
               attention_dropout: float = 0.1, inter_dropout: float = 0.2,
               keep_dead_params: bool = True, rngs: nnx.Rngs):
    rngs = layers.key_stream(rngs)
    self.temporal_attn = TemporalAttention(
        visual_dim=visual_dim, audio_dim=audio_dim, video_fc_dim=video_fc_dim,
        audio_fc_dim=audio_fc_dim, d_model=d_model, nhead=nhead, feedforward_dim=feedforward_dim,
        input_dropout=input_dropout, attention_dropout=attention_dropout, gamma=gamma,
        keep_dead_params=keep_dead_params, rngs=rngs)
    self.CMBS = CMBS(d_model=d_model, num_classes=num_classes, nhead=nhead,  # pylint: disable=invalid-name
                     inter_dropout=inter_dropout, av_score_weight=av_score_weight, top_k=top_k,
                     keep_dead_params=keep_dead_params, rngs=rngs)
    layers.mark_trainable(self)

  def __call__(self, visual, audio, *, deterministic: bool = True, rngs: nnx.Rngs | None = None):
    video_q, audio_q, gate = self.temporal_attn(visual, audio, deterministic=deterministic,
                                                rngs=rngs)
    is_event, event_scores, av_score = self.CMBS(video_q, audio_q)
    return {
        "is_event_scores": is_event[..., 0].T,
        "event_scores": event_scores,
        "audio_visual_gate": gate[..., 0].T,
        "av_score": av_score,
        "video_query_output": video_q.transpose(1, 0, 2),
        "audio_query_output": audio_q.transpose(1, 0, 2),
    }


_TIME_MAJOR = ("is_event_scores", "audio_visual_gate")


def to_official_layout(outputs: dict) -> dict:
  """Our batch-major outputs → the reference's: (T, B, 1) for is_event_scores and
  audio_visual_gate, (T, B, C) for the query outputs, (B, K) unchanged."""
  official = {}
  for name, value in outputs.items():
    if name in _TIME_MAJOR:
      official[name] = value.T[..., None]
    elif name.endswith("query_output"):
      official[name] = value.transpose(1, 0, 2)
    else:
      official[name] = value
  return official
