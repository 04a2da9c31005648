"""The synthetic LLP look-alike: LlpSource's format, determinism, labels that match the
signals, AVVP scoring, registration, speed."""
import dataclasses
import io
import time

import numpy as np
import pytest
from PIL import Image

from dgsct_jax.data import preprocess
from dgsct_jax.data import sources
from dgsct_jax.data import synthetic
from dgsct_jax.data import synthetic_llp
from dgsct_jax.metrics import avvp

CFG = synthetic_llp.SyntheticLlpConfig()
BANK = synthetic_llp.class_bank(CFG)
SPRITE_AREA = BANK.masks.sum((1, 2, 3))  # (C,) pixels of each class's sprite


def _jpeg(h, w) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(buf, format="JPEG")
  return buf.getvalue()


def llp_element(image_size) -> dict:
  """An element of the real `LlpSource`, decoded from a record of the builder's features."""
  from dgsct_jax.data.datasets.llp import builder  # pylint: disable=import-outside-toplevel
  from dgsct_jax.data.datasets.llp import source  # pylint: disable=import-outside-toplevel
  t, c = builder.NUM_SEGMENTS, avvp.NUM_CLASSES
  record = {"frames": [_jpeg(*image_size)] * t, "audio": np.zeros((t, 32_000), np.float32),
            "r2p1d": np.zeros((t, builder.R2P1D_DIM), np.float32),
            "weak": np.zeros((c,), np.float32), "gt_audio": np.zeros((c, t), np.uint8),
            "gt_visual": np.zeros((c, t), np.uint8), "filename": b"abcdefghijk_0_10"}
  return source.LlpSource([record], image_size)[0]


def sprite_pixels(element, cfg=CFG):
  """int (C, T): pixels of each class's exact colour per segment (sprites are noiseless)."""
  mean, std = (np.asarray(v, np.float32)[:, None, None]
               for v in (preprocess.IMAGENET_MEAN, preprocess.IMAGENET_STD))
  rgb = element["frames"] * std + mean  # (T, 3, H, W) in [0, 1]
  colours = synthetic_llp.class_bank(cfg).sprites.max((2, 3))  # (C, 3)
  close = np.abs(rgb[None] - colours[:, None, :, None, None]).max(2) < 1e-4
  return close.sum((-1, -2))


def tone_energy(element, cfg=CFG):
  """float (C, T): spectral magnitude around each class's fundamental, per segment."""
  bank = synthetic_llp.class_bank(cfg)
  spl = cfg.samples_per_segment
  f0 = np.abs(np.fft.rfft(bank.tones[:, :spl], axis=-1)).argmax(-1)  # (C,) bins
  spectrum = np.abs(np.fft.rfft(element["audio"], axis=-1))  # (T, bins)
  window = f0[:, None] + np.arange(-6, 7)
  return spectrum[:, window].max(-1).T


def feature_score(element, cfg=CFG):
  """float (C, T): r2p1d projected on each class's feature direction (1 per visible class)."""
  feats = synthetic_llp.class_features(cfg.num_classes, cfg.feature_dim)
  return feats @ element["r2p1d"].T / cfg.feature_dim


def test_element_has_llp_source_format():
  cfg = dataclasses.replace(CFG, num_classes=25)
  e = synthetic_llp.SyntheticLlpSource("test", 20, cfg)[12]
  ref = llp_element(cfg.image_size)
  assert list(e) == list(ref)
  for k, v in ref.items():
    if isinstance(v, str):
      assert isinstance(e[k], str), k
    else:
      assert (e[k].shape, e[k].dtype) == (v.shape, v.dtype), k
  assert e["filename"] == "synthetic_llp_test_0000012"


def test_sizes_and_errors():
  assert [len(synthetic_llp.SyntheticLlpSource(s)) for s in ("train", "val", "test")] == [
      2048, 256, 256]
  src = synthetic_llp.SyntheticLlpSource("val", 5)
  with pytest.raises(IndexError):
    src[5]
  with pytest.raises(ValueError, match="unknown split"):
    synthetic_llp.SyntheticLlpSource("dev")
  with pytest.raises(ValueError, match="max_events"):
    synthetic_llp.SyntheticLlpSource("val", config=dataclasses.replace(CFG, max_events=7))


def test_deterministic_per_seed_split_and_index():
  a, b = synthetic_llp.SyntheticLlpSource("val", 10), synthetic_llp.SyntheticLlpSource("val", 10)
  for k, v in a[7].items():
    np.testing.assert_array_equal(v, b[7][k], err_msg=k)
  other_seed = synthetic_llp.SyntheticLlpSource("val", 10, dataclasses.replace(CFG, seed=1))
  for other in (a[8], other_seed[7], synthetic_llp.SyntheticLlpSource("test", 10)[7]):
    for k in ("frames", "audio", "r2p1d"):
      assert not np.array_equal(a[7][k], other[k]), k


def test_train_has_weak_labels_only():
  src = synthetic_llp.SyntheticLlpSource("train", 50)
  for i in range(len(src)):
    e = src[i]
    assert 1 <= e["weak"].sum() <= CFG.max_events
    assert e["gt_audio"].sum() == 0 and e["gt_visual"].sum() == 0
    # The content is there all the same: every weak class is seen or heard somewhere.
    present = (sprite_pixels(e) > 0).any(1) | (tone_energy(e) > 500).any(1)
    np.testing.assert_array_equal(present, e["weak"] == 1)


