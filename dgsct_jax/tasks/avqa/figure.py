"""The AVQA prediction figure: where each second's audio grounds in its frame.

For a few questions, one row of the video's frames, each with the head's audio-guided
grounding map (the softmax over the final Swin grid that pools the frame, `p` of
`heads.avqa`) upsampled to the frame, stretched to [0, 1] and shown as brightness: the
frame is dimmed where the map is lowest. The row is titled with the question, the predicted and the true answer.
Frames come ImageNet-normalised as the model reads them and are shown de-normalised.
Pure numpy + matplotlib (Agg); no model code.
"""
import pathlib

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=wrong-import-position

from dgsct_jax.tasks.avs import figure as avs_figure  # noqa: E402

DPI = 100
FRAME_PX = 110
TITLE_PX = 70   # suptitle
ROW_TITLE_PX = 30


def pixel_size(num_questions: int, num_frames: int) -> tuple[int, int]:
  """(height, width) in pixels of `draw`'s PNG."""
  return TITLE_PX + num_questions * (FRAME_PX + ROW_TITLE_PX), num_frames * FRAME_PX


def attention_overlay(rgb: np.ndarray, grounding: np.ndarray) -> np.ndarray:
  """`rgb` (H, W, 3) scaled by the grounding map (g, g), nearest-upsampled to the frame
  and stretched to [0, 1] (an unscaled softmax over cosines is never far from uniform):
  bright where the audio grounds most, dim where least."""
  grid = int(round(np.sqrt(grounding.size)))
  weights = np.asarray(grounding, np.float32).reshape(grid, grid)
  weights = (weights - weights.min()) / max(float(weights.max() - weights.min()), 1e-12)
  h, w = rgb.shape[:2]
  up = weights[np.arange(h) * grid // h][:, np.arange(w) * grid // w]
  return rgb * (avs_figure.DIM + (1 - avs_figure.DIM) * up[..., None])


def answer_name(answer: int, names) -> str:
  return names[answer] if names is not None and 0 <= answer < len(names) else f"#{answer}"


def draw(rows, path, answer_names=None) -> pathlib.Path:
  """rows: per question a dict with `question_text`, `frames` (T, 3, H, W) as the model
  reads them, `grounding` (T, N) maps, `prediction` and `answer` ids; `answer_names`
  (optional) names the answer ids. Writes the PNG to `path`."""
  num_frames = len(rows[0]["frames"])
  height, width = pixel_size(len(rows), num_frames)
  fig, axes = plt.subplots(len(rows), num_frames, figsize=(width / DPI, height / DPI),
                           dpi=DPI, squeeze=False)
  fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - TITLE_PX / height,
                      wspace=0.05, hspace=ROW_TITLE_PX / FRAME_PX + 0.1)
  for q, row in enumerate(rows):
    predicted = answer_name(int(row["prediction"]), answer_names)
    true = answer_name(int(row["answer"]), answer_names)
    mark = "correct" if predicted == true else "incorrect"
    for t in range(num_frames):
      ax = axes[q, t]
      rgb = avs_figure.to_rgb(np.asarray(row["frames"][t], np.float32))
      ax.imshow(attention_overlay(rgb, np.asarray(row["grounding"][t])))
      ax.set_xticks([])
      ax.set_yticks([])
    axes[q, 0].set_title(f"{row['question_text']}?  predicted: {predicted}  true: {true} "
                         f"({mark})", fontsize=8, loc="left", pad=3)
  fig.suptitle("AVQA: each second's audio-guided grounding (bright = attended)", fontsize=11)
  path = pathlib.Path(path)
  fig.savefig(path, dpi=DPI)
  plt.close(fig)
  return path
