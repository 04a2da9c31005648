"""The AVVP prediction figure: binary timelines by hand, and the PNG's size and pixels."""
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=wrong-import-position

from dgsct_jax.metrics import avvp  # noqa: E402
from dgsct_jax.tasks.avvp import figure  # noqa: E402

ORANGE = np.array([1.0, 0x7f / 255, 0x0e / 255])  # tab:orange, the predicted audio bars


def _row(num_classes: int, filename: str = "vid_0_10") -> dict:
  c = num_classes
  return dict(global_prob=np.zeros(c), a_frame_prob=np.zeros((10, c)),
              v_frame_prob=np.zeros((10, c)), gt_audio=np.zeros((c, 10), np.uint8),
              gt_visual=np.zeros((c, 10), np.uint8), filename=filename)


def _hand_row(num_classes: int = 4) -> dict:
  """Class 0: audio 0.6 at segment 3 only; class 1: visual 0.9 everywhere but video p 0.3;
  class 2: visual GT on segments 5-7 only; class 3: nothing."""
  row = _row(num_classes)
  row["global_prob"][:3] = [0.9, 0.3, 0.1]
  row["a_frame_prob"][3, 0] = 0.6
  row["a_frame_prob"][4, 0] = 0.49
  row["v_frame_prob"][:, 1] = 0.9
  row["gt_visual"][2, 5:8] = 1
  return row


def _random_row(rng, num_classes: int, filename: str) -> dict:
  row = _row(num_classes, filename)
  row["global_prob"] = rng.uniform(size=num_classes)
  row["a_frame_prob"] = rng.uniform(size=(10, num_classes)) ** 2
  row["v_frame_prob"] = rng.uniform(size=(10, num_classes)) ** 2
  row["gt_audio"] = (rng.uniform(size=(num_classes, 10)) > 0.8).astype(np.uint8)
  row["gt_visual"] = (rng.uniform(size=(num_classes, 10)) > 0.8).astype(np.uint8)
  return row


def test_timelines_by_hand():
  t = figure.timelines(_hand_row())
  expected_a = np.zeros((4, 10), np.uint8)
  expected_a[0, 3] = 1
  np.testing.assert_array_equal(t["pred_audio"], expected_a)
  np.testing.assert_array_equal(t["pred_visual"], np.zeros((4, 10), np.uint8))  # filtered
  expected_gv = np.zeros((4, 10), np.uint8)
  expected_gv[2, 5:8] = 1
  np.testing.assert_array_equal(t["gt_visual"], expected_gv)
  np.testing.assert_array_equal(t["gt_audio"], np.zeros((4, 10), np.uint8))
  np.testing.assert_array_equal(t["classes"], [0, 2])


def test_timelines_without_video_filter_keeps_class_1():
  t = figure.timelines(_hand_row(), video_filter=False)
  np.testing.assert_array_equal(t["pred_visual"][1], np.ones(10, np.uint8))
  assert t["pred_visual"].sum() == 10
  np.testing.assert_array_equal(t["classes"], [0, 1, 2])


def test_timelines_threshold():
  t = figure.timelines(_hand_row(), threshold=0.7)  # 0.6 and 0.49 both off now
  assert t["pred_audio"].sum() == 0
  np.testing.assert_array_equal(t["classes"], [2])
  t = figure.timelines(_hand_row(), threshold=0.45)  # 0.49 on; class 2 passes no frame prob
  np.testing.assert_array_equal(np.flatnonzero(t["pred_audio"][0]), [3, 4])


