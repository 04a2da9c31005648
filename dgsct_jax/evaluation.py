"""Evaluation of a split (during training and in eval / predict modes).

Per batch, the jitted eval step returns the task's per-example outputs; the
rows of every host are gathered, the padding dropped, and the task's metric
accumulator updated. Predict also writes the task's prediction rows
(`predictions.jsonl`), `result.json` and the task's figure.
"""
import json
import pathlib

import jax
import numpy as np
from jax.experimental import multihost_utils

from dgsct_jax import input_pipeline
from dgsct_jax import nnx_utils
from dgsct_jax import steps
from dgsct_jax import train_state
from dgsct_jax.tasks import base


def _gather(x) -> np.ndarray:
  """A global array as one host numpy array (all processes get all rows)."""
  if jax.process_count() == 1:
    return np.asarray(x)
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def _local(x, layout) -> np.ndarray:
  """This process's rows of a global array sharded over the batch axis."""
  return np.asarray(multihost_utils.global_array_to_host_local_array(
      x, layout.mesh, layout.batch_sh.spec))


def evaluate_split(run, eval_step, trainable, stats, source, *,
                   keep_predictions: bool = False) -> tuple[dict, list[dict]]:
  """(the task's metric values over `source`, this host's prediction rows if asked)."""
  task, layout = run.task, run.layout
  spec = task.batch_spec()
  host_fields = task.fields(base.HOST)
  metrics = task.metrics()
  predictions = []
  seen = 0
  for batch in input_pipeline.eval_iterator(run.config, source):
    out = eval_step(trainable, run.frozen, stats,
                    input_pipeline.to_global(batch, spec, steps.eval_fields(task),
                                             layout.batch_sh))
    mask = _gather(out.pop(input_pipeline.MASK)).astype(bool)
    metrics.update({k: _gather(v)[mask] for k, v in out.items()})
    seen += int(mask.sum())
    if keep_predictions:
      local_mask = np.asarray(batch[input_pipeline.MASK], bool)
      predictions += task.prediction_rows(
          {k: _local(v, layout)[local_mask] for k, v in out.items()},
          {k: np.asarray(batch[k])[local_mask] for k in host_fields})
  if not seen:
    raise ValueError(f"the evaluation split of {run.config.data.name} is empty")
  return metrics.result(), predictions


def _evaluate_best(config, workdir, *, keep_predictions: bool, run=None):
  """The best checkpoint of `workdir` evaluated on `config.eval.report_split`:
  (run, (trainable, stats), source, result, this host's prediction rows). `run`: the
  `train_state.Run` of this config if the process has one (after training), else built."""
  run = run or train_state.setup(config, workdir)
  trainable, stats, meta = train_state.load_best(run)
  source = input_pipeline.get_source(config, config.eval.report_split)
  result, rows = evaluate_split(run, steps.make_eval_step(config, run.task, run.layout),
                                trainable, stats, source, keep_predictions=keep_predictions)
  result = dict(result, split=config.eval.report_split, checkpoint_step=meta["step"])
  return run, (trainable, stats), source, result, rows


def evaluate(config, workdir) -> dict:
  """The task's metrics of the best checkpoint on `config.eval.report_split`."""
  return _evaluate_best(config, workdir, keep_predictions=False)[3]


def predict(config, workdir, *, run=None) -> dict:
  """Best checkpoint → predictions.jsonl, result.json and the task's figure in `workdir`;
  returns the result with `summary` (the task's line), `predictions_file` and `figure`.
  `run`: the training's `train_state.Run` when predicting right after training."""
  workdir = pathlib.Path(workdir)
  run, (trainable, stats), source, result, rows = _evaluate_best(config, workdir,
                                                                 keep_predictions=True, run=run)
  result["summary"] = run.task.summary(result)
  path = workdir / (f"predictions.{jax.process_index()}.jsonl" if jax.process_count() > 1
                    else "predictions.jsonl")
  with open(path, "w", encoding="utf-8") as f:
    for row in rows:
      f.write(json.dumps(row) + "\n")
  result["predictions_file"] = str(path)
  if jax.process_index() == 0:
    local = jax.devices()[0]
    model = nnx_utils.merge(run.layout.graphdef,
                            *jax.device_put((trainable, run.frozen, stats), local))
    figure = run.task.figure(model, source, workdir)
    if figure is not None:
      result["figure"] = str(figure)
    (workdir / "result.json").write_text(json.dumps(result, indent=1))
  return result
