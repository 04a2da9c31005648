"""Interrupted runs: SIGTERM checkpoint, kill -9 + resume == uninterrupted, NaN stop; and
what protects a workdir: a crash between the best and the regular save, Ctrl-C, the
workdir lock, the config check on resume, a finished run, eval without a checkpoint.

One uninterrupted in-process run is the reference. The interrupted run is
`python -m dgsct_jax.main` in subprocesses: SIGTERM once a checkpoint exists
(it must save and exit with the preemption status), resume and `kill -9` it once a
later checkpoint exists (possibly mid-save of the next one), then resume to the end.
Every training loss logged after each resume must equal the reference's, once.
"""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import orbax.checkpoint as ocp
import pytest

import main_runs
import trainer_configs
from dgsct_jax import checkpointing
from dgsct_jax import train

REPO = pathlib.Path(__file__).resolve().parents[1]
OVERRIDES = {"epochs": 4, "data.sizes": {"train": 32, "val": 8, "test": 8}}


def _config(**extra):
  return trainer_configs.standin_config(**{**OVERRIDES, **extra})


def _arg(**extra):
  return ";".join(f"{k}={v!r}" for k, v in {**OVERRIDES, **extra}.items())


def _train_losses(workdir) -> dict[int, float]:
  """step → loss; each step must be logged once (a resume drops the rows it replays)."""
  records = [json.loads(line) for line in
             (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()]
  keys = [(r["step"], r["split"]) for r in records]
  assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)
  return {r["step"]: r["loss"] for r in records if r["split"] == "train"}


def _command(workdir, *flags, **extra):
  return [sys.executable, "-m", "dgsct_jax.main",
          f"--config={REPO / 'tests' / 'standin_config.py'}:{_arg(**extra)}",
          f"--workdir={workdir}", *flags]


def _env():
  return dict(os.environ, PYTHONPATH=f"{REPO / 'tests'}:{REPO}", JAX_PLATFORMS="cpu",
              XLA_FLAGS=main_runs.xla_flags(8))