@pytest.mark.parametrize("video_filter", [True, False])
def test_timelines_agree_with_frame_predictions(video_filter):
  rng = np.random.default_rng(0)
  rows = [_random_row(rng, 25, f"v{i}") for i in range(5)]
  so_a, so_v = avvp.frame_predictions(np.stack([r["global_prob"] for r in rows]),
                                      np.stack([r["a_frame_prob"] for r in rows]),
                                      np.stack([r["v_frame_prob"] for r in rows]),
                                      video_filter=video_filter)
  for i, row in enumerate(rows):
    t = figure.timelines(row, video_filter=video_filter)
    np.testing.assert_array_equal(t["pred_audio"], so_a[i])
    np.testing.assert_array_equal(t["pred_visual"], so_v[i])
    union = so_a[i] | so_v[i] | row["gt_audio"] | row["gt_visual"]
    np.testing.assert_array_equal(t["classes"], np.flatnonzero(union.any(-1)))


def test_timelines_rejects_bad_shapes():
  row = _hand_row()
  row["gt_audio"] = np.zeros((10, 4))
  with pytest.raises(ValueError, match="gt_audio"):
    figure.timelines(row)


def test_default_class_names():
  assert figure.default_class_names(25) == avvp.CATEGORIES
  assert figure.default_class_names(6) == tuple(f"class {i}" for i in range(6))


def test_runs():
  assert figure._runs(np.array([1, 1, 0, 0, 1, 0, 0, 1, 1, 1])) == [(0, 2), (4, 1), (7, 3)]
  assert figure._runs(np.zeros(10)) == []


def _image(tmp_path, rows, name="fig.png", **kw) -> np.ndarray:
  path = figure.draw(rows, tmp_path / name, **kw)
  assert path == tmp_path / name and path.stat().st_size > 0
  return plt.imread(path)


def test_draw_c25_size(tmp_path):
  rng = np.random.default_rng(1)
  rows = [_random_row(rng, 25, f"video_{i}") for i in range(3)]
  counts = [len(figure.timelines(r)["classes"]) for r in rows]
  image = _image(tmp_path, rows)
  expected = (figure.HEADER_PX + sum(figure.VIDEO_PX + figure.CLASS_PX * k for k in counts),
              figure.WIDTH_PX)
  assert image.shape[:2] == expected == figure.pixel_size(rows)
  assert image.dtype == np.float32 and image[..., :3].std() > 0.05


def test_draw_c6_and_no_events_size(tmp_path):
  rows = [_hand_row(6), _row(6, "silent_0_10")]  # 2 classes drawn; none (one row's height)
  image = _image(tmp_path, rows)
  assert image.shape[:2] == (70 + (95 + 2 * 26) + (95 + 26), 1400)


def test_draw_no_events_only(tmp_path):
  image = _image(tmp_path, [_row(25, "silent_0_10")])
  assert image.shape[:2] == (70 + 95 + 26, 1400)


def _orange_pixels(image) -> int:
  return int((np.abs(image[..., :3] - ORANGE).max(-1) < 0.02).sum())


def test_different_predictions_give_different_images(tmp_path):
  first = _image(tmp_path, [_hand_row(6)], "a.png")
  again = _image(tmp_path, [_hand_row(6)], "b.png")
  np.testing.assert_array_equal(first, again)  # deterministic, so a difference means something
  orange = [_orange_pixels(first)]  # predicted audio: segment 3 of class 0 (+ legend patch)
  for name, segments in (("c.png", [3, 6]), ("d.png", [3, 6, 8])):
    row = _hand_row(6)
    row["a_frame_prob"][segments, 0] = 0.8
    image = _image(tmp_path, [row], name)
    assert image.shape == first.shape and not np.array_equal(image, first)
    orange.append(_orange_pixels(image))
  # one, two, three separate one-second bars: the orange area grows by one bar each time.
  bar = orange[1] - orange[0]
  assert bar > 100
  assert abs((orange[2] - orange[1]) - bar) <= 0.05 * bar
  assert orange[0] - bar > 0  # the legend patch


def test_draw_class_names(tmp_path):
  rows = [_hand_row(6)]
  _image(tmp_path, rows, class_names=[f"n{i}" for i in range(6)])
  with pytest.raises(ValueError, match="class_names"):
    figure.draw(rows, tmp_path / "x.png", class_names=["a", "b"])
