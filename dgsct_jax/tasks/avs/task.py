"""AVS as a Task: a sounding-object mask for each of a video's five frames (AVSBench S4 / MS3).

Config (configs/avs.py): `model` (presets.avs: the subset fixes the adapters, γ and
whether HTS-AT trains), `loss.bce_frames` ('first': S4's BCE on the first frame, the
only one its training split annotates; 'all': MS3's) and `loss.kl_weight` (MS3's 0.5
audio–masked-visual term), `metric.batch_size` (videos per M_F batch: the reference
test loader's 4).

Predictions: the trainer's `predictions.jsonl` holds one row per video: `name` and the
per-frame numbers both metrics are made of (`metrics.avs.frame_stats`: `iou` (5,),
`f_curve` (5, 255), `nonempty` (5,)), which score exactly as the masks they come from;
or an .npz (`python -m dgsct_jax.score --task=avs --predictions=F`): `logits` and binary
`masks`, (videos, T, H, W) in CSV order. Batching is the reference test loader's
(`--batch_size` videos, default 4; M_F takes its best threshold per batch). With
`--annotations` (the AVSBench meta CSV, s4_meta_data.csv or ms3_meta_data.csv) the
file must hold every video of `--split` (default test); fewer are scored only with
`--allow_subset` (and reported as a subset).
"""
import pathlib

import numpy as np
from flax import nnx

from dgsct_jax.metrics import avs
from dgsct_jax.models import avs as avs_model
from dgsct_jax.tasks import base
from dgsct_jax.tasks import predictions_file
from dgsct_jax.tasks.avs import figure
from dgsct_jax.tasks.avs import losses as avs_losses

T = 5  # frames (one-second segments) per video


def mask_size(model_config) -> int:
  """Side of the decoder's masks (224 at the reference sizes): 4× its first stage grid.
  Frames come at this size too (the model resizes them for Swin)."""
  return 4 * model_config.head.feature_sizes[0]


class AVS(base.Task):
  """M_J (mIoU) and M_F of the predicted masks (percent); the best checkpoint has the
  highest M_J (the reference's choice)."""

  name = "avs"
  selection_metric = "miou"
  selection_mode = "max"
  scoring_options = ("batch_size", "frames_per_video", "annotations", "split", "allow_subset")

  def batch_spec(self) -> dict[str, base.Field]:
    model = self.config.model
    size = mask_size(model)
    return {
        "frames": base.Field((T, 3, size, size), "float32", base.INPUT),
        "audio": base.Field((T, model.htsat.sample_rate), "float32", base.INPUT),
        "masks": base.Field((T, size, size), "float32", base.TARGET),
        "name": base.Field((), "str", base.HOST),
    }

  def build_model(self, rngs):
    return avs_model.AVSModel(self.config.model, rngs=rngs)

  def apply(self, model, inputs, *, deterministic, rngs):
    return model(inputs["audio"], inputs["frames"], deterministic=deterministic, rngs=rngs)

  def losses(self, outputs, batch):
    return avs_losses.losses(outputs, batch["masks"], **self.config.loss)

  def eval_outputs(self, outputs, batch):
    masks = batch["masks"]
    return {"logits": outputs["pred"][..., 0].reshape(masks.shape), "masks": masks}

  def metrics(self, batch_size: int | None = None, frames_per_video: int = T, **options):
    """The reference's test scoring, `batch_size` videos per batch (default: the run's
    `metric.batch_size`, or 4 when scoring)."""
    del options
    if batch_size is None:
      batch_size = self.config.metric.batch_size if self.config is not None else 4
    return avs.AVSMetrics(batch_size=batch_size, frames_per_video=frames_per_video)

  def summary(self, result):
    line = (f"M_J (mIoU) {result['miou']:.2f}  M_F {result['fmeasure']:.2f}  "
            f"[per-frame mIoU {result['miou_per_frame']:.2f}, "
            f"batch-free M_F {result['fmeasure_dataset']:.2f}]")
    if "baseline_miou_per_frame" in result:
      line += f" (whole-frame masks: per-frame mIoU {result['baseline_miou_per_frame']:.2f})"
    return line

  def prediction_rows(self, outputs, host):
    """One row per video: `name` and its frames' `frame_stats` (module docstring)."""
    stats = avs.frame_stats(outputs["logits"], outputs["masks"])
    return super().prediction_rows(stats, host)

  def read_predictions(self, path, annotations=None, split: str = "test", allow_subset=False,
                       frames_per_video: int = T, **options):
    del options
    data = predictions_file.load(path)
    if "iou" in data and "logits" not in data:
      predictions_file.need(data, avs.FRAME_STATS, path)
      rows = {k: data[k] for k in avs.FRAME_STATS}
      lead = data["iou"].shape                   # (videos, T) or (frames,)
    else:
      predictions_file.need(data, ("logits", "masks"), path)
      rows = {"logits": data["logits"], "masks": data["masks"]}
      lead = data["logits"].shape[:-2]
    if annotations is None:
      return rows
    # Imported here: the AVSBench builder module brings tensorflow_datasets.
    from dgsct_jax.data.datasets import avsbench  # pylint: disable=import-outside-toplevel
    total = sum(row.split == split for row in avsbench.read_meta(annotations))
    if len(lead) == 1 and lead[0] % frames_per_video:
      raise ValueError(f"{path}: {lead[0]} frames are not whole videos of "
                       f"{frames_per_video} frames")
    videos = lead[0] if len(lead) == 2 else lead[0] // frames_per_video
    return predictions_file.covering(rows, path, scored=videos, total=total,
                                     what=f"{split} videos of {annotations}",
                                     allow_subset=allow_subset)

  def figure(self, model, source, workdir) -> pathlib.Path | None:
    """masks.png: true and predicted masks over the frames of the first videos."""
    num_videos = min(self.config.figure.num_videos, len(source))
    if not num_videos:
      return None
    elements = [source[i] for i in range(num_videos)]
    frames = np.stack([e["frames"] for e in elements])
    pred = _predict(model, np.stack([e["audio"] for e in elements]), frames)
    logits = np.asarray(pred[..., 0]).reshape((num_videos,) + elements[0]["masks"].shape)
    rows = [{"name": e["name"], "frames": e["frames"], "masks": e["masks"], "logits": logits[i]}
            for i, e in enumerate(elements)]
    return figure.draw(rows, pathlib.Path(workdir) / "masks.png")


@nnx.jit
def _predict(model, audio, frames):
  return model(audio, frames, deterministic=True)["pred"]
