"""The AVS prediction figure: each video's frames with the true and the predicted mask.

For a few videos, two rows of its five frames: the ground-truth mask, then the
predicted mask (sigmoid(logit) > 0.5, the metric's rule), each frame titled with its IoU
(`metrics.avs.frame_iou`, empty-mask rule included). A mask is shown by dimming the
frame outside it and outlining it in white, so it reads on any object colour.
Frames come ImageNet-normalised as the model reads them and are shown de-normalised.
Pure numpy + matplotlib (Agg); no model code. The figure has a fixed size that depends
only on the number of videos and frames (`pixel_size`).
"""
import pathlib

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=wrong-import-position

from dgsct_jax.data import preprocess  # noqa: E402
from dgsct_jax.metrics import avs  # noqa: E402

DPI = 100
FRAME_PX = 150  # each frame panel, square
TITLE_PX = 60   # suptitle
ROW_LABELS = ("ground truth", "prediction")
DIM = 0.3  # brightness kept outside the mask


def to_rgb(frame: np.ndarray) -> np.ndarray:
  """(3, H, W) ImageNet-normalised → (H, W, 3) in [0, 1]."""
  mean = np.asarray(preprocess.IMAGENET_MEAN, np.float32)[:, None, None]
  std = np.asarray(preprocess.IMAGENET_STD, np.float32)[:, None, None]
  return np.clip(frame * std + mean, 0, 1).transpose(1, 2, 0)


def boundary(mask: np.ndarray) -> np.ndarray:
  """bool (H, W): the pixels of `mask` with a 4-neighbour outside it (or the border)."""
  on = np.pad(np.asarray(mask, bool), 1)
  inner = on[1:-1, :-2] & on[1:-1, 2:] & on[:-2, 1:-1] & on[2:, 1:-1]
  return on[1:-1, 1:-1] & ~inner


def overlay(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """`rgb` (H, W, 3) dimmed outside `mask` (H, W), the mask outlined in white."""
  on = np.asarray(mask, bool)
  out = np.where(on[..., None], rgb, DIM * rgb)
  return np.where(boundary(on)[..., None], np.float32(1.0), out)


def pixel_size(num_videos: int, num_frames: int) -> tuple[int, int]:
  """(height, width) in pixels of `draw`'s PNG."""
  return TITLE_PX + 2 * num_videos * FRAME_PX, num_frames * FRAME_PX


def draw(rows, path) -> pathlib.Path:
  """rows: per video a dict with `name`, `frames` (T, 3, H, W) as the model reads them,
  `masks` (T, H, W) and `logits` (T, H, W). Writes the PNG to `path`."""
  num_frames = len(rows[0]["frames"])
  height, width = pixel_size(len(rows), num_frames)
  fig, axes = plt.subplots(2 * len(rows), num_frames, figsize=(width / DPI, height / DPI),
                           dpi=DPI, squeeze=False)
  fig.subplots_adjust(left=0.06, right=0.99, bottom=0.01, top=1 - TITLE_PX / height,
                      wspace=0.05, hspace=0.25)
  for v, row in enumerate(rows):
    iou = avs.frame_iou(row["logits"], row["masks"])
    shown = {"ground truth": np.asarray(row["masks"]) > 0,
             "prediction": avs.sigmoid(np.asarray(row["logits"], np.float32)) > 0.5}
    for r, label in enumerate(ROW_LABELS):
      for t in range(num_frames):
        ax = axes[2 * v + r, t]
        ax.imshow(overlay(to_rgb(np.asarray(row["frames"][t], np.float32)), shown[label][t]))
        ax.set_xticks([])
        ax.set_yticks([])
        if r == 1:
          ax.set_title(f"IoU {iou[t]:.2f}", fontsize=8, pad=2)
        elif t == 0:
          ax.set_title(row["name"], fontsize=8, loc="left", pad=2)
        if t == 0:
          ax.set_ylabel(label, fontsize=8)
  fig.suptitle("AVS: sounding-object masks (outlined; the frame dimmed outside them)",
               fontsize=11)
  path = pathlib.Path(path)
  fig.savefig(path, dpi=DPI)
  plt.close(fig)
  return path
