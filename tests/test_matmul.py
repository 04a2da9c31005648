"""matmul.py: bf16 operands with float32 accumulation, forward and backward; exact outside."""
import contextlib
import io
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.ad_checkpoint import print_saved_residuals

from dgsct_jax.models import dgsct
from dgsct_jax.models import layers
from dgsct_jax.models import matmul

SPECS = [  # (spec, a shape, b shape): every spec the models use, and the small cases
    ("bnc,cd->bnd", (3, 40, 24), (24, 48)),
    ("...gi,igo->...go", (3, 40, 2, 12), (12, 2, 20)),
    ("bmd,mn->bnd", (3, 40, 24), (40, 36)),
    ("bwhnm,bwmhd->bwnhd", (2, 3, 4, 16, 16), (2, 3, 16, 4, 8)),
    ("bqhd,bkhd->bhqk", (6, 16, 4, 8), (6, 16, 4, 8)),
    ("bnc,co->bno", (3, 40, 24), (24, 1)),  # N = 1: not a bf16 kernel shape
    ("ij,jk->ik", (4, 3), (3, 5)),         # all of M, K, N < 8
]


def _rounded(x):
  return np.asarray(x, np.float32).astype(jnp.bfloat16).astype(np.float64)


def _operands(a_shape, b_shape, seed=0):
  rng = np.random.default_rng(seed)
  return (jnp.asarray(rng.standard_normal(a_shape), jnp.float32),
          jnp.asarray(rng.standard_normal(b_shape), jnp.float32))


def _spec64(spec, a, b):
  return np.einsum(spec, np.asarray(a, np.float64), np.asarray(b, np.float64))


@pytest.mark.parametrize("spec,a_shape,b_shape", SPECS)
def test_outside_the_context_it_is_jnp_einsum(spec, a_shape, b_shape):
  a, b = _operands(a_shape, b_shape)
  np.testing.assert_array_equal(matmul.einsum(spec, a, b), jnp.einsum(spec, a, b))


@pytest.mark.parametrize("spec,a_shape,b_shape", SPECS)
def test_bf16_operands_float32_accumulation(spec, a_shape, b_shape):
  """The result is the exact product of the bf16-rounded operands up to float32
  accumulation (~1e-6), and measurably not the float32 product (~1e-3)."""
  a, b = _operands(a_shape, b_shape)
  with matmul.operand_dtype(jnp.bfloat16):
    out = jax.jit(lambda a, b: matmul.einsum(spec, a, b))(a, b)
  assert out.dtype == jnp.float32
  exact_rounded = _spec64(spec, _rounded(a), _rounded(b))
  exact = _spec64(spec, a, b)
  scale = np.abs(exact).max()
  assert np.abs(out - exact_rounded).max() <= 2e-6 * scale
  assert np.abs(out - exact).max() >= 1e-4 * scale


@pytest.mark.parametrize("spec,a_shape,b_shape", SPECS)
def test_gradients_use_bf16_operands_and_float32_results(spec, a_shape, b_shape):
  a, b = _operands(a_shape, b_shape)
  g = np.random.default_rng(1).standard_normal(np.shape(jnp.einsum(spec, a, b)))

  def loss(a, b):
    with matmul.operand_dtype(jnp.bfloat16):
      return jnp.sum(matmul.einsum(spec, a, b) * g)

  grad_a, grad_b = jax.jit(jax.grad(loss, (0, 1)))(a, b)
  assert grad_a.dtype == grad_b.dtype == jnp.float32
  inputs, out = matmul._explicit(spec, a.ndim, b.ndim).split("->")  # pylint: disable=protected-access
  sa, sb = inputs.split(",")
  want_a = np.einsum(f"{out},{sb}->{sa}", _rounded(g), _rounded(b))
  want_b = np.einsum(f"{sa},{out}->{sb}", _rounded(a), _rounded(g))
  for got, want in ((grad_a, want_a), (grad_b, want_b)):
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * np.abs(want).max())


