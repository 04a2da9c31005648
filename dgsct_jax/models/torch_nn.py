"""PyTorch `nn.Embedding`, `nn.LSTM`, `nn.MultiheadAttention` and `nn.Dropout` in Flax NNX.

Parameters keep PyTorch's names *and* layouts (`weight_ih_l0` is (4H, in),
`in_proj_weight` is (3E, E)), so converting a state dict is the identity; only
`out_proj` is an `nnx.Linear` (the engine transposes its kernel). Initialisers
are PyTorch's. Parameters are plain `nnx.Param`: a trainable owner calls
`layers.mark_trainable`.

Layouts follow the PyTorch defaults the references use: the LSTM is
batch-first (B, T, C); the attention is sequence-first (L, B, E).
"""
import math

import jax
import jax.numpy as jnp
from flax import nnx

from dgsct_jax.models import initializers
from dgsct_jax.models import layers


def dropout(x, rate: float, *, deterministic: bool = True, rngs: nnx.Rngs | None = None):
  """`nn.Dropout`: zero with probability `rate`, scale the rest by 1/(1-rate)."""
  if deterministic or rate == 0.0:
    return x
  if rngs is None:
    raise ValueError("dropout needs `rngs` (with a 'dropout' stream) when deterministic=False")
  keep = 1.0 - rate
  mask = jax.random.bernoulli(rngs.dropout(), keep, x.shape)
  return jnp.where(mask, x / keep, 0).astype(x.dtype)


def _uniform(key, shape, bound):
  return initializers.uniform(key, shape, jnp.float32, -bound, bound)


class Embedding(nnx.Module):
  """`nn.Embedding(num, dim)`: `weight` (num, dim), N(0, 1); the lookup keeps the table's
  dtype (nnx.Embed would compute in its `param_dtype`)."""

  def __init__(self, num_embeddings: int, embedding_dim: int, *, rngs: nnx.Rngs):
    self.weight = layers.param(
        initializers.normal(rngs.params(), (num_embeddings, embedding_dim), jnp.float32),
        ("vocab", "embed"))

  def __call__(self, ids):
    return jnp.take(self.weight.get_value(), ids, axis=0)


class LSTM(nnx.Module):
  """One-layer `nn.LSTM(batch_first=True)`, zero initial state, gates (i, f, g, o).

  Returns the per-step hidden states (B, T, H) or, bidirectional, the forward
  and reverse ones concatenated (B, T, 2H) as PyTorch does; with
  `return_state` (unidirectional) also the final (h, c), each (B, H), which
  AVQA's question encoder reads; `lengths` packs the sequences. Dropout between layers does not exist with
  one layer (PyTorch ignores it too).
  """

  def __init__(self, input_size: int, hidden_size: int, *, bidirectional: bool = True,
               rngs: nnx.Rngs):
    self.input_size = input_size
    self.hidden_size = hidden_size
    self.bidirectional = bidirectional
    bound = 1.0 / math.sqrt(hidden_size)  # PyTorch: every weight and bias U(±1/sqrt(H))
    shapes = {"weight_ih": ((4 * hidden_size, input_size), ("mlp", "embed")),
              "weight_hh": ((4 * hidden_size, hidden_size), ("mlp", "embed")),
              "bias_ih": ((4 * hidden_size,), ("mlp",)),
              "bias_hh": ((4 * hidden_size,), ("mlp",))}
    for suffix in ("_l0", "_l0_reverse") if bidirectional else ("_l0",):
      for name, (shape, axes) in shapes.items():
        value = _uniform(rngs.params(), shape, bound)
        setattr(self, name + suffix, layers.param(value, axes))

  def _direction(self, x, suffix: str, reverse: bool, lengths=None):
    w_ih = getattr(self, "weight_ih" + suffix).get_value()
    w_hh = getattr(self, "weight_hh" + suffix).get_value()
    bias = getattr(self, "bias_ih" + suffix).get_value() + getattr(self, "bias_hh" + suffix).get_value()
    inputs = jnp.einsum("btc,gc->tbg", x, w_ih) + bias  # (T, B, 4H), time-major for the scan

    def step(carry, xs):
      (h, c), (x_gates, t) = carry, xs
      gates = x_gates + h @ w_hh.T
      i, f, g, o = jnp.split(gates, 4, axis=-1)
      c_new = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
      h_new = jax.nn.sigmoid(o) * jnp.tanh(c_new)
      if lengths is not None:  # a packed sequence: the state stops at its last step
        live = (t < lengths)[:, None]
        h_new, c_new = jnp.where(live, h_new, h), jnp.where(live, c_new, c)
      return (h_new, c_new), h_new

    zeros = jnp.zeros((x.shape[0], self.hidden_size), inputs.dtype)
    final, hs = jax.lax.scan(step, (zeros, zeros), (inputs, jnp.arange(x.shape[1])),
                             reverse=reverse)
    return hs.transpose(1, 0, 2), final

  def __call__(self, x, *, return_state: bool = False, lengths=None):
    """`lengths` (B,) (unidirectional): the final state of each sequence is taken at its
    own last step, as with `pack_padded_sequence`."""
    if x.ndim != 3 or x.shape[-1] != self.input_size:
      raise ValueError(f"LSTM expects (B, T, {self.input_size}), got {x.shape}")
    if (return_state or lengths is not None) and self.bidirectional:
      raise ValueError("return_state and lengths are for a unidirectional LSTM")
    out, final = self._direction(x, "_l0", reverse=False, lengths=lengths)
    if return_state:
      return out, final
    if self.bidirectional:
      out = jnp.concatenate([out, self._direction(x, "_l0_reverse", reverse=True)[0]], axis=-1)
    return out


