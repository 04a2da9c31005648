"""The contract every registered trainable task meets, checked on a finished
`python -m dgsct_jax.main` run (train with `eval.predict_after_train`): two epochs of
train steps, each ending with an evaluation that logs the selection metric, checkpoints,
and predict, whose rows the scoring CLI's reader scores to the reported numbers.

test_task_contract.py runs it for each task on its tiny model and synthetic data; AVE's
is checked on test_tasks.py's documented run (real AVE build, converted encoders), which
would otherwise repeat the same training."""
import json

import numpy as np

from dgsct_jax import score
from dgsct_jax import tasks
from dgsct_jax.tasks import base
import main_runs

# Tasks whose contract another end-to-end test checks: {name: that test}.
CHECKED_ELSEWHERE = {"ave": "test_tasks.py::test_documented_configs_run_end_to_end"}


def check(name: str, config, workdir):
  """Asserts the contract of task `name` on the run of `config` (two epochs, predict after
  train) in `workdir`."""
  task = tasks.for_config(config)
  assert task.fields(base.INPUT) and task.fields(base.TARGET)
  assert task.selection_mode in ("max", "min") and task.selection_metric
  records = main_runs.records(workdir)
  steps_per_epoch = config.data.sizes.train // config.batch_size
  assert [r["step"] for r in records if r["split"] == "train"] == list(
      range(1, 2 * steps_per_epoch + 1))
  evaluated = [r for r in records if r["split"] == config.eval.select_split]
  assert [r["epoch"] for r in evaluated] == [1, 2]
  assert all(np.isfinite(r[task.selection_metric]) for r in evaluated)
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())[-1] == (
      str(2 * steps_per_epoch))
  assert [p.name for p in (workdir / "best").iterdir() if p.name.isdigit()]

  # Predict (after training): the rows it writes score to the numbers it reports, through
  # the scoring CLI's reader (`read_predictions`) and the task's accumulator.
  result = json.loads((workdir / "result.json").read_text())
  rows = (workdir / "predictions.jsonl").read_text().splitlines()
  assert len(rows) == config.data.sizes.test
  scored = score.score(name, workdir / "predictions.jsonl")
  assert {k: v for k, v in scored.items() if k in result} == {
      k: result[k] for k in scored if k in result}
  assert result[task.selection_metric] == scored[task.selection_metric]
