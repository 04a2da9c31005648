"""The optax optimizer from `config.optim`, built on the trainable tree only.

    optim.name            'adam' (the reference: torch Adam, no weight decay)
    optim.b1/b2/eps       Adam hyper-parameters (torch defaults 0.9/0.999/1e-8)
    optim.lr              base learning rate
    optim.lr_mults        ((regex over dotted trainable paths, multiplier), ...):
                          per-group learning rates; first match wins, default 1
    optim.schedule        kind: 'constant' | 'step' | 'cosine'; unit: 'epoch' | 'step';
                          every/gamma (StepLR), warmup (in `unit`s)
    optim.accum_steps     k batches per optimizer update
    optim.accum_mode      'sum'     : true accumulation (optax.MultiSteps, mean of k grads)
                          'discard' : the reference's AVE quirk (spec §4.4): the update
                                      uses only the current batch's gradient and runs on
                                      every k-th batch and on the last batch of an epoch;
                                      the other batches' gradients are thrown away.

Schedules are functions of the number of optimizer *updates*; the trainer
passes `updates_per_epoch` so that 'epoch' units match torch's StepLR stepped
after every epoch.
"""
import math
import re
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from dgsct_jax import nnx_utils


def updates_per_epoch(batches_per_epoch: int, accum_steps: int, accum_mode: str) -> float:
  if accum_steps == 1:
    return float(batches_per_epoch)
  if accum_mode == "discard":
    return float(math.ceil(batches_per_epoch / accum_steps))
  if accum_mode == "sum":
    return batches_per_epoch / accum_steps
  raise ValueError(f"config.optim.accum_mode={accum_mode!r}: expected 'sum' or 'discard'")


def make_schedule(optim, upe: float) -> optax.Schedule:
  """lr(update count) from `optim.schedule` (units converted with `upe`)."""
  sched = optim.schedule
  unit = {"epoch": upe, "step": 1.0}.get(sched.unit)
  if unit is None:
    raise ValueError(f"config.optim.schedule.unit={sched.unit!r}: expected 'epoch' or 'step'")
  base = optim.lr

  def schedule(count):
    t = jnp.floor(count / unit) if sched.unit == "epoch" else count.astype(jnp.float32)
    if sched.kind == "constant":
      lr = jnp.asarray(base, jnp.float32)
    elif sched.kind == "step":
      lr = base * jnp.power(sched.gamma, jnp.floor(t / sched.every))
    elif sched.kind == "cosine":
      frac = jnp.clip((t - sched.warmup) / max(sched.total - sched.warmup, 1), 0.0, 1.0)
      lr = base * 0.5 * (1 + jnp.cos(jnp.pi * frac))
    else:
      raise ValueError(f"config.optim.schedule.kind={sched.kind!r}: "
                       "expected 'constant', 'step' or 'cosine'")
    if sched.warmup:
      lr = lr * jnp.minimum(1.0, (t + 1) / sched.warmup)
    return lr

  return schedule


def lr_multipliers(trainable, lr_mults) -> dict:
  """A tree like `trainable` holding each leaf's learning-rate multiplier."""
  patterns = [(re.compile(regex), float(mult)) for regex, mult in lr_mults]
  flat = nnx_utils.flatten(trainable)
  mults = {}
  for path in flat:
    mults[path] = next((m for rx, m in patterns if rx.fullmatch(path)), 1.0)
  return nnx_utils.replace_leaves(trainable, mults)


def scale_by_tree(mults) -> optax.GradientTransformation:
  """Multiplies each update leaf by a static per-leaf factor."""
  def update(updates, state, params=None):
    del params
    return jax.tree.map(lambda u, m: u * m if m != 1.0 else u, updates, mults), state
  return optax.GradientTransformation(lambda _: optax.EmptyState(), update)


class DiscardState(NamedTuple):
  batch: jnp.ndarray   # batches seen (int32)
  inner: optax.OptState


def discard_accumulation(inner: optax.GradientTransformation, k: int,
                         batches_per_epoch: int) -> optax.GradientTransformation:
  """The reference's `accum_itr` (spec §4.4): no accumulation, updates skipped."""
  def init(params):
    return DiscardState(jnp.zeros((), jnp.int32), inner.init(params))

  def update(grads, state, params=None):
    in_epoch = state.batch % batches_per_epoch
    apply = ((in_epoch + 1) % k == 0) | (in_epoch == batches_per_epoch - 1)
    updates, new_inner = inner.update(grads, state.inner, params)
    updates = jax.tree.map(lambda u: jnp.where(apply, u, jnp.zeros_like(u)), updates)
    new_inner = jax.tree.map(lambda n, o: jnp.where(apply, n, o), new_inner, state.inner)
    return updates, DiscardState(state.batch + 1, new_inner)

  return optax.GradientTransformation(init, update)


def make_optimizer(optim, trainable, *, batches_per_epoch: int):
  """(optax transformation, lr schedule) for the trainable tree."""
  if optim.name != "adam":
    raise ValueError(f"config.optim.name={optim.name!r}: only 'adam' (the reference) is built")
  upe = updates_per_epoch(batches_per_epoch, optim.accum_steps, optim.accum_mode)
  schedule = make_schedule(optim, upe)
  tx = optax.chain(
      optax.scale_by_adam(b1=optim.b1, b2=optim.b2, eps=optim.eps),
      optax.scale_by_learning_rate(schedule),
      scale_by_tree(lr_multipliers(trainable, optim.lr_mults)),
  )
  if optim.accum_steps > 1:
    if optim.accum_mode == "sum":
      tx = optax.MultiSteps(tx, every_k_schedule=optim.accum_steps).gradient_transformation()
    else:
      tx = discard_accumulation(tx, optim.accum_steps, batches_per_epoch)
  return tx, schedule


def global_norm(tree) -> jnp.ndarray:
  """The L2 norm of all leaves of `tree` (as optax.global_norm), reduced once over their
  concatenation: a reduction per leaf is a kernel per leaf, and XLA:CPU's compile time grows
  with the number of kernels (a model with a trainable encoder has over a thousand leaves)."""
  leaves = [jnp.ravel(x).astype(jnp.float32) for x in jax.tree.leaves(tree)]
  if not leaves:
    return jnp.zeros((), jnp.float32)
  return jnp.sqrt(jnp.sum(jnp.square(jnp.concatenate(leaves))))


def update_count(opt_state) -> jnp.ndarray:
  """The number of optimizer updates applied so far (for logging the lr)."""
  counts = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(opt_state)
            if jax.tree_util.keystr(path).endswith(".count")]
  if not counts:
    raise ValueError("optimizer state has no Adam count")
  return counts[-1]
