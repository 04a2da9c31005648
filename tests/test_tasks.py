"""The Task interface: the registry, the contract every registered task meets, and a task
defined outside the package (tests/toy_task.py) trained, evaluated, predicted and scored
through the public entry points."""
import importlib
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from dgsct_jax import score
from dgsct_jax import tasks
from dgsct_jax.tasks import base

REPO = pathlib.Path(__file__).resolve().parents[1]


def _records(workdir):
  return [json.loads(line) for line in (pathlib.Path(workdir) / "metrics.jsonl").read_text()
          .splitlines()]


def test_registry_names_and_dotted_paths():
  assert tasks.get("ave").__name__ == "AVE"
  toy = tasks.get("toy_task:VideoClassification")
  assert toy is tasks.get("toy_task.VideoClassification") and issubclass(toy, base.Task)
  with pytest.raises(ValueError, match=r"unknown task 'nope'.*'ave'"):
    tasks.get("nope")
  with pytest.raises(ValueError, match="cannot load"):
    tasks.get("toy_task:Missing")
  with pytest.raises(ValueError, match="not a subclass"):
    tasks.get("toy_task:ErrorRate")
  assert "ave" in tasks.trainable_names()


@pytest.mark.parametrize("name", sorted(set(tasks.REGISTRY) - set(tasks.trainable_names())))
def test_scoring_only_tasks_are_refused_by_the_trainer(name):
  config = importlib.import_module("trainer_configs").standin_config(task=name)
  with pytest.raises(ValueError, match=f"python -m dgsct_jax.score --task={name}"):
    tasks.for_config(config)


@pytest.mark.parametrize("name", tasks.trainable_names())
def test_task_contract(name, tmp_path):
  """`python -m dgsct_jax.main` on the task's tiny model and random batches of its spec
  (tests/contract_config.py): one train step, one evaluation that logs the selection
  metric, a checkpoint, then a second epoch that resumes from it."""
  config = importlib.import_module("contract_config").get_config(f"task={name}")
  task = tasks.for_config(config)
  assert task.fields(base.INPUT) and task.fields(base.TARGET)
  assert task.selection_mode in ("max", "min") and task.selection_metric
  workdir = tmp_path / "run"
  # One device (the sharded step is tested with the stand-in); the second run reads the
  # first one's compiled programs from a persistent cache.
  env = {"JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax_cache"),
         "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
  command = ["-m", "dgsct_jax.main", f"--config={REPO / 'tests' / 'contract_config.py'}:"
             f"task={name}", f"--workdir={workdir}", "--config.log.progress=False"]
  run = _main(*command, "--config.epochs=1", devices=1, env_extra=env)
  assert run.returncode == 0, run.stderr[-3000:]
  records = _records(workdir)
  assert [r["step"] for r in records if r["split"] == "train"] == [1]
  (evaluated,) = [r for r in records if r["split"] == "val"]
  assert np.isfinite(evaluated[task.selection_metric])
  assert sorted(p.name for p in (workdir / "best").iterdir() if p.name.isdigit()) == ["1"]

  run = _main(*command, "--config.epochs=2", devices=1, env_extra=env)
  assert run.returncode == 0, run.stderr[-3000:]
  new = _records(workdir)[len(records):]
  assert [r["step"] for r in new if r["split"] == "train"] == [2]  # resumed, not restarted
  assert [r["epoch"] for r in new if r["split"] == "val"] == [2]
  assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()) == [1, 2]


def _main(*args, devices=8, env_extra=None):
  env = dict(os.environ, PYTHONPATH=f"{REPO / 'tests'}:{REPO}", JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
             **(env_extra or {}))
  return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=600)


def test_a_task_from_outside_the_package_trains_predicts_and_scores(tmp_path):
  config = [f"--config={REPO / 'tests' / 'standin_config.py'}:epochs=3",
            "--config.task=toy_task:VideoClassification", f"--workdir={tmp_path}"]
  run = _main("-m", "dgsct_jax.main", *config)
  assert run.returncode == 0, run.stderr[-3000:]
  evals = [r for r in _records(tmp_path) if r["split"] == "test"]
  assert len(evals) == 3 and all("error" in r and "accuracy" not in r for r in evals)
  best = min(r["error"] for r in evals)  # selection_mode 'min'
  meta = json.loads(next((tmp_path / "best").glob("*/meta/metadata")).read_text())
  assert meta["result"]["error"] == best

  run = _main("-m", "dgsct_jax.main", *config, "--mode=predict")
  assert run.returncode == 0, run.stderr[-3000:]
  assert f"test video error {best:.2f}%" in run.stdout
  rows = [json.loads(l) for l in (tmp_path / "predictions.jsonl").read_text().splitlines()]
  assert len(rows) == 8 and set(rows[0]) == {"video_id", "pred", "target"}
  result = json.loads((tmp_path / "result.json").read_text())
  assert result["error"] == best and "figure" not in result

  scored = _main("-m", "dgsct_jax.score", "--task=toy_task:VideoClassification",
                 f"--predictions={tmp_path / 'predictions.jsonl'}")
  assert scored.returncode == 0, scored.stderr[-3000:]
  assert scored.stdout.strip() == f"video error {best:.2f}% (8 videos)"
  assert score.score("toy_task:VideoClassification", tmp_path / "predictions.jsonl") == {
      "error": best, "videos": 8}
