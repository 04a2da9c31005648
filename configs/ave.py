r"""DG-SCT on AVE: the official recipe (spec dgsct_core.md §4.4) and its clean variant.

    python -m dgsct_jax.main --config=configs/ave.py:variant=large \
        --workdir=gs://bucket/ave_run --weights_dir=gs://bucket/converted \
        --data_dir=gs://bucket/tfds

Arguments (`:name=value,...`, configs/common.py): variant=large|tiny,
data=ave|synthetic, clean, seed (default 43, the reference's), ablation=<name of
configs/ablations.py>, runlocal. `clean` also runs the frozen encoders in eval
mode (the reference trains with them in train mode: drop path, SpecAugment,
bn0 updates).
"""
import ml_collections

from configs import ablations
from configs import common
from dgsct_jax.models import presets

ConfigDict = ml_collections.ConfigDict


def get_config(arg=None):
  arg = common.parse(arg, data="ave", seed=43)
  c = common.trainer_config(arg)
  c.task = "ave"
  c.model = common.model_section(presets.ave(arg.variant))
  c.model.encoder_train_mode = not arg.clean
  c.loss = ConfigDict({"gate_on_logits": True})  # BCE-with-logits on the gate (spec §8.5)
  c.figure = ConfigDict({"num_videos": 3, "num_segments": 4})  # attention.png of predict
  c.data.image_size = (c.model.swin.img_size,) * 2  # frames decoded at the model's size
  if arg.data == "synthetic":  # shaped like the model's inputs
    c.data.synthetic.update(num_classes=c.model.num_classes,
                            image_size=(c.model.swin.img_size,) * 2,
                            samples_per_segment=c.model.htsat.sample_rate,
                            sample_rate=c.model.htsat.sample_rate)
  return common.finalize(c, arg)


def get_hyper(hyper):
  """The paper's AVE ablation table (configs/ablations.py), three seeds a row:

      python -m dgsct_jax.sweep --config=configs/ave.py:variant=large --root=...
  """
  return ablations.sweep(hyper, seeds=(43, 44, 45))
