"""The synthetic AVE look-alike: determinism, label semantics, learnable signal, speed."""
import dataclasses
import time

import numpy as np
import pytest

from dgsct_jax.data import preprocess
from dgsct_jax.data import synthetic

CFG = synthetic.SyntheticConfig()


def unnormalize(frames):
  mean = np.asarray(preprocess.IMAGENET_MEAN, np.float32)[:, None, None]
  std = np.asarray(preprocess.IMAGENET_STD, np.float32)[:, None, None]
  return frames * std + mean


def modalities(element, cfg=CFG):
  """(visible, audible) per segment, measured from the signals themselves."""
  audio_rms = np.sqrt((element["audio"] ** 2).mean(-1))
  audible = audio_rms > 2 * cfg.noise_level
  rgb = unnormalize(element["frames"])  # (T, 3, H, W)
  background = np.median(rgb.reshape(len(rgb), 3, -1), axis=-1)[..., None, None]
  changed = np.abs(rgb - background).sum(1) > 0.25  # Sprite pixels differ from background.
  visible = changed.mean((-1, -2)) > 0.03
  return visible, audible


def test_format_and_label_width():
  cfg = synthetic.SyntheticConfig(num_classes=8, image_size=(32, 32), samples_per_segment=4000)
  src = synthetic.SyntheticSource("val", 5, cfg)
  e = src[3]
  assert len(src) == 5 and e["video_id"] == "synthetic_val_0000003"
  assert e["frames"].shape == (10, 3, 32, 32) and e["frames"].dtype == np.float32
  assert e["audio"].shape == (10, 4000) and e["audio"].dtype == np.float32
  assert e["label"].shape == (10, 9) and e["label"].dtype == np.float32
  np.testing.assert_array_equal(e["label"].sum(1), 1)
  with pytest.raises(IndexError):
    src[5]
  with pytest.raises(ValueError, match="unknown split"):
    synthetic.SyntheticSource("dev")


def test_deterministic_per_seed_split_and_index():
  a, b = synthetic.SyntheticSource("train", 10), synthetic.SyntheticSource("train", 10)
  for k in ("frames", "audio", "label"):
    np.testing.assert_array_equal(a[7][k], b[7][k])
  other_seed = synthetic.SyntheticSource("train", 10, dataclasses.replace(CFG, seed=1))
  assert not np.array_equal(a[7]["audio"], other_seed[7]["audio"])
  assert not np.array_equal(a[7]["audio"], synthetic.SyntheticSource("test", 10)[7]["audio"])
  assert not np.array_equal(a[7]["audio"], a[8]["audio"])


def test_label_is_class_exactly_where_visible_and_audible():
  src = synthetic.SyntheticSource("train", 300)
  kinds = {"both": 0, "visual_only": 0, "audio_only": 0, "neither": 0}
  classes = set()
  for i in range(len(src)):
    e = src[i]
    visible, audible = modalities(e)
    label = e["label"].argmax(1)
    np.testing.assert_array_equal(label != CFG.num_classes, visible & audible, err_msg=e["video_id"])
    event = np.flatnonzero(label != CFG.num_classes)
    assert len(event) >= 1 and np.all(np.diff(event) == 1)  # One contiguous event.
    assert len(set(label[event])) == 1
    classes.add(int(label[event[0]]))
    kinds["both"] += int((visible & audible).sum())
    kinds["visual_only"] += int((visible & ~audible).sum())
    kinds["audio_only"] += int((~visible & audible).sum())
    kinds["neither"] += int((~visible & ~audible).sum())
  assert classes == set(range(CFG.num_classes))
  # Distractors are common: one modality alone cannot localise the event.
  assert min(kinds.values()) > 0.1 * sum(kinds.values()) / 4, kinds


def test_classes_have_distinct_audio_and_visual_signatures():
  src = synthetic.SyntheticSource("train", 200)
  peaks, colours = {}, {}
  for i in range(len(src)):
    e = src[i]
    label = e["label"].argmax(1)
    t = int(np.flatnonzero(label != CFG.num_classes)[0])
    c = int(label[t])
    spectrum = np.abs(np.fft.rfft(e["audio"][t]))
    peaks.setdefault(c, set()).add(int(spectrum.argmax()))  # Bin = Hz for 1-s segments.
    rgb = unnormalize(e["frames"][t])
    background = np.median(rgb.reshape(3, -1), axis=-1)
    sprite = np.abs(rgb - background[:, None, None]).sum(0) > 0.25
    colours.setdefault(c, []).append(rgb[:, sprite].mean(1))
  assert len(peaks) == CFG.num_classes
  main_peak = {c: min(p) for c, p in peaks.items()}  # The fundamental dominates.
  assert len(set(main_peak.values())) == CFG.num_classes
  mean_colour = np.stack([np.mean(colours[c], 0) for c in sorted(colours)])
  distance = np.linalg.norm(mean_colour[:, None] - mean_colour[None], axis=-1)
  assert distance[~np.eye(len(distance), dtype=bool)].min() > 0.1


def test_generation_is_fast():
  src = synthetic.SyntheticSource("train", 1000)
  src[0]
  start = time.perf_counter()
  for i in range(1000):
    src[i]
  elapsed = time.perf_counter() - start
  assert elapsed < 10, f"1000 synthetic 64x64 videos took {elapsed:.1f} s"
