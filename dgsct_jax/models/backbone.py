"""The DG-SCT backbone of the paper's tasks: Swin-V2 (`swin`) + HTS-AT (`htsat`).

`SwinHTSAT` builds both encoders and the adapters from one model config
(`presets.backbone`) and encodes videos segment by segment. Task models
(`models/ave.py`, ...) subclass it and add their head, so that state paths
mirror the official models' keys (`swin.*`, `htsat.*`,
`{vis,audio}_adapter_blocks_p{1,2}.{i}.*` at the top level).

Audio. The reference tiles each 1-s segment (32 000 samples) to a 10-s clip
(320 000) on the host (spec §1.3). Here the model does it on device: with
`tile_audio=True` a segment shorter than `htsat.num_samples` is concatenated
with itself until it is at least that long and truncated, so (B, T, 32000) and
pre-tiled (B, T, 320000) inputs give the same result (the latter costs 10× the
host→device bandwidth). `tile_audio=False` requires exactly `num_samples`.

Frames. With `resize_frames=True` frames whose size differs from `swin.img_size`
are bicubic-resized (align_corners=False, PyTorch-exact) in the model, as AVS's
reference does with its 224² frames; otherwise they must already have that size.
"""
import dataclasses

import jax.numpy as jnp
from flax import nnx

from dgsct_jax.models import dgsct
from dgsct_jax.models import layers
from dgsct_jax.models import resize
from dgsct_jax.models.encoders import htsat
from dgsct_jax.models.encoders import swinv2

# The keys of a model config that `SwinHTSAT` reads.
KEYS = ("swin", "htsat", "tile_audio", "resize_frames") + tuple(
    f.name for f in dataclasses.fields(dgsct.Options))
# The keys of a task model's config: the backbone's plus these (`presets.<task>`).
TASK_KEYS = KEYS + ("variant", "num_classes", "head")


def task_config(config, task: str) -> dict:
  """A task model config as a dict with exactly `TASK_KEYS` (a typo fails here)."""
  config = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  unknown = set(config) - set(TASK_KEYS)
  if unknown:
    raise ValueError(f"{task} model config: unknown key(s) {sorted(unknown)}; "
                     f"known: {sorted(TASK_KEYS)}")
  missing = set(TASK_KEYS) - set(config)
  if missing:
    raise ValueError(f"{task} model config: missing key(s) {sorted(missing)}")
  return config


def tile_segments(audio, num_samples: int):
  """(..., S) → (..., num_samples): repeated end to end, truncated (spec §1.3)."""
  s = audio.shape[-1]
  if s == num_samples:
    return audio
  if s > num_samples:
    raise ValueError(f"audio segments have {s} samples, more than the model's clip length "
                     f"{num_samples} (htsat.num_samples)")
  reps = -(-num_samples // s)
  return jnp.tile(audio, (1,) * (audio.ndim - 1) + (reps,))[..., :num_samples]


class SwinHTSAT(dgsct.DGSCT):
  """Frozen Swin-V2 and HTS-AT with DG-SCT adapters, over (B, T) segments."""

  def __init__(self, config, *, rngs: nnx.Rngs):
    rngs = layers.key_stream(rngs)
    super().__init__(swinv2.SwinTransformerV2(**config["swin"], rngs=rngs),
                     htsat.HTSAT(**config["htsat"], rngs=rngs),
                     dgsct.Options.from_config(config), visual_name="swin", audio_name="htsat",
                     rngs=rngs)
    self.tile_audio = config["tile_audio"]
    self.resize_frames = config["resize_frames"]
    self.clip_samples = config["htsat"]["num_samples"]
    self.frame_size = self.swin.patch_embed.img_size

  def smap_grids(self) -> dict[str, tuple[int, int]]:
    """Token grids of the pooling maps: the last stage of each encoder."""
    return {"visual_smap": tuple(self.swin.layers[-1].resolution),
            "audio_smap": tuple(self.htsat.layers[-1].resolution)}

  def clips(self, audio):
    """(B, T, S) segments → (B·T, num_samples) HTS-AT clips (tiled when `tile_audio`)."""
    if self.tile_audio:
      audio = tile_segments(audio, self.clip_samples)
    return audio.reshape(-1, audio.shape[-1])

  def images(self, frames):
    """(B, T, 3, H, W) frames → (B·T, 3, h, w) at the Swin input size (resized when
    `resize_frames`)."""
    images = frames.reshape(-1, *frames.shape[2:])
    if self.resize_frames and tuple(images.shape[-2:]) != tuple(self.frame_size):
      images = resize.resize_2d(images, tuple(self.frame_size), align_corners=False)
    return images

  def encode_segments(self, audio, frames, *, deterministic: bool = True,
                      rngs: nnx.Rngs | None = None, capture: bool = False):
    """audio (B, T, S) waveforms, frames (B, T, 3, H, W) normalised images →
    (v (B, T, C_v), a (B, T, C_a), aux of `DGSCT.encode` with the smaps as (B, T, N))."""
    if audio.ndim != 3 or frames.ndim != 5 or audio.shape[:2] != frames.shape[:2]:
      raise ValueError(f"expected audio (B, T, samples) and frames (B, T, 3, H, W) with the same "
                       f"(B, T); got audio {tuple(audio.shape)}, frames {tuple(frames.shape)}")
    b, t = frames.shape[:2]
    v, a, aux = self.encode(self.images(frames), self.clips(audio),
                            deterministic=deterministic, rngs=rngs, capture=capture)
    for key in ("visual_smap", "audio_smap"):
      if aux[key] is not None:
        aux[key] = aux[key].reshape(b, t, -1)
    return v.reshape(b, t, -1), a.reshape(b, t, -1), aux


class TaskModel(SwinHTSAT):
  """The backbone plus a task head `head` built from the config's `head` section
  (`presets.<task>`); subclasses set `TASK` (for messages) and `HEAD` (the head
  class), define `__call__` and may override `head_arguments`."""

  TASK = ""
  HEAD = None

  def __init__(self, config, *, rngs: nnx.Rngs):
    cfg = task_config(config, self.TASK)
    super().__init__(cfg, rngs=rngs)
    self.head = self.HEAD(**self.head_arguments(cfg), rngs=rngs)  # pylint: disable=not-callable

  def head_arguments(self, cfg) -> dict:
    """The head's arguments: `head` plus `num_classes`; its `visual_dim` and `audio_dim`
    must be the encoders' final widths."""
    head = dict(cfg["head"], num_classes=cfg["num_classes"])
    self.check_head_dim(head, "visual_dim", self.swin.num_features)
    self.check_head_dim(head, "audio_dim", self.htsat.num_features)
    return head

  def check_head_dim(self, head: dict, key: str, expected):
    value = tuple(head[key]) if isinstance(head[key], (list, tuple)) else head[key]
    if value != expected:
      raise ValueError(f"{self.TASK} model config: head.{key}={head[key]} but the encoders "
                       f"give {expected}")
