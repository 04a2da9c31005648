"""The jitted steps: forward pass, train step, eval step (task-neutral).

The task says how to call its model (`Task.apply`), what the losses are and
what an evaluation keeps per example; these functions only place, cast and
differentiate.
"""
import jax
import jax.numpy as jnp
import optax

from dgsct_jax import input_pipeline
from dgsct_jax import nnx_utils
from dgsct_jax import optim as optim_lib
from dgsct_jax import train_state
from dgsct_jax.models import layers
from dgsct_jax.tasks import base


def forward(task, graphdef, trainable, frozen, stats, inputs, *, deterministic, rng, dtype):
  """Model outputs (float32) on the INPUT fields and the BatchNorm statistics after the call.
  Trainable weights and floating inputs run in the compute `dtype`."""
  model = nnx_utils.merge(graphdef, train_state.cast_floats(trainable, dtype), frozen, stats)
  rngs = layers.DropoutStream(rng) if rng is not None else None
  out = task.apply(model, train_state.cast_floats(inputs, dtype), deterministic=deterministic,
                   rngs=rngs)
  out = jax.tree.map(lambda x: x.astype(jnp.float32) if jnp.issubdtype(x.dtype, jnp.floating)
                     else x, out)
  return out, nnx_utils.stats_of(model)


def _batch_shardings(names, layout):
  return {k: layout.batch_sh for k in names}


def train_fields(task) -> tuple[str, ...]:
  return task.fields(base.INPUT, base.TARGET)


def eval_fields(task) -> tuple[str, ...]:
  return task.fields(base.INPUT, base.TARGET) + (input_pipeline.MASK,)


def make_train_step(config, task, layout, tx, schedule, opt_sh):
  """step(state, frozen, batch) → (new state, metrics); the state is donated."""
  dtype = train_state.DTYPES[config.compute_dtype]
  inputs = task.fields(base.INPUT)

  def loss_fn(trainable, frozen, stats, batch, rng):
    out, new_stats = forward(task, layout.graphdef, trainable, frozen, stats,
                             {k: batch[k] for k in inputs}, deterministic=False, rng=rng,
                             dtype=dtype)
    losses = task.losses(out, batch)
    return losses["total"], (losses, new_stats)

  def step(state, frozen, batch):
    rng = jax.random.fold_in(state["rng"], state["step"])
    (_, (losses, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state["trainable"], frozen, state["stats"], batch, rng)
    updates, opt_state = tx.update(grads, state["opt_state"], state["trainable"])
    trainable = optax.apply_updates(state["trainable"], updates)
    new_state = {"trainable": trainable, "opt_state": opt_state, "stats": stats,
                 "step": state["step"] + 1, "rng": state["rng"]}
    metrics = {f"loss_{k}" if k != "total" else "loss": v for k, v in losses.items()}
    metrics["grad_norm"] = optim_lib.global_norm(grads)
    metrics["param_norm"] = optim_lib.global_norm(trainable)
    metrics["lr"] = schedule(optim_lib.update_count(state["opt_state"]))
    return new_state, metrics

  state_sh = train_state.state_shardings(layout, opt_sh)
  return jax.jit(step, in_shardings=(state_sh, layout.frozen_sh,
                                     _batch_shardings(train_fields(task), layout)),
                 out_shardings=(state_sh, layout.repl), donate_argnums=(0,))


def make_eval_step(config, task, layout):
  """step(trainable, frozen, stats, batch) → the task's eval outputs and `mask`."""
  dtype = train_state.DTYPES[config.compute_dtype]
  inputs = task.fields(base.INPUT)

  def step(trainable, frozen, stats, batch):
    out, _ = forward(task, layout.graphdef, trainable, frozen, stats,
                     {k: batch[k] for k in inputs}, deterministic=True, rng=None, dtype=dtype)
    result = dict(task.eval_outputs(out, batch))
    result[input_pipeline.MASK] = batch[input_pipeline.MASK]
    return result

  return jax.jit(step, in_shardings=(layout.trainable_sh, layout.frozen_sh, layout.stats_sh,
                                     _batch_shardings(eval_fields(task), layout)),
                 out_shardings=layout.batch_sh)
