"""The TPU pod launcher's dry run prints the gcloud commands it would run."""
import pathlib
import shlex
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_dry_run_prints_setup_and_multihost_run():
  cmd = [sys.executable, str(REPO / "launch" / "tpu_pod.py"), "--tpu=pod-1", "--zone=us-z",
         "--project=proj", "--setup", "--dry_run", "--", "-m", "dgsct_jax.main",
         "--config=configs/ave.py:variant=large", "--workdir=gs://b/run 1"]
  out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout
  lines = [shlex.split(line) for line in out.strip().splitlines()]
  assert [line[:2] for line in lines] == [["git", "-C"], ["gcloud", "compute"],
                                          ["gcloud", "compute"], ["gcloud", "compute"]]
  scp, install, run = lines[1:]
  assert scp[4] == "scp" and "--worker=all" in scp and "--project=proj" in scp
  assert "launch/setup_tpu_vm.sh" in install[-1]
  assert run[4:6] == ["ssh", "pod-1"] and "--zone=us-z" in run and "--worker=all" in run
  remote = run[-1].removeprefix("--command=")
  assert "DGSCT_DISTRIBUTED=1" in remote
  assert shlex.split(remote.split("python ", 1)[1]) == [
      "-m", "dgsct_jax.main", "--config=configs/ave.py:variant=large", "--workdir=gs://b/run 1"]


def test_without_setup_only_the_run_and_errors_are_clear():
  cmd = [sys.executable, str(REPO / "launch" / "tpu_pod.py"), "--tpu=p", "--zone=z",
         "--dry_run", "--", "-m", "dgsct_jax.main"]
  out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout
  assert len(out.strip().splitlines()) == 1
  bad = subprocess.run(cmd[:5], capture_output=True, text=True, timeout=60)
  assert bad.returncode != 0 and "usage" in bad.stderr
