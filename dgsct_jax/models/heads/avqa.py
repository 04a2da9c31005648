"""The AVQA head of DG-SCT: AVST (spatio-temporal grounding) at Swin-V2-L's width (spec
dgsct_tasks.md §3.2; `DG-SCT/AVQA/net_grd_avst/net_avst.py::AVQA_Fusion_Net` after the
encoders).

Per question: the final Swin maps of the video's frames (B, T, N, C) and of as many
negative frames, the pooled audio (B, T, C_a) and the question's token ids (B, L) →
1. q = QstEncoder(question): Embedding → tanh → LSTM → fc(tanh([h_L; c_L]));
2. A = fc_a2(relu(fc_a1(audio))), (B, T, C);
3. grounding of each frame by its second's audio: p = softmax_N(V̂ · Â) over the
   L2-normalised map V̂ and audio Â (no temperature), ṽ = p V̂, and
   v_g = fc_gl(tanh([mean_N V; ṽ])); the same, with the same audio, for the negatives;
4. match logits fc4(relu(fc3(relu(fc2(relu(fc1([A; v_g]))))))) for both;
5. the question attends over time to v_g (`attn_v`) and to A (`attn_a`), each followed by
   a residual two-layer MLP and a LayerNorm (`norm1`, `norm2`);
6. out_qa = fc_ans(tanh(fc_fusion(tanh([att_a + mean_T A; att_v + mean_T v_g])) ⊙ q)).

The grounding needs C_a-projected audio and visual maps of one width, so the head's
width is `visual_dim` (1536 in the reference). Attribute names mirror
`AVQA_Fusion_Net`, so its state dict converts by identity (under `head.` in
`models.avqa.AVQAModel`); initialisation is PyTorch's default. Dead weights (faithful
`keep_dead_params=True` builds them, so checkpoints convert strictly): `fc_a1_pure`,
`fc_a2_pure` (filled from stage 1's grounding checkpoint, never called) and `norm3`.
`pack_questions` (False, faithful) is `QstEncoder.pack`.
"""
import jax
import jax.numpy as jnp
from flax import nnx

from dgsct_jax.models import layers
from dgsct_jax.models import torch_nn

VOCAB_SIZE = 93   # the question vocabulary of MUSIC-AVQA's train split, <pad> = 0
NUM_ANSWERS = 42


def l2_normalize(x, axis: int = -1, eps: float = 1e-12):
  """`F.normalize`: x / max(‖x‖₂, eps)."""
  return x / jnp.maximum(jnp.linalg.norm(x, axis=axis, keepdims=True), eps)


class QstEncoder(nnx.Module):
  """`QstEncoder(vocab, embed, embed, 1, hidden)`: the question as one vector (B, embed).

  The reference runs its LSTM over the whole padded question, so the trailing <pad>
  tokens (id 0) are read too and wash out a short question's state (`pack=False`,
  faithful); `pack=True` takes the state at the last real token (`pack_padded_sequence`).
  """

  def __init__(self, vocab_size: int, word_embed_size: int, embed_size: int,
               hidden_size: int, *, pack: bool = False, rngs: nnx.Rngs):
    self.pack = pack
    self.word2vec = torch_nn.Embedding(vocab_size, word_embed_size, rngs=rngs)
    self.lstm = torch_nn.LSTM(word_embed_size, hidden_size, bidirectional=False, rngs=rngs)
    self.fc = layers.linear(2 * hidden_size, embed_size, rngs=rngs)

  def __call__(self, question):
    """(B, L) token ids, padded with 0 at the end."""
    words = jnp.tanh(self.word2vec(question))
    lengths = jnp.maximum((question != 0).sum(-1), 1) if self.pack else None
    _, (hidden, cell) = self.lstm(words, return_state=True, lengths=lengths)
    return self.fc(jnp.tanh(jnp.concatenate([hidden, cell], axis=-1)))


