"""MGN's grouping transformer (`DG-SCT/AVVP/nets/grouping.py`, = stoneMo/MGN's), in NNX.

Class-aware grouping (spec dgsct_tasks.md §1.2): `ModalityTrans` runs
self-attention blocks over [segment tokens; group tokens], then a
`GroupingBlock` assigns the segment tokens to the group tokens (one output
token per group). Attribute names mirror the reference (`blocks[i].attn.qkv`,
`grouping.pre_assign_attn.attn.q_proj`, `grouping.assign.proj`, ...), so its
state dict converts by identity.

Assignment (`AssignAttention`, one head): the logits are normalised over the
*query* (group) axis: a softmax (soft), an arg-max with a straight-through
gradient (hard), or a Gumbel-softmax while training (`gumbel`, then hard in
evaluation). Weights are then divided by (Σ_keys + 1). With `return_attn` the
reference also returns 'soft' = 1 + softmax over the keys of the group-axis
softmax: values in (1, 2), the per-segment weights of MGN's frame probabilities.

Token layouts are (B, L, C). Dropouts of the reference are all 0 here; the
self-attention blocks have stochastic depth (0.1 in MGN).
"""
import jax
import jax.numpy as jnp
from flax import nnx

from dgsct_jax.models import layers


def _heads(x, num_heads: int):
  """(B, L, C) → (B, heads, L, C/heads)."""
  b, length, c = x.shape
  return x.reshape(b, length, num_heads, c // num_heads).transpose(0, 2, 1, 3)


def _merge_heads(x):
  """(B, heads, L, C/heads) → (B, L, C)."""
  b, h, length, c = x.shape
  return x.transpose(0, 2, 1, 3).reshape(b, length, h * c)


class Attention(nnx.Module):
  """Multi-head attention, scale (C/heads)^-0.5; fused `qkv` (self-attention only) or
  separate `q_proj`/`k_proj`/`v_proj` (cross-attention), then `proj`."""

  def __init__(self, dim: int, num_heads: int, *, qkv_bias: bool, qkv_fuse: bool,
               rngs: nnx.Rngs):
    self.num_heads = num_heads
    self.scale = (dim // num_heads) ** -0.5
    self.qkv_fuse = qkv_fuse
    if qkv_fuse:
      self.qkv = layers.linear(dim, 3 * dim, use_bias=qkv_bias, rngs=rngs)
    else:
      self.q_proj = layers.linear(dim, dim, use_bias=qkv_bias, rngs=rngs)
      self.k_proj = layers.linear(dim, dim, use_bias=qkv_bias, rngs=rngs)
      self.v_proj = layers.linear(dim, dim, use_bias=qkv_bias, rngs=rngs)
    self.proj = layers.linear(dim, dim, rngs=rngs)

  def __call__(self, query, key=None):
    if self.qkv_fuse:
      q, k, v = jnp.split(self.qkv(query), 3, axis=-1)
    else:
      key = query if key is None else key
      q, k, v = self.q_proj(query), self.k_proj(key), self.v_proj(key)
    q, k, v = (_heads(t, self.num_heads) for t in (q, k, v))
    attn = jax.nn.softmax((q @ k.swapaxes(-1, -2)) * self.scale, axis=-1)
    return self.proj(_merge_heads(attn @ v))


class AttnBlock(nnx.Module):
  """Pre-norm self-attention block (fused qkv) with stochastic depth."""

  def __init__(self, dim: int, num_heads: int, *, mlp_ratio: float = 4.0,
               drop_path: float = 0.0, rngs: nnx.Rngs):
    self.norm1 = layers.layer_norm(dim, rngs=rngs)
    self.attn = Attention(dim, num_heads, qkv_bias=True, qkv_fuse=True, rngs=rngs)
    self.drop_path = layers.DropPath(drop_path)
    self.norm2 = layers.layer_norm(dim, rngs=rngs)
    self.mlp = layers.Mlp(dim, int(dim * mlp_ratio), rngs=rngs)

  def __call__(self, x, *, deterministic: bool = True, rngs: nnx.Rngs | None = None):
    drop = lambda y: self.drop_path(y, deterministic=deterministic, rngs=rngs)
    x = x + drop(self.attn(self.norm1(x)))
    return x + drop(self.mlp(self.norm2(x)))


class CrossAttnBlock(nnx.Module):
  """The grouping blocks' cross-attention, post-norm variant (`post_norm=True`):
  x = q + attn(q, k); x = x + mlp(norm2(x)); norm_post(x)."""

  def __init__(self, dim: int, num_heads: int, *, mlp_ratio: float = 4.0, rngs: nnx.Rngs):
    self.norm_post = layers.layer_norm(dim, rngs=rngs)
    self.attn = Attention(dim, num_heads, qkv_bias=True, qkv_fuse=False, rngs=rngs)
    self.norm2 = layers.layer_norm(dim, rngs=rngs)
    self.mlp = layers.Mlp(dim, int(dim * mlp_ratio), rngs=rngs)

  def __call__(self, query, key):
    x = query + self.attn(query, key)
    x = x + self.mlp(self.norm2(x))
    return self.norm_post(x)


def hard_softmax(logits, axis: int):
  """One-hot of the arg-max in the forward pass, the softmax's gradient in the backward
  pass (straight-through), computed as the reference does: y_hard - sg(y_soft) + y_soft."""
  y_soft = jax.nn.softmax(logits, axis=axis)
  y_hard = jax.nn.one_hot(jnp.argmax(y_soft, axis=axis), logits.shape[axis], axis=axis,
                          dtype=logits.dtype)
  return y_hard - jax.lax.stop_gradient(y_soft) + y_soft


class AssignAttention(nnx.Module):
  """Assigns keys (segments) to queries (groups); one head, qkv biases, assign_eps 1."""

  def __init__(self, dim: int, *, hard: bool, gumbel: bool, gumbel_tau: float = 1.0,
               rngs: nnx.Rngs):
    self.scale = dim ** -0.5
    self.hard, self.gumbel, self.gumbel_tau = hard, gumbel, gumbel_tau
    self.q_proj = layers.linear(dim, dim, rngs=rngs)
    self.k_proj = layers.linear(dim, dim, rngs=rngs)
    self.v_proj = layers.linear(dim, dim, rngs=rngs)
    self.proj = layers.linear(dim, dim, rngs=rngs)

  def assignment(self, logits, *, deterministic: bool, rngs: nnx.Rngs | None):
    """Normalised over the query axis (-2), as `get_attn`."""
    if self.gumbel and not deterministic:
      if rngs is None:
        raise ValueError("Gumbel assignment needs `rngs` (a 'dropout' stream) in training")
      noise = jax.random.gumbel(rngs.dropout(), logits.shape, logits.dtype)
      logits = (logits + noise) / self.gumbel_tau
    return hard_softmax(logits, -2) if self.hard else jax.nn.softmax(logits, axis=-2)

  def __call__(self, query, key, *, deterministic: bool = True, rngs: nnx.Rngs | None = None):
    """query (B, N, C), key (B, S, C) → (out (B, N, C), {'hard', 'soft'}: (B, N, S))."""
    raw = (self.q_proj(query) @ self.k_proj(key).swapaxes(-1, -2)) * self.scale
    attn = self.assignment(raw, deterministic=deterministic, rngs=rngs)
    attn_dict = {"hard": attn,
                 "soft": 1.0 + jax.nn.softmax(jax.nn.softmax(raw, axis=-2), axis=-1)}
    weights = attn / (attn.sum(axis=-1, keepdims=True) + 1.0)
    return self.proj(weights @ self.v_proj(key)), attn_dict


class GroupingBlock(nnx.Module):
  """Groups segment tokens x (B, L, C) into the group tokens (B, S, C) → (B, S, C).

  The reference's `GroupingBlock` and `GroupingBlock_Han` are the same code; MGN
  uses the latter with the other modality's segment tokens as group tokens.
  `mlp_inter` mixes over the token axis (S → C/2 → S: input and output group counts
  are equal in MGN), `mlp_channels` over channels (C → 4C → C).
  """

  def __init__(self, dim: int, num_heads: int, num_group_token: int, *, hard: bool,
               gumbel: bool, rngs: nnx.Rngs):
    self.norm_tokens = layers.layer_norm(dim, rngs=rngs)
    self.mlp_inter = layers.Mlp(num_group_token, dim // 2, rngs=rngs)
    self.norm_post_tokens = layers.layer_norm(dim, rngs=rngs)
    self.norm_x = layers.layer_norm(dim, rngs=rngs)
    self.pre_assign_attn = CrossAttnBlock(dim, num_heads, rngs=rngs)
    self.assign = AssignAttention(dim, hard=hard, gumbel=gumbel, rngs=rngs)
    self.norm_new_x = layers.layer_norm(dim, rngs=rngs)
    self.mlp_channels = layers.Mlp(dim, 4 * dim, rngs=rngs)

  def __call__(self, x, group_tokens, *, deterministic: bool = True,
               rngs: nnx.Rngs | None = None):
    """→ (new group features (B, S, C), attention dict of `AssignAttention`)."""
    group_tokens = self.norm_tokens(group_tokens)
    x = self.norm_x(x)
    projected = self.mlp_inter(group_tokens.swapaxes(1, 2)).swapaxes(1, 2)
    projected = self.pre_assign_attn(self.norm_post_tokens(projected), x)
    new_x, attn_dict = self.assign(projected, x, deterministic=deterministic, rngs=rngs)
    new_x = new_x + projected
    return new_x + self.mlp_channels(self.norm_new_x(new_x)), attn_dict


class ModalityTrans(nnx.Module):
  """Self-attention over [x; group tokens], optionally the HAN grouping of x into the
  other modality's segment tokens, then the grouping of x into the group tokens.

  `hard_assignment`: the grouping's hard/Gumbel switch; the HAN block takes the
  opposite (the reference's `hard=not hard_assignment`).
  """

  def __init__(self, dim: int, *, depth: int, num_heads: int = 8, num_group_tokens: int,
               num_segments: int, hard_assignment: bool, use_han: bool,
               drop_path: float = 0.1, rngs: nnx.Rngs):
    self.num_group_tokens = num_group_tokens
    self.blocks = nnx.List([AttnBlock(dim, num_heads, drop_path=drop_path, rngs=rngs)
                            for _ in range(depth)])
    self.han_encoder = (GroupingBlock(dim, 8, num_segments, hard=not hard_assignment,
                                      gumbel=not hard_assignment, rngs=rngs)
                        if use_han else None)
    self.grouping = GroupingBlock(dim, num_heads, num_group_tokens, hard=hard_assignment,
                                  gumbel=hard_assignment, rngs=rngs)

  def __call__(self, x, group_tokens, x_other=None, *, deterministic: bool = True,
               rngs: nnx.Rngs | None = None):
    """x (B, L, C), group tokens (S, C) or (B, S, C) → (groups (B, S, C), attention dict)."""
    kw = dict(deterministic=deterministic, rngs=rngs)
    group_tokens = jnp.broadcast_to(group_tokens, (x.shape[0], *group_tokens.shape[-2:]))
    cat = jnp.concatenate([x, group_tokens], axis=1)
    for block in self.blocks:
      cat = block(cat, **kw)
    x, group_tokens = cat[:, :-self.num_group_tokens], cat[:, -self.num_group_tokens:]
    if self.han_encoder is not None and x_other is not None:
      x, _ = self.han_encoder(x, x_other, **kw)
    return self.grouping(x, group_tokens, **kw)
