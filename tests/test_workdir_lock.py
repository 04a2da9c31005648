"""The workdir lock in one process: refusal while held, heartbeat, take-over of dead locks."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from dgsct_jax import workdir_lock


def test_held_lock_refuses_and_heartbeats(tmp_path):
  first = workdir_lock.WorkdirLock(tmp_path, heartbeat_s=0.05)
  first.acquire()
  started = json.loads((tmp_path / "lock.json").read_text())
  assert started["pid"] == os.getpid()
  time.sleep(0.3)
  assert json.loads((tmp_path / "lock.json").read_text())["heartbeat"] > started["heartbeat"]
  with pytest.raises(workdir_lock.WorkdirLocked, match=f"in use by pid {os.getpid()}"):
    workdir_lock.WorkdirLock(tmp_path).acquire()
  first.release()
  time.sleep(0.2)  # the heartbeat thread does not bring it back
  assert not (tmp_path / "lock.json").exists()
  second = workdir_lock.WorkdirLock(tmp_path)
  second.acquire()
  second.release()


def test_dead_locks_are_taken_over(tmp_path, capsys):
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True, check=True)
  lock = tmp_path / "lock.json"
  lock.write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout)}))
  taken = workdir_lock.WorkdirLock(tmp_path)
  taken.acquire()  # same host, pid gone
  taken.release()
  assert "taking over" in capsys.readouterr().err
  lock.write_text(json.dumps({"host": "elsewhere", "pid": 1, "heartbeat": time.time() - 400}))
  taken = workdir_lock.WorkdirLock(tmp_path, stale_after_s=300)
  taken.acquire()  # no heartbeat for 400 s
  taken.release()
  lock.write_text(json.dumps({"host": "elsewhere", "pid": 1, "heartbeat": time.time() - 10}))
  with pytest.raises(workdir_lock.WorkdirLocked, match="pid 1 on elsewhere"):
    workdir_lock.WorkdirLock(tmp_path, stale_after_s=300).acquire()
