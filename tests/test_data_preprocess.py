"""Frame/audio preprocessing against the PyTorch reference (spec/dgsct_core.md §1.3)."""
import jax
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


@pytest.mark.parametrize("n_in,n_out", [(640, 192), (360, 192), (333, 192), (100, 192), (40, 192),
                                        (9, 192), (192, 192), (5, 3)])
def test_bicubic_matrix_is_torch_interpolate(n_in, n_out):
  # Rows of torch's 1-D operator, obtained by resizing basis images.
  basis = torch.eye(n_in)[:, None, None, :].expand(n_in, 1, 2, n_in).contiguous()
  torch_op = F.interpolate(basis, size=(2, n_out), mode="bicubic", align_corners=False,
                           antialias=False)[:, 0, 0, :].numpy().T
  np.testing.assert_allclose(preprocess.bicubic_matrix(n_in, n_out), torch_op, rtol=0, atol=1e-6)


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


def test_resize_jax_matches_torch():
  x = np.random.default_rng(1).random((2, 3, 240, 320), dtype=np.float32)
  ref = F.interpolate(torch.from_numpy(x), size=(192, 192), mode="bicubic",
                      align_corners=False, antialias=False).numpy()
  ours = np.asarray(jax.jit(lambda a: preprocess.resize_bicubic_jax(a, (192, 192)))(x))
  np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5)


def test_jax_image_resize_and_pil_differ_from_torch():
  """Why we do not use them: different kernel (A=-0.5) and antialiasing."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  image = np.random.default_rng(2).integers(0, 256, (360, 640, 3), dtype=np.uint8)
  ref = F.interpolate(torch.from_numpy(image).permute(2, 0, 1)[None].float(), size=(192, 192),
                      mode="bicubic", align_corners=False, antialias=False)[0].numpy()
  ours = preprocess.resize_bicubic(image, (192, 192))
  via_jax = np.asarray(jax.image.resize(jnp.asarray(image, jnp.float32), (192, 192, 3), "cubic"))
  via_pil = np.asarray(Image.fromarray(image).resize((192, 192), Image.BICUBIC), np.float32)
  assert np.abs(ours - ref).max() < 1e-3  # In 0..255 units.
  assert np.abs(via_jax.transpose(2, 0, 1) - ref).max() > 20
  assert np.abs(via_pil.transpose(2, 0, 1) - ref).max() > 20
  # Even without antialiasing, jax's cubic (Keys A=-0.5) differs from torch's A=-0.75.
  up = np.random.default_rng(3).random((20, 30), dtype=np.float32)
  ref_up = F.interpolate(torch.from_numpy(up)[None, None], size=(64, 64), mode="bicubic",
                         align_corners=False)[0, 0].numpy()
  jax_up = np.asarray(jax.image.resize(up, (64, 64), "cubic", antialias=False))
  assert np.abs(jax_up - ref_up).max() > 1e-2


def test_tile_audio_matches_reference_loop():
  wave = np.random.default_rng(4).standard_normal((10, 32000)).astype(np.float32)
  ref = torch.from_numpy(wave)
  while ref.size(-1) < 320_000:  # The reference's loop.
    ref = torch.cat((ref, ref), dim=-1)
  ref = ref[:, :320_000].numpy()
  np.testing.assert_array_equal(preprocess.tile_audio_np(wave, 320_000), ref)
  np.testing.assert_array_equal(np.asarray(preprocess.tile_audio(jnp.asarray(wave), 320_000)), ref)
  # Non-divisible lengths truncate the same way.
  short = wave[:, :7000]
  ref = torch.from_numpy(short)
  while ref.size(-1) < 50_000:
    ref = torch.cat((ref, ref), dim=-1)
  np.testing.assert_array_equal(np.asarray(preprocess.tile_audio(short, 50_000)),
                                ref[:, :50_000].numpy())
