"""The trainer: train / eval / predict for a DG-SCT model on frozen encoders.

One trainer for every config (big_vision's `train.py` layout, sections below).
The model is split once into a static graphdef and three pytrees
(`nnx_utils`): `trainable` (differentiated, optimised, checkpointed),
`frozen` (encoder weights: an input of the step, never differentiated, never
donated, never checkpointed; re-read from converted-weights directories and
checked by sha256) and `stats` (BatchNorm statistics, checkpointed).

Reference quirks that change results are config switches (configs/ave.py):
`optim.accum_mode='discard'` (broken accumulation), `model.encoder_train_mode`
(frozen encoders in train mode), `eval.select_split='test'` (model selection
and early stopping on the test split). The clean variant flips all three.
"""
import dataclasses
import functools
import importlib
import json
import logging
import pathlib
import subprocess
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.experimental import multihost_utils

from dgsct_jax import checkpointing
from dgsct_jax import metrics_writer
from dgsct_jax import nnx_utils
from dgsct_jax import optim as optim_lib
from dgsct_jax import sharding as sharding_lib
from dgsct_jax.data import pipeline
from dgsct_jax.data import sources
from dgsct_jax.tasks import ave as ave_task

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
MODEL_INPUTS = ("frames", "audio", "label", "mask")


class NonFiniteError(RuntimeError):
  """The loss or the gradients became NaN/Inf; the last good checkpoint is kept."""


# ----------------------------------------------------------------------------
# Model, encoders and state layout
# ----------------------------------------------------------------------------

def model_builder(config):
  """`config.model_builder` ('module:function') applied to `config.model`."""
  module_name, _, fn_name = config.model_builder.partition(":")
  build = getattr(importlib.import_module(module_name), fn_name)
  return lambda: build(config.model, rngs=nnx.Rngs(config.seed))


def load_encoders(config, parts: nnx_utils.Parts) -> tuple[nnx_utils.Parts, dict]:
  """Frozen encoder weights from their converted-weights directories.

  `config.init_from.<name>` = (dir relative to `config.weights_dir`, model prefix,
  expected sha256 or ''). Returns the filled parts and {name: params_sha256}.
  """
  from weight_conversion import store  # pylint: disable=import-outside-toplevel
  digests = {}
  for name, spec in sorted(config.init_from.items()):
    if not config.weights_dir:
      raise ValueError(f"config.init_from.{name} needs --weights_dir (or DGSCT_WEIGHTS_DIR)")
    directory = pathlib.Path(config.weights_dir).expanduser() / spec.dir
    values, manifest = store.load(directory, verify=True)
    digest = manifest["params_sha256"]
    if spec.sha256 and spec.sha256 != digest:
      raise ValueError(f"{directory}: params_sha256 {digest} != config.init_from.{name}.sha256 "
                       f"{spec.sha256}")
    parts = nnx_utils.assign_pretrained(parts, values, spec.prefix, str(directory))
    digests[name] = digest
  return parts, digests


@dataclasses.dataclass
class Layout:
  """Static pieces of a run: graphdef, abstract trees and their shardings."""
  graphdef: Any
  mesh: Any
  rules: dict
  abstract: nnx_utils.Parts
  trainable_sh: Any
  frozen_sh: Any
  stats_sh: Any
  batch_sh: Any
  repl: Any


def make_layout(config, mesh) -> Layout:
  build = model_builder(config)
  abstract, (axes_t, axes_f, axes_s) = nnx_utils.abstract(build)
  rules = sharding_lib.validate_rules(config.sharding_rules, mesh)
  shard = functools.partial(sharding_lib.tree_shardings, table=rules, mesh=mesh)
  frozen_sh = shard(abstract.frozen, axes_f)
  if config.fsdp_frozen:
    frozen_sh = sharding_lib.fsdp_shardings(abstract.frozen, frozen_sh, mesh,
                                            min_size_mb=config.fsdp_min_size_mb)
  return Layout(abstract.graphdef, mesh, rules, abstract, shard(abstract.trainable, axes_t),
                frozen_sh, shard(abstract.stats, axes_s),
                sharding_lib.batch_sharding(rules, mesh), sharding_lib.replicated(mesh))


def init_parts(config, layout: Layout) -> nnx_utils.Parts:
  """Freshly initialised model parts (seeded by config.seed), placed on their shardings.

  Built eagerly: on CPU a jitted init of the whole model compiles for longer than
  the eager construction takes, and the frozen part is overwritten by the
  converted encoders anyway.
  """
  parts = nnx_utils.split(model_builder(config)())
  return nnx_utils.Parts(layout.graphdef, *jax.device_put(
      (parts.trainable, parts.frozen, parts.stats),
      (layout.trainable_sh, layout.frozen_sh, layout.stats_sh)))


