"""AVVP (LLP) metrics: segment- and event-level F, exactly as HAN/MGN/DG-SCT score them.

Reference: `DG-SCT/AVVP/main.py::eval` and `utils/eval_metrics.py` (byte-identical to
`YapengTian/AVVP-ECCV20`). Spec: dgsct_tasks.md §1.4.

Layout. Prediction and ground-truth matrices are binary `(N, 25, 10)` arrays:
video × class × one-second segment, the reference's `SO_*`/`GT_*` orientation
(and the builder's `gt_audio`/`gt_visual` features). Model outputs keep the
model's own layout, `frame_prob` (N, 10, 25) and `global_prob` (N, 25);
`frame_predictions` turns them into matrices.

The reference's scoring, each quirk behind a named option whose default is the
reference behaviour:
* per-video macro average (`average="video"`): per video and modality the F of
  every class that has a prediction or a GT segment, averaged over those
  classes; then averaged over videos. `average="micro"` pools TP/FP/FN over the
  whole split instead (a dataset-level F, *not* comparable with the paper);
* a video (and modality) with neither prediction nor GT scores
  `empty_video_score` = 1.0, so "predict nothing" does not score 0;
* events are maximal runs of 1s in a class row; a predicted event is a TP when
  *some* GT event of the class reaches IoU ≥ `iou_threshold` (0.5), a GT event
  is an FN when no predicted event does: no one-to-one matching, so two
  predictions on one GT event are two TPs;
* "Type@AV" = (AV + A + V)/3 and "Event@AV" = the per-video F of the summed
  audio and visual counts;
* dense GT rows join the video list by exact filename string (`join="exact"`);
  rows whose filename matches no video (typos in the CSVs) are dropped.

Scores are returned in percent (the reference prints `100·x` with `{:.1f}`),
at full precision; the float64 summation order of the reference is kept, so
the values agree bit for bit.
"""
import csv
import dataclasses
import pathlib
from typing import Iterable, Mapping, Sequence

import numpy as np

from dgsct_jax.metrics import checks

# Index order hard-coded in the reference `dataloader.py` and `main.py::eval`.
CATEGORIES = (
    "Speech", "Car", "Cheering", "Dog", "Cat", "Frying_(food)", "Basketball_bounce",
    "Fire_alarm", "Chainsaw", "Cello", "Banjo", "Singing", "Chicken_rooster", "Violin_fiddle",
    "Vacuum_cleaner", "Baby_laughter", "Accordion", "Lawn_mower", "Motorcycle", "Helicopter",
    "Acoustic_guitar", "Telephone_bell_ringing", "Baby_cry_infant_cry", "Blender", "Clapping")
CLASS_INDEX = {name: i for i, name in enumerate(CATEGORIES)}
NUM_CLASSES = len(CATEGORIES)
NUM_SEGMENTS = 10

SCORE_KEYS = ("a", "v", "av", "type", "event")
METRIC_NAMES = ("seg_a", "seg_v", "seg_av", "seg_type", "seg_event",
                "evt_a", "evt_v", "evt_av", "evt_type", "evt_event")

# --------------------------------------------------------------------------
# Annotation files (tab-separated, header line; read with the stdlib, no pandas)
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DenseRow:
  """One row of `AVVP_eval_{audio,visual}.csv`; `line` is the 1-based file line."""
  filename: str
  onset: int
  offset: int
  label: str
  line: int


def _read_tsv(path, header: Sequence[str]) -> list[tuple[int, list[str]]]:
  path = pathlib.Path(path)
  with open(path, newline="", encoding="utf-8") as f:
    rows = list(csv.reader(f, delimiter="\t"))
  if not rows or [h.strip() for h in rows[0]] != list(header):
    raise ValueError(f"{path}: expected a header {list(header)}, found "
                     f"{rows[0] if rows else 'an empty file'}")
  out = []
  for line, row in enumerate(rows[1:], start=2):
    if not row:  # pandas skips blank lines too
      continue
    if len(row) != len(header):
      raise ValueError(f"{path}:{line}: expected {len(header)} tab-separated fields "
                       f"{list(header)}, found {row}")
    out.append((line, row))
  return out


def read_weak_csv(path) -> list[tuple[str, tuple[str, ...]]]:
  """`AVVP_{train,val_pd,test_pd,dataset_full}.csv` → [(filename, labels)] in row order."""
  out = []
  for line, (filename, labels) in _read_tsv(path, ("filename", "event_labels")):
    names = tuple(labels.split(","))
    for name in names:
      if name not in CLASS_INDEX:
        raise ValueError(f"{path}:{line}: unknown class {name!r} for {filename!r}")
    out.append((filename, names))
  return out


