"""Media readers the LLP, AVSBench and MUSIC-AVQA builders need beyond `records`.

`dgsct_jax.data.records` (shared with AVE) covers JPEG frame folders and
(T, 32000) `.npy` waves. The other tasks add PNG frames and masks (AVSBench),
pickled wave dictionaries (AVSBench `AVS.npy`), fixed frame names (LLP reads
`00000001.jpg`..`00000010.jpg` directly) and float feature arrays (LLP
R(2+1)D). Everything raises `records.BadMediaError` naming the file, so the
builders share AVE's strict / `skip_bad` policy.
"""
import io
import pathlib
import pickle

import numpy as np
from PIL import Image

from dgsct_jax.data import records

BadMediaError = records.BadMediaError


def numbered_jpegs(folder, count: int) -> list[bytes]:
  """JPEG bytes of `<folder>/00000001.jpg` .. `%08d.jpg` (1-based, first `count`)."""
  folder = records.frame_folder(folder)
  out = []
  for i in range(1, count + 1):
    path = folder / f"{i:08d}.jpg"
    if not path.is_file():
      raise BadMediaError(f"missing frame {path.name} in {folder}")
    out.append(records.read_jpeg(path))
  return out


def read_png(path) -> bytes:
  """The PNG file's bytes, after a full decode check."""
  return records.read_image(path, "PNG")


def _nonzero(arr: np.ndarray) -> np.ndarray:
  """Foreground = any nonzero value (palette index, grey level or RGB channel)."""
  return arr.any(-1) if arr.ndim == 3 else arr != 0


def binary_mask(path, rule: str) -> np.ndarray:
  """bool (H, W) ground-truth mask from a PNG, by the reference's reading rule.

  rule "pil_1" (S4): `Image.open(p).convert('1')` as the reference loader does
  (PIL's '1' conversion of a 0/255 mask is that mask); nonzero is foreground.
  rule "nonzero" (MS3): any nonzero pixel value (palette index, grey level or
  RGB channel) is foreground. The reference reads MS3 in mode 'P' and divides
  the palette index by 255, which is binary only for 0/255 indices; the
  builder binarises explicitly (spec §2.1, §6.1).
  """
  read_png(path)
  with Image.open(path) as image:
    if rule == "pil_1":
      return np.asarray(image.convert("1"), bool)
    if rule == "nonzero":
      return _nonzero(np.asarray(image))
  raise ValueError(f"mask rule must be 'pil_1' or 'nonzero', got {rule!r}")


def encode_mask_png(mask: np.ndarray) -> bytes:
  """bool (H, W) → 1-bit PNG bytes (lossless; decodes to the same booleans)."""
  buf = io.BytesIO()
  Image.fromarray(np.asarray(mask, bool)).save(buf, format="PNG")
  return buf.getvalue()


def decode_mask_png(data: bytes) -> np.ndarray:
  """1-bit (or any) PNG bytes → uint8 (H, W) in {0, 1}."""
  with Image.open(io.BytesIO(bytes(data))) as image:
    return _nonzero(np.asarray(image)).astype(np.uint8)


def load_wave_dict(path) -> dict:
  """AVSBench `AVS.npy`: a pickled {'<name>.wav': float array} (numpy object array).

  The release ships pickles, so this needs `allow_pickle=True`: only build from
  files you trust.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise BadMediaError(f"missing wave dictionary: {path}")
  try:
    obj = np.load(path, allow_pickle=True)
    table = obj.item() if isinstance(obj, np.ndarray) and obj.dtype == object else obj
  except (ValueError, EOFError, OSError, pickle.UnpicklingError) as e:
    raise BadMediaError(f"unreadable wave dictionary {path}: {e}") from e
  if not isinstance(table, dict):
    raise BadMediaError(f"{path}: expected a pickled dict of waves, got {type(table).__name__}")
  return table


def wave_from_dict(table: dict, key: str, source, num_segments: int,
                   samples_per_segment: int = 32_000) -> np.ndarray:
  """float32 (T, S) from a wave dictionary entry, with the `view(T, S)` size check."""
  if key not in table:
    raise BadMediaError(f"{source}: no entry {key!r}")
  return records.check_wave(table[key], f"{source}[{key!r}]", num_segments, samples_per_segment)


def load_features(path, shape: tuple[int, ...]) -> np.ndarray:
  """float32 feature array of an exact shape from a .npy file (LLP R(2+1)D: (10, 512))."""
  x = records.load_npy(path, "feature")
  if x.shape != tuple(shape) or not np.issubdtype(x.dtype, np.floating):
    raise BadMediaError(f"features {path} have shape {x.shape} dtype {x.dtype}; "
                        f"expected float {tuple(shape)}")
  return x.astype(np.float32)
