"""benchmarks/flop_count.py: matrix-product FLOPs counted on a jaxpr, through gradients,
rematerialisation, scans and convolutions."""
import sys

import jax
import jax.numpy as jnp

import main_runs

sys.path.insert(0, str(main_runs.REPO / "benchmarks"))
import flop_count  # noqa: E402  pylint: disable=wrong-import-position

A, B = jnp.ones((64, 32)), jnp.ones((32, 16))
PRODUCT = 2 * 64 * 32 * 16


def test_products_and_batched_products():
  assert flop_count.matmul_flops(lambda a, b: jnp.tanh(a @ b).sum(), A, B) == PRODUCT
  batched = lambda a, b: jnp.einsum("bij,bjk->bik", a, b)
  assert flop_count.matmul_flops(batched, jnp.ones((4, 8, 16)), jnp.ones((4, 16, 2))) == (
      2 * 4 * 8 * 16 * 2)


def test_gradient_with_remat_counts_forward_recompute_and_backward():
  loss = lambda a, b: jax.checkpoint(lambda a: jnp.tanh(a @ b))(a).sum()
  assert flop_count.matmul_flops(jax.grad(loss), A, B) == 3 * PRODUCT  # d/da only
  assert flop_count.matmul_flops(jax.grad(loss, argnums=(0, 1)), A, B) == 4 * PRODUCT


def test_scan_and_convolution():
  scan = lambda a: jax.lax.scan(lambda c, _: (c @ jnp.ones((32, 32)), None), a, None,
                                length=3)[0]
  assert flop_count.matmul_flops(scan, A) == 3 * 2 * 64 * 32 * 32
  conv = lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), "SAME")
  assert flop_count.matmul_flops(conv, jnp.ones((2, 3, 8, 8)), jnp.ones((5, 3, 3, 3))) == (
      2 * 2 * 5 * 8 * 8 * 3 * 3 * 3)