def _start(workdir, *flags, **extra):
  return subprocess.Popen(_command(workdir, *flags, **extra), cwd=REPO, env=_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _run(workdir, *flags, **extra):
  return subprocess.run(_command(workdir, *flags, **extra), cwd=REPO, env=_env(),
                        capture_output=True, text=True, timeout=300)


def _finalized_steps(ckpt_dir) -> list[int]:
  """Read-only look (a CheckpointManager here would clean up the writer's tmp dirs)."""
  if not ckpt_dir.is_dir():
    return []
  return sorted(int(p.name) for p in ckpt_dir.iterdir()
                if p.name.isdigit() and ocp.utils.is_checkpoint_finalized(p))


def _wait_for_step(proc, ckpt_dir, min_step, timeout=120):
  deadline = time.time() + timeout
  while time.time() < deadline:
    step = max(_finalized_steps(ckpt_dir), default=None)
    if step is not None and step >= min_step:
      return step
    if proc.poll() is not None:
      pytest.fail(f"run ended before step {min_step}: {proc.stdout.read()[-3000:]}")
    time.sleep(0.02)
  proc.kill()
  pytest.fail(f"no checkpoint >= {min_step} after {timeout}s")


def test_sigterm_then_kill9_then_resume_matches_uninterrupted(tmp_path):
  reference = tmp_path / "reference"
  train.train_and_evaluate(_config(), reference)
  expected = _train_losses(reference)
  assert len(expected) == 16

  workdir = tmp_path / "interrupted"
  ckpt_dir = workdir / "checkpoints"
  proc = _start(workdir)
  _wait_for_step(proc, ckpt_dir, 2)
  proc.send_signal(signal.SIGTERM)
  out = proc.communicate(timeout=120)[0]
  assert proc.returncode == checkpointing.PREEMPTED_EXIT, out[-3000:]
  stopped_at = max(_finalized_steps(ckpt_dir), default=None)
  assert stopped_at is not None and stopped_at < 16, out[-2000:]
  assert max(_train_losses(workdir)) == stopped_at  # the step it stopped at was saved

  proc = _start(workdir)
  killed_after = _wait_for_step(proc, ckpt_dir, stopped_at + 2)
  proc.send_signal(signal.SIGKILL)
  proc.communicate(timeout=60)
  assert proc.returncode == -signal.SIGKILL
  assert killed_after < 16

  result = train.train_and_evaluate(_config(), workdir)
  assert result["step"] == 16
  got = _train_losses(workdir)
  assert sorted(got) == sorted(expected)
  np.testing.assert_allclose([got[s] for s in sorted(got)],
                             [expected[s] for s in sorted(expected)], rtol=0, atol=1e-6)


def test_non_finite_stops_and_keeps_last_good_checkpoint(tmp_path):
  # lr = 5e-4 for 3 updates, then inf (StepLR with gamma=inf): weights become NaN at update 4.
  config = _config(**{"optim.accum_steps": 1, "optim.schedule": {
      "kind": "step", "unit": "step", "every": 3, "gamma": float("inf"), "warmup": 0,
      "total": 0}})
  with pytest.raises(train.NonFiniteError, match=r"step 4\b.*step 2\)"):
    train.train_and_evaluate(config, tmp_path)
  assert checkpointing.Checkpoints(tmp_path / "checkpoints", save_every=1).latest_step() == 2


def test_crash_between_best_and_regular_save_resumes(tmp_path):
  """The epoch-end order is: evaluate, save `best/<step>`, save `checkpoints/<step>`. A run
  that died between the two saves resumes from the previous regular checkpoint, replays the
  epoch and saves the same best step again; the result equals an uninterrupted run."""
  reference = tmp_path / "reference"
  want = train.train_and_evaluate(_config(), reference)
  workdir = tmp_path / "crashed"
  train.train_and_evaluate(_config(epochs=1), workdir)  # epoch 1 ends at step 4
  assert _finalized_steps(workdir / "best") == [4]
  shutil.rmtree(workdir / "checkpoints" / "4")  # the regular save of step 4 never happened
  got = train.train_and_evaluate(_config(), workdir, allow_config_change=True)
  assert (got["step"], got["best"], got["best_epoch"]) == (
      want["step"], want["best"], want["best_epoch"])
  losses = _train_losses(workdir)
  np.testing.assert_allclose([losses[s] for s in sorted(losses)],
                             [v for _, v in sorted(_train_losses(reference).items())], atol=1e-6)


def test_ctrl_c_saves_and_exits_with_the_preemption_status(tmp_path):
  """SIGINT is SIGTERM: a checkpoint at the current step, no traceback, status 75; the
  resumed run then finishes with every step logged once."""
  proc = _start(tmp_path)
  _wait_for_step(proc, tmp_path / "checkpoints", 2)
  proc.send_signal(signal.SIGINT)
  out = proc.communicate(timeout=120)[0]
  assert proc.returncode == checkpointing.PREEMPTED_EXIT, out[-3000:]
  assert "Traceback" not in out and "KeyboardInterrupt" not in out
  stopped_at = max(_finalized_steps(tmp_path / "checkpoints"))
  assert max(_train_losses(tmp_path)) == stopped_at < 16
  assert not (tmp_path / "lock.json").exists()
  done = _run(tmp_path, "--config.log.progress=True")
  assert done.returncode == 0, done.stderr[-3000:]
  assert sorted(_train_losses(tmp_path)) == list(range(1, 17))
  assert "16/16" in done.stderr.split("\r")[-1] or "16/16" in done.stderr  # the bar ends full
  again = _run(tmp_path)
  assert again.returncode == 0 and "is finished (step 16 of 16)" in again.stderr, again.stderr


def test_a_second_run_in_a_locked_workdir_is_refused(tmp_path):
  first = _start(tmp_path, epochs=1000)  # still training when the second run starts
  _wait_for_step(first, tmp_path / "checkpoints", 2)
  assert (tmp_path / "lock.json").is_file()
  second = _run(tmp_path, epochs=1000)
  assert second.returncode == 1, second.stderr[-2000:]
  assert f"{tmp_path} is in use by pid {first.pid}" in second.stderr
  assert len(second.stderr.strip().splitlines()) == 1
  first.send_signal(signal.SIGTERM)
  assert first.wait(timeout=120) == checkpointing.PREEMPTED_EXIT
  # A lock left by a dead process of this host is taken over.
  (tmp_path / "lock.json").write_text(json.dumps(
      {"host": __import__("socket").gethostname(), "pid": first.pid, "command": "dead"}))
  resumed = _run(tmp_path, "--allow_config_change")
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "taking over the lock of a dead run" in resumed.stderr


def test_resume_refuses_a_changed_config_unless_allowed(tmp_path):
  train.train_and_evaluate(_config(epochs=1), tmp_path)
  with pytest.raises(ValueError, match=r"another model or data: model\.dim: 16 -> 32"):
    train.train_and_evaluate(_config(epochs=2, **{"model.dim": 32}), tmp_path,
                             allow_config_change=True)
  refused = _run(tmp_path, epochs=2, **{"optim.lr": 1e-3})
  assert refused.returncode == 1 and "epochs: 1 -> 2; optim.lr: 0.0005 -> 0.001" in (
      refused.stderr), refused.stderr[-2000:]
  assert len(refused.stderr.strip().splitlines()) == 1
  allowed = _run(tmp_path, "--allow_config_change", epochs=2, **{"optim.lr": 1e-3})
  assert allowed.returncode == 0, allowed.stderr[-3000:]
  logged = json.loads((tmp_path / "config_changes.jsonl").read_text())
  assert logged == {"step": 4, "time": logged["time"],
                    "changes": {"epochs": [1, 2], "optim.lr": [5e-4, 1e-3]}}
  # Where and how a run logs, saves and reads never needs the flag.
  assert _run(tmp_path, "--config.log.every_steps=3", epochs=2, **{
      "optim.lr": 1e-3}).returncode == 0


def test_eval_and_predict_without_a_checkpoint_say_so(tmp_path):
  for mode in ("eval", "predict"):
    run = _run(tmp_path / "empty", f"--mode={mode}")
    assert run.returncode == 1
    assert run.stderr.strip() == (f"ERROR: no trained model in {tmp_path / 'empty' / 'best'}: "
                                  "train first (same command without --mode)")
  assert not (tmp_path / "empty").exists()
