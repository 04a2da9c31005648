"""Interrupted runs: SIGTERM checkpoint, kill -9 + resume == uninterrupted, NaN stop.

One uninterrupted in-process run is the reference. The interrupted run is
`python -m dgsct_jax.main` in subprocesses: SIGTERM once a checkpoint exists
(it must save and exit 0), resume and `kill -9` it once a later checkpoint
exists (possibly mid-save of the next one), then resume to the end. Every
training loss logged after each resume must equal the reference's.
"""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import orbax.checkpoint as ocp
import pytest

import trainer_configs
from dgsct_jax import checkpointing
from dgsct_jax import train

REPO = pathlib.Path(__file__).resolve().parents[1]
OVERRIDES = {"epochs": 4, "data.sizes": {"train": 32, "val": 8, "test": 8}}


def _config(**extra):
  return trainer_configs.standin_config(**OVERRIDES, **extra)


def _arg(**extra):
  return ";".join(f"{k}={v!r}" for k, v in {**OVERRIDES, **extra}.items())


def _train_losses(workdir) -> dict[int, float]:
  """step → loss; a step logged twice (re-run after a resume) keeps its last value."""
  losses = {}
  for line in (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines():
    record = json.loads(line)
    if record["split"] == "train":
      losses[record["step"]] = record["loss"]
  return losses


def _start(workdir):
  env = dict(os.environ, PYTHONPATH=f"{REPO / 'tests'}:{REPO}", JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=8")
  cmd = [sys.executable, "-m", "dgsct_jax.main",
         f"--config={REPO / 'tests' / 'standin_config.py'}:{_arg()}", f"--workdir={workdir}"]
  return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


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
  assert proc.returncode == 0, out[-3000:]
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
