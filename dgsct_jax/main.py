r"""Entry point: train / eval / predict a DG-SCT model from a config file.

    python -m dgsct_jax.main --config=configs/ave.py:variant=tiny,data=synthetic \
        --workdir=runs/x [--mode=train|eval|predict] [--config.optim.lr=1e-4]

`--workdir` of a stopped run resumes it (with the checkpoint's config: changed
hyperparameters need `--allow_config_change`); a second run in a workdir that
a live run holds is refused. A run stopped by SIGTERM or Ctrl-C saves and exits
with status 75, a non-finite loss with 3, bad flags or config with 2, other
refusals (a locked workdir, no checkpoint to evaluate) with 1. Overrides of
fields that the config does not define fail (`lock_config=True`). `--weights_dir` (or the env var
DGSCT_WEIGHTS_DIR) is where the converted frozen encoders live; `--data_dir`
is the TFDS data dir. On CPU-only hosts the process first re-executes itself
once with a host allocator that keeps XLA's freed temporaries
(`--host_allocator`, dgsct_jax/host_memory.py).
`--distributed` (or DGSCT_DISTRIBUTED=1) calls `jax.distributed.initialize()`
first (multi-host TPU pods).

The task (`config.task`) decides the model, losses and metric; this file
and the trainer never name one. A config with a `pretrain` section
(configs/demo.py) first produces its own frozen encoders when they are absent
(dgsct_jax.pretrain). With `eval.predict_after_train` a finished training run
goes on to `predict`: it prints the task's summary on `eval.report_split` and
writes predictions.jsonl, result.json and the task's figure. `--mode=predict`
does the same for a trained workdir.
"""
import json
import os
import pathlib
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from dgsct_jax import compile_cache
from dgsct_jax import host_memory

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (path.py:args).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, logs).")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval", "predict"], "What to do.")
_WEIGHTS_DIR = flags.DEFINE_string("weights_dir", None,
                                   "Converted encoder weights root (env DGSCT_WEIGHTS_DIR).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir of the real datasets.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False,
                                 "Call jax.distributed.initialize() (env DGSCT_DISTRIBUTED=1).")
_HOST_ALLOCATOR = flags.DEFINE_enum(
    "host_allocator", "auto", list(host_memory.ALLOCATORS),
    "Host malloc for CPU training (dgsct_jax/host_memory.py): 'auto' = glibc with huge pages on "
    "CPU-only hosts; 'jemalloc' is faster but keeps all freed memory; 'system' = leave as is.")
_ALLOW_CONFIG_CHANGE = flags.DEFINE_bool(
    "allow_config_change", False,
    "Resume although hyperparameters (lr, batch, epochs, ...) differ from the checkpoint's; "
    "the changes are logged to <workdir>/config_changes.jsonl.")
_COMPILE_CACHE = flags.DEFINE_string(
    "compile_cache", None,
    f"Persistent compilation cache directory (env {compile_cache.ENV}; default "
    f"{compile_cache.default_dir()}); 'off' disables it.")
flags.mark_flags_as_required(["config", "workdir"])

NONFINITE_EXIT, USAGE_EXIT, REFUSED_EXIT = 3, 2, 1


def resolve_paths(config, workdir: str):
  """Fills the config's path fields from flags/env (configs never hold machine paths);
  `~` is expanded in every path."""
  weights = _WEIGHTS_DIR.value or os.environ.get("DGSCT_WEIGHTS_DIR") or config.weights_dir
  if not weights and "pretrain" in config:
    weights = str(pathlib.Path(workdir) / "encoders")
  config.weights_dir = os.path.expanduser(weights) if weights else ""
  if _DATA_DIR.value:
    config.data.data_dir = os.path.expanduser(_DATA_DIR.value)


