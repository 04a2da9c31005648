"""AVS (AVSBench S4/MS3) metrics: M_J (mIoU) and M_F (F-measure), as the reference scores them.

Reference: `DG-SCT/AVS/avs_scripts/avs_{s4,ms3}/utils/utility.py` (`mask_iou`,
`Eval_Fmeasure`, `_eval_pr`) aggregated by `test.py` with `AverageMeter`.
Spec: dgsct_tasks.md §2.4.

Both metrics are defined per *batch* of frames (test batch 4 videos = 20
frames) and the dataset value is the mean over batches:
* M_J: per frame IoU of 1[sigmoid(logit) > 0.5] with the GT, or for an empty
  GT the true-negative fraction; batch value = mean over its frames.
* M_F: per frame with a non-empty GT, F_β (β² = 0.3) at 255 thresholds
  (s ≥ τ_k); average over the batch's non-empty frames, then **max over k per
  batch**. A batch without a non-empty frame contributes 0. So M_F depends on
  the batch size; `evaluate_dataset` reproduces the reference batching (CSV
  order, last batch partial) and also reports `fmeasure_dataset`, the same
  curve averaged over all non-empty frames of the split before the max, which
  does not depend on batch size (not the paper's number).

Arithmetic is float32 as in the reference: sigmoid, the thresholds of
`torch.linspace(0, 1 - 1e-10, 255)` (whose last value rounds to 1.0), the
1e-20 and 1e-7 epsilons, and the order of the F formula. Counts per threshold
come from a sort + search instead of 255 comparisons per pixel, which is exact.
Values are returned in percent.
"""
from typing import Sequence

import numpy as np

from dgsct_jax.metrics import checks

BETA2 = 0.3
NUM_THRESHOLDS = 255


def sigmoid(logits) -> np.ndarray:
  """float32 logistic, as `torch.sigmoid` on a float32 tensor."""
  x = np.asarray(logits, np.float32)
  with np.errstate(over="ignore"):
    return (np.float32(1) / (np.float32(1) + np.exp(-x))).astype(np.float32)


