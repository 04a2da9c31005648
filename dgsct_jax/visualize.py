"""The qualitative figure: DG-SCT's spatial attention over frames and spectrograms.

For a few test videos and segments, the last adapters' softmax spatial maps
(`visual_smap`, `audio_smap`: the weights that pool each stream's final tokens,
spec §2.3) are upsampled from their token grids and overlaid on the input frame
and on the HTS-AT log-mel image (the folded spectrogram the audio tokens tile).
"""
import pathlib

import jax
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=wrong-import-position

from dgsct_jax import nnx_utils  # noqa: E402
from dgsct_jax.data import preprocess  # noqa: E402
from dgsct_jax.models import ave as ave_model  # noqa: E402


def attention_maps(graphdef, trainable, frozen, stats, audio, frames) -> dict:
  """Eval-mode forward: smaps (B, T, h, w), log-mel images (B, T, F, F), class scores."""
  def run(trainable, frozen, stats, audio, frames):
    model = nnx_utils.merge(graphdef, trainable, frozen, stats)
    out = model(audio, frames, deterministic=True)
    b, t = frames.shape[:2]
    clips = ave_model.tile_segments(audio, model.clip_samples).reshape(b * t, -1)
    _, image = model.htsat.front(clips, deterministic=True)
    maps = {"image": image[..., 0].reshape(b, t, *image.shape[1:3]),
            "is_event": jax.nn.sigmoid(out["is_event_scores"]),
            "event_class": out["event_scores"].argmax(-1)}
    for key, grid in model.smap_grids().items():
      if key in out:
        maps[key] = out[key].reshape(b, t, *grid)
    return maps
  return jax.device_get(jax.jit(run)(trainable, frozen, stats, audio, frames))


def _frame_rgb(frame_chw: np.ndarray) -> np.ndarray:
  mean = np.asarray(preprocess.IMAGENET_MEAN, np.float32)[:, None, None]
  std = np.asarray(preprocess.IMAGENET_STD, np.float32)[:, None, None]
  return np.clip((frame_chw * std + mean).transpose(1, 2, 0), 0, 1)


def _overlay(ax, background, smap, extent, cmap="gray"):
  ax.imshow(background, cmap=cmap, extent=extent, origin="upper", aspect="auto")
  if smap is not None:
    ax.imshow(smap / max(smap.max(), 1e-12), cmap="jet", alpha=0.45, extent=extent,
              origin="upper", aspect="auto", interpolation="bilinear", vmin=0, vmax=1)
  ax.set_xticks([])
  ax.set_yticks([])


def write_figure(path, maps: dict, frames: np.ndarray, labels: np.ndarray, video_ids,
                 *, num_segments: int, class_names=None) -> pathlib.Path:
  """One column per segment; per video a row of frames and a row of spectrograms."""
  num_videos = frames.shape[0]
  t_show = min(num_segments, frames.shape[1])
  fig, axes = plt.subplots(2 * num_videos, t_show, figsize=(2.1 * t_show, 4.3 * num_videos),
                           squeeze=False)
  background = labels.shape[-1] - 1
  for v in range(num_videos):
    for t in range(t_show):
      target = int(labels[v, t].argmax())
      pred = int(maps["event_class"][v]) if maps["is_event"][v, t] > 0.5 else background
      name = (lambda k: "bg" if k == background else (class_names[k] if class_names else str(k)))
      ax = axes[2 * v, t]
      h, w = frames.shape[-2:]
      _overlay(ax, _frame_rgb(frames[v, t]), maps.get("visual_smap", [[None] * t_show] * (v + 1))
               [v][t], (0, w, h, 0))
      ax.set_title(f"{video_ids[v][-7:]} t={t}\ntrue {name(target)} / pred {name(pred)}",
                   fontsize=7)
      ax = axes[2 * v + 1, t]
      image = maps["image"][v, t]
      _overlay(ax, image, maps.get("audio_smap", [[None] * t_show] * (v + 1))[v][t],
               (0, image.shape[1], image.shape[0], 0), cmap="magma")
      ax.set_title(f"p(event) {maps['is_event'][v, t]:.2f}", fontsize=7)
  fig.suptitle("DG-SCT spatial attention (last adapters' pooling maps): frames (top), "
               "log-mel images (bottom)", fontsize=9)
  fig.tight_layout()
  path = pathlib.Path(path)
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path
