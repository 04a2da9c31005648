"""The AVE TFDS builder on tiny media trees in the official layout.

The annotation files are the real ones (../shared/annotations/AVE, linked into
a temporary manual_dir, never copied into the repo); media exist for a few
videos per split only, the others are left out through `skip_bad=True`, whose
count the tests check. Error cases use a 3-row annotation set of their own.
"""
import io
import pathlib

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dgsct_jax.data import build
from dgsct_jax.data import preprocess
from dgsct_jax.data import records
from dgsct_jax.data import sources
from dgsct_jax.data.datasets.ave import builder as ave

ANNOTATION_FILES = ("Annotations.txt", "categories.txt", "train_order.h5", "val_order.h5",
                    "test_order.h5")
MEDIA_PER_SPLIT = 3  # The first rows of each *_order.h5 are not in row order.


@pytest.fixture(scope="module")
def ave_annotations(annotations_dir) -> pathlib.Path:
  path = annotations_dir / "AVE"
  if not (path / "Annotations.txt").is_file():
    pytest.skip(f"AVE annotation files not found in {path}")
  return path


def write_video(root: pathlib.Path, video_id: str, rng, num_frames=13, hw=(36, 48)):
  """Frames 00000001.jpg.. and wave/<id>.npy in the official layout; returns both."""
  folder = root / "frames" / video_id
  folder.mkdir(parents=True, exist_ok=True)
  for n in range(1, num_frames + 1):
    Image.fromarray(rng.integers(0, 256, hw + (3,), dtype=np.uint8)).save(
        folder / f"{n:08d}.jpg", quality=90)
  (root / "wave").mkdir(exist_ok=True)
  wave = rng.standard_normal((10, 32000)).astype(np.float32)
  np.save(root / "wave" / f"{video_id}.npy", wave)
  return folder, wave


def prepare(manual_dir, data_dir, **kwargs) -> ave.Ave:
  return build.build("ave", manual_dir, data_dir, **kwargs)


@pytest.fixture(scope="module")
def real_tree(ave_annotations, tmp_path_factory):
  """Real annotation files + media for the first rows of each split, built."""
  root = tmp_path_factory.mktemp("ave_manual")
  for name in ANNOTATION_FILES:
    (root / name).symlink_to(ave_annotations / name)
  ann = ave.read_annotations(root)
  rng = np.random.default_rng(0)
  media = {}
  for split, order in ann.splits.items():
    for index in order[:MEDIA_PER_SPLIT]:
      vid = ann.rows[index].video_id
      media[vid] = write_video(root, vid, rng)
  builder = prepare(root, tmp_path_factory.mktemp("ave_data"), skip_bad=True)
  return root, ann, media, builder


def test_split_counts_and_disjoint(ave_annotations):
  ann = ave.read_annotations(ave_annotations)
  assert len(ann.rows) == 4143
  assert {k: len(v) for k, v in ann.splits.items()} == {"train": 3339, "val": 402, "test": 402}
  union = np.concatenate(list(ann.splits.values()))
  assert len(np.unique(union)) == 4143  # Disjoint and covering every row.
  # trainSet.txt lists the same videos in the same order as train_order.h5.
  lines = (ave_annotations / "trainSet.txt").read_text().splitlines()
  assert [l.split("&")[1] for l in lines] == [ann.rows[i].video_id for i in ann.splits["train"]]


def test_labels_consistent_with_mil_and_closs(ave_annotations):
  ann = ave.read_annotations(ave_annotations)
  labels = np.stack([ann.segment_labels(r) for r in ann.rows])  # (4143, 10)
  with h5py.File(ave_annotations / "mil_labels.h5") as f:
    mil = f["avadataset"][:]
  with h5py.File(ave_annotations / "labels_closs.h5") as f:
    closs = f["avadataset"][:]
  category = np.array([ann.class_names.index(r.category) for r in ann.rows])
  np.testing.assert_array_equal(mil.argmax(1), category)
  np.testing.assert_array_equal(mil.sum(1), 1)
  np.testing.assert_array_equal((labels != ave.BACKGROUND).astype(np.float32), closs)
  event = labels != ave.BACKGROUND
  np.testing.assert_array_equal(labels[event], np.broadcast_to(category[:, None], labels.shape)[event])
  assert event.sum() == closs.sum() and 0 < event.mean() < 1


def test_class_names_from_categories(real_tree, ave_annotations):
  *_, builder = real_tree
  names = [l.strip() for l in (ave_annotations / "categories.txt").read_text().splitlines() if l.strip()]
  assert builder.info.features["category"].names == names
  assert builder.info.features["label"].feature.names == names + ["background"]
  # Also as read back from disk by a fresh builder.
  fresh = ave.Ave(data_dir=builder.data_dir.split("/ave/")[0])
  assert fresh.info.features["label"].feature.names[-1] == "background"
  assert fresh.info.features["label"].feature.names[:28] == names


