"""remat.checkpoint: jax.checkpoint's gradients, with the recomputation really deferred."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dgsct_jax.models import dgsct
from dgsct_jax.models import remat

BLOCKS = 6


def _block(w, x):
  h = jnp.tanh(x @ w)            # (1024, 2048): 8 MiB per block, recomputable
  return jnp.tanh(h @ w.T) + x


def _loss(wrap):
  def loss(ws, x):
    for w in ws:
      x = wrap(_block)(w, x)
    return (x ** 2).sum()
  return loss


@pytest.fixture(scope="module")
def operands():
  rng = np.random.default_rng(0)
  ws = [jnp.asarray(0.02 * rng.standard_normal((256, 2048)), jnp.float32) for _ in range(BLOCKS)]
  x = jnp.asarray(rng.standard_normal((1024, 256)), jnp.float32)
  return ws, x


def _temp_mib(loss, ws, x) -> float:
  compiled = jax.jit(jax.grad(loss)).lower(ws, x).compile()
  return compiled.memory_analysis().temp_size_in_bytes / 2 ** 20


def test_gradients_equal_plain_autodiff(operands):
  ws, x = operands
  plain = jax.jit(jax.grad(_loss(lambda f: f), argnums=(0, 1)))(ws, x)
  for policy in dgsct.REMAT_POLICIES.values():
    ours = jax.jit(jax.grad(_loss(lambda f: remat.checkpoint(f, policy)), argnums=(0, 1)))(ws, x)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(plain)):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * np.abs(b).max())


def test_bfloat16_leaves_keep_their_dtype_and_gradients(operands):
  """The trainer's bf16 compute dtype: bf16 weights and activations through the
  checkpoint (its `+ 0·c` ties are cast to each leaf's dtype) give plain autodiff's bf16
  gradients, in bf16."""
  ws = [w.astype(jnp.bfloat16) for w in operands[0]]
  x = operands[1][:128].astype(jnp.bfloat16)
  plain = jax.jit(jax.grad(_loss(lambda f: f), argnums=(0, 1)))(ws, x)
  ours = jax.jit(jax.grad(_loss(lambda f: remat.checkpoint(f, dgsct.REMAT_POLICIES["block_dots"])),
                          argnums=(0, 1)))(ws, x)
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(plain)):
    assert a.dtype == b.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32),
                               rtol=2e-2, atol=2e-2 * float(np.abs(np.asarray(b, np.float32)).max()))


def test_recomputation_is_not_hoisted_into_the_forward_pass(operands):
  """On XLA:CPU `jax.checkpoint` saves nothing here (its optimization barrier is
  expanded before scheduling, so the recomputation is merged with the forward
  pass); `remat.checkpoint` keeps only the block inputs."""
  ws, x = operands
  plain = _temp_mib(_loss(lambda f: f), ws, x)
  ours = _temp_mib(_loss(remat.checkpoint), ws, x)
  hidden_mib = 1024 * 2048 * 4 / 2 ** 20
  assert plain >= BLOCKS * hidden_mib, plain
  assert ours <= 4 * hidden_mib < plain / 1.5, (ours, plain)


def test_integer_and_key_inputs_pass_through():
  def f(state, x):
    key, count = state
    noise = jax.random.normal(jax.random.fold_in(key, count), x.shape)
    return (jnp.sin(x) * noise, count + 1)

  def loss(fn, x):
    out, count = fn((jax.random.key(0), jnp.uint32(3)), x)
    return out.sum() + 0 * count

  x = jnp.linspace(0.0, 1.0, 8)
  np.testing.assert_allclose(jax.grad(lambda x: loss(remat.checkpoint(f), x))(x),
                             jax.grad(lambda x: loss(f, x))(x), rtol=1e-6)
