"""LLP (Look, Listen and Parse) for AVVP: 11 849 ten-second clips, 25 classes.

Builds ArrayRecord shards, TF-free, from the DG-SCT `data/AVVP` folder in
`manual_dir` (layout in README.md next to this file). Per video: the 10 JPEG
frames the reference reads (`00000001.jpg`..`00000010.jpg`, stored as the
original bytes), the 32 kHz wave (10, 32000), the R(2+1)D snippet features
(10, 512), the weak multi-hot label (25,) in the reference's class order, and
for val/test the dense per-second audio and visual GT (25, 10) built from the
eval CSVs by exact filename (`dgsct_jax.metrics.avvp.dense_ground_truth`, the
same join the metric uses). Train examples carry zero GT and
`has_dense_labels=False`. Splits: 10 000 / 649 / 1 200 rows in CSV order; the
media key is `filename[:11]`.
"""
import csv
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from dgsct_jax.data import annotations
from dgsct_jax.data import records
from dgsct_jax.data import task_media
from dgsct_jax.data.datasets import base
from dgsct_jax.metrics import avvp

NUM_SEGMENTS = 10
SAMPLE_RATE = 32_000
R2P1D_DIM = 512
SPLIT_CSV = {"train": "AVVP_train.csv", "val": "AVVP_val_pd.csv", "test": "AVVP_test_pd.csv"}
SPLIT_SIZES = {"train": 10_000, "val": 649, "test": 1_200}
DENSE_SPLITS = ("val", "test")


def _read_csv(reader, path):
  """`reader(path)`, a CSV reader of `dgsct_jax.metrics.avvp`, raising `AnnotationError`.

  Its messages name the file and line; bad UTF-8 or a NUL byte is checked
  first, so that it too is named by line rather than left to the csv module.
  """
  annotations.read_text(path)
  try:
    return reader(path)
  except (ValueError, csv.Error) as e:
    message = str(e)
    raise annotations.AnnotationError(
        message if message.startswith(str(path)) else f"{path}: {message}") from e


def _check_dense_spans(rows, path) -> None:
  """Onsets and offsets within [0, 10] (onset > offset is kept: it marks nothing, as in the
  reference, and one real row has it)."""
  for row in rows:
    if not (0 <= row.onset <= NUM_SEGMENTS and 0 <= row.offset <= NUM_SEGMENTS):
      raise annotations.AnnotationError(
          f"{path}:{row.line}: onset/offset {row.onset}/{row.offset} outside [0, {NUM_SEGMENTS}]")


def read_splits(annotations_dir) -> dict:
  """{split: [(filename, labels)]} in CSV order, plus 'dense_audio'/'dense_visual' rows.

  Checks that the three splits are disjoint and, when AVVP_dataset_full.csv is
  present, that they make up exactly that file. A bad file raises
  `annotations.AnnotationError` naming it (and the line, where there is one).
  """
  root = pathlib.Path(annotations_dir)
  for name in (*SPLIT_CSV.values(), "AVVP_eval_audio.csv", "AVVP_eval_visual.csv"):
    if not (root / name).is_file():
      raise FileNotFoundError(f"LLP annotation file missing: {root / name}")
  out = {split: _read_csv(avvp.read_weak_csv, root / name) for split, name in SPLIT_CSV.items()}
  seen: dict[str, str] = {}
  for split in SPLIT_CSV:
    for filename, _ in out[split]:
      if filename in seen:
        raise annotations.AnnotationError(f"{root / SPLIT_CSV[split]}: {filename!r} is also "
                                          f"in {root / SPLIT_CSV[seen[filename]]}")
      seen[filename] = split
  full = root / "AVVP_dataset_full.csv"
  if full.is_file():
    names = {f for f, _ in _read_csv(avvp.read_weak_csv, full)}
    if names != set(seen):
      raise annotations.AnnotationError(
          f"{full}: the splits hold {len(seen)} videos, the full list {len(names)}; "
          f"{len(names ^ set(seen))} differ")
  for key, name in (("dense_audio", "AVVP_eval_audio.csv"),
                    ("dense_visual", "AVVP_eval_visual.csv")):
    out[key] = _read_csv(avvp.read_dense_csv, root / name)
    _check_dense_spans(out[key], root / name)
  return out


