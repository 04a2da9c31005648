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
from flax import nnx

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=wrong-import-position

from dgsct_jax.data import preprocess  # noqa: E402


@nnx.jit
def attention_maps(model, audio, frames) -> dict:
  """Eval-mode forward: smaps (B, T, h, w), log-mel images (B, T, F, F), class scores."""
  out = model(audio, frames, deterministic=True)
  b, t = frames.shape[:2]
  _, image = model.htsat.front(model.clips(audio), deterministic=True)
  maps = {"image": image[..., 0].reshape(b, t, *image.shape[1:3]),
          "is_event": jax.nn.sigmoid(out["is_event_scores"]),
          "event_class": out["event_scores"].argmax(-1)}
  for key, grid in model.smap_grids().items():
    if key in out:
      maps[key] = out[key].reshape(b, t, *grid)
  return maps


def draw(model, elements: list[dict], path, *, num_segments: int) -> pathlib.Path:
  """The figure of `model` (an `AVEModel`) on dataset elements (frames, audio, label,
  video_id), one row pair per element."""
  frames = np.stack([e["frames"] for e in elements])
  audio = np.stack([e["audio"] for e in elements])
  maps = jax.device_get(attention_maps(model, audio, frames))
  return write_figure(path, maps, frames, np.stack([e["label"] for e in elements]),
                      [e["video_id"] for e in elements], num_segments=num_segments)


def _frame_rgb(frame_chw: np.ndarray) -> np.ndarray:
  mean = np.asarray(preprocess.IMAGENET_MEAN, np.float32)[:, None, None]
  std = np.asarray(preprocess.IMAGENET_STD, np.float32)[:, None, None]
  return np.clip((frame_chw * std + mean).transpose(1, 2, 0), 0, 1)


def _overlay(ax, background, smap, extent, cmap="gray") -> str:
  """Background image with the map min-max stretched on top; returns the map's range."""
  ax.imshow(background, cmap=cmap, extent=extent, origin="upper", aspect="auto")
  ax.set_xticks([])
  ax.set_yticks([])
  if smap is None:
    return ""
  lo, hi = float(smap.min()), float(smap.max())
  ax.imshow((smap - lo) / max(hi - lo, 1e-12), cmap="jet", alpha=0.4, extent=extent,
            origin="upper", aspect="auto", interpolation="bilinear", vmin=0, vmax=1)
  return f" map {lo * smap.size:.2f}-{hi * smap.size:.2f}x uniform"


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
      span = _overlay(ax, _frame_rgb(frames[v, t]),
                      maps["visual_smap"][v, t] if "visual_smap" in maps else None, (0, w, h, 0))
      ax.set_title(f"{video_ids[v][-7:]} t={t} true {name(target)} / pred {name(pred)}\n{span}",
                   fontsize=6)
      ax = axes[2 * v + 1, t]
      image = maps["image"][v, t]
      span = _overlay(ax, image, maps["audio_smap"][v, t] if "audio_smap" in maps else None,
                      (0, image.shape[1], image.shape[0], 0), cmap="magma")
      ax.set_title(f"p(event) {maps['is_event'][v, t]:.2f}\n{span}", fontsize=6)
  fig.suptitle("DG-SCT spatial attention (last adapters' pooling maps, min-max stretched; "
               "range relative to a uniform map): frames (top), log-mel images (bottom)",
               fontsize=8)
  fig.tight_layout()
  path = pathlib.Path(path)
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path
