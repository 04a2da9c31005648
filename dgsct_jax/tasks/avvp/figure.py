"""The AVVP prediction figure: per-class event timelines, ground truth against prediction.

For a few LLP videos, two panels side by side (audio events, visual events). Each row
is a class that occurs in the video's ground truth or in a prediction of either
modality; over the 10 one-second segments the ground-truth events are a thick grey
bar and the predicted events a thinner coloured bar under it. Predictions are the
reference's binary matrices (`metrics.avvp.frame_predictions`): frame probability
≥ threshold, times the audio-visual video-level probability ≥ threshold when
`video_filter` is on. Pure numpy + matplotlib (Agg); no model code.

The figure has a fixed size that depends only on the number of videos and of drawn
classes (`pixel_size`), so it is saved without a tight bounding box.
"""
import pathlib

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=wrong-import-position
from matplotlib.patches import Patch  # noqa: E402  pylint: disable=wrong-import-position

from dgsct_jax.metrics import avvp  # noqa: E402

DPI = 100
WIDTH_PX = 1400
HEADER_PX = 70    # suptitle (top) + legend (bottom)
VIDEO_PX = 95     # per video: panel titles, x axis and its label
CLASS_PX = 26     # per drawn class row (a video with none counts as one row)

GT_COLOR = "#555555"
PRED_COLOR = {"audio": "tab:orange", "visual": "tab:blue"}
GT_SPAN = (-0.40, 0.34)    # (offset from the row centre, height), data units
PRED_SPAN = (-0.02, 0.22)


def timelines(row, *, threshold: float = 0.5, video_filter: bool = True) -> dict:
  """One video's binary matrices (C, 10): pred_audio, pred_visual, gt_audio, gt_visual;
  and `classes`, the sorted class indices that are on in any of the four."""
  global_prob = np.asarray(row["global_prob"])
  probs = {k: np.asarray(row[k]) for k in ("a_frame_prob", "v_frame_prob")}
  if global_prob.ndim != 1:
    raise ValueError(f"global_prob must be (C,), got {global_prob.shape}")
  c = global_prob.shape[0]
  for key, value in probs.items():
    if value.shape != (avvp.NUM_SEGMENTS, c):
      raise ValueError(f"{key} must be (10, C) = {(avvp.NUM_SEGMENTS, c)}, got {value.shape}")
  so_a, so_v = avvp.frame_predictions(global_prob[None], probs["a_frame_prob"][None],
                                      probs["v_frame_prob"][None], threshold=threshold,
                                      video_filter=video_filter)
  out = {"pred_audio": so_a[0], "pred_visual": so_v[0]}
  for key in ("gt_audio", "gt_visual"):
    gt = np.asarray(row[key])
    if gt.shape != (c, avvp.NUM_SEGMENTS):
      raise ValueError(f"{key} must be (C, 10) = {(c, avvp.NUM_SEGMENTS)}, got {gt.shape}")
    out[key] = (gt != 0).astype(np.uint8)
  on = np.stack([out[k] for k in ("pred_audio", "pred_visual", "gt_audio", "gt_visual")])
  out["classes"] = np.flatnonzero(on.any(axis=(0, 2)))
  return out


def default_class_names(num_classes: int) -> tuple[str, ...]:
  """The LLP names for 25 classes, else `class 0..C-1`."""
  if num_classes == avvp.NUM_CLASSES:
    return avvp.CATEGORIES
  return tuple(f"class {i}" for i in range(num_classes))


def _video_px(num_classes_drawn: int) -> int:
  return VIDEO_PX + CLASS_PX * max(num_classes_drawn, 1)


def pixel_size(rows, *, threshold: float = 0.5, video_filter: bool = True) -> tuple[int, int]:
  """(height, width) in pixels of `draw(rows, ...)`'s PNG."""
  counts = [len(timelines(r, threshold=threshold, video_filter=video_filter)["classes"])
            for r in rows]
  return HEADER_PX + sum(_video_px(k) for k in counts), WIDTH_PX


