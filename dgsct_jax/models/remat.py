"""Rematerialisation whose recomputation waits for the backward pass.

`jax.checkpoint` guards its recomputation with an optimization barrier on the
saved residuals. XLA:CPU expands optimization barriers before it optimises, so
there the recomputation is an ordinary copy of the forward pass: XLA merges it
with the forward pass (CSE) or schedules it early, and keeps its results until the
backward pass, so `jax.checkpoint` saves no memory there.

`checkpoint(fn, policy)` differentiates like `jax.checkpoint(fn, policy=policy)`
(the same residuals are saved, the rest is recomputed) but makes every residual
depend on the incoming cotangent (`+ 0·c`, exactly zero), so no block's
recomputation can run before its own backward pass starts, on any backend
(memory figures: benchmarks/README.md). `module_checkpoint` wraps an NNX
module call (used by the DG-SCT pairs and by the encoders' `remat=True`).
"""
import jax
import jax.numpy as jnp
from flax import nnx


def checkpoint(fn, policy=None):
  """`jax.checkpoint(fn, policy=policy)` with the recomputation ordered after the cotangent.

  `fn` takes and returns pytrees of arrays (integer and key arrays allowed: they
  get float0 cotangents as under `jax.vjp`).
  """
  @jax.custom_vjp
  def run(*args):
    return fn(*args)

  def run_fwd(*args):
    out, vjp_fn = jax.vjp(jax.checkpoint(fn, policy=policy), *args)
    return out, vjp_fn

  def run_bwd(vjp_fn, cotangent):
    return _after(vjp_fn, cotangent)(cotangent)

  run.defvjp(run_fwd, run_bwd)
  return run


def module_checkpoint(fn, policy=None):
  """`fn(modules, *arrays, rngs=..., **static)` under `checkpoint`, for NNX modules.

  The modules' and rngs' state goes in explicitly, and what `fn` may change
  (everything but parameters: BatchNorm statistics, RNG counters) comes back out,
  so this works wherever the modules were merged, e.g. inside the trainer's
  `jax.value_and_grad`, and with frozen weights that are tracers of an outer trace.
  """
  def wrapped(modules, *arrays, rngs=None, **static):
    graphdef, state = nnx.split((modules, rngs))

    def pure(state, *arrays):
      modules, rngs = nnx.merge(graphdef, state)
      out = fn(modules, *arrays, rngs=rngs, **static)
      return out, nnx.state((modules, rngs), nnx.Not(nnx.Param))

    out, changed = checkpoint(pure, policy=policy)(state, *arrays)
    nnx.update((modules, rngs), changed)
    return out

  return wrapped


def _after(tree, cotangent):
  """`tree` with each floating leaf made to depend on `cotangent` (values unchanged).

  XLA:CPU expands optimization barriers before scheduling, so the dependency is a
  data one: every leaf gets `+ 0·c`, where `c` is read from the cotangent and made
  finite first, so the added term is exactly zero (a -0 leaf becomes +0). XLA does
  not fold a float `0·c` away (it would be NaN for a non-finite c), and the add
  fuses into the leaf's first consumer.
  """
  anchor = _anchor(cotangent)
  if anchor is None:
    return tree

  def tie(leaf):
    if not _floating(leaf):
      return leaf
    return leaf + anchor.astype(leaf.dtype)

  return jax.tree.map(tie, tree)


def _anchor(cotangent):
  """A float scalar equal to +0 that XLA cannot compute before `cotangent`.

  It reads one element of every floating leaf: some cotangents are instantiated
  zeros (unused outputs, statistics), which XLA would constant-fold.
  """
  firsts = [leaf.reshape(-1)[0].astype(jnp.float32) for leaf in jax.tree.leaves(cotangent)
            if _floating(leaf) and leaf.size]
  if not firsts:
    return None
  c = sum(firsts[1:], firsts[0])
  return jnp.abs(jnp.where(jnp.isfinite(c), c, 0.0)) * 0.0


def _floating(leaf) -> bool:
  return isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jnp.floating)
