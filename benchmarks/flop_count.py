"""The matrix-product FLOPs of a jitted function, counted on its jaxpr.

MFU counts the products (dot_general, conv_general_dilated), 2 FLOPs per multiply-add,
wherever they run: the forward pass, the backward pass and rematerialised recomputation
(hardware FLOPs). Counting the jaxpr gives the same number on every backend; XLA's cost
analysis does not (XLA:GPU's omits the products it hands to cuBLAS).
"""
import math

import jax
from jax.extend import core as jex_core


def _dot_flops(eqn) -> int:
  lhs, rhs = (v.aval for v in eqn.invars)
  (_, rhs_contract), (_, rhs_batch) = eqn.params["dimension_numbers"]
  rhs_free = math.prod(d for i, d in enumerate(rhs.shape)
                       if i not in rhs_contract and i not in rhs_batch)
  return 2 * math.prod(lhs.shape) * rhs_free


def _conv_flops(eqn) -> int:
  _, rhs = (v.aval for v in eqn.invars)
  out = eqn.outvars[0].aval
  out_features = rhs.shape[eqn.params["dimension_numbers"].rhs_spec[0]]
  return 2 * math.prod(out.shape) * math.prod(rhs.shape) // out_features


def _subjaxprs(value):
  if isinstance(value, jex_core.ClosedJaxpr):
    yield value.jaxpr
  elif isinstance(value, jex_core.Jaxpr):
    yield value
  elif isinstance(value, (tuple, list)):
    for item in value:
      yield from _subjaxprs(item)


def jaxpr_flops(jaxpr) -> int:
  total = 0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == "dot_general":
      total += _dot_flops(eqn)
    elif name == "conv_general_dilated":
      total += _conv_flops(eqn)
    inner = [jaxpr_flops(j) for v in eqn.params.values() for j in _subjaxprs(v)]
    if not inner:
      continue
    if name == "cond":  # one branch runs
      total += max(inner)
    elif name == "scan":
      total += eqn.params["length"] * sum(inner)
    else:
      total += sum(inner)
  return total


def matmul_flops(fn, *args) -> int:
  """FLOPs of the matrix products of `fn(*args)` (a while loop's body counted once)."""
  return jaxpr_flops(jax.make_jaxpr(fn)(*args).jaxpr)
