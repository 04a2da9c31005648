r"""Converts a PyTorch checkpoint into a dgsct_jax converted-weights directory.

    python -m weight_conversion.convert --arch=swinv2_large_window12_192 \
        --src=swinv2_large_patch4_window12_192_22k.pth --out=weights/swinv2_l

Every source key must be used exactly once (or be ignored by a rule that says
why) and every model leaf must be assigned, else the tool stops and lists the
offending keys and shapes. Source weights with NaN/Inf are refused unless
`--allow_nonfinite` (then the manifest lists them under `nonfinite`). An
unreadable source or a bad `--model_config` stops it with one line; the exit
status is then 1. `--list` prints the known architectures; orbax's INFO logs
show only with `--verbosity`.
"""
import json
import os
import sys

from absl import app
from absl import flags
from absl import logging

from weight_conversion import archs as archs_lib
from weight_conversion import engine
from weight_conversion import sources
from weight_conversion import store

FLAGS = flags.FLAGS


def convert_file(arch_name: str, src, out, *, key=None, prefix=None, config_overrides=None,
                 allow_nonfinite: bool = False) -> dict:
  """The whole conversion; returns the manifest written to `out`."""
  arch = archs_lib.get(arch_name)
  config = archs_lib.model_config(arch, config_overrides or {})
  key = key if key is not None else arch.default_key
  prefix = prefix if prefix is not None else arch.default_prefix
  state_dict = sources.load_state_dict(src, key=key, prefix=prefix)
  if arch.check_source is not None:
    arch.check_source(state_dict, config)
  model = archs_lib.abstract_model(arch, config)
  result = engine.convert(state_dict, model, arch.rules(list(state_dict)), what=str(src))
  nonfinite = engine.nonfinite({s: result.values[t] for s, t, _ in result.mapping})
  if nonfinite and not allow_nonfinite:
    raise engine.ConversionError(
        f"{src}: NaN/Inf in {len(nonfinite)} source key(s): "
        f"{engine.describe_nonfinite(nonfinite)}; pass --allow_nonfinite to convert them anyway")
  manifest = {
      "arch": arch.name,
      "model_config": config,
      "source": {"path": str(src), "sha256": sources.sha256(src), "key": key, "prefix": prefix,
                 "num_keys": len(state_dict)},
      "mapping": [{"source": s, "target": t, "transform": how} for s, t, how in result.mapping],
      "ignored": [{"source": s, "reason": why} for s, why in result.ignored],
      "nonfinite": nonfinite,  # {source key: {'nan': count, 'inf': count}}
  }
  return store.save(out, result.values, manifest)


def parse_model_config(text: str) -> dict:
  """--model_config → a dict (ConversionError on bad JSON; keys are checked per arch)."""
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise engine.ConversionError(f"--model_config is not valid JSON ({e}): {text!r}") from e


def define_flags():
  """Defined only when run as a script, so both CLIs can be imported together."""
  flags.DEFINE_string("arch", None, "architecture name (see --list)")
  flags.DEFINE_string("src", None, "source checkpoint: .pth/.pt/.ckpt/.bin, .safetensors or .npz")
  flags.DEFINE_string("out", None, "output directory (created; must not hold params yet)")
  flags.DEFINE_string("key", None, "nesting key of the state dict inside the file (a/b for deeper)")
  flags.DEFINE_string("prefix", None, "keep only keys with this prefix, stripped (e.g. 'swin.')")
  flags.DEFINE_string("model_config", "{}", "JSON overrides of the arch's model config")
  flags.DEFINE_bool("allow_nonfinite", False,
                    "convert source weights with NaN/Inf values (listed in the manifest)")
  flags.DEFINE_bool("list", False, "list the known architectures and exit")


def main(argv):
  del argv
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs ~30 INFO lines per save
  if FLAGS.list:
    for arch in archs_lib.all_archs().values():
      print(f"{arch.name:40s} {arch.description}")
    return 0
  for name in ("arch", "src", "out"):
    if not getattr(FLAGS, name):
      raise app.UsageError(f"--{name} is required")
  out = os.path.expanduser(FLAGS.out)
  try:
    manifest = convert_file(FLAGS.arch, os.path.expanduser(FLAGS.src), out, key=FLAGS.key,
                            prefix=FLAGS.prefix, allow_nonfinite=FLAGS.allow_nonfinite,
                            config_overrides=parse_model_config(FLAGS.model_config))
  except (ValueError, KeyError, OSError) as e:
    print(f"conversion failed: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
    return 1
  print(f"converted {manifest['source']['num_keys']} source keys "
        f"({len(manifest['mapping'])} mapped, {len(manifest['ignored'])} ignored) into "
        f"{manifest['num_leaves']} leaves / {manifest['num_values'] / 1e6:.2f} M values → {out}")
  if manifest["nonfinite"]:
    print(f"with NaN/Inf (--allow_nonfinite): {engine.describe_nonfinite(manifest['nonfinite'])}")
  print(f"params_sha256 {manifest['params_sha256']}")
  return 0


if __name__ == "__main__":
  define_flags()
  app.run(lambda argv: sys.exit(main(argv)))
