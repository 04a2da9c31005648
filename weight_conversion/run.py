r"""Runs a converted model (eval mode, float32) on the arrays of an .npz file.

    python -m weight_conversion.run --params=weights/swinv2_l \
        --inputs=in.npz --outputs=out.npz

The arch and model config come from the directory's manifest (`--arch` only
checks them). What the inputs must hold and what the outputs hold depends on
the arch (its docstring, `--list` of weight_conversion.convert). An unreadable
or empty input (0 examples) stops it with one line, exit status 1; outputs
with NaN/Inf are written but named in an error, exit status 1.
"""
import os
import sys

import numpy as np
from absl import app
from absl import flags
from absl import logging

from weight_conversion import archs as archs_lib
from weight_conversion import engine
from weight_conversion import sources
from weight_conversion import store

FLAGS = flags.FLAGS


def check_batch(inputs: dict[str, np.ndarray]) -> None:
  """Refuses inputs without arrays or with an empty batch (0 examples)."""
  if not inputs:
    raise ValueError("the inputs hold no arrays")
  empty = [k for k, v in inputs.items() if np.ndim(v) and len(v) == 0]
  if empty:
    raise ValueError(f"empty batch: inputs {empty} hold 0 examples")


def run_directory(params_dir, inputs: dict[str, np.ndarray], arch_name: str | None = None):
  check_batch(inputs)
  values, manifest = store.load(params_dir)
  if arch_name and arch_name != manifest["arch"]:
    raise ValueError(f"{params_dir} holds arch {manifest['arch']!r}, not {arch_name!r}")
  arch = archs_lib.get(manifest["arch"])
  model = archs_lib.materialize(arch, manifest["model_config"], values)
  return {k: np.asarray(v) for k, v in arch.run(model, inputs).items()}


def define_flags():
  """Defined only when run as a script, so both CLIs can be imported together."""
  flags.DEFINE_string("arch", None, "expected architecture (checked against the manifest)")
  flags.DEFINE_string("params", None, "converted-weights directory")
  flags.DEFINE_string("inputs", None, "input .npz")
  flags.DEFINE_string("outputs", None, "output .npz")


def main(argv):
  del argv
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs ~10 INFO lines per restore
  for name in ("params", "inputs", "outputs"):
    if not getattr(FLAGS, name):
      raise app.UsageError(f"--{name} is required")
  params, inputs, outputs_path = (os.path.expanduser(getattr(FLAGS, name))
                                  for name in ("params", "inputs", "outputs"))
  try:
    outputs = run_directory(params, sources.read_npz(inputs), FLAGS.arch)
  except (ValueError, KeyError, OSError) as e:
    print(f"run failed: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
    return 1
  np.savez(outputs_path, **outputs)
  nonfinite = engine.nonfinite(outputs)
  if nonfinite:
    print(f"run failed: NaN/Inf in outputs {engine.describe_nonfinite(nonfinite)} (written to "
          f"{outputs_path})", file=sys.stderr)
    return 1
  for k, v in outputs.items():
    print(f"{k:20s} {str(v.shape):24s} mean {v.mean():+.5f} std {v.std():.5f}")
  return 0


if __name__ == "__main__":
  define_flags()
  app.run(lambda argv: sys.exit(main(argv)))
