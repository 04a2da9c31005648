"""A task defined outside dgsct_jax (tests only): video classification from frames alone.

It proves that the trainer, evaluation, predict and the scoring CLI take any
Task by dotted path (`--config.task=toy_task:VideoClassification`): its batch
reads only `frames`, `label` and `video_id` of the synthetic AVE-format data,
its model and metric are its own, and it selects the best checkpoint on an
error rate (lower is better). Model config: the stand-in's (`dim`,
`image_size`, `num_classes`).
"""
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dgsct_jax import losses
from dgsct_jax.models import layers
from dgsct_jax.tasks import base

NUM_SEGMENTS = 10


class FrameClassifier(nnx.Module):
  """A frozen random projection of each frame, averaged over time, and a trainable classifier."""

  def __init__(self, config, *, rngs):
    self.encoder = layers.linear(3 * config.image_size ** 2, config.dim, rngs=rngs)
    self.classifier = layers.mark_trainable(layers.linear(config.dim, config.num_classes,
                                                          rngs=rngs))

  def __call__(self, frames, *, deterministic=True, rngs=None):
    del deterministic, rngs
    b, t = frames.shape[:2]
    h = jnp.tanh(self.encoder(frames.reshape(b, t, -1))).mean(axis=1)
    return {"logits": self.classifier(h)}


def video_class(labels):
  """The event class of each video: the foreground class with the most segments."""
  return jnp.argmax(jnp.asarray(labels)[..., :-1].sum(axis=1), axis=-1)


class ErrorRate:
  def __init__(self):
    self.wrong = self.total = 0

  def update(self, rows):
    self.wrong += int((np.asarray(rows["pred"]) != np.asarray(rows["target"])).sum())
    self.total += len(rows["pred"])

  def result(self):
    return {"error": 100.0 * self.wrong / self.total, "videos": self.total}


class VideoClassification(base.Task):
  name = "toy"
  selection_metric = "error"
  selection_mode = "min"

  def batch_spec(self):
    m = self.config.model
    return {"frames": base.Field((NUM_SEGMENTS, 3, m.image_size, m.image_size), "float32",
                                 base.INPUT),
            "label": base.Field((NUM_SEGMENTS, m.num_classes + 1), "float32", base.TARGET),
            "video_id": base.Field((), "str", base.HOST)}

  def build_model(self, rngs):
    return FrameClassifier(self.config.model, rngs=rngs)

  def losses(self, outputs, batch):
    return {"total": losses.cross_entropy(outputs["logits"], video_class(batch["label"]))}

  def eval_outputs(self, outputs, batch):
    return {"pred": jnp.argmax(outputs["logits"], -1), "target": video_class(batch["label"])}

  def metrics(self, **options):
    return ErrorRate()

  def summary(self, result):
    return f"video error {result['error']:.2f}% ({result['videos']} videos)"
