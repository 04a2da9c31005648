"""Running `python -m dgsct_jax.<entry>` in a subprocess, as a user would, and reading its logs."""
import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]

# LLVM fully unrolls the small static loops of XLA:CPU kernels at test sizes (the
# threefry bits of every dropout mask above all), a large share of the compile time of
# the subprocess runs. Capping it changes how float32 reductions are vectorised (their
# rounding), so only runs that no float32 parity bound judges get it: the trainer
# subprocesses and the float64 golden runs, not the in-process parity tests.
COMPILE_FLAGS = "--xla_backend_extra_options=-unroll-full-max-count=4"


def xla_flags(devices: int) -> str:
  """XLA_FLAGS of a subprocess run on `devices` virtual CPU devices."""
  return f"--xla_force_host_platform_device_count={devices} {COMPILE_FLAGS}"


def run(*args, devices=8, env_extra=None):
  """`python *args` from the repository root on `devices` virtual CPU devices."""
  env = dict(os.environ, PYTHONPATH=f"{REPO / 'tests'}:{REPO}", JAX_PLATFORMS="cpu",
             XLA_FLAGS=xla_flags(devices),
             **(env_extra or {}))
  return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=600)


def records(workdir):
  """The rows of `<workdir>/metrics.jsonl`."""
  return [json.loads(line) for line in (pathlib.Path(workdir) / "metrics.jsonl").read_text()
          .splitlines()]