def cast_floats(tree, dtype):
  return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x,
                      tree)


def init_state(config, parts: nnx_utils.Parts, tx, state_sh=None):
  """The train state: trainable, optimizer state, BN statistics, step, base RNG key."""
  def init(trainable, stats):
    return {"trainable": trainable, "opt_state": tx.init(trainable), "stats": stats,
            "step": jnp.zeros((), jnp.int32),
            "rng": jax.random.key_data(jax.random.PRNGKey(config.seed))}
  if state_sh is None:
    return init(parts.trainable, parts.stats)
  return jax.jit(init, out_shardings=state_sh)(parts.trainable, parts.stats)


def opt_shardings(tx, opt_abstract, layout):
  """Optimizer-state leaves that mirror a trainable leaf take its sharding; others replicate."""
  return optax.tree_map_params(tx, lambda _, sh: sh, opt_abstract, layout.trainable_sh,
                               transform_non_params=lambda _: layout.repl)


def state_shardings(layout: Layout, opt_sh):
  return {"trainable": layout.trainable_sh, "opt_state": opt_sh, "stats": layout.stats_sh,
          "step": layout.repl, "rng": layout.repl}


# ----------------------------------------------------------------------------
# Steps
# ----------------------------------------------------------------------------

def forward(graphdef, trainable, frozen, stats, batch, *, deterministic, rng, dtype):
  """Model outputs (float32) and the BatchNorm statistics after the call."""
  model = nnx_utils.merge(graphdef, cast_floats(trainable, dtype), frozen, stats)
  rngs = nnx.Rngs(rng) if rng is not None else None
  out = model(batch["audio"].astype(dtype), batch["frames"].astype(dtype),
              deterministic=deterministic, rngs=rngs)
  out = jax.tree.map(lambda x: x.astype(jnp.float32) if jnp.issubdtype(x.dtype, jnp.floating)
                     else x, out)
  return out, nnx_utils.stats_of(model)


def make_train_step(config, layout: Layout, tx, schedule, opt_sh):
  dtype = DTYPES[config.compute_dtype]

  def loss_fn(trainable, frozen, stats, batch, rng):
    out, new_stats = forward(layout.graphdef, trainable, frozen, stats, batch,
                             deterministic=False, rng=rng, dtype=dtype)
    losses = ave_task.losses(out, batch["label"],
                             gate_loss_on_logits=config.loss.gate_on_logits)
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
    metrics["grad_norm"] = optax.global_norm(grads)
    metrics["param_norm"] = optax.global_norm(trainable)
    metrics["lr"] = schedule(optim_lib.update_count(state["opt_state"]))
    return new_state, metrics

  state_sh = state_shardings(layout, opt_sh)
  batch_sh = {k: layout.batch_sh for k in MODEL_INPUTS}
  return jax.jit(step, in_shardings=(state_sh, layout.frozen_sh, batch_sh),
                 out_shardings=(state_sh, layout.repl), donate_argnums=(0,))


def make_eval_step(config, layout: Layout):
  dtype = DTYPES[config.compute_dtype]

  def step(trainable, frozen, stats, batch):
    out, _ = forward(layout.graphdef, trainable, frozen, stats, batch, deterministic=True,
                     rng=None, dtype=dtype)
    pred = ave_task.segment_predictions(out["is_event_scores"], out["event_scores"])
    target = ave_task.targets(batch["label"])["segment_class"]
    return {"pred": pred, "target": target, "mask": batch["mask"]}

  batch_sh = {k: layout.batch_sh for k in MODEL_INPUTS}
  return jax.jit(step, in_shardings=(layout.trainable_sh, layout.frozen_sh, layout.stats_sh,
                                     batch_sh),
                 out_shardings=layout.batch_sh)


# ----------------------------------------------------------------------------
# Input pipeline
# ----------------------------------------------------------------------------

def get_source(config, split: str, data_dir):
  data = config.data
  kwargs = {}
  if data.name == "synthetic":
    from dgsct_jax.data import synthetic  # pylint: disable=import-outside-toplevel
    kwargs["config"] = synthetic.SyntheticConfig(**data.synthetic.to_dict())
    kwargs["size"] = data.sizes.get(split) or None
  return sources.get_source(data.name, data.splits[split], data_dir, **kwargs)


def local_batch_size(global_batch: int) -> int:
  if global_batch % jax.process_count():
    raise ValueError(f"batch size {global_batch} not divisible by {jax.process_count()} processes")
  return global_batch // jax.process_count()


