"""AVE: audio-visual event localisation, 4143 videos x 10 one-second segments.

Builds ArrayRecord shards from the official release in `manual_dir` (layout in
README.md next to this file), without TensorFlow: features are only Tensor,
ClassLabel and Text, frames are stored as the original JPEG bytes of the 10
frames the reference samples, audio as float32 (10, 32000).

Per-segment labels are derived from Annotations.txt (labels.h5 is not
distributed with the annotations): segment t of row i is the row's category
when StartTime <= t < EndTime, else background (index 28). Splits are the rows
listed by {train,val,test}_order.h5: 3339 / 402 / 402, stored in that order
(`disable_shuffling`; the reference evaluates test videos in test_order.h5
order and averages in-training accuracy per batch of 8). A video id may appear
in several rows (different events of one video); each row is one example.
"""
import dataclasses
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from dgsct_jax.data import annotations
from dgsct_jax.data import records
from dgsct_jax.data.datasets import base

NUM_SEGMENTS = 10
SAMPLE_RATE = 32_000
NUM_CLASSES = 28  # Event classes; index 28 is background.
BACKGROUND = NUM_CLASSES
SPLITS = {"train": "train_order.h5", "val": "val_order.h5", "test": "test_order.h5"}
SPLIT_SIZES = {"train": 3339, "val": 402, "test": 402}


@dataclasses.dataclass(frozen=True)
class Row:
  """One line of Annotations.txt (0-based index `row`, header excluded)."""
  row: int
  category: str
  video_id: str
  start: int
  end: int


@dataclasses.dataclass(frozen=True)
class Annotations:
  rows: tuple[Row, ...]
  class_names: tuple[str, ...]
  splits: dict  # split name -> np.ndarray of row indices

  def segment_labels(self, row: Row) -> np.ndarray:
    """int32 (10,): the row's class where start <= t < end, else background."""
    t = np.arange(NUM_SEGMENTS)
    cls = self.class_names.index(row.category)
    return np.where((t >= row.start) & (t < row.end), cls, BACKGROUND).astype(np.int32)


def _read_rows(path: pathlib.Path) -> tuple[Row, ...]:
  lines = annotations.read_text(path).splitlines()
  if not lines or not lines[0].startswith("Category&VideoID"):
    raise annotations.AnnotationError(
        f"{path}:1: expected the header 'Category&VideoID&Quality&StartTime&EndTime'")
  rows = []
  for n, line in enumerate(lines[1:]):
    where = f"{path}:{n + 2}"
    fields = line.strip().split("&")
    if len(fields) != 5:
      raise annotations.AnnotationError(f"{where}: expected 5 '&'-separated fields, got {line!r}")
    cat, vid, _, start, end = fields
    start = annotations.parse_int(start, where, "StartTime")
    end = annotations.parse_int(end, where, "EndTime")
    if not 0 <= start <= end <= NUM_SEGMENTS:  # One real row (0&0) has an empty span.
      raise annotations.AnnotationError(f"{where}: bad event span [{start}, {end})")
    rows.append(Row(n, cat, vid, start, end))
  return tuple(rows)


def _read_categories(path: pathlib.Path, rows: tuple[Row, ...]) -> tuple[str, ...]:
  """The class names of categories.txt, checked against the categories of `rows`."""
  names = tuple(l.strip() for l in annotations.read_text(path).splitlines() if l.strip())
  if len(names) != NUM_CLASSES:
    raise annotations.AnnotationError(
        f"{path}: expected {NUM_CLASSES} class names, got {len(names)}")
  unknown = [r for r in rows if r.category not in names]
  if unknown:
    raise annotations.AnnotationError(
        f"{path.parent / 'Annotations.txt'}:{unknown[0].row + 2}: category "
        f"{unknown[0].category!r} is not in {path} ({len(unknown)} rows with unknown categories)")
  return names


def read_annotations(annotations_dir) -> Annotations:
  """Annotations.txt, categories.txt and the split *_order.h5 files, checked.

  A bad file raises `annotations.AnnotationError` naming it and the line (the
  HDF5 dataset for *_order.h5).
  """
  root = pathlib.Path(annotations_dir)
  for name in ("Annotations.txt", "categories.txt", *SPLITS.values()):
    if not (root / name).is_file():
      raise FileNotFoundError(f"AVE annotation file missing: {root / name}")
  rows = _read_rows(root / "Annotations.txt")
  names = _read_categories(root / "categories.txt", rows)
  splits = {}
  for split, name in SPLITS.items():
    order = annotations.read_h5_indices(root / name, "order")
    if order.min() < 0 or order.max() >= len(rows):
      raise annotations.AnnotationError(
          f"{root / name}: HDF5 dataset 'order' holds row indices outside [0, {len(rows)}) "
          f"(the rows of Annotations.txt), e.g. {order[(order < 0) | (order >= len(rows))][0]}")
    splits[split] = order
  return Annotations(rows, names, splits)


