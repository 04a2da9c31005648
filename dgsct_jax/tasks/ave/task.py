"""AVE as a Task: 10 one-second segments per video, an event class or background each.

Config (configs/ave.py): `model` (presets.ave), `loss.gate_on_logits` (the
reference's double-squashed gate loss, faithful True), `figure.num_videos` /
`figure.num_segments` (the attention figure of predict).
"""
import pathlib

from dgsct_jax.metrics import ave as ave_metrics
from dgsct_jax.models import ave as ave_model
from dgsct_jax.models import presets
from dgsct_jax.tasks import base
from dgsct_jax.tasks.ave import figure
from dgsct_jax.tasks.ave import losses as ave_losses

NUM_SEGMENTS = 10


class AVE(base.Task):
  """Segment-level event localisation, scored by segment accuracy (percent)."""

  name = "ave"
  selection_metric = "accuracy"
  selection_mode = "max"

  def batch_spec(self) -> dict[str, base.Field]:
    model = self.config.model
    size = model.swin.img_size
    return {
        "frames": base.Field((NUM_SEGMENTS, 3, size, size), "float32", base.INPUT),
        "audio": base.Field((NUM_SEGMENTS, model.htsat.sample_rate), "float32", base.INPUT),
        "label": base.Field((NUM_SEGMENTS, model.num_classes + 1), "float32", base.TARGET),
        "video_id": base.Field((), "str", base.HOST),
    }

  def build_model(self, rngs):
    return ave_model.AVEModel(self.config.model, rngs=rngs)

  def losses(self, outputs, batch):
    return ave_losses.losses(outputs, batch["label"],
                             gate_loss_on_logits=self.config.loss.gate_on_logits)

  def eval_outputs(self, outputs, batch):
    return {"pred": ave_metrics.segment_predictions(outputs["is_event_scores"],
                                                    outputs["event_scores"]),
            "target": ave_metrics.segment_classes(batch["label"])}

  def metrics(self, **options):
    """Segment accuracy over ids in [0, events + 1): the run's classes, or AVE's when scoring."""
    del options
    model = self.config.model if self.config is not None else presets.ave()
    return ave_metrics.SegmentAccuracy(num_classes=model["num_classes"] + 1)

  def summary(self, result):
    return (f"segment accuracy: {result['accuracy']:.2f}%  (majority-class baseline: "
            f"{result['majority_baseline']:.2f}%, {result['segments']} segments)")

  def figure(self, model, source, workdir) -> pathlib.Path | None:
    """attention.png: the last adapters' spatial pooling maps over the first videos."""
    num_videos = min(self.config.figure.num_videos, len(source))
    if not num_videos:
      return None
    return figure.draw(model, [source[i] for i in range(num_videos)],
                       pathlib.Path(workdir) / "attention.png",
                       num_segments=self.config.figure.num_segments)
