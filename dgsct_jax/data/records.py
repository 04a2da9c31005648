"""Record machinery shared by the AVE, AVVP, AVS and AVQA builders and sources.

Media trees of the official releases look like `frames/<video_id>/<n>.jpg`
(frames numbered 1..n) and `wave/<video_id>.npy`. Builders read them through
this module (and `datasets.base.MediaBuilder`) so that every dataset gets the
same bad-input policy:

* strict (default): the first missing folder, short frame list, corrupt JPEG,
  truncated or wrong-shaped waveform stops the build with a `BadMediaError`
  naming the file;
* `skip_bad=True`: the video is left out, and `SkipReport` keeps the count
  and the reason per video, which the builder logs and the CLI prints (and
  the build record stores with the dataset, `datasets/build_record.py`).

Nothing is dropped silently. Frames are stored as the original JPEG bytes
(no re-encoding, so storage is lossless w.r.t. the release), verified by a
full decode at build time; decoding for training happens in the input
pipeline (`decode_rgb`, `decode_frames`, in each dataset's `source.py`).
"""
import collections
import dataclasses
import io
import logging
import os
import pathlib
import re

import numpy as np
from PIL import Image

from dgsct_jax.data import preprocess

_FRAME_RE = re.compile(r"^(\d+)\.jpe?g$", re.IGNORECASE)


class BadMediaError(ValueError):
  """Unusable media for one video; the message names the file or folder."""


@dataclasses.dataclass
class SkipReport:
  """Videos left out under `skip_bad=True`, per split, with the reason for each."""
  skipped: dict = dataclasses.field(default_factory=lambda: collections.defaultdict(list))

  def add(self, split: str, key: str, reason: str):
    self.skipped[split].append((key, reason))
    logging.info("skipping %s (%s): %s", key, split, reason)

  def count(self, split: str | None = None) -> int:
    if split is not None:
      return len(self.skipped.get(split, ()))
    return sum(len(v) for v in self.skipped.values())

  def summary(self) -> str:
    lines = [f"skipped {self.count()} videos with bad or missing media"]
    for split, items in sorted(self.skipped.items()):
      kinds = collections.Counter(reason.split(":")[0] for _, reason in items)
      lines.append(f"  {split}: {len(items)} ({', '.join(f'{k}: {v}' for k, v in kinds.items())})")
    return "\n".join(lines)


def frame_folder(folder) -> pathlib.Path:
  """`folder` as a Path, after checking that it is a directory."""
  folder = pathlib.Path(folder)
  if not folder.is_dir():
    raise BadMediaError(f"missing frame folder: {folder}")
  return folder


def list_frames(folder: pathlib.Path) -> list[pathlib.Path]:
  """Frame files of one video in frame-number order; numbering must be 1..n.

  The reference opens `'{:08d}.jpg'.format(i)` for i in the sampled 1-based
  indices, with n = the number of *.jpg files; a gap would make it read a
  different frame or crash, so gaps are an error here.
  """
  folder = frame_folder(folder)
  numbered = []
  for name in os.listdir(folder):
    match = _FRAME_RE.match(name)
    if match:
      numbered.append((int(match.group(1)), folder / name))
  numbered.sort()
  if not numbered:
    raise BadMediaError(f"no frames (*.jpg) in folder: {folder}")
  numbers = [n for n, _ in numbered]
  if numbers != list(range(1, len(numbers) + 1)):
    raise BadMediaError(f"frames in {folder} are not numbered 1..{len(numbers)} "
                        f"(first numbers: {numbers[:5]})")
  return [path for _, path in numbered]


def read_image(path, image_format: str = "JPEG") -> bytes:
  """The file's bytes, after checking that they decode completely as `image_format`."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise BadMediaError(f"missing image: {path}")
  data = path.read_bytes()
  try:
    with Image.open(io.BytesIO(data)) as image:
      if image.format != image_format:
        raise BadMediaError(f"not a {image_format} ({image.format}): {path}")
      image.load()  # Full decode: truncated files fail here, not at train time.
  except BadMediaError:
    raise
  except Exception as e:  # PIL raises several types for corrupt data.
    raise BadMediaError(f"corrupt {image_format} {path}: {e}") from e
  return data


def read_jpeg(path) -> bytes:
  return read_image(path, "JPEG")


def select_frames(folder: pathlib.Path, num_segments: int = 10,
                  min_frames: int = 10) -> tuple[list[bytes], int]:
  """JPEG bytes of the frames the reference samples, and the number available."""
  frames = list_frames(folder)
  if len(frames) < min_frames:
    raise BadMediaError(f"only {len(frames)} frames (< {min_frames}) in folder: {folder}")
  picked = preprocess.frame_indices(len(frames), num_segments)
  return [read_jpeg(frames[i - 1]) for i in picked], len(frames)


def load_npy(path, what: str = "array") -> np.ndarray:
  """np.load of a non-pickled .npy file; missing or unreadable -> BadMediaError."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise BadMediaError(f"missing {what} file: {path}")
  try:
    return np.load(path, allow_pickle=False)
  except Exception as e:  # Truncated headers/data raise ValueError, EOFError, ...
    raise BadMediaError(f"unreadable {what} {path}: {e}") from e


def check_wave(wave, source: str, num_segments: int = 10,
               samples_per_segment: int = 32_000) -> np.ndarray:
  """float32 (num_segments, samples_per_segment) from any float array of T*S finite samples.

  Any shape with exactly T*S elements is accepted, as the reference's
  `wave.view(10, 32000)` does; anything else is an error naming `source`.
  """
  wave = np.asarray(wave)
  expected = num_segments * samples_per_segment
  if not np.issubdtype(wave.dtype, np.floating) or wave.size != expected:
    raise BadMediaError(f"waveform {source} has shape {wave.shape} dtype {wave.dtype}; "
                        f"expected {expected} float samples ({num_segments}, {samples_per_segment})")
  wave = wave.reshape(num_segments, samples_per_segment).astype(np.float32)
  if not np.all(np.isfinite(wave)):
    raise BadMediaError(f"waveform {source} contains NaN or Inf")
  return wave


def load_wave(path, num_segments: int = 10, samples_per_segment: int = 32_000) -> np.ndarray:
  """float32 (num_segments, samples_per_segment) waveform from a .npy file (`check_wave`)."""
  return check_wave(load_npy(path, "waveform"), str(path), num_segments, samples_per_segment)


def decode_rgb(data: bytes) -> np.ndarray:
  """Image bytes (JPEG, PNG, ...) -> uint8 (H, W, 3) RGB. Greyscale is replicated to RGB,

  which equals the reference's broadcasting of a 1-channel tensor against the
  3-channel ImageNet mean/std.
  """
  with Image.open(io.BytesIO(bytes(data))) as image:
    return np.asarray(image.convert("RGB"))


def decode_frames(jpegs, size: tuple[int, int]) -> np.ndarray:
  """Sequence of JPEG bytes -> float32 (T, 3, h, w), resized and normalised."""
  return np.stack([preprocess.preprocess_frame(decode_rgb(b), size) for b in jpegs])


def as_str(value) -> str:
  """A stored Text feature (bytes when read back from ArrayRecord) as str."""
  return value.decode() if isinstance(value, bytes) else str(value)


def one_hot_segments(labels: np.ndarray, num_labels: int) -> np.ndarray:
  """int (T,) segment classes -> float32 (T, num_labels) one-hot."""
  return np.eye(num_labels, dtype=np.float32)[np.asarray(labels, np.int64)]
