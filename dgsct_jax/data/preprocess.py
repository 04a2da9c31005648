"""Frame and audio preprocessing, identical to the reference AVE loader.

Reference (DG-SCT/AVE/dataloader.py, spec/dgsct_core.md §1.3), per video:
* frames: 10 one-based indices `int(linspace(1, n_frames, 10))`; each frame is
  decoded to uint8 RGB, divided by 255 (`to_unit`), resized to 192x192 with
  torchvision's tensor `Resize(bicubic)` = `torch.nn.functional.interpolate(
  mode='bicubic', align_corners=False, antialias=False)` (A = -0.75,
  out-of-range taps clamped to the border, no clamping of the result), then
  ImageNet-normalised (`normalize_chw`);
* audio: `wave.view(10, 32000)`, each row repeated until 320 000 samples;
  this project's model does that on device, so the host keeps (10, 32000).

The bicubic kernel is `dgsct_jax.models.resize` (PyTorch's taps, bit for bit;
`jax.image.resize` and PIL differ, see tests/test_data_preprocess.py). On the
host we multiply only the nonzero band of its interpolation matrices (each
output reads 4 neighbouring inputs), in small BLAS blocks: ~1 ms per 640x360
frame instead of ~10 ms dense. On device, use `resize.resize_2d`.
"""
import functools

import numpy as np

from dgsct_jax.models import resize

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def frame_indices(num_available: int, num_segments: int = 10) -> np.ndarray:
  """One-based frame numbers the reference reads: truncated linspace(1, n, T)."""
  if num_available < 1:
    raise ValueError(f"need at least one frame, got {num_available}")
  return np.linspace(1, num_available, num=num_segments, dtype=int)


@functools.lru_cache(maxsize=64)
def _band_blocks(in_size: int, out_size: int, block: int = 8):
  """The nonzero band of `resize.bicubic_matrix` as (out_lo, out_hi, in_lo, in_hi, dense block).

  Each output uses 4 neighbouring inputs, so a block of outputs needs a short
  contiguous input range: small dense BLAS products cover the band at a
  fraction of the dense product's cost (same sums, 1e-7 rounding).
  """
  taps, _ = resize.bicubic_taps(in_size, out_size, align_corners=False)
  mat = resize.bicubic_matrix(in_size, out_size, align_corners=False)
  blocks = []
  for lo in range(0, out_size, block):
    hi = min(lo + block, out_size)
    a, b = int(taps[lo:hi].min()), int(taps[lo:hi].max()) + 1
    blocks.append((lo, hi, a, b, np.ascontiguousarray(mat[lo:hi, a:b])))
  return tuple(blocks)


def _resize_rows(x2d: np.ndarray, out_size: int) -> np.ndarray:
  """(in, N) -> (out, N) = bicubic_matrix(in, out) @ x2d, banded."""
  out = np.empty((out_size, x2d.shape[1]), np.float32)
  for lo, hi, a, b, block in _band_blocks(x2d.shape[0], out_size):
    np.matmul(block, x2d[a:b], out=out[lo:hi])
  return out


def _resize_cols(x2d: np.ndarray, out_size: int) -> np.ndarray:
  """(N, in) -> (N, out) = x2d @ bicubic_matrix(in, out).T, banded."""
  out = np.empty((x2d.shape[0], out_size), np.float32)
  for lo, hi, a, b, block in _band_blocks(x2d.shape[1], out_size):
    np.matmul(x2d[:, a:b], block.T, out=out[:, lo:hi])
  return out


def resize_bicubic(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """Torch-exact bicubic resize (align_corners=False): (H, W, C) -> float32 (C, h, w).

  Channels-first out because the model consumes NCHW and the column pass
  produces it for free. Input of any real dtype is resized as float32 values.
  """
  if image.ndim != 3:
    raise ValueError(f"expected an (H, W, C) image, got shape {image.shape}")
  in_h, in_w, chans = image.shape
  out_h, out_w = size
  x = image.astype(np.float32, copy=False).reshape(in_h, in_w * chans)
  y = _resize_rows(x, out_h) if in_h != out_h else x
  y = np.ascontiguousarray(y.reshape(out_h, in_w, chans).transpose(0, 2, 1))
  y = y.reshape(out_h * chans, in_w)
  z = _resize_cols(y, out_w) if in_w != out_w else y
  return np.ascontiguousarray(z.reshape(out_h, chans, out_w).transpose(1, 0, 2))


def to_unit(image_u8: np.ndarray) -> np.ndarray:
  """uint8 -> float32 / 255, as torchvision's `ToTensor` and `read_image(p) / 255`.

  A true division (not × 1/255, which differs by an ulp on some values).
  """
  return np.divide(image_u8, np.float32(255), dtype=np.float32)  # exact cast, then divide


def normalize_chw(frames: np.ndarray, scale: float = 1.0,
                  mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
  """(..., 3, H, W) values in [0, 1] -> ImageNet-normalised float32 (torchvision Normalize).

  `scale` multiplies first; it exists for callers that pass `scale=1.0`
  (uint8 data goes through `to_unit` instead).
  """
  mean = np.asarray(mean, np.float32)[:, None, None]
  std = np.asarray(std, np.float32)[:, None, None]
  frames = frames.astype(np.float32, copy=False)
  if scale != 1.0:
    frames = frames * np.float32(scale)
  return (frames - mean) / std


def preprocess_frame(image_u8: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """Decoded uint8 (H, W, 3) RGB frame -> float32 (3, h, w): /255, resize, normalise."""
  if image_u8.ndim != 3 or image_u8.shape[-1] != 3:
    raise ValueError(f"expected an (H, W, 3) RGB frame, got shape {image_u8.shape}")
  return normalize_chw(resize_bicubic(to_unit(image_u8), size))