def test_built_split_sizes_and_skip_report(real_tree):
  _, ann, _, builder = real_tree
  for split, order in ann.splits.items():
    assert builder.info.splits[split].num_examples == MEDIA_PER_SPLIT
    assert builder.skip_report.count(split) == len(order) - MEDIA_PER_SPLIT
  reasons = {r for items in builder.skip_report.skipped.values() for _, r in items}
  assert all(r.startswith("missing frame folder") for r in reasons)


def test_built_splits_read_back_in_annotation_order(real_tree):
  _, ann, _, builder = real_tree
  for split, order in ann.splits.items():
    data = builder.as_data_source(split=split)
    assert [int(data[i]["row"]) for i in range(len(data))] == list(order[:MEDIA_PER_SPLIT])
    assert sorted(order[:MEDIA_PER_SPLIT]) != list(order[:MEDIA_PER_SPLIT])  # Order matters.


def test_records_hold_original_bytes_audio_and_labels(real_tree):
  _, ann, media, builder = real_tree
  data = builder.as_data_source(split="train")
  rows = {ann.rows[i].video_id: ann.rows[i] for i in ann.splits["train"][:MEDIA_PER_SPLIT]}
  seen = set()
  for i in range(len(data)):
    rec = data[i]
    vid = rec["video_id"].decode()
    seen.add(vid)
    folder, wave = media[vid]
    picked = preprocess.frame_indices(13)
    assert [bytes(b) for b in rec["frames"]] == [(folder / f"{n:08d}.jpg").read_bytes() for n in picked]
    np.testing.assert_array_equal(rec["audio"], wave)
    np.testing.assert_array_equal(rec["label"], ann.segment_labels(rows[vid]))
    assert rec["num_frames"] == 13 and rec["row"] == rows[vid].row
  assert seen == set(rows)


def test_source_decodes_like_the_reference(real_tree):
  _, ann, media, builder = real_tree
  src = sources.get_source("ave", "test", data_dir=builder.data_dir.split("/ave/")[0])
  assert len(src) == MEDIA_PER_SPLIT
  element = src[0]
  assert element["frames"].shape == (10, 3, 192, 192) and element["frames"].dtype == np.float32
  assert element["audio"].shape == (10, 32000) and element["label"].shape == (10, 29)
  folder, wave = media[element["video_id"]]
  np.testing.assert_array_equal(element["audio"], wave)
  row = next(ann.rows[i] for i in ann.splits["test"] if ann.rows[i].video_id == element["video_id"])
  np.testing.assert_array_equal(element["label"].argmax(1), ann.segment_labels(row))
  np.testing.assert_array_equal(element["label"].sum(1), 1)
  # Frame 4 of 10 = file number frame_indices(13)[3], through the torch reference path.
  n = preprocess.frame_indices(13)[3]
  pixels = np.array(Image.open(folder / f"{n:08d}.jpg").convert("RGB"))
  x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255
  x = F.interpolate(x, size=(192, 192), mode="bicubic", align_corners=False, antialias=False)[0]
  x = (x - torch.tensor(preprocess.IMAGENET_MEAN)[:, None, None]) / torch.tensor(
      preprocess.IMAGENET_STD)[:, None, None]
  np.testing.assert_allclose(element["frames"][3], x.numpy(), rtol=0, atol=1e-5)


# ------------------------------------------------------------------ bad input


def mini_tree(root: pathlib.Path, rng) -> dict:
  """4 rows (train 1, val 2, test 1) with good media; returns {video_id: frame folder}."""
  root.mkdir(parents=True, exist_ok=True)
  names = [f"Class {k}" for k in range(ave.NUM_CLASSES)]
  (root / "categories.txt").write_text("\n".join(names) + "\n")
  rows = [("Class 3", "vidA", 0, 10), ("Class 5", "vidB", 2, 7), ("Class 0", "vidC", 4, 5),
          ("Class 1", "vidD", 0, 0)]
  (root / "Annotations.txt").write_text("Category&VideoID&Quality&StartTime&EndTime\n" + "".join(
      f"{c}&{v}&good&{s}&{e}\n" for c, v, s, e in rows))
  for split, order in (("train", [0]), ("val", [1, 3]), ("test", [2])):
    with h5py.File(root / f"{split}_order.h5", "w") as f:
      f["order"] = np.array(order)
  return {v: write_video(root, v, rng)[0] for _, v, _, _ in rows}


def break_missing_folder(root, folder):
  for p in folder.iterdir():
    p.unlink()
  folder.rmdir()
  return folder


