"""The contract every registered trainable task meets, through `python -m dgsct_jax.main`
(tests/contract_config.py: the task's tiny model on its synthetic look-alike, or on random
batches of its spec).

In its own file so that pytest-xdist (`--dist loadfile`) runs it beside test_tasks.py's
other end-to-end runs; the compilation cache (conftest `compile_cache`) is shared."""
import importlib
import json

import numpy as np
import pytest

from dgsct_jax import score
from dgsct_jax import tasks
from dgsct_jax.tasks import base
import main_runs


@pytest.mark.parametrize("name", tasks.trainable_names())
def test_task_contract(name, tmp_path):
  """`python -m dgsct_jax.main` on the task's tiny model and synthetic data
  (tests/contract_config.py): two epochs of train steps, each ending with an evaluation
  that logs the selection metric, checkpoints, and predict, whose rows the scoring CLI's
  reader scores to the reported numbers (one device: the sharded step is tested with the
  stand-in; so is resuming through main, in test_resume.py: the trainer saves and
  restores every task's state trees alike)."""
  config = importlib.import_module("contract_config").get_config(f"task={name}")
  task = tasks.for_config(config)
  assert task.fields(base.INPUT) and task.fields(base.TARGET)
  assert task.selection_mode in ("max", "min") and task.selection_metric
  workdir = tmp_path / "run"
  config_file = main_runs.REPO / "tests" / "contract_config.py"
  run = main_runs.run("-m", "dgsct_jax.main", f"--config={config_file}:task={name}",
                      f"--workdir={workdir}", "--config.log.progress=False",
                      "--config.epochs=2", "--config.eval.predict_after_train=True",
                      devices=1)
  assert run.returncode == 0, run.stderr[-3000:]
  records = main_runs.records(workdir)
  steps_per_epoch = config.data.sizes.train // config.batch_size
  assert [r["step"] for r in records if r["split"] == "train"] == list(
      range(1, 2 * steps_per_epoch + 1))
  evaluated = [r for r in records if r["split"] == "val"]
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