class Llp(base.MediaBuilder):
  """LLP with 10 JPEG frames, 10 x 1 s of 32 kHz audio and R(2+1)D features per video."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: DG-SCT AVVP inputs, dense GT by exact filename."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Put the DG-SCT `data/AVVP` folder in `manual_dir`:
    AVVP_train.csv, AVVP_val_pd.csv, AVVP_test_pd.csv, AVVP_eval_audio.csv,
    AVVP_eval_visual.csv (AVVP_dataset_full.csv optional, checked if present)
    LLP_dataset/frame/<id11>/00000001.jpg .. 00000010.jpg
    LLP_dataset/wave/<id11>.npy                (320 000 float samples)
    LLP_dataset/feats/r2plus1d_18/<id11>.npy   (float (10, 512))
  See dgsct_jax/data/datasets/llp/README.md.
  """
  DISPLAY_NAME = "LLP"
  HOMEPAGE = "https://github.com/YapengTian/AVVP-ECCV20"
  CITATION = """@inproceedings{tian2020unified, title={Unified Multisensory Perception:
Weakly-Supervised Audio-Visual Video Parsing}, author={Tian, Yapeng and Li, Dingzeyu and
Xu, Chenliang}, booktitle={ECCV}, year={2020}}"""

  def __init__(self, *, annotations_dir=None, **kwargs):
    """Options besides `base.MediaBuilder`'s (skip_bad, max_videos_per_split).

    annotations_dir: where the CSVs are, if not in manual_dir.
    """
    self.annotations_dir = base.expand_path(annotations_dir)
    super().__init__(**kwargs)

  def _features(self) -> dict:
    return {
        **base.media_features(NUM_SEGMENTS, SAMPLE_RATE),
        "filename": tfds.features.Text(),
        "video_id": tfds.features.Text(),
        "row": tfds.features.Tensor(shape=(), dtype=np.int32),
        "r2p1d": tfds.features.Tensor(shape=(NUM_SEGMENTS, R2P1D_DIM), dtype=np.float32),
        "weak": tfds.features.Tensor(shape=(avvp.NUM_CLASSES,), dtype=np.float32),
        "gt_audio": tfds.features.Tensor(shape=(avvp.NUM_CLASSES, NUM_SEGMENTS), dtype=np.uint8),
        "gt_visual": tfds.features.Tensor(shape=(avvp.NUM_CLASSES, NUM_SEGMENTS),
                                          dtype=np.uint8),
        "has_dense_labels": tfds.features.Tensor(shape=(), dtype=np.bool_),
    }

  def _split_generators(self, dl_manager):
    manual = pathlib.Path(dl_manager.manual_dir)
    ann = read_splits(self.annotations_dir or manual)
    return {split: self._generate_examples(manual, ann, split) for split in SPLIT_CSV}

  def _generate_examples(self, manual: pathlib.Path, ann: dict, split: str):
    rows = ann[split]
    names = [f for f, _ in rows]
    if split in DENSE_SPLITS:
      gt_a = avvp.dense_ground_truth(names, ann["dense_audio"])
      gt_v = avvp.dense_ground_truth(names, ann["dense_visual"])
    else:
      gt_a = gt_v = np.zeros((len(rows), avvp.NUM_CLASSES, NUM_SEGMENTS), np.uint8)

    def read(i: int) -> dict:
      filename, labels = rows[i]
      example = self._media(manual / "LLP_dataset", filename[:11])
      example.update(filename=filename, video_id=filename[:11], row=i,
                     weak=avvp.weak_multi_hot(labels), gt_audio=gt_a[i], gt_visual=gt_v[i],
                     has_dense_labels=split in DENSE_SPLITS)
      return example

    videos = [base.Video(f"{i:05d}_{filename}", f"row {i} ({filename})", i)
              for i, (filename, _) in enumerate(rows)]
    return self._read_videos(split, videos, read)

  def _media(self, media: pathlib.Path, video_id: str) -> dict:
    return {
        "frames": np.array(task_media.numbered_jpegs(media / "frame" / video_id, NUM_SEGMENTS),
                           dtype=object),
        "audio": records.load_wave(media / "wave" / f"{video_id}.npy", NUM_SEGMENTS, SAMPLE_RATE),
        "r2p1d": task_media.load_features(media / "feats" / "r2plus1d_18" / f"{video_id}.npy",
                                          (NUM_SEGMENTS, R2P1D_DIM)),
    }
