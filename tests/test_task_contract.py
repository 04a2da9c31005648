"""The contract every registered trainable task meets (tests/contract.py), through
`python -m dgsct_jax.main` on tests/contract_config.py: the task's tiny model on its
synthetic look-alike, or on random batches of its spec.

In its own file so that pytest-xdist (`--dist loadfile`) runs it beside test_tasks.py's
other end-to-end runs; the compilation cache (conftest `compile_cache`) is shared."""
import importlib

import pytest

from dgsct_jax import tasks
import contract
import main_runs


def test_every_trainable_task_is_checked():
  assert set(contract.CHECKED_ELSEWHERE) <= set(tasks.trainable_names())


@pytest.mark.parametrize("name", [n for n in tasks.trainable_names()
                                  if n not in contract.CHECKED_ELSEWHERE])
def test_task_contract(name, tmp_path):
  """Two epochs of 2 steps, an evaluation after each, predict after training (one device:
  the sharded step is tested with the stand-in; so is resuming through main, in
  test_resume.py: the trainer saves and restores every task's state trees alike)."""
  config = importlib.import_module("contract_config").get_config(f"task={name}")
  workdir = tmp_path / "run"
  config_file = main_runs.REPO / "tests" / "contract_config.py"
  run = main_runs.run("-m", "dgsct_jax.main", f"--config={config_file}:task={name}",
                      f"--workdir={workdir}", "--config.log.progress=False",
                      "--config.epochs=2", "--config.eval.predict_after_train=True",
                      devices=1)
  assert run.returncode == 0, run.stderr[-3000:]
  contract.check(name, config, workdir)
