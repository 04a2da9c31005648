"""AVE segment accuracy, as the reference scores it (`compute_accuracy_supervised` in
`DG-SCT/AVE/main_trans.py`; spec dgsct_core.md §4.5).

A segment's prediction is the video's argmax(event_scores) where
sigmoid(is_event) > 0.5 (strictly), else background, the index after the last
event class (28 for AVE; the label layout of every dataset here). The batch
functions are pure jnp (jit-able) and accept numpy; `SegmentAccuracy`
accumulates a split on the host.
"""
import jax
import jax.numpy as jnp
import numpy as np

from dgsct_jax.metrics import checks


def segment_classes(labels):
  """(B, T, K + 1) one-hot labels → (B, T) class per segment (K = background)."""
  return jnp.argmax(jnp.asarray(labels), axis=-1)


def segment_predictions(is_event_scores, event_scores, *, threshold: float = 0.5):
  """(B, T) predicted class per segment (module docstring)."""
  is_event = jax.nn.sigmoid(jnp.asarray(is_event_scores, jnp.float32)) > threshold
  event_scores = jnp.asarray(event_scores)
  event_class = jnp.argmax(event_scores, axis=-1)
  return jnp.where(is_event, event_class[:, None], event_scores.shape[-1])


def segment_correct(is_event_scores, event_scores, labels, *, threshold: float = 0.5):
  """(B, T) bool: prediction equals the argmax of the label row."""
  pred = segment_predictions(is_event_scores, event_scores, threshold=threshold)
  return pred == segment_classes(labels)


def video_accuracy(is_event_scores, event_scores, labels, *, threshold: float = 0.5):
  """(B,) percent of correct segments per video."""
  correct = segment_correct(is_event_scores, event_scores, labels, threshold=threshold)
  return 100.0 * correct.mean(axis=-1, dtype=jnp.float32)


def segment_accuracy(is_event_scores, event_scores, labels, *, threshold: float = 0.5):
  """Percent of correct segments pooled over the batch (`compute_accuracy_supervised`)."""
  correct = segment_correct(is_event_scores, event_scores, labels, threshold=threshold)
  return 100.0 * correct.mean(dtype=jnp.float32)


def segment_counts(is_event_scores, event_scores, labels, *, threshold: float = 0.5, mask=None):
  """(correct, total) segment counts of a batch, for accumulation over an epoch.

  Integer counts; `mask` (B,) (nonzero = real video) drops the padded videos of a
  fixed-shape last batch.
  """
  correct = segment_correct(is_event_scores, event_scores, labels, threshold=threshold)
  keep = jnp.ones(correct.shape[:1], bool) if mask is None else jnp.asarray(mask, bool)
  per_video = jnp.where(keep, correct.sum(axis=-1), 0)
  return per_video.sum(), keep.sum() * correct.shape[-1]


def epoch_accuracy(batch_correct, batch_total, *, average: str = "segments") -> float:
  """Accuracy (percent) of an evaluation pass from per-batch `segment_counts`.

  `average="segments"`: correct / total over all segments — the number `test.sh`
  reports (batch size 1, where both averages coincide).
  `average="batches"`: mean of the per-batch accuracies — the reference's running
  `mean_acc` in its in-training evaluation (batch 8), which selects the checkpoint;
  it over-weights the last, smaller batch (spec §4.5).
  """
  correct = np.asarray(batch_correct, np.float64)
  total = np.asarray(batch_total, np.float64)
  if correct.shape != total.shape or correct.size == 0:
    raise ValueError(f"need equal, non-empty per-batch counts, got {correct.shape}, {total.shape}")
  if average == "segments":
    return float(100.0 * correct.sum() / total.sum())
  if average == "batches":
    return float(np.mean(100.0 * correct / total))
  raise ValueError(f"average must be 'segments' or 'batches', got {average!r}")


class SegmentAccuracy:
  """Segment accuracy pooled over a split, and the majority-class baseline.

  `update(rows)` takes `pred` and `target` (N, T) class ids (`segment_predictions`,
  `segment_classes`), in [0, num_classes) when `num_classes` (events + background)
  is given. `result()`: `accuracy` (percent of correct segments, the number
  `test.sh` reports), `segments`, `majority_baseline` (percent of segments of the
  most frequent target class) and `majority_class`.
  """

  def __init__(self, num_classes: int | None = None):
    self.num_classes = num_classes
    self.correct = 0
    self.total = 0
    self.counts = np.zeros(0, np.int64)

  def update(self, rows: dict[str, np.ndarray]) -> None:
    for key in ("pred", "target"):
      if key not in rows:
        raise KeyError(f"AVE segment accuracy needs {key!r} rows; got {sorted(rows)}")
    pred = checks.class_ids(rows["pred"], "pred", self.num_classes)
    target = checks.class_ids(rows["target"], "target", self.num_classes)
    if pred.shape != target.shape:
      raise ValueError(f"pred {pred.shape} and target {target.shape} must have the same shape")
    self.correct += int((pred == target).sum())
    self.total += target.size
    self.counts = np.pad(self.counts, (0, max(0, int(target.max(initial=0)) + 1 - self.counts.size)))
    self.counts += np.bincount(target.reshape(-1), minlength=self.counts.size)

  def result(self) -> dict[str, float]:
    if self.total == 0:
      raise ValueError("no segments were scored (empty split?)")
    return {"accuracy": 100.0 * self.correct / self.total, "segments": self.total,
            "majority_baseline": 100.0 * self.counts.max() / self.total,
            "majority_class": int(self.counts.argmax())}
