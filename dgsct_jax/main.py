r"""Entry point: train / eval / predict a DG-SCT model from a config file.

    python -m dgsct_jax.main --config=configs/ave.py:variant=tiny,data=synthetic \
        --workdir=runs/x [--mode=train|eval|predict] [--config.optim.lr=1e-4]

`--workdir` of a stopped run resumes it. Overrides of fields that the config
does not define fail (`lock_config=True`). `--weights_dir` (or the env var
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
flags.mark_flags_as_required(["config", "workdir"])


def resolve_paths(config, workdir: str):
  """Fills the config's path fields from flags/env (configs never hold machine paths)."""
  weights = _WEIGHTS_DIR.value or os.environ.get("DGSCT_WEIGHTS_DIR") or config.weights_dir
  if not weights and "pretrain" in config:
    weights = str(pathlib.Path(workdir) / "encoders")
  config.weights_dir = weights or ""
  if _DATA_DIR.value:
    config.data.data_dir = _DATA_DIR.value


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  # First: may re-execute this command line with the allocator's environment.
  host_memory.reexec_with(_HOST_ALLOCATOR.value)
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  from dgsct_jax import distributed  # pylint: disable=import-outside-toplevel
  distributed.initialize(_DISTRIBUTED.value)

  # pylint: disable=import-outside-toplevel
  from dgsct_jax import evaluation
  from dgsct_jax import train
  # pylint: enable=import-outside-toplevel
  config, workdir = _CONFIG.value, _WORKDIR.value
  resolve_paths(config, workdir)
  pathlib.Path(workdir).mkdir(parents=True, exist_ok=True)

  if _MODE.value == "train":
    if "pretrain" in config:
      from dgsct_jax import pretrain  # pylint: disable=import-outside-toplevel
      pretrain.ensure_encoders(config)
    try:
      result = train.train_and_evaluate(config, workdir)
    except train.NonFiniteError as e:
      logging.error("%s", e)
      print(f"ERROR: {e}", file=sys.stderr)
      sys.exit(3)
    if result["stopped"]:
      return
    if config.eval.predict_after_train:
      report(evaluation.predict(config, workdir))
  elif _MODE.value == "eval":
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
  app.run(main)
