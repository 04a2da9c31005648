"""AVS as a Task (scoring; the model comes with the AVS issue).

Predictions (`python -m dgsct_jax.score --task=avs --predictions=F`), .npz:
`logits` and binary `masks`, (videos, T, H, W) in CSV order. Batching is the
reference test loader's (`--batch_size` videos, default 4; M_F takes its best
threshold per batch). With `--annotations` (the AVSBench meta CSV,
s4_meta_data.csv or ms3_meta_data.csv) the file must hold every video of
`--split` (default test); fewer are scored only with `--allow_subset` (and
reported as a subset).
"""
from dgsct_jax.metrics import avs
from dgsct_jax.tasks import base
from dgsct_jax.tasks import predictions_file


class AVS(base.Task):
  """M_J (mIoU) and M_F of the predicted masks (percent)."""

  name = "avs"
  scoring_options = ("batch_size", "frames_per_video", "annotations", "split", "allow_subset")

  def metrics(self, batch_size: int = 4, frames_per_video: int = 5, **options):
    del options
    return avs.AVSMetrics(batch_size=batch_size, frames_per_video=frames_per_video)

  def summary(self, result):
    return (f"M_J (mIoU) {result['miou']:.2f}  M_F {result['fmeasure']:.2f}  "
            f"[per-frame mIoU {result['miou_per_frame']:.2f}, "
            f"batch-free M_F {result['fmeasure_dataset']:.2f}]")

  def read_predictions(self, path, annotations=None, split: str = "test", allow_subset=False,
                       frames_per_video: int = 5, **options):
    del options
    data = predictions_file.load(path)
    predictions_file.need(data, ("logits", "masks"), path)
    rows = {"logits": data["logits"], "masks": data["masks"]}
    if annotations is None:
      return rows
    # Imported here: the AVSBench builder module brings tensorflow_datasets.
    from dgsct_jax.data.datasets import avsbench  # pylint: disable=import-outside-toplevel
    total = sum(row.split == split for row in avsbench.read_meta(annotations))
    logits = data["logits"]
    if logits.ndim == 3 and len(logits) % frames_per_video:
      raise ValueError(f"{path}: {len(logits)} frames are not whole videos of "
                       f"{frames_per_video} frames")
    videos = len(logits) if logits.ndim == 4 else len(logits) // frames_per_video
    return predictions_file.covering(rows, path, scored=videos, total=total,
                                     what=f"{split} videos of {annotations}",
                                     allow_subset=allow_subset)