class MultiheadAttention(nnx.Module):
  """`nn.MultiheadAttention(E, heads, dropout)` with its default options.

  Sequence-first: query (L, B, E), key/value (S, B, E) → (L, B, E). Packed
  input projection `in_proj_weight` (3E, E) / `in_proj_bias`, `out_proj`
  Linear; queries scaled by 1/sqrt(E/heads) before the dot product; dropout on
  the softmaxed attention weights in training. No masks (none is used here).
  """

  def __init__(self, embed_dim: int, num_heads: int, *, dropout_rate: float = 0.0,
               rngs: nnx.Rngs):
    if embed_dim % num_heads:
      raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
    self.embed_dim = embed_dim
    self.num_heads = num_heads
    self.dropout_rate = dropout_rate
    # PyTorch: xavier on (3E, E), zero biases
    xavier = initializers.variance_scaling_uniform(1.0, "fan_avg")
    self.in_proj_weight = layers.param(xavier(rngs.params(), (3 * embed_dim, embed_dim)),
                                       ("mlp", "embed"))
    self.in_proj_bias = layers.param(jnp.zeros((3 * embed_dim,)), ("mlp",))
    self.out_proj = layers.linear(embed_dim, embed_dim, axes=("mlp", "embed"), rngs=rngs)
    self.out_proj.bias.set_value(jnp.zeros((embed_dim,)))

  def _heads(self, x):
    """(L, B, E) → (B, heads, L, E/heads)."""
    length, batch, _ = x.shape
    return x.reshape(length, batch, self.num_heads, -1).transpose(1, 2, 0, 3)

  def __call__(self, query, key, value, *, deterministic: bool = True,
               rngs: nnx.Rngs | None = None):
    e = self.embed_dim
    w, b = self.in_proj_weight.get_value(), self.in_proj_bias.get_value()
    q = query @ w[:e].T + b[:e]
    k = key @ w[e:2 * e].T + b[e:2 * e]
    v = value @ w[2 * e:].T + b[2 * e:]
    q, k, v = self._heads(q), self._heads(k), self._heads(v)
    q = q * math.sqrt(1.0 / q.shape[-1])
    weights = jax.nn.softmax(q @ k.swapaxes(-1, -2), axis=-1)       # (B, heads, L, S)
    weights = dropout(weights, self.dropout_rate, deterministic=deterministic, rngs=rngs)
    out = weights @ v                                                # (B, heads, L, E/heads)
    out = out.transpose(2, 0, 1, 3).reshape(query.shape[0], query.shape[1], e)
    return self.out_proj(out)