def read_dense_csv(path) -> list[DenseRow]:
  """`AVVP_eval_{audio,visual}.csv` → [DenseRow] in file order."""
  out = []
  for line, (filename, onset, offset, label) in _read_tsv(
      path, ("filename", "onset", "offset", "event_labels")):
    if label not in CLASS_INDEX:
      raise ValueError(f"{path}:{line}: unknown class {label!r} for {filename!r}")
    try:
      on, off = int(onset), int(offset)
    except ValueError as e:
      raise ValueError(f"{path}:{line}: onset/offset must be integers, found "
                       f"{onset!r}/{offset!r}") from e
    out.append(DenseRow(filename, on, off, label, line))
  return out


def weak_multi_hot(labels: Iterable[str]) -> np.ndarray:
  """Class names → the reference's 25-d multi-hot float32 label."""
  y = np.zeros((NUM_CLASSES,), np.float32)
  for name in labels:
    y[CLASS_INDEX[name]] = 1.0
  return y


def _join_key(filename: str, join: str) -> str:
  if join == "exact":
    return filename
  if join == "id11":
    return filename[:11]
  raise ValueError(f"join must be 'exact' (reference) or 'id11', got {join!r}")


def dense_ground_truth(filenames: Sequence[str], rows: Sequence[DenseRow], *,
                       join: str = "exact") -> np.ndarray:
  """Dense GT matrices (N, 25, 10) uint8 for the given videos, in their order.

  For each row whose filename equals a video's filename, GT[c, onset:offset] = 1
  (offset exclusive, Python slicing as in the reference, so a zero-length row
  sets nothing). `join="exact"` is the reference's string equality, which drops
  the misspelt rows of the eval CSVs (see `unmatched_rows`); `join="id11"`
  matches on the 11-character YouTube id instead (not the reference).
  """
  index: dict[str, list[int]] = {}
  for i, name in enumerate(filenames):
    index.setdefault(_join_key(name, join), []).append(i)
  gt = np.zeros((len(filenames), NUM_CLASSES, NUM_SEGMENTS), np.uint8)
  for row in rows:
    for i in index.get(_join_key(row.filename, join), ()):
      gt[i, CLASS_INDEX[row.label], row.onset:row.offset] = 1
  return gt


def unmatched_rows(filenames: Iterable[str], rows: Sequence[DenseRow], *,
                   join: str = "exact") -> list[DenseRow]:
  """The dense rows that `dense_ground_truth` silently ignores for these videos."""
  keys = {_join_key(name, join) for name in filenames}
  return [row for row in rows if _join_key(row.filename, join) not in keys]


# --------------------------------------------------------------------------
# Model outputs → binary matrices
# --------------------------------------------------------------------------


