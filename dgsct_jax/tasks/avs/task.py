"""AVS as a Task (scoring; the model comes with the AVS issue).

Predictions (`python -m dgsct_jax.score --task=avs --predictions=F`), .npz:
`logits` and binary `masks`, (videos, T, H, W) in CSV order. Batching is the
reference test loader's (`--batch_size` videos, default 4; M_F takes its best
threshold per batch).
"""
from dgsct_jax.metrics import avs
from dgsct_jax.tasks import base
from dgsct_jax.tasks import predictions_file


class AVS(base.Task):
  """M_J (mIoU) and M_F of the predicted masks (percent)."""

  name = "avs"
  scoring_options = ("batch_size", "frames_per_video")

  def metrics(self, batch_size: int = 4, frames_per_video: int = 5, **options):
    del options
    return avs.AVSMetrics(batch_size=batch_size, frames_per_video=frames_per_video)

  def summary(self, result):
    return (f"M_J (mIoU) {result['miou']:.2f}  M_F {result['fmeasure']:.2f}  "
            f"[per-frame mIoU {result['miou_per_frame']:.2f}, "
            f"batch-free M_F {result['fmeasure_dataset']:.2f}]")

  def read_predictions(self, path, **options):
    del options
    data = predictions_file.load(path)
    predictions_file.need(data, ("logits", "masks"), path)
    return {"logits": data["logits"], "masks": data["masks"]}
