r"""DG-SCT on AVSBench (audio-visual segmentation), S4 or MS3: the official recipes and
their clean variant.

    python -m dgsct_jax.main --config=configs/avs.py:subset=s4,variant=large \
        --workdir=gs://bucket/avs_s4 --weights_dir=gs://bucket/converted \
        --data_dir=gs://bucket/tfds

The recipes (spec dgsct_tasks.md §2.3, `DG-SCT/AVS/avs_scripts/avs_{s4,ms3}/train.sh`):
Adam at a constant lr without weight decay, seed 123; S4: lr 3e-4, batch 8, 15
epochs, BCE on each video's first frame, HTS-AT trained with the adapters and the
decoder (presets.avs); MS3: lr 1.5e-4, batch 2, 30 epochs, BCE on all five frames
+ 0.5 × the audio–masked-visual KL term. M_F is scored in batches of 4 videos (the
reference test loader's). The reference picks the checkpoint with the best M_J on the
*test* split and never stops early; `clean` selects on val instead (test is reported
once at the end) and runs the frozen encoders in eval mode, which also turns the
log-mel mixup off.

Arguments (`:name=value,...`, configs/common.py): subset=s4|ms3, variant=large|tiny,
data=avsbench|synthetic/avs|random (avsbench: the subset's `avsbench/<subset>` build;
224² frames and masks, so the large variant; synthetic/avs: the generated look-alike,
one sounding object for s4, several for ms3, at the variant's mask size), clean, seed,
ablation, runlocal.
"""
import ml_collections

from configs import ablations
from configs import common
from dgsct_jax.models import presets
from dgsct_jax.tasks.avs import task as avs_task

ConfigDict = ml_collections.ConfigDict

# subset → (lr, batch size, epochs, loss)
RECIPES = {
    "s4": (3e-4, 8, 15, {"bce_frames": "first", "kl_weight": 0.0}),
    "ms3": (1.5e-4, 2, 30, {"bce_frames": "all", "kl_weight": 0.5}),
}


def get_config(arg=None):
  arg = common.parse(arg, data="avsbench", seed=123, choices={"subset": presets.AVS_SUBSETS},
                     subset="s4")
  if arg.data not in ("avsbench", "synthetic/avs", "random"):
    raise ValueError(f"configs/avs.py: data={arg.data!r}; choose 'avsbench' (the subset's "
                     "AVSBench build), 'synthetic/avs' or 'random'")
  c = common.trainer_config(arg)
  c.task = "avs"
  c.data.name = f"avsbench/{arg.subset}" if arg.data == "avsbench" else arg.data
  c.model = common.model_section(presets.avs(arg.variant, arg.subset))
  c.model.encoder_train_mode = not arg.clean
  lr, batch_size, epochs, loss = RECIPES[arg.subset]
  c.loss = ConfigDict(loss)
  c.metric = ConfigDict({"batch_size": 4})
  c.figure = ConfigDict({"num_videos": 3})  # masks.png of predict
  if arg.data == "synthetic/avs":
    size = avs_task.mask_size(c.model)
    c.data.synthetic.update(image_size=(size, size), num_segments=avs_task.T,
                            samples_per_segment=c.model.htsat.sample_rate,
                            sample_rate=c.model.htsat.sample_rate,
                            multi_source=arg.subset == "ms3")

  c.epochs = epochs
  c.batch_size = batch_size
  c.optim.lr = lr
  c.optim.schedule.update(kind="constant")
  c.optim.accum_steps = 1
  c.optim.accum_mode = "sum"
  c.eval.batch_size = 4
  c.eval.early_stop_epochs = 0  # the reference's counter never fires
  if arg.runlocal:
    c.epochs = 2
  return common.finalize(c, arg)


def get_hyper(hyper):
  """The ablation table on AVS (S4 or MS3: the `subset` argument), three seeds a row:

      python -m dgsct_jax.sweep --config=configs/avs.py:variant=large --root=...
  """
  return ablations.sweep(hyper, seeds=(123, 124, 125))
