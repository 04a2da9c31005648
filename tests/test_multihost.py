"""Two processes (CPU, localhost coordinator, 2 devices each) train like one process
with 4 devices: same losses, same evaluation, one shared checkpoint directory.

With data.shuffle=False, process p reads the strided shard p of the split, so a
global batch holds the same videos as the single process's batch, in another
order: losses agree to float summation order. Random masks (dropout, drop path)
are drawn per batch position, so they would fall on other videos: the stand-in's
dropout is off here.
"""
import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np

import main_runs

REPO = pathlib.Path(__file__).resolve().parents[1]
ARG = "epochs=2;data.shuffle=False;ckpt.every_steps=2;model.dropout=0.0"


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _env(devices: int, **extra):
  env = dict(os.environ, PYTHONPATH=f"{REPO / 'tests'}:{REPO}", JAX_PLATFORMS="cpu",
             XLA_FLAGS=main_runs.xla_flags(devices))
  env.pop("DGSCT_DISTRIBUTED", None)
  env.update(extra)
  return env


def _cmd(workdir):
  return [sys.executable, "-m", "dgsct_jax.main",
          f"--config={REPO / 'tests' / 'standin_config.py'}:{ARG}", f"--workdir={workdir}"]


def _records(workdir):
  return [json.loads(line) for line in (pathlib.Path(workdir) / "metrics.jsonl").read_text()
          .splitlines()]


def test_two_processes_match_one(tmp_path):
  port = _free_port()
  multi = tmp_path / "multi"
  procs = [subprocess.Popen(_cmd(multi), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env=_env(2, DGSCT_DISTRIBUTED="1",
                                     DGSCT_COORDINATOR=f"localhost:{port}",
                                     DGSCT_NUM_PROCESSES="2", DGSCT_PROCESS_ID=str(i)))
           for i in range(2)]
  single = tmp_path / "single"
  ref = subprocess.run(_cmd(single), cwd=REPO, env=_env(4), capture_output=True, text=True,
                       timeout=300)
  outs = [p.communicate(timeout=300)[0] for p in procs]
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-4000:]
  assert ref.returncode == 0, ref.stderr[-4000:]

  got, want = _records(multi), _records(single)
  train_got = {r["step"]: r["loss"] for r in got if r["split"] == "train"}
  train_want = {r["step"]: r["loss"] for r in want if r["split"] == "train"}
  assert sorted(train_got) == sorted(train_want) and len(train_want) == 8
  np.testing.assert_allclose([train_got[s] for s in sorted(train_got)],
                             [train_want[s] for s in sorted(train_want)], rtol=1e-5)
  acc_got = [r["accuracy"] for r in got if r["split"] == "test"]
  acc_want = [r["accuracy"] for r in want if r["split"] == "test"]
  assert acc_got == acc_want and len(acc_got) == 2
  # One checkpoint directory, one grain iterator state per process.
  data_dir = multi / "checkpoints" / "8" / "data"
  assert sorted(p.name for p in data_dir.iterdir() if p.suffix == ".json") == [
      "process_0-of-2.json", "process_1-of-2.json"]