def frame_predictions(global_prob, a_frame_prob, v_frame_prob, *, threshold: float = 0.5,
                      video_filter: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """(SO_a, SO_v), each (N, 25, 10) uint8, from MGN outputs.

  `global_prob` (N, 25) is the audio-visual video-level probability; frame
  probabilities are (N, 10, 25). SO[c, t] = 1[frame_prob[t, c] ≥ threshold],
  times 1[global_prob[c] ≥ threshold] when `video_filter` (the reference filters
  both modalities with the *audio-visual* head).
  """
  pa = np.asarray(a_frame_prob) >= threshold
  pv = np.asarray(v_frame_prob) >= threshold
  if pa.ndim != 3 or pa.shape != pv.shape:
    raise ValueError(f"frame probabilities must both be (N, T, C), got {pa.shape} and {pv.shape}")
  if video_filter:
    o = np.asarray(global_prob) >= threshold
    if o.shape != (pa.shape[0], pa.shape[2]):
      raise ValueError(f"global_prob must be (N, C) = {(pa.shape[0], pa.shape[2])}, got {o.shape}")
    pa, pv = pa & o[:, None, :], pv & o[:, None, :]
  return (pa.transpose(0, 2, 1).astype(np.uint8), pv.transpose(0, 2, 1).astype(np.uint8))


# --------------------------------------------------------------------------
# Counts per (video, class)
# --------------------------------------------------------------------------


def _binary(x, name: str) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim != 3:
    raise ValueError(f"{name} must be (N, classes, segments), got shape {x.shape}")
  return x != 0


def segment_counts(pred, gt) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Per (video, class) TP, FP, FN over segments, each (N, C) int64."""
  p, g = _binary(pred, "pred"), _binary(gt, "gt")
  if p.shape != g.shape:
    raise ValueError(f"pred {p.shape} and gt {g.shape} differ")
  return ((p & g).sum(-1), (p & ~g).sum(-1), (~p & g).sum(-1))


def _runs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Maximal runs of True along the last axis: starts, ends (exclusive), valid (..., R)."""
  t = x.shape[-1]
  r = (t + 1) // 2
  pad = np.zeros(x.shape[:-1] + (1,), bool)
  d = np.diff(np.concatenate([pad, x, pad], -1).astype(np.int8), axis=-1)  # (..., T+1)
  out = []
  for flag in (d == 1, d == -1):
    rank = np.cumsum(flag, -1) - 1
    pos = np.full(x.shape[:-1] + (r,), -1, np.int64)
    idx = np.nonzero(flag)
    pos[idx[:-1] + (rank[idx],)] = idx[-1]
    out.append(pos)
  starts, ends = out
  return starts, ends, starts >= 0


def event_counts(pred, gt, *, iou_threshold: float = 0.5
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Per (video, class) event-level TP, FP, FN, each (N, C) int64.

  A predicted run is a TP if some GT run of the same row has
  |P∩G| ≥ iou_threshold·|P∪G| (the reference's test, no one-to-one matching),
  else an FP; a GT run hit by no predicted run is an FN.
  """
  p, g = _binary(pred, "pred"), _binary(gt, "gt")
  if p.shape != g.shape:
    raise ValueError(f"pred {p.shape} and gt {g.shape} differ")
  ps, pe, pvalid = _runs(p)
  gs, ge, gvalid = _runs(g)
  inter = np.clip(np.minimum(pe[..., :, None], ge[..., None, :]) -
                  np.maximum(ps[..., :, None], gs[..., None, :]), 0, None)
  union = (pe - ps)[..., :, None] + (ge - gs)[..., None, :] - inter
  hit = (inter >= iou_threshold * union) & pvalid[..., :, None] & gvalid[..., None, :]
  pred_hit = hit.any(-1)
  tp = (pred_hit & pvalid).sum(-1)
  fp = (~pred_hit & pvalid).sum(-1)
  fn = (~hit.any(-2) & gvalid).sum(-1)
  return tp, fp, fn


# --------------------------------------------------------------------------
# F scores
# --------------------------------------------------------------------------


def per_video_f(tp, fp, fn, *, empty_video_score: float = 1.0) -> np.ndarray:
  """Per-video macro F (N,) float64: mean over classes with TP+FP > 0 or TP+FN > 0.

  The class sum runs sequentially in class order (as the reference's Python
  `sum`), so values are bit-identical. Videos with no such class score
  `empty_video_score` (reference: 1.0, "all true negatives").
  """
  tp, fp, fn = (np.asarray(a, np.float64) for a in (tp, fp, fn))
  qualifies = ((tp + fp) != 0) | ((tp + fn) != 0)
  denom = np.where(qualifies, 2 * tp + (fn + fp), 1.0)
  f = np.where(qualifies, 2 * tp / denom, 0.0)
  total = np.add.accumulate(f, axis=-1)[..., -1]  # sequential, like Python's sum
  count = qualifies.sum(-1)
  return np.where(count > 0, total / np.maximum(count, 1), empty_video_score)


def _micro_f(tp, fp, fn) -> float:
  tp, fp, fn = (float(np.sum(a)) for a in (tp, fp, fn))
  return 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) > 0 else 1.0


def _level_scores(counts: Mapping[str, tuple], average: str, empty_video_score: float,
                  prefix: str) -> dict[str, float]:
  a, v, av = counts["a"], counts["v"], counts["av"]
  event = tuple(x + y for x, y in zip(a, v))
  if average == "video":
    f = {k: 100 * np.mean(per_video_f(*c, empty_video_score=empty_video_score))
         for k, c in (("a", a), ("v", v), ("av", av), ("event", event))}
  elif average == "micro":
    f = {k: 100 * _micro_f(*c) for k, c in (("a", a), ("v", v), ("av", av), ("event", event))}
  else:
    raise ValueError(f"average must be 'video' (reference) or 'micro', got {average!r}")
  # (AV + A + V)/3 in the reference's order of addition.
  f["type"] = (f["av"] + f["a"] + f["v"]) / 3.0
  return {f"{prefix}_{k}": float(f[k]) for k in ("a", "v", "av", "type", "event")}


def avvp_scores(so_a, so_v, gt_a, gt_v, *, average: str = "video",
                empty_video_score: float = 1.0, iou_threshold: float = 0.5) -> dict[str, float]:
  """All ten AVVP numbers (percent) from binary (N, 25, 10) matrices.

  Keys `seg_{a,v,av,type,event}` and `evt_{a,v,av,type,event}`: audio, visual,
  audio-visual (SO_av = SO_a·SO_v against GT_av = GT_a·GT_v), Type@AV and
  Event@AV, at segment and event level.
  """
  so_a, so_v, gt_a, gt_v = (_binary(x, n) for x, n in (
      (so_a, "so_a"), (so_v, "so_v"), (gt_a, "gt_a"), (gt_v, "gt_v")))
  so_av, gt_av = so_a & so_v, gt_a & gt_v
  pairs = {"a": (so_a, gt_a), "v": (so_v, gt_v), "av": (so_av, gt_av)}
  seg = {k: segment_counts(p, g) for k, (p, g) in pairs.items()}
  evt = {k: event_counts(p, g, iou_threshold=iou_threshold) for k, (p, g) in pairs.items()}
  out = _level_scores(seg, average, empty_video_score, "seg")
  out.update(_level_scores(evt, average, empty_video_score, "evt"))
  return out


def evaluate_outputs(global_prob, a_frame_prob, v_frame_prob, gt_a, gt_v, *,
                     threshold: float = 0.5, video_filter: bool = True,
                     **kwargs) -> dict[str, float]:
  """`avvp_scores` straight from model outputs (the training-time entry point)."""
  so_a, so_v = frame_predictions(global_prob, a_frame_prob, v_frame_prob,
                                 threshold=threshold, video_filter=video_filter)
  return avvp_scores(so_a, so_v, gt_a, gt_v, **kwargs)


def majority_baseline(gt_a, gt_v) -> dict[str, float]:
  """The ten scores of a constant predictor: the split's most frequent event class (by
  videos that have it in either modality), in every segment of both modalities."""
  gt_a, gt_v = _binary(gt_a, "gt_a"), _binary(gt_v, "gt_v")
  present = (gt_a | gt_v).any(axis=-1)                                # (N, C)
  pred = np.zeros_like(gt_a)
  pred[:, int(present.sum(axis=0).argmax())] = True
  return avvp_scores(pred, pred, gt_a, gt_v)


class AVVPMetrics:
  """`avvp_scores` over a split given in chunks, plus `baseline_*`: the same ten numbers
  of `majority_baseline`.

  `update(rows)`: binary (0/1) `so_a`, `so_v` (N, C, 10), or the model outputs
  `global_prob` (N, C), `a_frame_prob`, `v_frame_prob` (N, 10, C) (probabilities; MGN's
  frame scores are prob × a weight in (1, 2), so they may reach 2; thresholded by
  `frame_predictions`), and the binary dense ground truth `gt_a`, `gt_v` (N, C, 10).
  C is `num_classes` (LLP's 25). Options are those of `avvp_scores` and `frame_predictions`.
  """

  def __init__(self, *, num_classes: int = NUM_CLASSES, threshold: float = 0.5,
               video_filter: bool = True, **score_options):
    self.num_classes = num_classes
    self.threshold, self.video_filter = threshold, video_filter
    self.score_options = score_options
    self.parts: dict[str, list[np.ndarray]] = {k: [] for k in ("so_a", "so_v", "gt_a", "gt_v")}

  def update(self, rows) -> None:
    c = self.num_classes
    if "so_a" in rows:
      parts = {k: rows[k] for k in ("so_a", "so_v")}
    else:
      missing = [k for k in ("global_prob", "a_frame_prob", "v_frame_prob") if k not in rows]
      if missing:
        raise KeyError(f"avvp rows need so_a/so_v or the model outputs; missing {missing} "
                       f"(have {sorted(rows)})")
      probs = {k: checks.probabilities(checks.shape(rows[k], k, shape), k, upper=upper)
               for k, shape, upper in (("global_prob", (None, c), 1.0),
                                       ("a_frame_prob", (None, NUM_SEGMENTS, c), 2.0),
                                       ("v_frame_prob", (None, NUM_SEGMENTS, c), 2.0))}
      checks.same_length(probs)
      parts = dict(zip(("so_a", "so_v"), frame_predictions(
          **probs, threshold=self.threshold, video_filter=self.video_filter)))
    parts.update(gt_a=rows["gt_a"], gt_v=rows["gt_v"])
    for key, value in parts.items():
      parts[key] = checks.binary(checks.shape(value, key, (None, c, NUM_SEGMENTS)), key)
    checks.same_length(parts)
    for key, value in parts.items():
      self.parts[key].append(value != 0)

  def result(self) -> dict[str, float]:
    if not self.parts["so_a"]:
      raise ValueError("AVVPMetrics.result() called before any update()")
    so_a, so_v, gt_a, gt_v = (np.concatenate(self.parts[k]) for k in ("so_a", "so_v", "gt_a",
                                                                      "gt_v"))
    result = avvp_scores(so_a, so_v, gt_a, gt_v, **self.score_options)
    result.update({f"baseline_{k}": v for k, v in majority_baseline(gt_a, gt_v).items()})
    return result
