r"""Converts a PyTorch checkpoint into a dgsct_jax converted-weights directory.

    python -m weight_conversion.convert --arch=swinv2_large_window12_192 \
        --src=swinv2_large_patch4_window12_192_22k.pth --out=weights/swinv2_l

Every source key must be used exactly once (or be ignored by a rule that says
why) and every model leaf must be assigned, else the tool stops and lists the
offending keys and shapes. `--list` prints the known architectures.
"""
import json
import sys

from absl import app
from absl import flags

from weight_conversion import archs as archs_lib
from weight_conversion import engine
from weight_conversion import sources
from weight_conversion import store

FLAGS = flags.FLAGS


def convert_file(arch_name: str, src, out, *, key=None, prefix=None, config_overrides=None) -> dict:
  """The whole conversion; returns the manifest written to `out`."""
  arch = archs_lib.get(arch_name)
  config = dict(arch.config, **(config_overrides or {}))
  key = key if key is not None else arch.default_key
  prefix = prefix if prefix is not None else arch.default_prefix
  state_dict = sources.load_state_dict(src, key=key, prefix=prefix)
  if arch.check_source is not None:
    arch.check_source(state_dict, config)
  model = archs_lib.abstract_model(arch, config)
  result = engine.convert(state_dict, model, arch.rules(list(state_dict)), what=str(src))
  manifest = {
      "arch": arch.name,
      "model_config": config,
      "source": {"path": str(src), "sha256": sources.sha256(src), "key": key, "prefix": prefix,
                 "num_keys": len(state_dict)},
      "mapping": [{"source": s, "target": t, "transform": how} for s, t, how in result.mapping],
      "ignored": [{"source": s, "reason": why} for s, why in result.ignored],
  }
  return store.save(out, result.values, manifest)


def define_flags():
  """Defined only when run as a script, so both CLIs can be imported together."""
  flags.DEFINE_string("arch", None, "architecture name (see --list)")
  flags.DEFINE_string("src", None, "source checkpoint: .pth/.pt/.ckpt/.bin, .safetensors or .npz")
  flags.DEFINE_string("out", None, "output directory (created; must not hold params yet)")
  flags.DEFINE_string("key", None, "nesting key of the state dict inside the file (a/b for deeper)")
  flags.DEFINE_string("prefix", None, "keep only keys with this prefix, stripped (e.g. 'swin.')")
  flags.DEFINE_string("model_config", "{}", "JSON overrides of the arch's model config")
  flags.DEFINE_bool("list", False, "list the known architectures and exit")


def main(argv):
  del argv
  if FLAGS.list:
    for arch in archs_lib.all_archs().values():
      print(f"{arch.name:40s} {arch.description}")
    return 0
  for name in ("arch", "src", "out"):
    if not getattr(FLAGS, name):
      raise app.UsageError(f"--{name} is required")
  try:
    manifest = convert_file(FLAGS.arch, FLAGS.src, FLAGS.out, key=FLAGS.key,
                            prefix=FLAGS.prefix, config_overrides=json.loads(FLAGS.model_config))
  except (engine.ConversionError, sources.SourceError, KeyError, FileExistsError) as e:
    print(f"conversion failed: {e}", file=sys.stderr)
    return 1
  print(f"converted {manifest['source']['num_keys']} source keys "
        f"({len(manifest['mapping'])} mapped, {len(manifest['ignored'])} ignored) into "
        f"{manifest['num_leaves']} leaves / {manifest['num_values'] / 1e6:.2f} M values → {FLAGS.out}")
  print(f"params_sha256 {manifest['params_sha256']}")
  return 0


if __name__ == "__main__":
  define_flags()
  app.run(lambda argv: sys.exit(main(argv)))
