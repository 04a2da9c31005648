r"""DG-SCT on LLP (audio-visual video parsing): the official recipe and its clean variant.

    python -m dgsct_jax.main --config=configs/avvp.py:variant=large \
        --workdir=gs://bucket/avvp_run --weights_dir=gs://bucket/converted \
        --data_dir=gs://bucket/tfds

The recipe (spec dgsct_tasks.md §1.3, `DG-SCT/AVVP/train.sh`): the five MGN losses
with label smoothing (audio 1.0, visual 0.9), Adam 3e-4 without weight decay,
StepLR ×0.1 every 10 epochs, 40 epochs, batch 8, seed 1, the checkpoint with the
best segment-level Type@AV on val (the test split is scored once at the end).
Frozen encoders run in train mode (drop path, SpecAugment, bn0 batch statistics)
and HTS-AT mixes each segment's log-mel with the reversed batch's (labels unmixed).

Arguments (`:name=value,...`, configs/common.py): variant=large|tiny,
data=llp|synthetic/llp|random, clean, seed, ablation, runlocal. `clean` runs the
frozen encoders in eval mode, which also turns the log-mel mixup off.
"""
import ml_collections

from configs import ablations
from configs import common
from dgsct_jax.models import presets

ConfigDict = ml_collections.ConfigDict


def get_config(arg=None):
  arg = common.parse(arg, data="llp", seed=1)
  c = common.trainer_config(arg)
  c.task = "avvp"
  c.model = common.model_section(presets.avvp(arg.variant))
  c.model.encoder_train_mode = not arg.clean
  c.loss = ConfigDict({"audio_smoothing": 1.0, "visual_smoothing": 0.9})
  c.figure = ConfigDict({"num_videos": 4})  # timelines.png of predict
  c.data.image_size = (c.model.swin.img_size,) * 2
  if arg.data == "synthetic/llp":
    c.data.synthetic.update(num_classes=c.model.num_classes,
                            image_size=(c.model.swin.img_size,) * 2,
                            samples_per_segment=c.model.htsat.sample_rate,
                            sample_rate=c.model.htsat.sample_rate,
                            feature_dim=c.model.head.st_dim)

  c.epochs = 40
  c.batch_size = 8
  c.optim.lr = 3e-4
  c.optim.schedule.update(kind="step", unit="epoch", every=10, gamma=0.1)
  c.optim.accum_steps = 1
  c.optim.accum_mode = "sum"
  c.eval.select_split = "val"   # the reference selects on val (no quirk here)
  c.eval.report_split = "test"
  c.eval.early_stop_epochs = 0  # the reference trains all 40 epochs
  if arg.runlocal:
    c.epochs = 2
  return common.finalize(c, arg)


def get_hyper(hyper):
  """The ablation table on AVVP, three seeds a row (no `no_temporal`: MGN has no
  AVE-style temporal gate):

      python -m dgsct_jax.sweep --config=configs/avvp.py:variant=large --root=...
  """
  return ablations.sweep(hyper, seeds=(1, 2, 3), skip=("no_temporal",))