def train_iterator(config, source):
  return pipeline.make_pipeline(
      source, batch_size=local_batch_size(config.batch_size), shuffle=config.data.shuffle,
      seed=config.seed, num_epochs=None, worker_count=config.data.worker_count,
      read_threads=config.data.read_threads)


def eval_iterator(config, source):
  return pipeline.make_pipeline(
      source, batch_size=local_batch_size(config.eval.batch_size), shuffle=False,
      num_epochs=1, pad_remainder=True, worker_count=0, read_threads=config.data.read_threads)


def to_global(batch: dict, sharding) -> dict:
  """Process-local numpy batch → global jax.Arrays sharded over the batch axis."""
  out = {}
  for key in MODEL_INPUTS:
    value = np.asarray(batch[key])
    if key == "mask":
      value = value.astype(np.float32)
    out[key] = jax.make_array_from_process_local_data(sharding, value)
  return out


# ----------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------

def _gather(x) -> np.ndarray:
  """A global array as one host numpy array (all processes get all rows)."""
  if jax.process_count() == 1:
    return np.asarray(x)
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def evaluate_split(config, layout, eval_step, trainable, frozen, stats, source,
                   *, keep_predictions: bool = False) -> dict:
  """Segment accuracy (%) over a split, the majority-class baseline, and predictions.

  Accuracy is pooled over all segments of the split (test.sh's number), not
  the reference's running mean of per-batch accuracies.
  """
  correct = total = 0
  counts = np.zeros(0, np.int64)
  predictions = []
  for batch in eval_iterator(config, source):
    out = eval_step(trainable, frozen, stats, to_global(batch, layout.batch_sh))
    mask = _gather(out["mask"]).astype(bool)
    pred, target = _gather(out["pred"])[mask], _gather(out["target"])[mask]
    correct += int((pred == target).sum())
    total += target.size
    counts = np.pad(counts, (0, max(0, int(target.max(initial=0)) + 1 - counts.size)))
    counts += np.bincount(target.reshape(-1), minlength=counts.size)
    if keep_predictions:
      local = {k: np.asarray(multihost_utils.global_array_to_host_local_array(
          out[k], layout.mesh, layout.batch_sh.spec)) for k in ("pred", "target", "mask")}
      keep = local["mask"].astype(bool)
      predictions += [{"video_id": str(i), "pred": p.tolist(), "target": t.tolist()}
                      for i, p, t in zip(np.asarray(batch["video_id"])[keep],
                                         local["pred"][keep], local["target"][keep])]
  if total == 0:
    raise ValueError("evaluation split is empty")
  return {"accuracy": 100.0 * correct / total, "segments": total,
          "majority_baseline": 100.0 * counts.max() / total,
          "majority_class": int(counts.argmax()), "predictions": predictions}


# ----------------------------------------------------------------------------
# Run setup shared by train / eval / predict
# ----------------------------------------------------------------------------

@dataclasses.dataclass
class Run:
  config: Any
  workdir: pathlib.Path
  layout: Layout
  frozen: Any
  digests: dict
  init: nnx_utils.Parts


def setup(config, workdir) -> Run:
  mesh = sharding_lib.make_mesh(config.mesh)
  layout = make_layout(config, mesh)
  parts = init_parts(config, layout)
  parts, digests = load_encoders(config, parts)
  return Run(config, pathlib.Path(workdir), layout, place_frozen(config, parts.frozen, layout),
             digests, parts)


def place_frozen(config, frozen, layout: Layout):
  """Frozen weights on their shardings, stored in the compute dtype (bf16 halves them)."""
  if config.compute_dtype != "float32":
    frozen = cast_floats(frozen, DTYPES[config.compute_dtype])
  return jax.device_put(frozen, layout.frozen_sh)




def git_revision() -> str:
  try:
    return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          cwd=pathlib.Path(__file__).parent, timeout=5,
                          check=True).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return "unknown"


def check_encoder_digests(meta: dict, digests: dict, where):
  saved = meta.get("encoder_sha256", {})
  if saved != digests:
    raise ValueError(f"{where} was trained on frozen encoders {saved}, but the converted "
                     f"weights now read are {digests}; refusing to mix them")


def _best_dir(workdir) -> pathlib.Path:
  return pathlib.Path(workdir) / "best"