def _runs(x: np.ndarray) -> list[tuple[int, int]]:
  """Maximal runs of 1s in a binary row as (start, length), the events of the row."""
  d = np.diff(np.concatenate([[0], np.asarray(x, np.int8) != 0, [0]]).astype(np.int8))
  starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
  return [(int(s), int(e - s)) for s, e in zip(starts, ends)]


def _panel(ax, gt, pred, classes, names, modality: str, title: str) -> None:
  """One modality's timelines: a row per class, GT bar above the prediction bar."""
  ax.set_xlim(0, avvp.NUM_SEGMENTS)
  ax.set_xticks(range(avvp.NUM_SEGMENTS + 1))
  ax.set_xlabel("segment (s)", fontsize=8)
  ax.tick_params(labelsize=7)
  ax.set_title(title, fontsize=8)
  if len(classes) == 0:
    ax.set_ylim(-0.5, 0.5)
    ax.set_yticks([])
    ax.text(0.5, 0.5, "no events", transform=ax.transAxes, ha="center", va="center",
            fontsize=9, color="0.4")
    return
  for y, c in enumerate(classes):
    for span, matrix, color in ((GT_SPAN, gt, GT_COLOR), (PRED_SPAN, pred, PRED_COLOR[modality])):
      ax.broken_barh(_runs(matrix[c]), (y + span[0], span[1]), facecolors=color)
  ax.set_ylim(len(classes) - 0.5, -0.5)  # first class on top
  ax.set_yticks(range(len(classes)))
  ax.set_yticklabels([names[c] for c in classes], fontsize=7)
  ax.grid(axis="x", color="0.85", linewidth=0.6)
  ax.set_axisbelow(True)


def draw(rows, path, *, class_names=None, threshold: float = 0.5,
         video_filter: bool = True) -> pathlib.Path:
  """The figure for `rows` (dicts as for `timelines`, plus `filename`), saved as a PNG."""
  if not rows:
    raise ValueError("draw needs at least one video row")
  lines = [timelines(r, threshold=threshold, video_filter=video_filter) for r in rows]
  num_classes = lines[0]["gt_audio"].shape[0]
  names = tuple(class_names) if class_names is not None else default_class_names(num_classes)
  if len(names) != num_classes or any(t["gt_audio"].shape[0] != num_classes for t in lines):
    raise ValueError(f"all rows need C = {num_classes} classes and class_names as many, got "
                     f"{[t['gt_audio'].shape[0] for t in lines]} and {len(names)} names")
  heights = [_video_px(len(t["classes"])) for t in lines]
  fig = plt.figure(figsize=(WIDTH_PX / DPI, (HEADER_PX + sum(heights)) / DPI), dpi=DPI,
                   layout="constrained")
  axes = fig.subplots(len(rows), 2, squeeze=False, gridspec_kw={"height_ratios": heights})
  for v, (row, t) in enumerate(zip(rows, lines)):
    for ax, modality in zip(axes[v], ("audio", "visual")):
      _panel(ax, t[f"gt_{modality}"], t[f"pred_{modality}"], t["classes"], names, modality,
             f"{row['filename']}: {modality} events")
  rule = f"frame p ≥ {threshold:g}" + (f", video p ≥ {threshold:g}" if video_filter else "")
  fig.suptitle(f"AVVP predictions per class over the 10 segments ({rule})", fontsize=9)
  fig.legend(handles=[Patch(color=GT_COLOR, label="ground truth"),
                      Patch(color=PRED_COLOR["audio"], label="predicted audio"),
                      Patch(color=PRED_COLOR["visual"], label="predicted visual")],
             loc="outside lower center", ncols=3, fontsize=8, frameon=False)
  path = pathlib.Path(path)
  fig.savefig(path, dpi=DPI)
  plt.close(fig)
  return path
