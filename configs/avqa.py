r"""DG-SCT on MUSIC-AVQA (audio-visual question answering): the official recipe (stage 2)
and its clean variant.

    python -m dgsct_jax.main --config=configs/avqa.py:variant=large \
        --workdir=gs://bucket/avqa_run --weights_dir=gs://bucket/converted \
        --data_dir=gs://bucket/tfds

The recipe (spec dgsct_tasks.md §3.4, `DG-SCT/AVQA/train.sh`): CE on the answer + 0.5·CE
on matching each frame to its second's audio against a negative frame, Adam 1e-4
without weight decay, StepLR ×0.1 every 8 epochs, at most 80 epochs with early stopping
after 3 epochs without gain, batch 8, seed 1, the checkpoint with the best overall
accuracy on val (the test split is scored once at the end). Frozen encoders run in train
mode (drop path, SpecAugment, bn0 batch statistics) and HTS-AT mixes each segment's
log-mel with the reversed batch's. The stage-1 grounding pre-training is optional in the
reference (its checkpoint initialises `fc_a1`, `fc_a2`, `fc_gl`, `fc1`–`fc4`); give its
converted head with `init_from`.

Quirks (faithful by default, `clean` fixes them):
  data.source_options.reference_negative_rule  negative frames are rejected only when
      `id // 60` (not `id // 10`) is the question's video, so a negative can come from
      the question's own video (spec §3.1).
  model.encoder_train_mode  the frozen encoders in train mode (clean: eval mode, which
      also turns the log-mel mixup off).
  model.head.pack_questions  False: the question LSTM reads the trailing <pad> tokens too,
      which wash out a short question's state; clean: its state at the last real token.

Arguments (`:name=value,...`, configs/common.py): variant=large|tiny,
data=music_avqa|synthetic/avqa|random, clean, seed, ablation, runlocal.
"""
import ml_collections

from configs import ablations
from configs import common
from dgsct_jax.models import presets

ConfigDict = ml_collections.ConfigDict


def get_config(arg=None):
  arg = common.parse(arg, data="music_avqa", seed=1)
  if arg.data not in ("music_avqa", "synthetic/avqa", "random"):
    raise ValueError(f"configs/avqa.py: data={arg.data!r}; choose 'music_avqa', "
                     "'synthetic/avqa' or 'random'")
  c = common.trainer_config(arg)
  c.task = "avqa"
  c.model = common.model_section(presets.avqa(arg.variant))
  c.model.encoder_train_mode = not arg.clean
  c.model.head.pack_questions = arg.clean
  c.loss = ConfigDict({"match_weight": 0.5})
  c.data.image_size = (c.model.swin.img_size,) * 2
  c.data.source_options = ConfigDict({"reference_negative_rule": not arg.clean})
  c.figure = ConfigDict({"num_questions": 4})  # grounding.png of predict
  if arg.data == "synthetic/avqa":
    c.data.synthetic.update(num_classes=6, image_size=(c.model.swin.img_size,) * 2,
                            samples_per_segment=c.model.htsat.sample_rate,
                            sample_rate=c.model.htsat.sample_rate)

  c.epochs = 80
  c.batch_size = 8
  c.optim.lr = 1e-4
  c.optim.schedule.update(kind="step", unit="epoch", every=8, gamma=0.1)
  c.optim.accum_steps = 1
  c.optim.accum_mode = "sum"
  c.eval.select_split = "val"   # the reference selects on val (no quirk here)
  c.eval.report_split = "test"
  c.eval.early_stop_epochs = 3
  if arg.runlocal:
    c.epochs = 2
  return common.finalize(c, arg)


def get_hyper(hyper):
  """The ablation table on AVQA, three seeds a row (no `no_temporal`: AVST has no
  AVE-style temporal gate):

      python -m dgsct_jax.sweep --config=configs/avqa.py:variant=large --root=...
  """
  return ablations.sweep(hyper, seeds=(1, 2, 3), skip=("no_temporal",))
