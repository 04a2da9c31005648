r"""The README's first command: tiny DG-SCT on the embedded synthetic dataset, on a CPU.

    make demo        # = python -m dgsct_jax.main --config=configs/demo.py --workdir=runs/demo

1. pretrains the tiny Swin-V2 and HTS-AT encoders on the synthetic training split
   (dgsct_jax/pretrain.py) into <workdir>/encoders/ unless they are there already;
2. trains tiny DG-SCT (adapters + AVE head) on top of those frozen encoders;
3. evaluates the best checkpoint on the synthetic test split, prints the segment
   accuracy next to the majority-class baseline, and writes predictions.jsonl,
   result.json and attention.png (spatial attention maps) into the workdir.

The recipe is the clean variant of configs/ave.py (eval-mode encoders, model
selection on the validation split) with demo-sized data and a shorter schedule.
Arguments: `:ablation=<name>` trains a row of configs/ablations.py instead (the
demo's comparison table), `epochs=N`, `seed=N`.
"""
import ml_collections

from configs import ave
from dgsct_jax import config_utils

NUM_CLASSES = 6


def get_config(arg=None):
  arg = config_utils.parse_arg(arg, ablation="", epochs=4, seed=43)
  c = ave.get_config(f"variant=tiny,data=synthetic,clean,seed={arg.seed},"
                     f"ablation={arg.ablation}")
  c.model.num_classes = NUM_CLASSES
  c.data.synthetic.update(num_classes=NUM_CLASSES, image_size=(c.model.swin.img_size,) * 2,
                          samples_per_segment=c.model.htsat.sample_rate)
  c.data.sizes = {"train": 512, "val": 96, "test": 128}
  c.data.read_threads = 2
  c.epochs = arg.epochs
  c.batch_size = 8
  c.optim.lr = 1e-3
  c.optim.accum_steps = 1
  c.optim.schedule.update(kind="step", unit="epoch", every=2, gamma=0.5)
  c.eval.batch_size = 16
  c.eval.early_stop_epochs = 0
  c.eval.predict_after_train = True
  c.ckpt.every_steps = 100
  c.log.every_steps = 16
  c.figure.update(num_videos=3, num_segments=5)

  c.pretrain = ml_collections.ConfigDict(dict(
      steps=120, batch_size=32, lr=1e-3, videos=160, eval_videos=32, seed=0,
      encoders={"visual": {"arch": "swinv2", "input": "frames", "final_norm": True},
                "audio": {"arch": "htsat", "input": "audio", "final_norm": False}}))
  return c
