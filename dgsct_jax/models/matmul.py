"""Matmul operand precision: bfloat16 operands, float32 accumulation and results.

This is what a TPU does with a float32 matmul at JAX's default precision. XLA:CPU
ignores `jax.default_matmul_precision`, and it computes a bf16 × bf16 → bf16 dot
by converting both operands to float32; only a dot with bf16 operands and a float32
`preferred_element_type` reaches the CPU's bf16 units (AMX on recent Xeons: about
4× the float32 rate here). So the encoders and adapters do their large matmuls
through `einsum` / `dot_general` of this module, and a model selects the operand
dtype for its forward pass with `operand_dtype(...)` (config `matmul_dtype`).

Outside that context both functions are exactly `jnp.einsum` / `lax.dot_general`.
Inside it, the operands are rounded to the operand dtype, products accumulate in
float32 (at least) and the result has the inputs' dtype. The backward pass rounds
the incoming cotangent the same way, so the two transposed matmuls also run on
bf16 operands; gradients leave in the primal dtype. Everything that is not a
matmul (norms, softmaxes, residual streams) stays in the compute dtype.

Numerically delicate matmuls call `jnp` directly and stay exact: the audio front
end, Swin-V2's continuous position bias MLP, and the adapters' latent-token
attention (unscaled softmaxes over logits in the hundreds).
"""
import contextlib
import contextvars
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.ad_checkpoint import checkpoint_name

_OPERAND_DTYPE = contextvars.ContextVar("dgsct_matmul_operand_dtype", default=None)
# Name of the low-precision matmul outputs without batch dimensions. The custom VJP
# hides the dot from `jax.checkpoint_policies.dots_with_no_batch_dims_saveable`, so
# remat policies that save such dots also save this name (dgsct.REMAT_POLICIES).
NO_BATCH_DOT = "low_precision_dot_no_batch"
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@contextlib.contextmanager
def operand_dtype(dtype):
  """Matmuls of this module traced inside run on `dtype` operands (None: unchanged)."""
  token = _OPERAND_DTYPE.set(None if dtype is None else jnp.dtype(dtype))
  try:
    yield
  finally:
    _OPERAND_DTYPE.reset(token)


def einsum(spec: str, a, b):
  """`jnp.einsum(spec, a, b)` for two operands, under the operand dtype in force.

  Operands already in that dtype (a bf16 compute dtype) still get the float32
  accumulation, with one rounding of the result at the end.
  """
  dtype = _OPERAND_DTYPE.get()
  if dtype is None:
    return jnp.einsum(spec, a, b)
  spec = _explicit(spec, a.ndim, b.ndim)
  out = _einsum_low(spec, dtype, jnp.dtype(a.dtype), jnp.dtype(b.dtype), a, b)
  return out if _parse(spec).batch else checkpoint_name(out, NO_BATCH_DOT)


def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None,
                out_sharding=None):
  """`lax.dot_general`, under the operand dtype in force (the `nnx.Linear` hook)."""
  plain = preferred_element_type is not None or out_sharding is not None
  if plain or _OPERAND_DTYPE.get() is None:
    return lax.dot_general(lhs, rhs, dimension_numbers, precision=precision,
                           preferred_element_type=preferred_element_type,
                           out_sharding=out_sharding)
  return einsum(_spec_of(lhs.ndim, rhs.ndim, dimension_numbers), lhs, rhs)


