"""Sweeps (dgsct_jax/sweep): the plan a config's get_hyper declares, checked before anything
runs; a 2-point sweep run, interrupted, resumed and collected through the CLI; the tables of
a partial sweep; the TPU launch's dry run."""
import csv
import json
import os
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import orbax.checkpoint as ocp
import pytest

import main_runs
from dgsct_jax.sweep import collect
from dgsct_jax.sweep import hyper
from dgsct_jax.sweep import plan as plan_lib

SWEEP_CONFIG = str(main_runs.REPO / "tests" / "sweep_config.py")


def _sweep(*args):
  return [sys.executable, "-m", "dgsct_jax.sweep", *args]


def _env():
  return dict(os.environ, PYTHONPATH=f"{main_runs.REPO / 'tests'}:{main_runs.REPO}",
              JAX_PLATFORMS="cpu", XLA_FLAGS=main_runs.xla_flags(1))


def test_product_varies_the_last_axis_fastest_and_refuses_a_repeated_name():
  points = hyper.product([hyper.sweep("a", [1, 2]), hyper.fixed("config.x", "k"),
                          hyper.sweep("seed", [7, 8])])
  assert points == [{"a": 1, "config.x": "k", "seed": 7}, {"a": 1, "config.x": "k", "seed": 8},
                    {"a": 2, "config.x": "k", "seed": 7}, {"a": 2, "config.x": "k", "seed": 8}]
  with pytest.raises(ValueError, match=r"\['a'\] set by two axes"):
    hyper.product([hyper.sweep("a", [1]), hyper.fixed("a", 2)])


def test_the_shipped_ablation_sweeps_name_and_build_every_point():
  plan = plan_lib.load("configs/ave.py:variant=tiny,ablation=lavish")
  assert (plan.task, plan.selection_metric, plan.selection_mode) == ("ave", "accuracy", "max")
  assert len(plan.points) == 11 * 3 and plan.points[0].name == "ablation=none,seed=43"
  assert plan.points[3].label() == "ablation=no_spatial"
  assert plan.config_spec(plan.points[3]) == (
      "configs/ave.py:variant=tiny,ablation=no_spatial,seed=43")  # the point's value wins
  for config in ("avvp", "avs", "avqa"):
    assert {p.label() for p in plan_lib.load(f"configs/{config}.py:variant=tiny").points} >= {
        "ablation=none", "ablation=frozen_baseline", "ablation=lavish"}
  demo = plan_lib.load("configs/demo.py")  # pretrains its encoders: shared by its points
  assert demo.has_pretrain and [p.label(demo.fixed_names()) for p in demo.points] == [
      "ablation=none", "ablation=none", "ablation=frozen_baseline", "ablation=frozen_baseline"]


@pytest.mark.parametrize("points, error", [
    ([{"colour": 1}], r"point colour=1: unknown config arg 'colour'"),
    ([{"config.optim.nope": 1}], r"point optim.nope=1: the config has no field optim.nope"),
    ([{"config.optim.lr": "fast"}], r"point optim.lr=fast: optim.lr='fast'"),
    ([{"seed": 1}, {"seed": 1}], r"repeats the points \['seed=1'\]"),
    ([], r"returned no points"),
])
def test_a_bad_point_is_refused_before_anything_runs(tmp_path, points, error):
  config = tmp_path / "bad_sweep.py"
  config.write_text(f"import trainer_configs\n"
                    f"get_config = trainer_configs.standin_config\n"
                    f"def get_hyper(hyper):\n  return {points!r}\n")
  with pytest.raises(ValueError, match=error) as raised:
    plan_lib.load(str(config))
  assert str(config) in str(raised.value)


def _finalized_steps(ckpt_dir) -> list[int]:
  if not ckpt_dir.is_dir():
    return []
  return [int(p.name) for p in ckpt_dir.iterdir()
          if p.name.isdigit() and ocp.utils.is_checkpoint_finalized(p)]