class AVQAHead(nnx.Module):
  """AVST on DG-SCT features; every parameter is `Trainable`.

  __call__(posi_map (B, T, N, C), nega_map (B, T, N, C), audio (B, T, C_a), question
  (B, L)) → dict: `out_qa` (B, num_classes) answer logits, `out_match_posi`,
  `out_match_nega` (B, T, 2) match logits; with `capture`, `inter` (the golden
  fixture's intermediates, named and laid out as there).
  """

  def __init__(self, *, num_classes: int = NUM_ANSWERS, visual_dim: int = 1536,
               audio_dim: int = 768, vocab_size: int = VOCAB_SIZE, num_heads: int = 4,
               attention_dropout: float = 0.1, dropout: float = 0.1,
               match_dims: tuple[int, ...] = (512, 256, 128), pack_questions: bool = False,
               keep_dead_params: bool = True, rngs: nnx.Rngs):
    rngs = layers.key_stream(rngs)
    dim = visual_dim
    lin = lambda i, o: layers.linear(i, o, rngs=rngs)
    self.dropout_rate = dropout
    self.fc_a1 = lin(audio_dim, dim)
    self.fc_a2 = lin(dim, dim)
    if keep_dead_params:
      self.fc_a1_pure = lin(audio_dim, dim)
      self.fc_a2_pure = lin(dim, dim)
    self.fc_fusion = lin(2 * dim, dim)
    self.linear11, self.linear12 = lin(dim, dim), lin(dim, dim)
    self.linear21, self.linear22 = lin(dim, dim), lin(dim, dim)
    self.norm1 = layers.layer_norm(dim, rngs=rngs)
    self.norm2 = layers.layer_norm(dim, rngs=rngs)
    if keep_dead_params:
      self.norm3 = layers.layer_norm(dim, rngs=rngs)
    attn = dict(dropout_rate=attention_dropout, rngs=rngs)
    self.attn_a = torch_nn.MultiheadAttention(dim, num_heads, **attn)
    self.attn_v = torch_nn.MultiheadAttention(dim, num_heads, **attn)
    self.question_encoder = QstEncoder(vocab_size, dim, dim, dim, pack=pack_questions,
                                       rngs=rngs)
    self.fc_ans = lin(dim, num_classes)
    self.fc_gl = lin(2 * dim, dim)
    widths = (2 * dim,) + tuple(match_dims) + (2,)
    for i, (d_in, d_out) in enumerate(zip(widths[:-1], widths[1:]), start=1):
      setattr(self, f"fc{i}", lin(d_in, d_out))
    self.num_match_layers = len(widths) - 1
    layers.mark_trainable(self)

  def ground(self, vmap, audio_hat):
    """(B, T, N, C) maps, (B, T, C) normalised audio → v_g (B, T, C), the softmax map
    (B, T, N)."""
    v_hat = l2_normalize(vmap)
    p = jax.nn.softmax(jnp.einsum("btnc,btc->btn", v_hat, audio_hat), axis=-1)
    grounded = jnp.einsum("btn,btnc->btc", p, v_hat)
    return self.fc_gl(jnp.tanh(jnp.concatenate([vmap.mean(axis=2), grounded], axis=-1))), p

  def match(self, audio, v_g):
    """The shared match head on [A; v_g] → (B, T, 2) logits."""
    x = jnp.concatenate([audio, v_g], axis=-1)
    for i in range(1, self.num_match_layers):
      x = jax.nn.relu(getattr(self, f"fc{i}")(x))
    return getattr(self, f"fc{self.num_match_layers}")(x)

  def attend(self, attn, fc1, fc2, norm, query, values, **kw):
    """The question (B, C) over `values` (B, T, C): attention, residual MLP, LayerNorm."""
    seq_first = values.swapaxes(0, 1)
    x = attn(query[None], seq_first, seq_first, **kw)[0]
    src = fc2(torch_nn.dropout(jax.nn.relu(fc1(x)), self.dropout_rate, **kw))
    return norm(x + torch_nn.dropout(src, self.dropout_rate, **kw))

  def __call__(self, posi_map, nega_map, audio, question, *, deterministic: bool = True,
               rngs: nnx.Rngs | None = None, capture: bool = False):
    kw = dict(deterministic=deterministic, rngs=rngs)
    q = self.question_encoder(question)
    a = self.fc_a2(jax.nn.relu(self.fc_a1(audio)))
    a_hat = l2_normalize(a)
    v_posi, p_posi = self.ground(posi_map, a_hat)
    v_nega, p_nega = self.ground(nega_map, a_hat)
    visual_att = self.attend(self.attn_v, self.linear11, self.linear12, self.norm1, q, v_posi,
                             **kw)
    audio_att = self.attend(self.attn_a, self.linear21, self.linear22, self.norm2, q, a, **kw)
    fused = self.fc_fusion(jnp.tanh(jnp.concatenate(
        [audio_att + a.mean(axis=1), visual_att + v_posi.mean(axis=1)], axis=-1)))
    out = {"out_qa": self.fc_ans(jnp.tanh(fused * q)),
           "out_match_posi": self.match(a, v_posi),
           "out_match_nega": self.match(a, v_nega)}
    if capture:
      flat = lambda x: x.reshape(-1, *x.shape[2:])
      out["inter"] = {
          "qst_feature": q, "audio_feat": flat(a), "grounding_posi": flat(p_posi)[:, None],
          "grounding_nega": flat(p_nega)[:, None], "visual_feat_grd_posi": flat(v_posi),
          "visual_feat_att": visual_att, "audio_feat_att": audio_att, "fused": fused}
    return out


def to_official_layout(outputs: dict) -> dict:
  """Batch-major outputs → the reference's: match logits (B·T, 2)."""
  out = dict(outputs)
  for key in ("out_match_posi", "out_match_nega"):
    if key in out:
      out[key] = out[key].reshape(-1, out[key].shape[-1])
  return out