def thresholds(num: int = NUM_THRESHOLDS) -> np.ndarray:
  """float32 `torch.linspace(0, 1 - 1e-10, num)`, bit for bit.

  torch fills the first half as start + step·i and the second half as
  end − step·(num − 1 − i), each with one rounding (fused multiply-add); the
  float32 end is exactly 1.0.
  """
  end = np.float32(1 - 1e-10)
  step = np.float64(end / np.float32(num - 1))
  i = np.arange(num)
  first = step * i
  second = np.float64(end) - step * (num - 1 - i)
  return np.where(i < num // 2, first, second).astype(np.float32)


def _frames(x, name: str) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim == 4:  # (B, T, H, W) → (B·T, H, W)
    x = x.reshape((-1,) + x.shape[2:])
  if x.ndim != 3:
    raise ValueError(f"{name} must be (frames, H, W) or (videos, T, H, W), got {x.shape}")
  return x


def frame_iou(logits, masks, *, eps: float = 1e-7) -> np.ndarray:
  """Per-frame IoU (N,) float32 with the reference's empty-mask rule.

  Prediction = sigmoid(logit) > 0.5 (strict). Non-empty GT: |P∧G|/(|P∨G| + eps).
  Empty GT: |¬P∧¬G|/(H·W + eps), the fraction of true-negative pixels.
  """
  p = _frames(logits, "logits")
  g = _frames(masks, "masks") > 0
  if p.shape != g.shape:
    raise ValueError(f"logits {p.shape} and masks {g.shape} differ")
  pred = sigmoid(p) > np.float32(0.5)
  inter = (pred & g).sum((1, 2)).astype(np.float32)
  union = (pred | g).sum((1, 2)).astype(np.float32)
  empty = ~g.any((1, 2))
  inter = np.where(empty, (~pred & ~g).sum((1, 2)).astype(np.float32), inter)
  union = np.where(empty, np.float32(g.shape[1] * g.shape[2]), union)
  return (inter / (union + np.float32(eps))).astype(np.float32)


def mask_iou(logits, masks, *, eps: float = 1e-7) -> float:
  """The reference `mask_iou` of one batch: mean of `frame_iou` over its frames."""
  iou = frame_iou(logits, masks, eps=eps)
  return float(iou.sum(dtype=np.float32) / np.float32(len(iou)))


def frame_fmeasure(logits, masks, *, num_thresholds: int = NUM_THRESHOLDS,
                   beta2: float = BETA2) -> tuple[np.ndarray, np.ndarray]:
  """Per-frame F curves: (F (N, K) float32, nonempty (N,) bool).

  Rows of empty-GT frames are 0 and flagged False (the reference skips them).
  prec_k = TP/(#pred + 1e-20), rec_k = TP/(#gt + 1e-20),
  F_k = (1 + β²)·prec·rec/(β²·prec + rec), NaN → 0, all float32.
  """
  s = sigmoid(_frames(logits, "logits"))
  g = _frames(masks, "masks") > 0
  if s.shape != g.shape:
    raise ValueError(f"logits {s.shape} and masks {g.shape} differ")
  tau = thresholds(num_thresholds)
  n = s.shape[0]
  s, g = s.reshape(n, -1), g.reshape(n, -1)
  nonempty = g.any(1)
  out = np.zeros((n, num_thresholds), np.float32)
  tiny, b2 = np.float32(1e-20), np.float32(beta2)
  for i in np.nonzero(nonempty)[0]:
    all_sorted, fg_sorted = np.sort(s[i]), np.sort(s[i][g[i]])
    n_pred = (all_sorted.size - np.searchsorted(all_sorted, tau, "left")).astype(np.float32)
    tp = (fg_sorted.size - np.searchsorted(fg_sorted, tau, "left")).astype(np.float32)
    prec = tp / (n_pred + tiny)
    rec = tp / (np.float32(fg_sorted.size) + tiny)
    with np.errstate(invalid="ignore", divide="ignore"):
      f = (np.float32(1 + beta2) * prec * rec) / (b2 * prec + rec)
    out[i] = np.where(np.isnan(f), np.float32(0), f)
  return out, nonempty


def batch_fmeasure(logits, masks, *, num_thresholds: int = NUM_THRESHOLDS,
                   beta2: float = BETA2) -> float:
  """The reference `Eval_Fmeasure` of one batch: max over thresholds of the mean F.

  The mean runs over the batch's non-empty-GT frames (float32, sequential);
  with none, the reference's zero score.
  """
  f, nonempty = frame_fmeasure(logits, masks, num_thresholds=num_thresholds, beta2=beta2)
  if not nonempty.any():
    return 0.0
  total = np.add.accumulate(f[nonempty], axis=0, dtype=np.float32)[-1]
  return float((total / np.float32(nonempty.sum())).max())


class AVSAccumulator:
  """Collects M_J and M_F batch by batch (training-time and standalone evaluation).

  `update(logits, masks)` takes one reference batch, (frames, H, W) or
  (videos, T, H, W). `result()` returns, in percent:
  * `miou`, `fmeasure`: the reference numbers, means over batches;
  * `miou_per_frame`: mean over frames (equal to `miou` when all batches are full);
  * `fmeasure_dataset`: max over thresholds of the F curve averaged over every
    non-empty frame of the split, independent of batch size.
  """

  def __init__(self, *, num_thresholds: int = NUM_THRESHOLDS, beta2: float = BETA2):
    self.num_thresholds, self.beta2 = num_thresholds, beta2
    self.batch_iou: list[float] = []
    self.batch_f: list[float] = []
    self.frame_ious: list[np.ndarray] = []
    self.f_sum = np.zeros((num_thresholds,), np.float64)
    self.f_count = 0

  def update(self, logits, masks) -> dict[str, float]:
    return self.update_frames(**frame_stats(logits, masks, num_thresholds=self.num_thresholds,
                                            beta2=self.beta2))

  def update_frames(self, iou, f_curve, nonempty) -> dict[str, float]:
    """One batch given by its frames' `frame_stats`: the same numbers as `update` on the
    frames' logits and masks."""
    iou = np.asarray(iou, np.float32).reshape(-1)
    f = np.asarray(f_curve, np.float32).reshape(len(iou), -1)
    nonempty = np.asarray(nonempty, bool).reshape(-1)
    self.frame_ious.append(iou)
    self.batch_iou.append(float(iou.sum(dtype=np.float32) / np.float32(len(iou))))
    if nonempty.any():
      total = np.add.accumulate(f[nonempty], axis=0, dtype=np.float32)[-1]
      self.batch_f.append(float((total / np.float32(nonempty.sum())).max()))
    else:
      self.batch_f.append(0.0)
    self.f_sum += f[nonempty].sum(0, dtype=np.float64)
    self.f_count += int(nonempty.sum())
    return {"miou": 100 * self.batch_iou[-1], "fmeasure": 100 * self.batch_f[-1]}

  def result(self) -> dict[str, float]:
    if not self.batch_iou:
      raise ValueError("AVSAccumulator.result() called before any update()")
    frames = np.concatenate(self.frame_ious)
    curve = self.f_sum / max(self.f_count, 1)
    return {
        "miou": 100 * float(np.mean(self.batch_iou)),
        "fmeasure": 100 * float(np.mean(self.batch_f)),
        "miou_per_frame": 100 * float(frames.astype(np.float64).mean()),
        "fmeasure_dataset": 100 * float(curve.max()) if self.f_count else 0.0,
        "num_batches": len(self.batch_iou),
        "num_frames": int(frames.size),
    }


FRAME_STATS = ("iou", "f_curve", "nonempty")


def frame_stats(logits, masks, *, num_thresholds: int = NUM_THRESHOLDS,
                beta2: float = BETA2) -> dict[str, np.ndarray]:
  """The per-frame numbers both metrics are made of, (videos, T, ...) like the inputs:
  `iou` (`frame_iou`), `f_curve` and `nonempty` (`frame_fmeasure`). Rows of these score
  exactly as the logits and masks they come from, at a fraction of the size."""
  lead = np.shape(logits)[:-2]
  f, nonempty = frame_fmeasure(logits, masks, num_thresholds=num_thresholds, beta2=beta2)
  return {"iou": frame_iou(logits, masks).reshape(lead), "f_curve": f.reshape(lead + (-1,)),
          "nonempty": nonempty.reshape(lead)}


class AVSMetrics:
  """The reference's test scoring over rows of whole videos, in CSV order.

  `update(rows)` takes finite `logits` and `masks` (videos, T, H, W) (or frames
  (videos·T, H, W)), T = `frames_per_video`, or their `frame_stats` (`iou`,
  `f_curve`, `nonempty`: (videos, T, ...) or per frame), in any chunks; the frames are
  regrouped into the reference test loader's batches of `batch_size` videos (the last
  may be partial), since M_F takes its best threshold per batch. `result()` is
  `AVSAccumulator.result()`, plus, when given masks, `baseline_miou_per_frame`: the
  per-frame mIoU of the whole frame as every mask (a trivial baseline).
  """

  def __init__(self, *, batch_size: int = 4, frames_per_video: int = 5,
               num_thresholds: int = NUM_THRESHOLDS, beta2: float = BETA2):
    self.frames_per_batch = batch_size * frames_per_video
    self.frames_per_video = frames_per_video
    self.num_thresholds, self.beta2 = num_thresholds, beta2
    self.accumulator = AVSAccumulator(num_thresholds=num_thresholds, beta2=beta2)
    self.pending = {k: [] for k in FRAME_STATS}
    self.pending_frames = 0
    self.baseline_iou = []

  def update(self, rows) -> None:
    stats = self._stats(rows) if "logits" in rows else self._given_stats(rows)
    for key in FRAME_STATS:
      self.pending[key].append(stats[key])
    self.pending_frames += len(stats["iou"])
    while self.pending_frames >= self.frames_per_batch:
      self._score(self.frames_per_batch)

  def _stats(self, rows) -> dict[str, np.ndarray]:
    """Per-frame stats of `logits` and `masks`."""
    for key in ("logits", "masks"):
      x = checks.finite(rows[key], key)
      if x.ndim == 4 and x.shape[1] != self.frames_per_video:
        raise ValueError(f"{key} {x.shape} must hold whole videos of {self.frames_per_video} "
                         "frames (--frames_per_video)")
    p, g = _frames(rows["logits"], "logits"), _frames(rows["masks"], "masks")
    if p.shape != g.shape or p.shape[0] % self.frames_per_video:
      raise ValueError(f"logits {p.shape} and masks {g.shape} must match and hold whole "
                       f"videos of {self.frames_per_video} frames")
    self.baseline_iou.append(frame_iou(np.ones_like(p), g))
    return frame_stats(p, g, num_thresholds=self.num_thresholds, beta2=self.beta2)

  def _given_stats(self, rows) -> dict[str, np.ndarray]:
    """`frame_stats` rows, flattened to frames and checked."""
    missing = [k for k in FRAME_STATS if k not in rows]
    if missing:
      raise KeyError(f"AVS rows need `logits` and `masks`, or {list(FRAME_STATS)}; missing "
                     f"{missing}")
    iou = checks.finite(np.asarray(rows["iou"], np.float32), "iou").reshape(-1)
    f = checks.finite(np.asarray(rows["f_curve"], np.float32), "f_curve")
    f = f.reshape(-1, f.shape[-1])
    nonempty = np.asarray(rows["nonempty"], bool).reshape(-1)
    if not len(iou) == len(f) == len(nonempty) or len(iou) % self.frames_per_video:
      raise ValueError(f"iou ({len(iou)} frames), f_curve ({len(f)}) and nonempty "
                       f"({len(nonempty)}) must match and hold whole videos of "
                       f"{self.frames_per_video} frames")
    if f.shape[1] != self.num_thresholds:
      raise ValueError(f"f_curve has {f.shape[1]} thresholds, the metric {self.num_thresholds}")
    return {"iou": iou, "f_curve": f, "nonempty": nonempty}

  def _score(self, frames: int):
    stats = {k: np.concatenate(v) for k, v in self.pending.items()}
    self.accumulator.update_frames(*(stats[k][:frames] for k in FRAME_STATS))
    self.pending = {k: [v[frames:]] for k, v in stats.items()}
    self.pending_frames = len(stats["iou"]) - frames

  def result(self) -> dict[str, float]:
    if self.pending_frames:
      self._score(self.pending_frames)
    result = self.accumulator.result()
    if self.baseline_iou:
      result["baseline_miou_per_frame"] = 100 * float(
          np.concatenate(self.baseline_iou).astype(np.float64).mean())
    return result


def evaluate_dataset(logits, masks, *, batch_size: int = 4, frames_per_video: int = 5,
                     num_thresholds: int = NUM_THRESHOLDS, beta2: float = BETA2
                     ) -> dict[str, float]:
  """Scores a whole split given in CSV order, batched as the reference test loader.

  `logits`/`masks`: (videos, T, H, W) or (videos·T, H, W). `batch_size` counts
  videos (reference test: 4; training-time validation: 1); the last batch may
  be partial (`drop_last=False`).
  """
  metrics = AVSMetrics(batch_size=batch_size, frames_per_video=frames_per_video,
                       num_thresholds=num_thresholds, beta2=beta2)
  metrics.update({"logits": logits, "masks": masks})
  return metrics.result()


def split_batches(num_videos: int, batch_size: int = 4) -> Sequence[range]:
  """Video index ranges of the reference's test batches (for logging per batch)."""
  return [range(s, min(s + batch_size, num_videos)) for s in range(0, num_videos, batch_size)]
