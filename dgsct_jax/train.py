"""The training loop: one for every task (big_vision's `train.py`, task-neutral).

Steps are jitted with named shardings (`steps.py`), the run state lives in
`train_state.py`, evaluation in `evaluation.py`; the task (`config.task`)
supplies the model, losses and metric. Each epoch ends with an evaluation of
`config.eval.select_split`; the task's selection metric picks the best
checkpoint (`<workdir>/best`, ties count as improvements, as the reference
saves on >=) and drives early stopping.

Reference quirks that change results are config switches (configs/ave.py):
`optim.accum_mode='discard'` (broken accumulation), `model.encoder_train_mode`
(frozen encoders in train mode), `eval.select_split='test'` (model selection
and early stopping on the test split). The clean variant flips all three.
"""
import json
import logging
import pathlib
import sys
import time

import jax
import numpy as np

from dgsct_jax import checkpointing
from dgsct_jax import evaluation
from dgsct_jax import input_pipeline
from dgsct_jax import metrics_writer
from dgsct_jax import optim as optim_lib
from dgsct_jax import steps
from dgsct_jax import train_state
from dgsct_jax import workdir_lock


class NonFiniteError(RuntimeError):
  """The loss or the gradients became NaN/Inf; the last good checkpoint is kept."""


def _mean_metrics(pending: list[tuple[int, dict]]) -> tuple[dict, int | None]:
  """Host copies of the pending step metrics: their mean and the first non-finite step."""
  fetched = jax.device_get([m for _, m in pending])
  bad = next((s for (s, _), m in zip(pending, fetched)
              if not all(np.isfinite(m[k]) for k in ("loss", "grad_norm", "param_norm"))), None)
  mean = {k: float(np.mean([m[k] for m in fetched])) for k in fetched[0]}
  return mean, bad


def improved(task, value: float, best: float | None) -> bool:
  """Whether `value` of the task's selection metric is at least as good as `best`."""
  if best is None:
    return True
  return value >= best if task.selection_mode == "max" else value <= best


def train_and_evaluate(config, workdir, *, allow_config_change: bool = False) -> dict:
  """Trains (resuming from `workdir` if it holds a checkpoint); returns final metrics and,
  under `run`, the `train_state.Run` it trained (layout, frozen weights) for an evaluation in
  the same process (`evaluation.predict(..., run=...)` then builds no second model).

  The workdir is locked for the run (`workdir_lock`). A resumed run must have the
  checkpoint's config, but for hyperparameters with `allow_config_change` (logged to
  `<workdir>/config_changes.jsonl`) and fields that never change results.
  """
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  lock = workdir_lock.WorkdirLock(workdir)
  lock.acquire()
  try:
    return _train(config, workdir, allow_config_change)
  finally:
    lock.release()