def test_a_sweep_runs_stops_on_ctrl_c_resumes_and_collects(tmp_path):
  root = tmp_path / "sweep"
  first, second = (root / name for name in ("optim.lr=0.001,seed=43", "optim.lr=0.001,seed=44"))
  proc = subprocess.Popen(_sweep(f"--config={SWEEP_CONFIG}", f"--root={root}"),
                          cwd=main_runs.REPO, env=_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  deadline = time.time() + 300
  while not _finalized_steps(second / "checkpoints") and proc.poll() is None:
    assert time.time() < deadline, "the second point saved no checkpoint in 300 s"
    time.sleep(0.05)
  proc.send_signal(signal.SIGINT)
  out = proc.communicate(timeout=120)[0]
  assert proc.returncode == 75, out[-3000:]
  assert (first / "result.json").exists() and not (second / "result.json").exists(), out
  first_result = (first / "result.json").read_text()

  again = subprocess.run(_sweep(f"--config={SWEEP_CONFIG}", f"--root={root}"),
                         cwd=main_runs.REPO, env=_env(), capture_output=True, text=True,
                         timeout=300)
  assert again.returncode == 0, again.stderr[-3000:]
  assert "[1/2] optim.lr=0.001,seed=43: done" in again.stdout
  assert "[2/2] optim.lr=0.001,seed=44: resuming" in again.stdout
  assert (first / "result.json").read_text() == first_result  # not run again
  steps = [r["step"] for r in main_runs.records(second) if r["split"] == "train"]
  assert steps == list(range(1, 9))  # 2 epochs of 4 steps, each once across the two runs
  assert json.loads((second / plan_lib.POINT_FILE).read_text()) == {
      "config.optim.lr": 1e-3, "seed": 44}

  collected = subprocess.run(_sweep("collect", f"--root={root}"), cwd=main_runs.REPO,
                             env=_env(), capture_output=True, text=True, timeout=120)
  assert collected.returncode == 0, collected.stderr
  results = [json.loads((p / "result.json").read_text()) for p in (first, second)]
  [row] = list(csv.DictReader((root / "results.csv").open()))
  assert (row["point"], row["n"]) == ("(base)", "2")  # lr is fixed: one row, the seeds
  accuracy = [r["accuracy"] for r in results]
  np.testing.assert_allclose(float(row["accuracy_mean"]), np.mean(accuracy), rtol=1e-5)
  np.testing.assert_allclose(float(row["accuracy_std"]), np.std(accuracy, ddof=1), rtol=1e-5,
                             atol=1e-9)
  assert (root / "results.png").stat().st_size > 0
  table = (root / "results.md").read_text()
  assert "| (base) | 2/2 |" in table and "Every point: optim.lr=0.001." in table


def _fake_sweep(root, results, selection_mode="max"):
  """A sweep.json over rows a ∈ {1, 2, 4} × seeds {0, 1, 2}, and the result.json of the
  points in `results` ({point name: accuracy})."""
  points = tuple(plan_lib.Point(p) for p in hyper.product(
      [hyper.sweep("a", [1, 2, 4]), hyper.sweep("seed", [0, 1, 2])]))
  plan = plan_lib.Plan("x.py", "variant=tiny", "ave", "accuracy", selection_mode, points)
  root.mkdir()
  (root / plan_lib.PLAN_FILE).write_text(plan.to_json())
  for name, value in results.items():
    (root / name).mkdir()
    (root / name / "result.json").write_text(json.dumps(
        {"accuracy": value, "loss": -value, "checkpoint_step": 3, "summary": "s"}))
  return points


@pytest.mark.parametrize("selection_mode", ["max", "min"])
def test_collect_averages_seeds_marks_the_best_and_lists_missing_points(tmp_path,
                                                                        selection_mode):
  rng = np.random.default_rng(0)
  root = tmp_path / "sweep"
  names = [p.name for p in _fake_sweep(tmp_path / "probe", {})]
  done = [n for n in names if n != "a=4,seed=2"]
  values = dict(zip(done, rng.uniform(50, 90, len(done)).round(3).tolist()))
  _fake_sweep(root, values, selection_mode)
  written = collect.write(root)
  assert written["missing"] == ["a=4,seed=2"] and written["metrics"] == ["accuracy", "loss"]

  rows = {r["point"]: r for r in csv.DictReader((root / "results.csv").open())}
  means = {}
  for a in (1, 2, 4):
    got = [v for n, v in values.items() if n.startswith(f"a={a},")]
    means[f"a={a}"] = np.mean(got)
    row = rows[f"a={a}"]
    assert (int(row["n"]), int(row["planned"])) == (len(got), 3)
    np.testing.assert_allclose(float(row["accuracy_mean"]), np.mean(got), rtol=1e-5)
    np.testing.assert_allclose(float(row["accuracy_std"]), np.std(got, ddof=1), rtol=1e-5)
    np.testing.assert_allclose(float(row["loss_mean"]), -np.mean(got), rtol=1e-5)
  best = (max if selection_mode == "max" else min)(means, key=means.get)
  table = (root / "results.md").read_text()
  bold = [line.split(" |")[0].lstrip("| ") for line in table.splitlines() if "**" in line]
  # The selection metric's best follows the task's mode; other metrics: the highest.
  assert best in bold and max(means, key=lambda k: -means[k]) in bold
  assert "Missing (1 of 9 points): `a=4,seed=2`" in table
  assert collect._numeric_axis(collect.gather(root)[1]) == "a"  # plotted against a
  assert (root / "results.png").stat().st_size > 0


def test_collect_without_a_sweep_says_where_it_looked(tmp_path):
  out = subprocess.run(_sweep("collect", f"--root={tmp_path}"), cwd=main_runs.REPO,
                       env=_env(), capture_output=True, text=True, timeout=120)
  assert out.returncode == 2 and f"{tmp_path}/sweep.json: no sweep here" in out.stderr


def test_tpu_pod_dry_run_prints_each_points_run_on_the_slice():
  out = subprocess.run(_sweep(f"--config={SWEEP_CONFIG}", "--root=gs://b/sweep",
                              "--launch=tpu_pod", "--tpu=pod-1", "--zone=us-z", "--dry_run",
                              "--", "--data_dir=gs://b/tfds"),
                       cwd=main_runs.REPO, env=_env(), capture_output=True, text=True,
                       timeout=120)
  assert out.returncode == 0, out.stderr
  runs = [shlex.split(line) for line in out.stdout.splitlines() if line.startswith("gcloud")]
  assert len(runs) == 2
  for seed, run in zip((43, 44), runs):
    assert run[4:6] == ["ssh", "pod-1"] and "--zone=us-z" in run
    remote = shlex.split(run[-1].removeprefix("--command=").split("python ", 1)[1])
    assert remote == ["-m", "dgsct_jax.main", f"--config={SWEEP_CONFIG}:seed={seed}",
                      f"--workdir=gs://b/sweep/optim.lr=0.001,seed={seed}",
                      "--config.eval.predict_after_train=True", "--config.optim.lr=0.001",
                      "--data_dir=gs://b/tfds"]
