"""The trainer section shared by every task config: the official recipe's loop, data,
optimizer, evaluation, checkpointing and mesh (spec dgsct_core.md §4.4), and the
config arguments every task takes.

Arguments (`--config=configs/<task>.py:name=value,...`):
  variant   'large' (the paper's encoders) | 'tiny' (CPU-sized, same model)
  data      the dataset (`dgsct_jax.data.sources`), e.g. 'ave' | 'synthetic' | 'synthetic/llp'
  clean     False reproduces the reference, quirks included (spec §8): model
            selection and early stopping on the *test* split, `accum_itr=2` that
            discards every other batch's gradient (and, in the task configs,
            frozen encoders in train mode); True fixes them: selection on the
            validation split (test reported once at the end), true accumulation.
  seed      the run's seed (init, data order, dropout); default: the task's.
  ablation  a row of configs/ablations.py ('' = the full model).
  runlocal  a few steps on tiny splits (2 epochs of 4 steps of 8 examples), for
            debugging the plumbing on a laptop.

Machine paths never live here: --workdir, --weights_dir, --data_dir are flags.
"""
import ml_collections

from configs import ablations
from dgsct_jax import config_utils
from dgsct_jax.models import presets

ConfigDict = ml_collections.ConfigDict

# Converted-weights directories (relative to --weights_dir) of the frozen encoders of
# the Swin-V2 + HTS-AT backbone, and where they sit inside the task models.
ENCODERS = {
    "large": {"visual": "swinv2_large_window12_192_22k", "audio": "htsat_audioset"},
    "tiny": {"visual": "swinv2_tiny_synthetic", "audio": "htsat_tiny_synthetic"},
}
ENCODER_PREFIX = {"visual": "swin", "audio": "htsat"}


# 'avsbench': configs/avs.py's subset's build.
DATA = ("ave", "llp", "avsbench", "avsbench/s4", "avsbench/ms3", "music_avqa", "synthetic",
        "synthetic/llp", "synthetic/avs", "synthetic/avqa", "random")


def parse(arg, *, data: str, seed: int, choices=None, **task_args):
  """The common arguments, with the task's defaults for `data` and `seed`, plus the
  task's own `task_args` (defaults) with their `choices`."""
  return config_utils.parse_arg(
      arg, choices={"variant": presets.VARIANTS, "data": DATA,
                    "ablation": ("", *ablations.ABLATIONS), **(choices or {})},
      variant="large", data=data, clean=False, seed=seed, ablation="", runlocal=False,
      **task_args)


def trainer_config(arg) -> ConfigDict:
  """Everything but the task's sections (`task`, `model`, task options)."""
  c = ConfigDict()
  c.seed = arg.seed
  c.weights_dir = ""  # set by --weights_dir / DGSCT_WEIGHTS_DIR
  c.init_from = ConfigDict({
      name: {"dir": d, "prefix": ENCODER_PREFIX[name], "sha256": ""}
      for name, d in ENCODERS[arg.variant].items()})

  c.data = ConfigDict()
  c.data.name = arg.data
  c.data.data_dir = ""  # set by --data_dir
  c.data.splits = {"train": "train", "val": "val", "test": "test"}
  c.data.image_size = ()  # (H, W) of decoded frames (set by the task); () = the dataset's
  c.data.sizes = {"train": 0, "val": 0, "test": 0}  # synthetic only; 0 = the default size
  # 'synthetic/llp' and 'synthetic/avs' read the keys their configs have (the others:
  # their defaults).
  c.data.synthetic = {"num_classes": 28, "num_segments": 10, "image_size": (192, 192),
                      "samples_per_segment": 32000, "sample_rate": 32000,
                      "noise_level": 0.05, "seed": 0}
  c.data.allow_partial = False  # refuse a build that left videos out (--skip_bad, limits)
  c.data.shuffle = True
  c.data.worker_count = 0
  c.data.read_threads = 4

  c.batch_size = 8
  c.epochs = 50
  c.compute_dtype = "float32"

  c.optim = ConfigDict()
  c.optim.name = "adam"
  c.optim.b1, c.optim.b2, c.optim.eps = 0.9, 0.999, 1e-8
  c.optim.lr = 5e-4
  c.optim.lr_mults = ()  # ((regex over trainable paths, lr multiplier), ...)
  c.optim.schedule = {"kind": "step", "unit": "epoch", "every": 3, "gamma": 0.35,
                      "warmup": 0, "total": 0}
  c.optim.accum_steps = 2
  c.optim.accum_mode = "sum" if arg.clean else "discard"

  c.eval = ConfigDict()
  c.eval.batch_size = 8
  c.eval.select_split = "val" if arg.clean else "test"
  c.eval.report_split = "test"
  c.eval.early_stop_epochs = 20
  c.eval.predict_after_train = False

  c.ckpt = ConfigDict({"every_steps": 500, "max_to_keep": 3})
  c.log = ConfigDict({"every_steps": 50, "bar_every": 10, "progress": True})

  c.mesh = (("data", -1), ("fsdp", 1), ("model", 1))
  c.sharding_rules = (("batch", ("data", "fsdp")),)
  c.fsdp_frozen = False
  c.fsdp_min_size_mb = 4.0

  if arg.runlocal:
    c.data.sizes = {"train": 32, "val": 16, "test": 16}  # generated data
    if not arg.data.startswith("synthetic") and arg.data != "random":
      c.data.splits = {"train": "train[:32]", "val": "val[:16]", "test": "test[:16]"}
    c.epochs, c.batch_size, c.eval.batch_size = 2, 8, 8
    c.ckpt.every_steps, c.log.every_steps = 4, 2
  return c


# Model keys whose default is None, with the type a command-line override takes
# (ml_collections cannot override a plain None field).
OPTIONAL_MODEL_KEYS = {"remat_stages": int, "matmul_dtype": str}


def model_section(model: dict) -> ConfigDict:
  """A model config (a preset) as a ConfigDict whose optional fields take overrides."""
  model = dict(model)
  for key, kind in OPTIONAL_MODEL_KEYS.items():
    if key in model and model[key] is None:
      model[key] = ml_collections.config_dict.placeholder(kind)
  return ConfigDict(model)


def finalize(c: ConfigDict, arg) -> ConfigDict:
  """Applies the arguments every task shares after the task has built its config."""
  if arg.ablation:
    ablations.apply(c, arg.ablation)
  return c
