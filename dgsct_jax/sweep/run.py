"""Running a sweep's points one after another: here (`local`), or each through
`launch/tpu_pod.py` on a TPU slice (`tpu_pod`).

A point is done when its workdir has result.json (written by predict after training);
done points are skipped, and a point whose workdir holds a stopped run resumes it (the
trainer resumes any workdir), so re-running the sweep's command continues the sweep.
Ctrl-C or SIGTERM reaches the running point, which saves a checkpoint, and the sweep stops
with the trainer's preemption status.
"""
import json
import pathlib
import signal
import subprocess
import sys

from etils import epath

from dgsct_jax.sweep import plan as plan_lib

PREEMPTED_EXIT = 75  # dgsct_jax.checkpointing.PREEMPTED_EXIT, without importing jax here
LAUNCHER = pathlib.Path(__file__).resolve().parents[2] / "launch" / "tpu_pod.py"


def is_done(root, point: plan_lib.Point) -> bool:
  return (epath.Path(root) / point.name / "result.json").exists()


def run_local(plan: plan_lib.Plan, root: str, extra_flags=(), log=print) -> int:
  """Runs the points that are not done, in order; the exit status of the sweep: 0, the
  preemption status when a point was stopped, else 1 when a point failed."""
  root = pathlib.Path(root)
  root.mkdir(parents=True, exist_ok=True)
  (root / plan_lib.PLAN_FILE).write_text(plan.to_json())
  failed = []
  for i, point in enumerate(plan.points, 1):
    where = f"[{i}/{len(plan.points)}] {point.name}"
    if is_done(root, point):
      log(f"{where}: done")
      continue
    workdir = root / point.name
    workdir.mkdir(exist_ok=True)
    (workdir / plan_lib.POINT_FILE).write_text(json.dumps(point.overrides))
    log(f"{where}: {'resuming' if (workdir / 'checkpoints').exists() else 'running'}")
    status = _run_forwarding_signals([sys.executable, *plan.main_args(point, str(workdir),
                                                                       extra_flags)])
    if status == PREEMPTED_EXIT:
      log(f"{where}: stopped with a checkpoint; run the same command to continue the sweep")
      return PREEMPTED_EXIT
    if status != 0:
      log(f"{where}: failed with exit status {status} (its output is above; workdir {workdir})")
      failed.append(point.name)
  if failed:
    log(f"{len(failed)} of {len(plan.points)} points failed: {failed}")
  return 1 if failed else 0


def _run_forwarding_signals(command: list[str]) -> int:
  """Runs `command` in its own session (so a terminal's Ctrl-C reaches it once, through this
  process) and passes SIGINT/SIGTERM on to it; its exit status."""
  proc = subprocess.Popen(command, start_new_session=True)
  forward = lambda signum, frame: proc.send_signal(signum)  # noqa: E731
  previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
  try:
    return proc.wait()
  finally:
    for sig, handler in previous.items():
      signal.signal(sig, handler)


def launch_tpu_pod(plan: plan_lib.Plan, root: str, launcher_flags: list[str],
                   extra_flags=(), dry_run=False, log=print) -> int:
  """Runs each point that is not done on the slice, through launch/tpu_pod.py (with
  --dry_run: prints the gcloud commands of every point and checks nothing)."""
  if not dry_run:
    (epath.Path(root) / plan_lib.PLAN_FILE).write_text(plan.to_json())
  for i, point in enumerate(plan.points, 1):
    where = f"[{i}/{len(plan.points)}] {point.name}"
    if not dry_run and is_done(root, point):
      log(f"{where}: done")
      continue
    log(f"{where}:")
    workdir = f"{str(root).rstrip('/')}/{point.name}"
    command = [sys.executable, str(LAUNCHER), *launcher_flags,
               *(["--dry_run"] if dry_run else []), "--",
               *plan.main_args(point, workdir, extra_flags)]
    status = subprocess.call(command)
    if status != 0:
      log(f"{where}: the launcher exited with status {status}; the sweep stops")
      return status
  return 0