def test_linear_layers_follow_the_context():
  lin = layers.linear(24, 48, rngs=nnx.Rngs(0))
  x, _ = _operands((3, 40, 24), (1,))
  exact = lin(x)
  with matmul.operand_dtype(jnp.bfloat16):
    low = lin(x)
  want = _rounded(x) @ _rounded(lin.kernel.get_value()) + np.asarray(lin.bias.get_value())
  np.testing.assert_allclose(low, want, rtol=0, atol=2e-6 * np.abs(want).max())
  np.testing.assert_array_equal(exact, jnp.einsum("bnc,cd->bnd", x, lin.kernel.get_value())
                                + lin.bias.get_value())


def test_cpu_runs_the_products_on_bf16_operands():
  """The compiled dot takes bf16 operands and gives f32 (the AMX path), not a widened one."""
  a, b = _operands((3, 40, 24), (24, 48))

  def f(a, b):
    with matmul.operand_dtype(jnp.bfloat16):
      return matmul.einsum("bnc,cd->bnd", a, b)

  hlo = jax.jit(f).lower(a, b).compile().as_text()
  assert re.search(r"f32\[120,48\]\S* (dot|fusion)\(", hlo), hlo
  assert re.search(r"bf16\[120,24\]", hlo) and re.search(r"bf16\[24,48\]", hlo), hlo


def _dot_operand_dtypes(hlo: str) -> list[tuple[str, str]]:
  """(lhs, rhs) element types of every dot in compiled HLO text, per computation."""
  found = []
  for computation in hlo.split("\n\n"):
    types = dict(re.findall(r"%([\w.\-]+) = (\w+)\[", computation))
    for lhs, rhs in re.findall(r" dot\(%([\w.\-]+), %([\w.\-]+)\)", computation):
      found.append((types[lhs], types[rhs]))
  return found


# Not the group-batched '...gi,igo->...go': XLA:CPU widens its backward products to float32
# whatever the operand layout. The adapters' grouped 1x1 convs are small; one matmul per group
# instead kept them bf16 but did not change the full step's time (10.42 vs 10.43 s).
@pytest.mark.parametrize("spec, a_shape, b_shape",
                         [case for case in SPECS[:5] if case[0] != "...gi,igo->...go"])
def test_backward_products_stay_on_bf16_operands(spec, a_shape, b_shape):
  """Gradients through a weight stored (N, K) for the product: XLA widens such a dot to
  float32 when the weight is transposed to (K, N) before it (it folds the transpose)."""
  a, b = _operands(a_shape, b_shape)

  def loss(a, b):
    with matmul.operand_dtype(jnp.bfloat16):
      return jnp.sin(matmul.einsum(spec, a, b)).sum()

  hlo = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(a, b).compile().as_text()
  dots = _dot_operand_dtypes(hlo)
  assert len(dots) == 3 and all(d == ("bf16", "bf16") for d in dots), dots


def test_block_dots_remat_keeps_the_low_precision_matmul_outputs():
  a, b = _operands((3, 40, 24), (24, 48))

  def f(a, b):
    with matmul.operand_dtype(jnp.bfloat16):
      return jnp.tanh(matmul.einsum("bnc,cd->bnd", a, b)).sum()

  def saved(policy) -> str:
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
      print_saved_residuals(jax.checkpoint(f, policy=policy), a, b)
    return text.getvalue()

  assert matmul.NO_BATCH_DOT in saved(dgsct.REMAT_POLICIES["block_dots"])
  assert matmul.NO_BATCH_DOT not in saved(dgsct.REMAT_POLICIES["block"])


def test_einsum_with_an_index_summed_on_its_own_is_refused():
  a, b = _operands((3, 4), (4, 5))
  with matmul.operand_dtype(jnp.bfloat16), pytest.raises(ValueError, match="summed on its own"):
    matmul.einsum("ij,jk->k", a, b)