def load_trained(run: Run):
  """(trainable, stats, meta) of the best checkpoint of `run.workdir` (model selection)."""
  directory = _best_dir(run.workdir)
  ckpt = checkpointing.Checkpoints(directory, save_every=1, with_data=False, async_save=False,
                                   name="best")
  step = ckpt.latest_step()
  if step is None:
    raise FileNotFoundError(f"no finalised checkpoint in {directory}; train first")
  abstract = {"trainable": _abstract_like(run.init.trainable, run.layout.trainable_sh),
              "stats": _abstract_like(run.init.stats, run.layout.stats_sh)}
  state, meta = ckpt.restore(step, abstract)
  ckpt.close()
  check_encoder_digests(meta, run.digests, directory / str(step))
  return state["trainable"], state["stats"], meta


def _abstract_like(tree, shardings):
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=s),
                      tree, shardings)


# ----------------------------------------------------------------------------
# Train loop
# ----------------------------------------------------------------------------

def _mean_metrics(pending: list[tuple[int, dict]]) -> tuple[dict, int | None]:
  """Host copies of the pending step metrics: their mean and the first non-finite step."""
  fetched = jax.device_get([m for _, m in pending])
  bad = next((s for (s, _), m in zip(pending, fetched)
              if not all(np.isfinite(m[k]) for k in ("loss", "grad_norm", "param_norm"))), None)
  mean = {k: float(np.mean([m[k] for m in fetched])) for k in fetched[0]}
  return mean, bad


def train_and_evaluate(config, workdir) -> dict:
  """Trains (resuming from `workdir` if it holds a checkpoint); returns final metrics."""
  workdir = pathlib.Path(workdir)
  run = setup(config, workdir)
  layout = run.layout

  # --- data -----------------------------------------------------------------
  train_source = get_source(config, "train", config.data.data_dir or None)
  select_source = get_source(config, config.eval.select_split, config.data.data_dir or None)
  batches_per_epoch = (len(train_source) // jax.process_count()) // local_batch_size(
      config.batch_size)
  if batches_per_epoch == 0:
    raise ValueError(f"train split of {len(train_source)} videos < batch size {config.batch_size}")
  total_steps = batches_per_epoch * config.epochs
  train_iter = train_iterator(config, train_source)

  # --- optimizer and state ----------------------------------------------------
  tx, schedule = optim_lib.make_optimizer(config.optim, run.init.trainable,
                                          batches_per_epoch=batches_per_epoch)
  opt_abstract = jax.eval_shape(tx.init, run.init.trainable)
  opt_sh = opt_shardings(tx, opt_abstract, layout)
  state_sh = state_shardings(layout, opt_sh)
  train_step = make_train_step(config, layout, tx, schedule, opt_sh)
  eval_step = make_eval_step(config, layout)

  ckpt = checkpointing.Checkpoints(workdir / "checkpoints", save_every=config.ckpt.every_steps,
                                   max_to_keep=config.ckpt.max_to_keep)
  best_ckpt = checkpointing.Checkpoints(_best_dir(workdir), save_every=1, max_to_keep=1,
                                        with_data=False, name="best")
  resume_step = ckpt.latest_step()
  progress = {"best_accuracy": -1.0, "best_epoch": -1, "epoch": 0}
  if resume_step is None:
    state = init_state(config, run.init, tx, state_sh)
  else:
    abstract_state = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                                  jax.eval_shape(lambda: init_state(config, run.init, tx)),
                                  state_sh)
    state, meta = ckpt.restore(resume_step, abstract_state, train_iter)
    check_encoder_digests(meta, run.digests, workdir / "checkpoints" / str(resume_step))
    progress.update(meta["progress"])
    logging.info("resumed from %s at step %d", workdir, resume_step)
  step = int(jax.device_get(state["step"]))

  writer = metrics_writer.MetricsWriter(workdir, total_steps=total_steps, initial_step=step,
                                        progress=config.log.progress)
  stop = checkpointing.StopRequest()
  meta_base = {"config": json.loads(config.to_json_best_effort()),
               "encoder_sha256": run.digests, "git": git_revision(),
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
                           f"The last "
                           f"good checkpoint (step {last}) in {workdir / 'checkpoints'} is kept.")
    writer.write(step, "train", mean)
    pending.clear()

  # --- loop -------------------------------------------------------------------
  pending = []
  t0, first_step = time.time(), step
  try:
    while step < total_steps:
      batch = to_global(next(train_iter), layout.batch_sh)
      with jax.transfer_guard("disallow"):
        state, metrics = train_step(state, run.frozen, batch)
      pending.append((step, metrics))
      step += 1
      if step % config.log.bar_every == 0:
        writer.progress(config.log.bar_every, loss=float(metrics["loss"]),
                        epoch=f"{step / batches_per_epoch:.2f}")
      if step % config.log.every_steps == 0:
        flush(pending)
      epoch_end = step % batches_per_epoch == 0
      if epoch_end:
        flush(pending)
        progress["epoch"] = step // batches_per_epoch
        _epoch_eval(run, writer, eval_step, state, select_source, best_ckpt, progress, step,
                    meta)
      save_now = stop.requested or ckpt.reached_preemption(step)
      if step % config.ckpt.every_steps == 0 or epoch_end or save_now or step == total_steps:
        flush(pending)
        ckpt.save(step, state, meta(), train_iter, force=True)
      if save_now:
        writer.message(f"stop requested: checkpoint at step {step} in {workdir}; "
                       "run again with the same --workdir to resume")
        break
      if (config.eval.early_stop_epochs and epoch_end and
          progress["epoch"] - progress["best_epoch"] >= config.eval.early_stop_epochs):
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
          "stopped": stop.requested}


