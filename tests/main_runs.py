"""Running `python -m dgsct_jax.<entry>` in a subprocess, as a user would, and reading its logs."""
import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def run(*args, devices=8, env_extra=None):
  """`python *args` from the repository root on `devices` virtual CPU devices."""
  env = dict(os.environ, PYTHONPATH=f"{REPO / 'tests'}:{REPO}", JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
             **(env_extra or {}))
  return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=600)


def records(workdir):
  """The rows of `<workdir>/metrics.jsonl`."""
  return [json.loads(line) for line in (pathlib.Path(workdir) / "metrics.jsonl").read_text()
          .splitlines()]
