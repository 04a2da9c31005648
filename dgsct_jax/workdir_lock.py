"""One training run per workdir: `<workdir>/lock.json`, held while a run trains.

The lock file is created atomically (O_EXCL) by process 0 of the job and names
its owner (host, pid, command, heartbeat). A second run finds it and is
refused, naming the owner, instead of both writing the same checkpoints. The
other processes of a multi-host job do not lock: they share process 0's
outcome. A lock whose owner is dead is taken over: on the same host when its
pid no longer exists (a `kill -9`), from another host when its heartbeat is
older than `stale_after_s` (a thread of the owner refreshes it every
`heartbeat_s`, whatever the run is doing: compiling, evaluating, saving).
"""
import json
import os
import pathlib
import socket
import sys
import threading
import time

import jax
import numpy as np
from jax.experimental import multihost_utils

LOCK = "lock.json"


class WorkdirLocked(RuntimeError):
  """Another live run holds the workdir."""


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # exists, owned by another user
    return True
  return True


class WorkdirLock:
  """`acquire()` / `heartbeat()` / `release()`; every process of the job calls them."""

  def __init__(self, workdir, *, stale_after_s: float = 300.0, heartbeat_s: float = 60.0):
    self.path = pathlib.Path(workdir) / LOCK
    self.stale_after_s = stale_after_s
    self.heartbeat_s = heartbeat_s
    self.owner = {"host": socket.gethostname(), "pid": os.getpid(),
                  "command": " ".join(sys.argv), "started": time.time()}
    self.held = False
    self._stop = threading.Event()
    self._writing = threading.Lock()  # a heartbeat never recreates a released lock

  def acquire(self):
    """Takes the lock (process 0) and shares the outcome with the job's other processes."""
    error = ""
    if jax.process_index() == 0:
      try:
        self._acquire()
      except WorkdirLocked as e:
        error = str(e)
    if jax.process_count() > 1:
      failed = multihost_utils.broadcast_one_to_all(np.int32(bool(error)))
      if failed and not error:
        error = f"{self.path.parent} is locked by another run (see process 0's message)"
    if error:
      raise WorkdirLocked(error)

  def _acquire(self):
    for _ in range(3):  # retry after taking over a dead owner's lock
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        holder = self._read()
        reason = self._stale_reason(holder)
        if reason is None:
          raise WorkdirLocked(self._locked_message(holder)) from None
        print(f"taking over the lock of a dead run in {self.path.parent} ({reason})",
              file=sys.stderr)
        self.path.unlink(missing_ok=True)
        continue
      with os.fdopen(fd, "w") as f:
        json.dump(dict(self.owner, heartbeat=time.time()), f)
      self.held = True
      threading.Thread(target=self._beat, daemon=True, name="workdir-lock").start()
      return
    raise WorkdirLocked(f"could not lock {self.path}: another run keeps taking it")

  def _read(self) -> dict:
    try:
      return json.loads(self.path.read_text())
    except (OSError, ValueError):
      return {}  # being written, or garbage: judged by the file's age below

  def _stale_reason(self, holder: dict) -> str | None:
    """Why `holder`'s lock is dead, or None if it may be alive."""
    if holder.get("host") == self.owner["host"] and "pid" in holder:
      return None if _pid_alive(int(holder["pid"])) else f"pid {holder['pid']} has exited"
    try:
      beat = holder.get("heartbeat") or self.path.stat().st_mtime
    except OSError:
      return "lock file vanished"
    age = time.time() - float(beat)
    return f"no heartbeat for {age:.0f} s" if age > self.stale_after_s else None

  def _locked_message(self, holder: dict) -> str:
    who = (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} "
           f"(`{holder.get('command', '?')}`)") if holder else "another run"
    return (f"{self.path.parent} is in use by {who}; a second run would overwrite its "
            f"checkpoints. Stop that run first, or delete {self.path} if it is dead.")

  def _beat(self):
    while not self._stop.wait(self.heartbeat_s):
      with self._writing:
        if self._stop.is_set():
          return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(dict(self.owner, heartbeat=time.time())))
        os.replace(tmp, self.path)

  def release(self):
    if self.held:
      with self._writing:
        self._stop.set()
        self.path.unlink(missing_ok=True)
      self.held = False