def _message(error: BaseException) -> str:
  """An exception's message on one line (unwrapping ml_collections' nested KeyError)."""
  while error.args and isinstance(error.args[0], BaseException):
    error = error.args[0]
  text = str(error.args[0]) if error.args else str(error)
  lines = [l.strip() for l in text.splitlines() if l.strip()]
  if "Traceback (most recent call last):" in lines:  # config_flags embeds the traceback
    lines = [lines[0], lines[-1]]
  return " ".join(lines)


def parse_flags(argv):
  """absl's flag parsing, with a bad --config argument or override as one line (exit 2)
  instead of a traceback."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(_message(e), USAGE_EXIT)
  except (AttributeError, KeyError, ValueError, TypeError, OSError) as e:
    text = _message(e)
    overrides = [a.split("=")[0] for a in argv if a.startswith("--config.")]
    named = [o for o in overrides if f"'{o.rsplit('.', 1)[-1]}'" in text]
    if named:
      fail(f"{named[0]}: the config has no such field ({text})", USAGE_EXIT)
    fail(f"bad --config: {text}", USAGE_EXIT)


def fail(message: str, status: int):
  print(f"ERROR: {message}", file=sys.stderr)
  sys.exit(status)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  # First: may re-execute this command line with the allocator's environment.
  host_memory.reexec_with(_HOST_ALLOCATOR.value)
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  from dgsct_jax import distributed  # pylint: disable=import-outside-toplevel
  distributed.initialize(_DISTRIBUTED.value)
  cache_dir = compile_cache.enable(compile_cache.resolve(_COMPILE_CACHE.value))
  counts = compile_cache.Counts().listen()
  try:
    _run()
  finally:
    if cache_dir and counts.read + counts.compiled:  # a refusal compiles nothing: one line
      print(counts.summary(cache_dir), file=sys.stderr)


def _run():
  """The mode's work, after the process is set up."""
  # pylint: disable=import-outside-toplevel
  from dgsct_jax import checkpointing
  from dgsct_jax import evaluation
  from dgsct_jax import train
  from dgsct_jax import train_state
  from dgsct_jax import workdir_lock
  from dgsct_jax.data.datasets import build_record
  # pylint: enable=import-outside-toplevel
  try:
    config = _CONFIG.value
    config.to_dict()
  except OSError as e:  # config_flags defers a missing or broken config file to here
    fail(f"bad --config: {_message(e)}", USAGE_EXIT)
  workdir = os.path.expanduser(_WORKDIR.value)
  resolve_paths(config, workdir)

  if _MODE.value == "train":
    if "pretrain" in config:
      from dgsct_jax import pretrain  # pylint: disable=import-outside-toplevel
      pretrain.ensure_encoders(config)
    try:
      result = train.train_and_evaluate(config, workdir,
                                        allow_config_change=_ALLOW_CONFIG_CHANGE.value)
    except train.NonFiniteError as e:
      logging.error("%s", e)
      fail(str(e), NONFINITE_EXIT)
    except (workdir_lock.WorkdirLocked, train_state.ResumeRefused,
            build_record.PartialBuildError, FileNotFoundError) as e:
      fail(str(e), REFUSED_EXIT)
    if result["stopped"]:
      sys.exit(checkpointing.PREEMPTED_EXIT)
    if config.eval.predict_after_train:
      report(evaluation.predict(config, workdir, run=result["run"]))
    return
  best = train_state.best_dir(workdir)
  if not checkpointing.finalized_steps(best):
    fail(f"no trained model in {best}: train first (same command without --mode)",
         REFUSED_EXIT)
  if _MODE.value == "eval":
    print(json.dumps(evaluation.evaluate(config, workdir), indent=1))
  else:
    report(evaluation.predict(config, workdir))


def report(result: dict):
  print(f"{result['split']} {result['summary']}; best checkpoint: step "
        f"{result['checkpoint_step']}")
  print(f"predictions: {result['predictions_file']}")
  if result.get("figure"):
    print(f"figure: {result['figure']}")


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