class Ave(base.MediaBuilder):
  """AVE with 10 sampled JPEG frames and 10 x 1 s of 32 kHz audio per row."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release: DG-SCT preprocessing, labels from Annotations.txt.",
      "1.1.0": "Examples in *_order.h5 order (1.0.0 was shuffled by key hash).",
  }
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Put the AVE release in `manual_dir` (the DG-SCT `data/AVE` folder):
    Annotations.txt, categories.txt, train_order.h5, val_order.h5, test_order.h5
    frames/<video_id>/00000001.jpg ...   (frames.zip of the DG-SCT README)
    wave/<video_id>.npy                  (wave.zip: float, 10 x 32000 at 32 kHz)
  See dgsct_jax/data/datasets/ave/README.md.
  """
  DISPLAY_NAME = "AVE"
  HOMEPAGE = "https://sites.google.com/view/audiovisualresearch"
  CITATION = """@inproceedings{TianECCV2018, title={Audio-Visual Event Localization in
Unconstrained Videos}, author={Tian, Yapeng and Shi, Jing and Li, Bochen and Duan,
Zhiyao and Xu, Chenliang}, booktitle={ECCV}, year={2018}}"""

  def __init__(self, *, min_frames: int = NUM_SEGMENTS, annotations_dir=None, **kwargs):
    """Options besides `base.MediaBuilder`'s (skip_bad, max_videos_per_split).

    min_frames: fewer available frames is bad input.
    annotations_dir: where the annotation files are, if not in manual_dir.
    """
    self.min_frames = min_frames
    self.annotations_dir = base.expand_path(annotations_dir)
    super().__init__(**kwargs)

  def build_options(self) -> dict:
    return {**super().build_options(), "min_frames": self.min_frames}

  def _features(self) -> dict:
    return {
        **base.media_features(NUM_SEGMENTS, SAMPLE_RATE),
        "video_id": tfds.features.Text(),
        "row": tfds.features.Tensor(shape=(), dtype=np.int32),
        "num_frames": tfds.features.Tensor(shape=(), dtype=np.int32),
        "label": tfds.features.Sequence(
            tfds.features.ClassLabel(num_classes=NUM_CLASSES + 1), length=NUM_SEGMENTS),
        "category": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
        "start": tfds.features.Tensor(shape=(), dtype=np.int32),
        "end": tfds.features.Tensor(shape=(), dtype=np.int32),
    }

  def _split_generators(self, dl_manager):
    manual = pathlib.Path(dl_manager.manual_dir)
    ann = read_annotations(self.annotations_dir or manual)
    # Class names come from the release's categories.txt (index order of labels.h5).
    self.info.features["category"].names = list(ann.class_names)
    self.info.features["label"].feature.names = list(ann.class_names) + ["background"]
    return {split: self._generate_examples(manual, ann, split) for split in SPLITS}

  def _generate_examples(self, manual: pathlib.Path, ann: Annotations, split: str):
    rows = [ann.rows[int(index)] for index in ann.splits[split]]
    videos = [base.Video(f"{position:04d}_{row.row:04d}_{row.video_id}",
                         f"row {row.row} ({row.video_id})", row)
              for position, row in enumerate(rows)]
    return self._read_videos(split, videos, lambda row: self._example(manual, ann, row))

  def _example(self, manual: pathlib.Path, ann: Annotations, row: Row) -> dict:
    frames, available = records.select_frames(
        manual / "frames" / row.video_id, NUM_SEGMENTS, self.min_frames)
    audio = records.load_wave(manual / "wave" / f"{row.video_id}.npy", NUM_SEGMENTS, SAMPLE_RATE)
    return {
        "video_id": row.video_id,
        "row": row.row,
        "frames": np.array(frames, dtype=object),
        "num_frames": available,
        "audio": audio,
        "label": ann.segment_labels(row),
        "category": ann.class_names.index(row.category),
        "start": row.start,
        "end": row.end,
    }