def break_few_frames(root, folder):
  for n in range(6, 14):
    (folder / f"{n:08d}.jpg").unlink()
  return folder


def break_corrupt_jpeg(root, folder):
  path = folder / f"{preprocess.frame_indices(13)[4]:08d}.jpg"
  path.write_bytes(path.read_bytes()[:200])  # Truncated in the entropy-coded data.
  return path


def break_truncated_npy(root, folder):
  path = root / "wave" / f"{folder.name}.npy"
  path.write_bytes(path.read_bytes()[:5000])
  return path


def break_wrong_shape_npy(root, folder):
  path = root / "wave" / f"{folder.name}.npy"
  np.save(path, np.zeros((10, 16000), np.float32))
  return path


def break_no_media(root, folder):
  """A row of Annotations.txt whose video has neither frames nor audio."""
  break_missing_folder(root, folder)
  (root / "wave" / f"{folder.name}.npy").unlink()
  return folder


BREAKERS = [break_missing_folder, break_few_frames, break_corrupt_jpeg, break_truncated_npy,
            break_wrong_shape_npy, break_no_media]


@pytest.mark.parametrize("breaker", BREAKERS, ids=lambda f: f.__name__[6:])
def test_bad_input_stops_naming_the_file_or_is_skipped_and_counted(breaker, tmp_path):
  root = tmp_path / "manual"
  folders = mini_tree(root, np.random.default_rng(0))
  bad = breaker(root, folders["vidB"])  # The val video.
  with pytest.raises(records.BadMediaError, match=str(bad).replace(".", r"\.")):
    prepare(root, tmp_path / "strict")
  builder = prepare(root, tmp_path / "skip", skip_bad=True)
  assert builder.skip_report.count() == 1 and builder.skip_report.count("val") == 1
  assert {k: s.num_examples for k, s in builder.info.splits.items()} == {
      "train": 1, "val": 1, "test": 1}
  assert builder.as_data_source(split="val")[0]["video_id"] == b"vidD"


def test_mini_tree_labels_and_cli(tmp_path, capsys):
  root = tmp_path / "manual"
  folders = mini_tree(root, np.random.default_rng(1))
  cli = ["--dataset=ave", f"--manual_dir={root}"]
  assert build.main(cli + [f"--data_dir={tmp_path / 'ok'}"]) == 0
  assert "ave built in" in capsys.readouterr().out
  data = ave.Ave(data_dir=tmp_path / "ok").as_data_source(split="val")
  labels = {data[i]["video_id"]: list(data[i]["label"]) for i in range(len(data))}
  assert labels == {b"vidB": [28, 28, 5, 5, 5, 5, 5, 28, 28, 28], b"vidD": [28] * 10}
  bad = break_corrupt_jpeg(root, folders["vidB"])
  assert build.main(cli + [f"--data_dir={tmp_path / 'bad'}"]) == 1
  err = capsys.readouterr().err
  assert "corrupt JPEG" in err and "AVE val row 1 (vidB)" in err and str(bad) in err
  assert build.main(cli + [f"--data_dir={tmp_path / 'skip'}", "--skip_bad"]) == 0
  out = capsys.readouterr().out
  assert "skipped 1 videos" in out and "'val': 1" in out


def test_frame_numbering_gap_and_non_jpeg_are_errors(tmp_path):
  folder = tmp_path / "frames" / "v"
  folder.mkdir(parents=True)
  for n in (1, 2, 4):
    (folder / f"{n:08d}.jpg").write_bytes(b"")
  with pytest.raises(records.BadMediaError, match="not numbered 1..3"):
    records.list_frames(folder)
  png = io.BytesIO()
  Image.new("RGB", (8, 8)).save(png, "PNG")
  (tmp_path / "x.jpg").write_bytes(png.getvalue())
  with pytest.raises(records.BadMediaError, match="not a JPEG"):
    records.read_jpeg(tmp_path / "x.jpg")


def test_max_videos_per_split(tmp_path):
  root = tmp_path / "manual"
  mini_tree(root, np.random.default_rng(3))
  builder = prepare(root, tmp_path / "data", max_videos_per_split=1)
  assert {k: s.num_examples for k, s in builder.info.splits.items()} == {
      "train": 1, "val": 1, "test": 1}
  assert builder.as_data_source(split="val")[0]["video_id"] == b"vidB"


def test_split_with_every_video_skipped_is_a_clear_error(tmp_path):
  root = tmp_path / "manual"
  folders = mini_tree(root, np.random.default_rng(2))
  break_no_media(root, folders["vidC"])  # The only test video.
  with pytest.raises(records.BadMediaError, match="test: all 1 videos were skipped"):
    prepare(root, tmp_path / "skip", skip_bad=True)
