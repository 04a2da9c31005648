"""Trainer configs around the stand-in model (tests only): the official recipe's
trainer section with tiny synthetic data and a model small enough for CI."""
import ml_collections

from configs import common

IMAGE, SAMPLES, CLASSES = 8, 64, 4


def standin_config(arg: str = "variant=tiny", **overrides):
  c = common.trainer_config(common.parse(arg, data="synthetic", seed=43))
  c.task = "standin_model:StandInAVE"
  c.model = ml_collections.ConfigDict(dict(num_classes=CLASSES, dim=16, image_size=IMAGE,
                                           samples=SAMPLES, dropout=0.1,
                                           encoder_train_mode=True))
  c.loss = ml_collections.ConfigDict({"gate_on_logits": True})
  c.init_from = ml_collections.ConfigDict()
  c.data.synthetic.update(num_classes=CLASSES, image_size=(IMAGE, IMAGE),
                          samples_per_segment=SAMPLES, sample_rate=SAMPLES)
  c.data.sizes = {"train": 32, "val": 8, "test": 8}
  c.data.read_threads = 1
  c.batch_size, c.eval.batch_size, c.epochs = 8, 8, 2
  c.ckpt.every_steps, c.log.every_steps = 2, 1
  c.log.progress = False
  for key, value in overrides.items():
    node = c
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  c.lock()
  return c
