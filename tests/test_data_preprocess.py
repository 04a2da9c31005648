"""Frame/audio preprocessing against the PyTorch reference (spec/dgsct_core.md §1.3).

The bicubic kernel itself is tested in tests/test_resize.py.
"""
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dgsct_jax.data import preprocess

SIZES = [(360, 640), (240, 320), (100, 150), (50, 40), (500, 333), (192, 192), (7, 9)]


def torch_reference_frame(image_u8: np.ndarray, size) -> np.ndarray:
  """The reference: read_image/255 -> Resize(bicubic, tensor, no AA) -> Normalize."""
  x = torch.from_numpy(image_u8).permute(2, 0, 1)[None].float() / 255
  x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=False)[0]
  mean = torch.tensor(preprocess.IMAGENET_MEAN)[:, None, None]
  std = torch.tensor(preprocess.IMAGENET_STD)[:, None, None]
  return ((x - mean) / std).numpy()


def test_frame_indices_truncated_linspace():
  # int(linspace(1, n, 10)): e.g. 30 frames -> 1, 4, 7, 10, 13, 17, 20, 23, 26, 30.
  np.testing.assert_array_equal(preprocess.frame_indices(30), [1, 4, 7, 10, 13, 17, 20, 23, 26, 30])
  np.testing.assert_array_equal(preprocess.frame_indices(10), np.arange(1, 11))
  np.testing.assert_array_equal(preprocess.frame_indices(1), np.ones(10, int))
  for n in (11, 29, 31, 47, 100):
    expected = [int(1 + (n - 1) * k / 9) for k in range(10)]
    np.testing.assert_array_equal(preprocess.frame_indices(n), expected)
  with pytest.raises(ValueError):
    preprocess.frame_indices(0)


@pytest.mark.parametrize("hw", SIZES)
def test_preprocess_frame_matches_torch(hw):
  rng = np.random.default_rng(hw[0] * 1000 + hw[1])
  image = rng.integers(0, 256, hw + (3,), dtype=np.uint8)
  ours = preprocess.preprocess_frame(image, (192, 192))
  assert ours.shape == (3, 192, 192) and ours.dtype == np.float32
  np.testing.assert_allclose(ours, torch_reference_frame(image, (192, 192)), rtol=0, atol=1e-5)


@pytest.mark.parametrize("hw,out", [((360, 640), (192, 192)), ((100, 150), (64, 48)),
                                    ((20, 30), (64, 64))])
def test_resize_float_matches_torch(hw, out):
  x = np.random.default_rng(0).standard_normal(hw + (3,)).astype(np.float32)
  ref = F.interpolate(torch.from_numpy(x).permute(2, 0, 1)[None], size=out, mode="bicubic",
                      align_corners=False, antialias=False)[0].numpy()
  np.testing.assert_allclose(preprocess.resize_bicubic(x, out), ref, rtol=0, atol=1e-5)


def test_to_unit_divides_like_torch():
  """Bit-equal to `read_image(p) / 255` and ToTensor's `.float().div(255)`; × 1/255 is not."""
  rng = np.random.default_rng(5)
  images = [np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, -1)]
  images += [rng.integers(0, 256, hw + (3,), dtype=np.uint8) for hw in ((37, 53), (360, 640))]
  for image in images:
    ours = preprocess.to_unit(image)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, (torch.from_numpy(image) / 255.0).numpy())
    np.testing.assert_array_equal(ours, torch.from_numpy(image).float().div(255).numpy())
  assert (images[0].astype(np.float32) * np.float32(1 / 255) != preprocess.to_unit(images[0])).any()


def test_audio_tiling_on_device_matches_reference_loop():
  """The host keeps (10, 32000); the model tiles on device exactly as the reference's loop."""
  from dgsct_jax.models import backbone  # pylint: disable=g-import-not-at-top
  wave = np.random.default_rng(4).standard_normal((10, 32000)).astype(np.float32)
  ref = torch.from_numpy(wave)
  while ref.size(-1) < 320_000:  # The reference's loop.
    ref = torch.cat((ref, ref), dim=-1)
  ref = ref[:, :320_000].numpy()
  np.testing.assert_array_equal(np.asarray(backbone.tile_segments(jnp.asarray(wave), 320_000)),
                                ref)
  # Non-divisible lengths truncate the same way.
  short = wave[:, :7000]
  ref = torch.from_numpy(short)
  while ref.size(-1) < 50_000:
    ref = torch.cat((ref, ref), dim=-1)
  np.testing.assert_array_equal(np.asarray(backbone.tile_segments(short, 50_000)),
                                ref[:, :50_000].numpy())