def test_dense_labels_match_weak_labels_and_signals():
  kinds = {"audio_only": 0, "visual_only": 0, "same_span": 0, "other_span": 0}
  for split in ("val", "test"):
    src = synthetic_llp.SyntheticLlpSource(split, 100)
    for i in range(len(src)):
      e = src[i]
      gt_a, gt_v = e["gt_audio"] == 1, e["gt_visual"] == 1
      np.testing.assert_array_equal((gt_a | gt_v).any(1), e["weak"] == 1)
      assert 1 <= e["weak"].sum() <= CFG.max_events
      for row in np.concatenate([gt_a, gt_v]):  # Each event is one contiguous span.
        assert np.all(np.diff(np.flatnonzero(row)) == 1)
      # Sprites where visible (whole: they never hide each other), nothing elsewhere.
      np.testing.assert_array_equal(sprite_pixels(e), gt_v * SPRITE_AREA[:, None])
      energy = tone_energy(e)
      assert energy[gt_a].min(initial=np.inf) > 500 > 5 * energy[~gt_a].max()
      score = feature_score(e)
      assert score[gt_v].min(initial=np.inf) > 0.7 and score[~gt_v].max() < 0.3
      for c in np.flatnonzero(e["weak"]):
        if not gt_v[c].any():
          kinds["audio_only"] += 1
        elif not gt_a[c].any():
          kinds["visual_only"] += 1
        else:
          kinds["same_span" if np.array_equal(gt_a[c], gt_v[c]) else "other_span"] += 1
  total = sum(kinds.values())
  assert all(n > 0.1 * total for n in kinds.values()), kinds


def test_constructed_case_signals():
  """Class 2 heard only (segments 3-5), class 4 seen only (0-2 and 7), class 1 both (8-9)."""
  audible, visible = np.zeros((2, CFG.num_classes, 10), bool)
  audible[2, 3:6] = audible[1, 8:] = True
  visible[4, 0:3] = visible[4, 7] = visible[1, 8:] = True
  e = synthetic_llp.render(audible, visible, np.random.default_rng(0), CFG)
  energy, pixels, score = tone_energy(e), sprite_pixels(e), feature_score(e)
  for c in (1, 2):
    assert energy[c, audible[c]].min() > 20 * energy[c, ~audible[c]].max(), c
  np.testing.assert_array_equal(pixels > 0, visible)
  np.testing.assert_array_equal(pixels[4, visible[4]], SPRITE_AREA[4])
  assert score[4, visible[4]].min() > 0.9 and np.abs(score[4, ~visible[4]]).max() < 0.2
  assert np.abs(score[2]).max() < 0.2  # Heard, never seen: no motion feature.


def test_oracle_predictions_score_100():
  src = synthetic_llp.SyntheticLlpSource("test", 40, dataclasses.replace(CFG, num_classes=25))
  gt_a = np.stack([src[i]["gt_audio"] for i in range(len(src))])
  gt_v = np.stack([src[i]["gt_visual"] for i in range(len(src))])
  metrics = avvp.AVVPMetrics()
  metrics.update({"so_a": gt_a, "so_v": gt_v, "gt_a": gt_a, "gt_v": gt_v})
  result = metrics.result()
  assert {k: result[k] for k in avvp.METRIC_NAMES} == {k: 100.0 for k in avvp.METRIC_NAMES}
  # The modalities differ: audio labels as visual predictions are not perfect.
  swapped = avvp.avvp_scores(gt_a, gt_a, gt_a, gt_v)
  assert swapped["seg_a"] == 100.0 and swapped["seg_v"] < 80, swapped


def test_get_source():
  cfg = dataclasses.replace(CFG, image_size=(32, 32), samples_per_segment=4000)
  src = sources.get_source("synthetic/llp", "val", config=cfg, size=3, image_size=(48, 40))
  assert "synthetic/llp" in sources.KNOWN_SOURCES
  assert len(src) == 3 and src[2]["frames"].shape == (10, 3, 48, 40)
  assert src[2]["audio"].shape == (10, 4000)
  assert len(sources.get_source("synthetic/llp", "test")) == 256
  with pytest.raises(TypeError, match="takes a SyntheticLlpConfig"):
    sources.get_source("synthetic/llp", "val", config=synthetic.SyntheticConfig())


def test_input_pipeline_reads_the_shared_synthetic_section():
  from configs import common  # pylint: disable=import-outside-toplevel
  from dgsct_jax import input_pipeline  # pylint: disable=import-outside-toplevel
  c = common.trainer_config(common.parse("data=synthetic/llp,runlocal", data="ave", seed=0))
  c.data.synthetic.update(num_classes=25, image_size=(32, 32), samples_per_segment=4000)
  c.data.synthetic.not_a_field = 1  # Keys the LLP config lacks are ignored.
  src = input_pipeline.get_source(c, "val")
  assert src.config == synthetic_llp.SyntheticLlpConfig(
      num_classes=25, image_size=(32, 32), samples_per_segment=4000)
  assert len(src) == 16 and src[15]["gt_audio"].shape == (25, 10)


def test_generation_is_fast():
  src = synthetic_llp.SyntheticLlpSource("train", 300)
  src[0]
  start = time.perf_counter()
  for i in range(300):
    src[i]
  elapsed = time.perf_counter() - start
  assert elapsed < 3, f"300 synthetic LLP 64x64 videos took {elapsed:.1f} s"
