r"""The README's first command: tiny DG-SCT on embedded synthetic data, on a CPU.

    make demo             # = python -m dgsct_jax.main --config=configs/demo.py --workdir=runs/demo
    make demo TASK=avvp   # = ... --config=configs/demo.py:task=avvp --workdir=runs/demo_avvp
    make demo TASK=avs    # = ... --config=configs/demo.py:task=avs --workdir=runs/demo_avs
    make demo TASK=avqa   # = ... --config=configs/demo.py:task=avqa --workdir=runs/demo_avqa

1. pretrains the tiny Swin-V2 and HTS-AT encoders on the synthetic AVE training split
   (dgsct_jax/pretrain.py) into <workdir>/encoders/ unless they are there already
   (the synthetic AVE and LLP sources share their classes: shapes, colours, tones);
2. trains tiny DG-SCT (adapters + the task's head) on top of those frozen encoders;
3. evaluates the best checkpoint on the synthetic test split, prints the task's metric
   next to a trivial baseline's, and writes predictions.jsonl, result.json and the
   task's figure into the workdir.

Tasks: `ave` (event localisation: segment accuracy vs the majority class;
attention.png), `avvp` (video parsing on LLP-shaped videos with audio-only,
visual-only and audio-visual events: the ten AVVP F-scores vs the most frequent
class everywhere; timelines.png) and `avs` (S4-style segmentation of the one sounding
object among up to three on screen, `synthetic_avs.py`: M_J and M_F vs whole-frame
masks; masks.png) and `avqa` (templated questions about who plays, how many and where,
`synthetic_avqa.py`: accuracy per question type vs the majority answer of each type;
grounding.png).

The recipe is the clean variant of configs/<task>.py (eval-mode encoders, model
selection on the validation split) with demo-sized data and a shorter schedule.
Arguments: `task=ave|avvp|avs|avqa`, `ablation=<name>` trains a row of configs/ablations.py
instead (the demo's comparison table), `epochs=N` (default: the task's), `seed=N`.
"""
import ml_collections

from configs import ave
from configs import avqa
from configs import avs
from configs import avvp
from dgsct_jax import config_utils

NUM_CLASSES = 6


# task → (its config module, the synthetic source, epochs, lr halved every k epochs)
TASKS = {"ave": (ave, "synthetic", 4, 2), "avvp": (avvp, "synthetic/llp", 10, 4),
         "avs": (avs, "synthetic/avs", 4, 2), "avqa": (avqa, "synthetic/avqa", 6, 3)}
NAMES_CLASSES = ("ave", "avvp")  # AVS predicts one mask, AVQA one of its 42 answers


def get_config(arg=None):
  arg = config_utils.parse_arg(arg, choices={"task": tuple(TASKS)}, task="ave", ablation="",
                               epochs=0, seed=43)
  module, data, epochs, halve_every = TASKS[arg.task]
  c = module.get_config(f"variant=tiny,data={data},clean,seed={arg.seed},"
                        f"ablation={arg.ablation}")
  if arg.task in NAMES_CLASSES:
    c.model.num_classes = NUM_CLASSES
  c.data.synthetic.num_classes = NUM_CLASSES
  c.data.sizes = {"train": 512, "val": 96, "test": 128}
  c.data.read_threads = 2
  c.epochs = arg.epochs or epochs
  c.batch_size = 8
  c.optim.lr = 1e-3
  c.optim.accum_steps = 1
  c.optim.schedule.update(kind="step", unit="epoch", every=halve_every, gamma=0.5)
  c.eval.batch_size = 16
  c.eval.early_stop_epochs = 0
  c.eval.predict_after_train = True
  c.ckpt.every_steps = 100
  c.log.every_steps = 16
  if arg.task == "ave":
    c.figure.update(num_videos=3, num_segments=5)

  c.pretrain = ml_collections.ConfigDict(dict(
      steps=120, batch_size=32, lr=1e-3, videos=160, eval_videos=32, seed=0,
      encoders={"visual": {"arch": "swinv2", "input": "frames", "final_norm": True},
                "audio": {"arch": "htsat", "input": "audio", "final_norm": False}}))
  return c


def get_hyper(hyper):
  """The demo sweep: the full model against the frozen encoders without DG-SCT's adapters,
  two seeds each, one epoch, on encoders pretrained for 20 of the demo's 120 steps (once,
  for all points). On this synthetic data the two stay within their seed spread (see the
  README): the audio encoder alone already tells the classes apart.

      python -m dgsct_jax.sweep --config=configs/demo.py --root=runs/demo_sweep
      python -m dgsct_jax.sweep collect --root=runs/demo_sweep
  """
  return hyper.product([hyper.fixed("epochs", 1), hyper.fixed("config.pretrain.steps", 20),
                        hyper.sweep("ablation", ["", "frozen_baseline"]),
                        hyper.sweep("seed", [43, 44])])