def _spec_of(lhs_ndim: int, rhs_ndim: int, dimension_numbers) -> str:
  """The einsum spec of a dot_general: output = batch, lhs free, rhs free dims."""
  (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = dimension_numbers
  lhs = list(_LETTERS[:lhs_ndim])
  rhs = list(_LETTERS[lhs_ndim:lhs_ndim + rhs_ndim])
  for i, j in zip(tuple(lhs_contract) + tuple(lhs_batch), tuple(rhs_contract) + tuple(rhs_batch)):
    rhs[j] = lhs[i]
  out = [lhs[i] for i in lhs_batch]
  out += [c for i, c in enumerate(lhs) if i not in lhs_contract and i not in lhs_batch]
  out += [c for j, c in enumerate(rhs) if j not in rhs_contract and j not in rhs_batch]
  return f"{''.join(lhs)},{''.join(rhs)}->{''.join(out)}"


class _Spec(NamedTuple):
  """A two-operand einsum without ellipsis, its indices grouped by role."""
  a: str
  b: str
  out: str
  batch: str     # in a, b and the output
  a_free: str    # in a and the output
  contract: str  # in a and b, summed
  b_free: str    # in b and the output


def _explicit(spec: str, a_ndim: int, b_ndim: int) -> str:
  """Replaces '...' by upper-case indices (the model's specs use lower case)."""
  spec = spec.replace(" ", "")
  if "..." not in spec:
    return spec
  inputs, out = spec.split("->")
  terms = inputs.split(",")
  extra = [ndim - len(t.replace("...", "")) for t, ndim in zip(terms, (a_ndim, b_ndim))]
  letters = _LETTERS[26:26 + max(extra)]
  fill = lambda term, n: term.replace("...", letters[len(letters) - n:])
  a, b = (fill(t, n) for t, n in zip(terms, extra))
  return f"{a},{b}->{fill(out, len(letters))}"


def _parse(spec: str) -> _Spec:
  inputs, out = spec.split("->")
  a, b = inputs.split(",")
  for name, operand, other in (("first", a, b), ("second", b, a)):
    lone = set(operand) - set(out) - set(other)
    if lone:
      raise ValueError(f"einsum {spec!r}: index {sorted(lone)} of the {name} operand is summed "
                       "on its own; sum it before the matmul")
  pick = lambda text, keep: "".join(c for c in text if keep(c))
  return _Spec(a, b, out, batch=pick(a, lambda c: c in b and c in out),
               a_free=pick(a, lambda c: c not in b),
               contract=pick(a, lambda c: c in b and c not in out),
               b_free=pick(b, lambda c: c not in a))


def _matmul(spec: str, a, b, dtype, accumulation):
  """einsum(spec, a, b) as one (B, M, K) × (B, K, N) or (B, M, K) × (B, N, K) dot.

  These row-major forms are what XLA:CPU hands to its bf16 kernels. The second
  operand keeps its contracted axes last when they are last in `b` (a weight
  (N, K) in a backward pass): transposing it to (K, N) here would be folded back
  into the dot by XLA, which then widens that dot to float32 (measured: the
  backward matmuls through the frozen weights, 39% of the step's matmul FLOPs, ran
  in float32 that way). A product with M or N = 1, or all of M, K, N < 8, is not
  accepted by the bf16 kernels, and XLA's fallback kernel cannot take bf16
  operands with a float32 result, so those small products run on the (rounded)
  operands widened to `accumulation`.
  """
  s = _parse(spec)
  size = dict(zip(s.a, a.shape)) | dict(zip(s.b, b.shape))
  extent = lambda idx: math.prod(size[c] for c in idx)
  m, k, n = extent(s.a_free), extent(s.contract), extent(s.b_free)
  a, b = a.astype(dtype), b.astype(dtype)
  if m == 1 or n == 1 or max(m, k, n) < 8:
    a, b = a.astype(accumulation), b.astype(accumulation)
  contract_last = s.b[-1] in s.contract
  a = jnp.transpose(a, [s.a.index(c) for c in s.batch + s.a_free + s.contract])
  b_order = s.batch + (s.b_free + s.contract if contract_last else s.contract + s.b_free)
  b = jnp.transpose(b, [s.b.index(c) for c in b_order])
  a = a.reshape(extent(s.batch), m, k)
  b = b.reshape((extent(s.batch), n, k) if contract_last else (extent(s.batch), k, n))
  b_contract = 2 if contract_last else 1
  if s.batch:
    out = lax.dot_general(a, b, (((2,), (b_contract,)), ((0,), (0,))),
                          preferred_element_type=accumulation)
  else:
    out = lax.dot_general(a[0], b[0], (((1,), (b_contract - 1,)), ((), ())),
                          preferred_element_type=accumulation)
  order = s.batch + s.a_free + s.b_free
  out = out.reshape([size[c] for c in order])
  return jnp.transpose(out, [order.index(c) for c in s.out])


def _accumulation_dtype(*dtypes):
  return jnp.promote_types(jnp.result_type(*dtypes), jnp.float32)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def _einsum_low(spec, dtype, a_dtype, b_dtype, a, b):
  out = _matmul(spec, a, b, dtype, _accumulation_dtype(a_dtype, b_dtype))
  return out.astype(jnp.result_type(a_dtype, b_dtype))


def _einsum_low_fwd(spec, dtype, a_dtype, b_dtype, a, b):
  return _einsum_low(spec, dtype, a_dtype, b_dtype, a, b), (a.astype(dtype), b.astype(dtype))


def _einsum_low_bwd(spec, dtype, a_dtype, b_dtype, residuals, cotangent):
  a, b = residuals
  s = _parse(spec)
  g = cotangent.astype(dtype)
  accumulation = _accumulation_dtype(a_dtype, b_dtype)
  grad_a = _matmul(f"{s.out},{s.b}->{s.a}", g, b, dtype, accumulation)
  grad_b = _matmul(f"{s.a},{s.out}->{s.b}", a, g, dtype, accumulation)
  return grad_a.astype(a_dtype), grad_b.astype(b_dtype)


_einsum_low.defvjp(_einsum_low_fwd, _einsum_low_bwd)
