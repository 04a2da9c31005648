"""AVE (supervised audio-visual event localisation): targets, losses, segment accuracy.

Reference: `train`, `eval` and `compute_accuracy_supervised` in
`DG-SCT/AVE/main_trans.py`; spec dgsct_core.md §4.3, §4.5, §8.5.

Labels are the dataset's (B, T, 29) one-hot rows, class 28 = background.
Model outputs are the batch-major dict of `models.ave_head.AVEHead`:
`is_event_scores` (B, T), `event_scores` (B, 28), `audio_visual_gate` (B, T),
`av_score` (B, 28). Every function is pure jnp (jit-able) and accepts numpy.
"""
import jax
import jax.numpy as jnp
import numpy as np

def targets(labels):
  """(B, T, 29) one-hot labels → the reference's training and evaluation targets.

  `segment_is_event` (B, T) float: max over the 28 foreground entries (1 on event segments).
  `video_class` (B,) int: max over time of the per-segment argmax of the foreground part
  (background segments give argmax 0, so a video with events gets its event class).
  `segment_class` (B, T) int: argmax of the 29-way row (28 = background), the accuracy target.
  Argmax ties resolve to the first index, as in PyTorch.
  """
  labels = jnp.asarray(labels)
  foreground = labels[..., :-1]
  return {
      "segment_is_event": foreground.max(axis=-1).astype(jnp.float32),
      "video_class": jnp.argmax(foreground, axis=-1).max(axis=-1),
      "segment_class": jnp.argmax(labels, axis=-1),
  }


def bce_with_logits(logits, target):
  """`nn.BCEWithLogitsLoss()` (mean): max(x, 0) − x·y + log(1 + e^−|x|)."""
  logits = jnp.asarray(logits, jnp.float32)
  per_item = jnp.maximum(logits, 0) - logits * target + jnp.log1p(jnp.exp(-jnp.abs(logits)))
  return per_item.mean()


def bce(probabilities, target):
  """`nn.BCELoss()` (mean), with PyTorch's clamp of the logs at −100."""
  p = jnp.asarray(probabilities, jnp.float32)
  log_p = jnp.maximum(jnp.log(p), -100.0)
  log_1mp = jnp.maximum(jnp.log1p(-p), -100.0)
  return -(target * log_p + (1 - target) * log_1mp).mean()


def cross_entropy(logits, label):
  """`nn.CrossEntropyLoss()` (mean) with integer class labels."""
  log_probs = jax.nn.log_softmax(jnp.asarray(logits, jnp.float32), axis=-1)
  return -jnp.take_along_axis(log_probs, label[:, None].astype(jnp.int32), axis=-1).mean()


def losses(outputs: dict, labels, *, gate_loss_on_logits: bool = True) -> dict:
  """The four equally weighted AVE losses and their sum (`total`).

  `gate_loss_on_logits=True` (faithful, spec §8.5): the reference feeds
  `audio_visual_gate`, already a product of two sigmoids in (0, 1), to
  BCE-*with-logits*, i.e. squashes it a second time (inherited from CMBS).
  `False` uses plain BCE on the gate as a probability.
  """
  t = targets(labels)
  seg = t["segment_is_event"]
  gate = outputs["audio_visual_gate"]
  out = {
      "is_event": bce_with_logits(outputs["is_event_scores"], seg),
      "gate": bce_with_logits(gate, seg) if gate_loss_on_logits else bce(gate, seg),
      "event_class": cross_entropy(outputs["event_scores"], t["video_class"]),
      "cas": cross_entropy(outputs["av_score"], t["video_class"]),
  }
  out["total"] = out["is_event"] + out["gate"] + out["event_class"] + out["cas"]
  return out


def segment_predictions(is_event_scores, event_scores, *, threshold: float = 0.5):
  """(B, T) predicted class per segment: the video's argmax(event_scores) where
  sigmoid(is_event) > threshold (strictly), else background, the index after the
  last event class (28 for AVE; the label layout of every dataset here)."""
  is_event = jax.nn.sigmoid(jnp.asarray(is_event_scores, jnp.float32)) > threshold
  event_scores = jnp.asarray(event_scores)
  event_class = jnp.argmax(event_scores, axis=-1)
  return jnp.where(is_event, event_class[:, None], event_scores.shape[-1])


def segment_correct(is_event_scores, event_scores, labels, *, threshold: float = 0.5):
  """(B, T) bool: prediction equals the argmax of the 29-way label."""
  pred = segment_predictions(is_event_scores, event_scores, threshold=threshold)
  return pred == targets(labels)["segment_class"]


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