def _epoch_eval(run, writer, eval_step, state, source, best_ckpt, progress, step, meta):
  config = run.config
  result = evaluate_split(config, run.layout, eval_step, state["trainable"], run.frozen,
                          state["stats"], source)
  epoch = progress["epoch"]
  writer.write(step, config.eval.select_split, {
      "accuracy": result["accuracy"], "majority_baseline": result["majority_baseline"],
      "epoch": epoch})
  improved = result["accuracy"] >= progress["best_accuracy"]  # the reference saves on >=
  if improved:
    progress.update(best_accuracy=result["accuracy"], best_epoch=epoch)
    best_ckpt.save(step, {"trainable": state["trainable"], "stats": state["stats"]},
                   dict(meta(), accuracy=result["accuracy"], split=config.eval.select_split),
                   force=True)
  writer.message(f"epoch {epoch}: {config.eval.select_split} accuracy "
                 f"{result['accuracy']:.2f}% (best {progress['best_accuracy']:.2f}% at epoch "
                 f"{progress['best_epoch']}; majority baseline "
                 f"{result['majority_baseline']:.2f}%)")


# ----------------------------------------------------------------------------
# Eval and predict modes
# ----------------------------------------------------------------------------

def evaluate(config, workdir, *, keep_predictions: bool = False) -> dict:
  """Accuracy of the best checkpoint on `config.eval.report_split`."""
  run = setup(config, workdir)
  trainable, stats, meta = load_trained(run)
  source = get_source(config, config.eval.report_split, config.data.data_dir or None)
  result = evaluate_split(config, run.layout, make_eval_step(config, run.layout), trainable,
                          run.frozen, stats, source, keep_predictions=keep_predictions)
  result.update(split=config.eval.report_split, checkpoint_step=meta["step"])
  return result


def predict(config, workdir) -> dict:
  """Best checkpoint → predictions.jsonl, result.json (accuracy vs majority baseline) and
  attention.png (spatial attention maps over the first test videos)."""
  workdir = pathlib.Path(workdir)
  run = setup(config, workdir)
  trainable, stats, meta = load_trained(run)
  source = get_source(config, config.eval.report_split, config.data.data_dir or None)
  result = evaluate_split(config, run.layout, make_eval_step(config, run.layout), trainable,
                          run.frozen, stats, source, keep_predictions=True)
  result.update(split=config.eval.report_split, checkpoint_step=meta["step"])
  path = workdir / (f"predictions.{jax.process_index()}.jsonl" if jax.process_count() > 1
                    else "predictions.jsonl")
  with open(path, "w", encoding="utf-8") as f:
    for row in result.pop("predictions"):
      f.write(json.dumps(row) + "\n")
  result["predictions_file"] = str(path)
  if jax.process_index() == 0 and config.figure.num_videos:
    result["figure"] = str(_attention_figure(config, run, trainable, stats, source,
                                             workdir / "attention.png"))
  if jax.process_index() == 0:
    (workdir / "result.json").write_text(json.dumps(result, indent=1))
  return result


def _attention_figure(config, run, trainable, stats, source, path):
  from dgsct_jax import visualize  # pylint: disable=import-outside-toplevel
  n = min(config.figure.num_videos, len(source))
  elements = [source[i] for i in range(n)]
  frames = np.stack([e["frames"] for e in elements])
  audio = np.stack([e["audio"] for e in elements])
  local = jax.devices()[0]
  maps = visualize.attention_maps(run.layout.graphdef, *jax.device_put(
      (trainable, run.frozen, stats, audio, frames), local))
  return visualize.write_figure(path, maps, frames, np.stack([e["label"] for e in elements]),
                                [e["video_id"] for e in elements],
                                num_segments=config.figure.num_segments)
