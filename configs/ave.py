r"""DG-SCT on AVE: the official recipe (spec dgsct_core.md §4.4) and its clean variant.

    python -m dgsct_jax.main --config=configs/ave.py:variant=large \
        --workdir=gs://bucket/ave_run --weights_dir=gs://bucket/converted \
        --data_dir=gs://bucket/tfds

Arguments (`:name=value,...`):
  variant   'large' (the paper: Swin-V2-L + HTS-AT) | 'tiny' (CPU-sized, same model)
  data      'ave' (the TFDS build of AVE) | 'synthetic' (the embedded dataset)
  clean     False reproduces the reference, quirks included (spec §8):
              * frozen encoders run in train mode (drop path, SpecAugment, bn0 updates),
              * model selection and early stopping on the *test* split,
              * `accum_itr=2` that discards every other batch's gradient;
            True fixes them: eval-mode encoders, selection on the validation
            split (test reported once at the end), true accumulation of 2 batches.
  runlocal  a few steps on tiny splits, for debugging the plumbing on a laptop.

Machine paths never live here: --workdir, --weights_dir, --data_dir are flags.
"""
import ml_collections

from dgsct_jax import config_utils

ConfigDict = ml_collections.ConfigDict

# Converted-weights directories (relative to --weights_dir) of the frozen encoders,
# and where they sit inside the AVE model.
ENCODERS = {
    "large": {"visual": "swinv2_large_window12_192_22k", "audio": "htsat_audioset"},
    "tiny": {"visual": "swinv2_tiny_synthetic", "audio": "htsat_tiny_synthetic"},
}
ENCODER_PREFIX = {"visual": "swin", "audio": "htsat"}


def parse(arg):
  return config_utils.parse_arg(arg, variant="large", data="ave", clean=False, runlocal=False)


# Model keys whose default is None, with the type a command-line override takes
# (ml_collections cannot override a plain None field).
OPTIONAL_MODEL_KEYS = {"remat_stages": int, "matmul_dtype": str}


def model_config(variant: str) -> ConfigDict:
  """The AVE model section (the model engineer's `ave_model_config`)."""
  from dgsct_jax.models import ave as ave_model  # pylint: disable=import-outside-toplevel
  model = ave_model.ave_model_config(variant)
  for key, kind in OPTIONAL_MODEL_KEYS.items():
    if model[key] is None:
      model[key] = ml_collections.config_dict.placeholder(kind)
  return ConfigDict(model)


def trainer_config(arg) -> ConfigDict:
  """Everything but the model section: the official recipe (or the clean variant)."""
  c = ConfigDict()
  c.seed = 43
  c.model_builder = "dgsct_jax.models.ave:build_ave_model"
  c.weights_dir = ""  # set by --weights_dir / DGSCT_WEIGHTS_DIR
  c.init_from = ConfigDict({
      name: {"dir": d, "prefix": ENCODER_PREFIX[name], "sha256": ""}
      for name, d in ENCODERS[arg.variant].items()})

  c.data = ConfigDict()
  c.data.name = arg.data
  c.data.data_dir = ""  # set by --data_dir
  c.data.splits = {"train": "train", "val": "val", "test": "test"}
  c.data.sizes = {"train": 0, "val": 0, "test": 0}  # synthetic only; 0 = the default size
  c.data.synthetic = {"num_classes": 28, "num_segments": 10, "image_size": (192, 192),
                      "samples_per_segment": 32000, "sample_rate": 32000,
                      "noise_level": 0.05, "seed": 0}
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
  # lr_mlp=5e-6 applies to `mlp_class*` parameters, which the AVE model does not have.
  c.optim.lr_mults = ((r".*mlp_class.*", 5e-6 / 5e-4),)
  c.optim.schedule = {"kind": "step", "unit": "epoch", "every": 3, "gamma": 0.35,
                      "warmup": 0, "total": 0}
  c.optim.accum_steps = 2
  c.optim.accum_mode = "sum" if arg.clean else "discard"

  c.loss = ConfigDict({"gate_on_logits": True})  # BCE-with-logits on the gate (spec §8.5)

  c.eval = ConfigDict()
  c.eval.batch_size = 8
  c.eval.select_split = "val" if arg.clean else "test"
  c.eval.report_split = "test"
  c.eval.early_stop_epochs = 20

  c.ckpt = ConfigDict({"every_steps": 500, "max_to_keep": 3})
  c.log = ConfigDict({"every_steps": 50, "bar_every": 10, "progress": True})
  c.figure = ConfigDict({"num_videos": 3, "num_segments": 4})

  c.mesh = (("data", -1), ("fsdp", 1), ("model", 1))
  c.sharding_rules = (("batch", ("data", "fsdp")),)
  c.fsdp_frozen = False
  c.fsdp_min_size_mb = 4.0

  if arg.runlocal:
    c.data.sizes = {"train": 32, "val": 16, "test": 16}
    c.epochs, c.batch_size, c.eval.batch_size = 2, 4, 4
    c.data.splits = {"train": "train[:32]", "val": "val[:16]", "test": "test[:16]"}
    c.ckpt.every_steps, c.log.every_steps = 4, 2
  return c


def get_config(arg=None):
  arg = parse(arg)
  c = trainer_config(arg)
  c.model = model_config(arg.variant)
  c.model.encoder_train_mode = not arg.clean
  if arg.data == "synthetic":  # shaped like the model's inputs
    c.data.synthetic.update(num_classes=c.model.num_classes,
                            image_size=(c.model.swin.img_size,) * 2,
                            samples_per_segment=c.model.htsat.sample_rate,
                            sample_rate=c.model.htsat.sample_rate)
  return c