def _train(config, workdir: pathlib.Path, allow_config_change: bool) -> dict:
  ckpt = checkpointing.Checkpoints(workdir / "checkpoints", save_every=config.ckpt.every_steps,
                                   max_to_keep=config.ckpt.max_to_keep)
  resume_step = ckpt.latest_step()
  config_json = json.loads(config.to_json_best_effort())
  changes = {}
  if resume_step is not None:  # checked before the model is built: a refusal is quick
    try:
      changes = train_state.check_resumed_config(
          ckpt.restore_meta(resume_step)["config"], config_json,
          workdir / "checkpoints" / str(resume_step), allow_changes=allow_config_change)
    except train_state.ResumeRefused:
      ckpt.close()
      raise
  run = train_state.setup(config, workdir)
  layout, task = run.layout, run.task
  spec = task.batch_spec()

  # --- data -----------------------------------------------------------------
  train_source = input_pipeline.get_source(config, "train")
  select_source = input_pipeline.get_source(config, config.eval.select_split)
  batches_per_epoch = (len(train_source) // jax.process_count()) // (
      input_pipeline.local_batch_size(config.batch_size))
  if batches_per_epoch == 0:
    raise ValueError(f"train split of {len(train_source)} examples < batch size "
                     f"{config.batch_size}")
  total_steps = batches_per_epoch * config.epochs
  train_iter = input_pipeline.train_iterator(config, train_source)

  # --- optimizer and state ----------------------------------------------------
  tx, schedule = optim_lib.make_optimizer(config.optim, run.init.trainable,
                                          batches_per_epoch=batches_per_epoch)
  opt_sh = train_state.opt_shardings(tx, jax.eval_shape(tx.init, run.init.trainable), layout)
  state_sh = train_state.state_shardings(layout, opt_sh)
  train_step = steps.make_train_step(config, task, layout, tx, schedule, opt_sh)
  eval_step = steps.make_eval_step(config, task, layout)

  best_ckpt = checkpointing.Checkpoints(train_state.best_dir(workdir), save_every=1,
                                        max_to_keep=1, with_data=False, name="best")
  progress = {"best": None, "best_epoch": -1, "epoch": 0, "early_stopped": False}
  if resume_step is None:
    state = train_state.init_state(config, run.init, tx, state_sh)
  else:
    where = workdir / "checkpoints" / str(resume_step)
    abstract_state = train_state.abstract_like(
        jax.eval_shape(lambda: train_state.init_state(config, run.init, tx)), state_sh)
    state, meta = ckpt.restore(resume_step, abstract_state, train_iter)
    train_state.check_encoder_digests(meta, run.digests, where)
    progress.update(meta["progress"])
    if changes:
      _log_config_changes(workdir, resume_step, changes)
    logging.info("resumed from %s at step %d", workdir, resume_step)
  step = int(jax.device_get(state["step"]))
  # Judged with the current config (a resume may have raised eval.early_stop_epochs).
  progress["early_stopped"] = (0 < step and step % batches_per_epoch == 0 and
                               _no_improvement(config, progress))
  if step >= total_steps or progress["early_stopped"]:
    print(f"the run in {workdir} is finished (step {step} of {total_steps}"
          f"{', stopped early' if progress['early_stopped'] else ''}); nothing to train. To "
          "train longer, raise epochs (or eval.early_stop_epochs) and pass "
          "--allow_config_change.", file=sys.stderr)
    ckpt.close()
    best_ckpt.close()
    return {"step": step, "steps_per_second": 0.0, **progress, "stopped": False,
            "finished": True, "run": run}

  writer = metrics_writer.MetricsWriter(workdir, total_steps=total_steps, initial_step=step,
                                        progress=config.log.progress)
  stop = checkpointing.StopRequest()
  meta_base = {"config": config_json,
               "encoder_sha256": run.digests, "git": train_state.git_revision(),
               "mesh": dict(layout.mesh.shape), "process_count": jax.process_count(),
               "batches_per_epoch": batches_per_epoch}

  def meta():
    return dict(meta_base, step=step, progress=dict(progress))

  def flush(pending):
    if not pending:
      return
    mean, bad = _mean_metrics(pending)
    if bad is not None:
      ckpt.wait()
      last = ckpt.latest_step()
      raise NonFiniteError(f"non-finite loss, gradient or weights at step {bad + 1}; stopping. "
                           f"The last good checkpoint (step {last}) in "
                           f"{workdir / 'checkpoints'} is kept.")
    writer.write(step, "train", mean)
    pending.clear()

  def end_of_epoch_eval():
    result, _ = evaluation.evaluate_split(run, eval_step, state["trainable"], state["stats"],
                                          select_source)
    epoch = progress["epoch"]
    split = config.eval.select_split
    writer.write(step, split, dict(_numbers(result), epoch=epoch))
    value = result[task.selection_metric]
    if improved(task, value, progress["best"]):
      progress.update(best=value, best_epoch=epoch)
      best_ckpt.save(step, {"trainable": state["trainable"], "stats": state["stats"]},
                     dict(meta(), result=_numbers(result), split=split), force=True)
    writer.message(f"epoch {epoch}: {split} {task.summary(result)}; best "
                   f"{task.selection_metric} {progress['best']:.4g} at epoch "
                   f"{progress['best_epoch']}")

  # --- loop -------------------------------------------------------------------
  pending = []
  t0, first_step = time.time(), step
  try:
    while step < total_steps:
      batch = input_pipeline.to_global(next(train_iter), spec, steps.train_fields(task),
                                       layout.batch_sh)
      with jax.transfer_guard("disallow"):
        state, metrics = train_step(state, run.frozen, batch)
      pending.append((step, metrics))
      step += 1
      if step % config.log.bar_every == 0 or step == total_steps:
        writer.progress(step, loss=float(metrics["loss"]),
                        epoch=f"{step / batches_per_epoch:.2f}")
      if step % config.log.every_steps == 0:
        flush(pending)
      epoch_end = step % batches_per_epoch == 0
      if epoch_end:
        flush(pending)
        progress["epoch"] = step // batches_per_epoch
        end_of_epoch_eval()
        progress["early_stopped"] = _no_improvement(config, progress)
      save_now = stop.requested or ckpt.reached_preemption(step)
      if step % config.ckpt.every_steps == 0 or epoch_end or save_now or step == total_steps:
        flush(pending)
        ckpt.save(step, state, meta(), train_iter, force=True)
      if save_now:
        writer.message(f"stop requested: checkpoint at step {step} in {workdir}; "
                       "run again with the same --workdir to resume")
        break
      if progress["early_stopped"]:
        writer.message(f"early stop: no improvement for {config.eval.early_stop_epochs} epochs")
        break
    flush(pending)
  finally:
    ckpt.close()
    best_ckpt.close()
    stop.restore_handlers()
    writer.close()
  steps_per_s = (step - first_step) / max(time.time() - t0, 1e-9)
  return {"step": step, "steps_per_second": steps_per_s, **progress,
          "stopped": stop.requested,
          "finished": step >= total_steps or progress["early_stopped"], "run": run}


def _no_improvement(config, progress) -> bool:
  """Early stopping: no better selection metric for `eval.early_stop_epochs` epochs."""
  patience = config.eval.early_stop_epochs
  return bool(patience) and progress["epoch"] - progress["best_epoch"] >= patience


def _log_config_changes(workdir: pathlib.Path, step: int, changes: dict):
  """Prints the accepted config changes and appends them to config_changes.jsonl."""
  text = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changes.items())
  print(f"resuming at step {step} with changed settings: {text}", file=sys.stderr)
  if jax.process_index() == 0:
    with open(workdir / "config_changes.jsonl", "a", encoding="utf-8") as f:
      f.write(json.dumps({"step": step, "time": round(time.time(), 3),
                          "changes": {k: list(v) for k, v in changes.items()}}) + "\n")


def _numbers(result: dict) -> dict:
  """The numeric entries of a metric result (what is logged and saved)."""
  return {k: v for k, v in result.items() if isinstance(v, (int, float, np.number))}
