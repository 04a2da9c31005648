"""The AVSBench look-alike (dgsct_jax/data/synthetic_avs.py), its configs and the AVS
mask figure."""
import numpy as np
import pytest
from PIL import Image

from configs import avs as avs_config
from configs import demo as demo_config
from dgsct_jax import input_pipeline
from dgsct_jax import tasks
from dgsct_jax.data import preprocess
from dgsct_jax.data import synthetic_avs
from dgsct_jax.data import synthetic_llp
from dgsct_jax.tasks.avs import figure

S4 = synthetic_avs.SyntheticAvsConfig()
MS3 = synthetic_avs.SyntheticAvsConfig(multi_source=True)


def _scene(cfg, split, index):
  """The element and the draws behind it (the source's own sampling, replayed)."""
  rng = np.random.default_rng((cfg.seed, {"train": 0, "val": 1, "test": 2}[split], index))
  classes = rng.choice(cfg.num_classes, size=int(rng.integers(1, cfg.max_objects + 1)),
                       replace=False)
  sounding = synthetic_avs.sample_sounding(rng, len(classes), cfg)
  return synthetic_avs.SyntheticAvsSource(split, 40, cfg)[index], classes, sounding


def test_elements_are_deterministic_and_shaped_like_avsbench():
  source = synthetic_avs.SyntheticAvsSource("val", 5, S4)
  a, b = source[3], source[3]
  assert set(a) == {"frames", "masks", "mask_valid", "audio", "name", "category_id"}
  for key in ("frames", "masks", "audio", "mask_valid"):
    np.testing.assert_array_equal(a[key], b[key])
  assert a["frames"].shape == (5, 3, 96, 96) and a["frames"].dtype == np.float32
  assert a["masks"].shape == (5, 96, 96) and set(np.unique(a["masks"])) <= {0.0, 1.0}
  assert a["audio"].shape == (5, 32000) and a["name"] == "synthetic_avs_val_0000003"
  assert not np.array_equal(source[2]["frames"], a["frames"])
  with pytest.raises(IndexError, match="out of range"):
    source[5]


@pytest.mark.parametrize("cfg", [S4, MS3], ids=["s4", "ms3"])
def test_masks_are_the_sounding_objects_and_audio_carries_their_tones(cfg):
  bank = synthetic_llp.class_bank(cfg)
  sprite_area = bank.masks.sum((1, 2, 3))
  tone_power = {}
  for index in range(40):
    element, classes, sounding = _scene(cfg, "test", index)
    if not cfg.multi_source:
      assert sounding.sum(0).tolist() == [1] * 5  # one object sounds, in every frame
    assert sounding.any()
    for t in range(5):
      # Objects never overlap (a cell each), so the mask is the sum of the sounding
      # silhouettes; silent objects are on screen but not in the mask.
      assert element["masks"][t].sum() == sprite_area[classes[sounding[:, t]]].sum()
      for k, c in enumerate(classes):
        tone = bank.tones[c]
        spectrum = np.abs(np.fft.rfft(element["audio"][t]))
        peak = np.abs(np.fft.rfft(tone[:32000])).argmax()
        tone_power.setdefault(bool(sounding[k, t]), []).append(spectrum[peak])
    assert element["category_id"] == classes[sounding.any(1)][0]
  # Each tone's strongest frequency stands out exactly when its object sounds.
  assert min(tone_power[True]) > 10 * max(tone_power[False])


def test_s4_training_split_annotates_the_first_frame_only():
  train, _, sounding = _scene(S4, "train", 7)
  assert train["mask_valid"].tolist() == [True, False, False, False, False]
  assert train["masks"][0].any() and not train["masks"][1:].any()
  ms3_train = synthetic_avs.SyntheticAvsSource("train", 8, MS3)[7]
  assert ms3_train["mask_valid"].all()


def test_bad_config_is_named():
  with pytest.raises(ValueError, match=r"max_objects must be in \[1, num_classes=2\]"):
    synthetic_avs.SyntheticAvsSource("train", 1, synthetic_avs.SyntheticAvsConfig(
        num_classes=2, max_objects=3))
  with pytest.raises(ValueError, match="room for 4 objects"):
    synthetic_avs.SyntheticAvsSource("train", 1, synthetic_avs.SyntheticAvsConfig(max_objects=5))


@pytest.mark.parametrize("subset", ["s4", "ms3"])
def test_avs_config_serves_synthetic_elements_of_its_batch_spec(subset):
  config = avs_config.get_config(f"subset={subset},variant=tiny,data=synthetic/avs,runlocal")
  assert config.data.name == "synthetic/avs"
  assert config.data.synthetic.multi_source == (subset == "ms3")
  element = input_pipeline.get_source(config, "test")[1]
  for name, field in tasks.for_config(config).batch_spec().items():
    assert np.shape(element[name]) == field.shape, name


def test_avs_demo_config():
  c = demo_config.get_config("task=avs")
  assert (c.task, c.data.name, c.model.variant) == ("avs", "synthetic/avs", "tiny")
  assert c.data.synthetic.multi_source is False and c.model.encoder_train_mode is False
  assert c.model.num_classes == 1 and c.data.synthetic.num_classes == demo_config.NUM_CLASSES
  assert c.figure.num_videos > 0
  assert c.eval.predict_after_train and set(c.pretrain.encoders) == set(c.init_from)


def test_mask_figure(tmp_path):
  element = synthetic_avs.SyntheticAvsSource("test", 2, S4)[0]
  perfect = np.where(element["masks"] > 0, 10.0, -10.0).astype(np.float32)
  rows = [dict(element, logits=perfect), dict(element, logits=-perfect)]
  path = figure.draw(rows, tmp_path / "masks.png")
  image = np.asarray(Image.open(path).convert("RGB"))
  assert image.shape[:2] == figure.pixel_size(2, 5)
  # The frame is kept inside the mask, dimmed outside, and the mask's edge is white.
  rgb = figure.to_rgb(element["frames"][0])
  mask = element["masks"][0] > 0
  edge = figure.boundary(mask)
  shown = figure.overlay(rgb, mask)
  np.testing.assert_array_equal(shown[mask & ~edge], rgb[mask & ~edge])
  np.testing.assert_allclose(shown[~mask], figure.DIM * rgb[~mask], rtol=1e-6)
  assert (shown[edge] == 1).all() and 0 < edge.sum() < mask.sum()
  ring = np.ones((3, 3), bool)
  ring[1, 1] = False  # only the centre has its four neighbours inside
  np.testing.assert_array_equal(figure.boundary(np.ones((3, 3))), ring)
  np.testing.assert_allclose(
      figure.to_rgb(preprocess.normalize_chw(np.full((3, 2, 2), 0.25, np.float32))), 0.25,
      atol=1e-6)
