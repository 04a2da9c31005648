r"""Runs the sweep a config file declares (its `get_hyper`, dgsct_jax/sweep/hyper.py), one
workdir per point under --root, and collects the results into tables.

    python -m dgsct_jax.sweep --config=configs/demo.py --root=runs/demo_sweep
    python -m dgsct_jax.sweep collect --root=runs/demo_sweep
    python -m dgsct_jax.sweep --config=configs/ave.py:variant=large \
        --root=gs://bucket/ave_ablations --launch=tpu_pod --tpu=my-v4-32 --zone=us-central2-b \
        [--dry_run] -- --weights_dir=gs://bucket/converted --data_dir=gs://bucket/tfds

Each point runs `python -m dgsct_jax.main` (training, then predict) in
`<root>/<its overrides>`, e.g. `runs/demo_sweep/ablation=lavish,seed=44`; flags after
`--` go to every point. Points that finished are skipped and a stopped point resumes, so
running the same command again continues the sweep. A config with a `pretrain` section
(configs/demo.py) gets `--weights_dir=<root>/encoders` unless one is given: its points share
the encoders the first point pretrains. `--launch=tpu_pod` runs each point on the slice
through launch/tpu_pod.py (the repository set up there with its --setup first).

`collect` writes results.md, results.csv and results.png into --root (see
dgsct_jax/sweep/collect.py); it works on a partial sweep and lists the missing points.
Exit status: 0; 75 when a point was stopped by a signal (run again to continue); 1 when a
point failed (the others still ran); 2 for a bad config, plan or flag.
"""
import os
import sys

from absl import app
from absl import flags

from dgsct_jax.sweep import collect
from dgsct_jax.sweep import plan as plan_lib
from dgsct_jax.sweep import run

_CONFIG = flags.DEFINE_string("config", None, "Config file with a get_hyper: path.py[:args].")
_ROOT = flags.DEFINE_string("root", None, "Folder of the sweep (a workdir per point).")
_LAUNCH = flags.DEFINE_enum("launch", "local", ["local", "tpu_pod"],
                            "Where the points run: here, one after another, or on a TPU slice.")
_TPU = flags.DEFINE_string("tpu", None, "tpu_pod: the TPU VM name.")
_ZONE = flags.DEFINE_string("zone", None, "tpu_pod: its zone.")
_PROJECT = flags.DEFINE_string("project", None, "tpu_pod: its project.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "tpu_pod: print the commands only.")
flags.mark_flag_as_required("root")

USAGE_EXIT = 2


def _fail(message: str) -> int:
  print(f"ERROR: {message}", file=sys.stderr)
  return USAGE_EXIT


def main(argv) -> int:
  args = argv[1:]  # after absl's flags: the command, then the flags after `--`
  root = os.path.expanduser(_ROOT.value)
  if args[:1] == ["collect"]:
    return _fail(f"collect takes no other arguments: {args[1:]}") if args[1:] else _collect(root)
  if args and not args[0].startswith("-"):
    return _fail(f"unknown command {args[0]!r}: run a sweep (no command) or `collect`")
  return _run(root, args)


def _collect(root: str) -> int:
  try:
    written = collect.write(root)
  except (FileNotFoundError, ValueError, KeyError) as e:
    return _fail(str(e))
  print("\n".join(written["written"]))
  if written["missing"]:
    print(f"missing {len(written['missing'])} points: {', '.join(written['missing'])}")
  return 0


def _run(root: str, extra_flags: list[str]) -> int:
  if not _CONFIG.value:
    return _fail("--config is required to run a sweep")
  try:
    plan = plan_lib.load(_CONFIG.value)
  except (FileNotFoundError, ValueError) as e:
    return _fail(str(e))
  if plan.has_pretrain and not any(f.startswith("--weights_dir") for f in extra_flags):
    extra_flags = [f"--weights_dir={root.rstrip('/')}/encoders", *extra_flags]
  if _LAUNCH.value == "local":
    return run.run_local(plan, root, extra_flags)
  if not (_TPU.value and _ZONE.value):
    return _fail("--launch=tpu_pod needs --tpu and --zone")
  launcher = [f"--tpu={_TPU.value}", f"--zone={_ZONE.value}"] + (
      [f"--project={_PROJECT.value}"] if _PROJECT.value else [])
  return run.launch_tpu_pod(plan, root, launcher, extra_flags, dry_run=_DRY_RUN.value)


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
