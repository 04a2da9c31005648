"""AVSBench-object: S4 (single source) and MS3 (multi-source) audio-visual segmentation.

Two builder configs, `avsbench/s4` and `avsbench/ms3`, built TF-free into
ArrayRecord from the DG-SCT `data/AVSBench_data` folder in `manual_dir`
(layout in README.md next to this file). Per video (meta CSV order, filtered
by its `split` column, as the reference loaders do):
* `frames`: the 5 frame PNGs (224×224 RGB, as the release ships them), bytes;
* `masks`: 5 slots of binary 1-bit PNG bytes + `mask_valid` (5,). S4 train
  has only the first frame's mask (slots 2-5 are empty, `mask_valid` False);
  val/test and all MS3 splits have 5. Masks are binarised at build time: S4 by
  the reference's PIL '1' conversion, MS3 explicitly as "palette index > 0"
  (the reference divides the 'P' index by 255, binary only for 0/255 files);
* `audio`: float32 (5, 32000) from the per-split pickled wave dictionary
  `AVS.npy` (`{'<name>.wav': 160 000 samples}`);
* `name`, `category` (meta column 2; '' if the MS3 CSV has none) and
  `category_id` (index in the sorted category list of the meta CSV; S4 has
  23 categories, -1 where there is no category).
Split sizes [ext]: S4 3452/740/740, MS3 296/64/64 (meta CSVs not in the
shipped annotations, so not verified here).
"""
import dataclasses
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from dgsct_jax.data import annotations
from dgsct_jax.data import task_media
from dgsct_jax.data.datasets import base

NUM_FRAMES = 5
SAMPLE_RATE = 32_000
SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class Layout:
  meta_csv: str
  frame: str        # format with split, category, name, k
  mask: str
  wave: str         # format with split, category
  mask_rule: str
  train_masks: int


LAYOUTS = {
    "s4": Layout(
        meta_csv="Single-source/s4_meta_data.csv",
        frame="Single-source/s4_data/visual_frames/{split}/{category}/{name}/{name}_{k}.png",
        mask="Single-source/s4_data/gt_masks/{split}/{category}/{name}/{name}_{k}.png",
        wave="Single-source/s4_data/wave/{split}/{category}/AVS.npy",
        mask_rule="pil_1", train_masks=1),
    "ms3": Layout(
        meta_csv="Multi-sources/ms3_meta_data.csv",
        frame="Multi-sources/ms3_data/visual_frames/{name}/{name}.mp4_{k}.png",
        mask="Multi-sources/ms3_data/gt_masks/{split}/{name}/{name}_{k}.png",
        wave="Multi-sources/ms3_data/wave/{split}/AVS.npy",
        mask_rule="nonzero", train_masks=NUM_FRAMES),
}


@dataclasses.dataclass(frozen=True)
class MetaRow:
  name: str
  category: str
  split: str
  line: int


def read_meta(path) -> list[MetaRow]:
  """The meta CSV (comma-separated, header with a `split` column) in file order.

  Like the reference: the video name is column 0 and the category column 2
  (by position); the split is the column named `split`. A bad row raises
  `annotations.AnnotationError` naming the file and line.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"AVSBench meta CSV missing: {path}")
  rows = annotations.read_csv(path)
  if not rows or "split" not in rows[0][1]:
    raise annotations.AnnotationError(f"{path}:1: expected a header with a 'split' column, got "
                                      f"{rows[0][1] if rows else 'an empty file'}")
  col = rows[0][1].index("split")
  out = []
  for line, row in rows[1:]:
    if len(row) <= col:
      raise annotations.AnnotationError(
          f"{path}:{line}: {len(row)} fields, no 'split' value: {row}")
    if row[col] not in SPLITS:
      raise annotations.AnnotationError(
          f"{path}:{line}: split {row[col]!r} is not one of {SPLITS}")
    if not row[0].strip():
      raise annotations.AnnotationError(f"{path}:{line}: no video name in column 0: {row}")
    out.append(MetaRow(row[0], row[2] if len(row) > 2 and col != 2 else "", row[col], line))
  return out


class Avsbench(base.MediaBuilder):
  """AVSBench S4/MS3 with 5 PNG frames, binary masks and 5 x 1 s of 32 kHz audio."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: DG-SCT AVS inputs, masks binarised at build."}
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name="s4", description="Single-source (S4), 23 categories."),
      tfds.core.BuilderConfig(name="ms3", description="Multi-sources (MS3)."),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Put the DG-SCT `data/AVSBench_data` folder in `manual_dir`:
    Single-source/s4_meta_data.csv and s4_data/{visual_frames,gt_masks,wave}/...
    Multi-sources/ms3_meta_data.csv and ms3_data/{visual_frames,gt_masks,wave}/...
  See dgsct_jax/data/datasets/avsbench/README.md.
  """
  DISPLAY_NAME = "AVSBench"
  HOMEPAGE = "https://github.com/OpenNLPLab/AVSBench"
  CITATION = """@inproceedings{zhou2022avs, title={Audio-Visual Segmentation},
author={Zhou, Jinxing and others}, booktitle={ECCV}, year={2022}}"""

  def _features(self) -> dict:
    return {
        **base.media_features(NUM_FRAMES, SAMPLE_RATE),
        "name": tfds.features.Text(),
        "category": tfds.features.Text(),
        "category_id": tfds.features.Tensor(shape=(), dtype=np.int32),
        "masks": tfds.features.Tensor(shape=(NUM_FRAMES,), dtype=np.object_),
        "mask_valid": tfds.features.Tensor(shape=(NUM_FRAMES,), dtype=np.bool_),
    }

  def _split_generators(self, dl_manager):
    manual = pathlib.Path(dl_manager.manual_dir)
    layout = LAYOUTS[self.builder_config.name]
    meta = read_meta(manual / layout.meta_csv)
    categories = sorted({r.category for r in meta if r.category})
    return {split: self._generate_examples(manual, layout, meta, categories, split)
            for split in SPLITS}

  def _generate_examples(self, manual, layout: Layout, meta, categories, split: str):
    rows = [r for r in meta if r.split == split]
    videos = [base.Video(f"{i:05d}_{row.name}", f"{row.name} (meta line {row.line})", row)
              for i, row in enumerate(rows)]
    waves: dict = {}  # wave dictionaries, loaded once per (split, category)
    return self._read_videos(
        split, videos, lambda row: self._example(manual, layout, categories, row, waves))

  def _example(self, manual: pathlib.Path, layout: Layout, categories: list[str], row: MetaRow,
               waves: dict) -> dict:
    fmt = dict(split=row.split, category=row.category, name=row.name)
    frames = [task_media.read_png(manual / layout.frame.format(k=k, **fmt))
              for k in range(1, NUM_FRAMES + 1)]
    num_masks = layout.train_masks if row.split == "train" else NUM_FRAMES
    masks = [task_media.encode_mask_png(task_media.binary_mask(
        manual / layout.mask.format(k=k, **fmt), layout.mask_rule))
             for k in range(1, num_masks + 1)]
    wave_path = manual / layout.wave.format(**fmt)
    if wave_path not in waves:
      waves[wave_path] = task_media.load_wave_dict(wave_path)
    audio = task_media.wave_from_dict(waves[wave_path], f"{row.name}.wav", wave_path, NUM_FRAMES)
    return {
        "name": row.name,
        "category": row.category,
        "category_id": categories.index(row.category) if row.category else -1,
        "frames": np.array(frames, dtype=object),
        "masks": np.array(masks + [b""] * (NUM_FRAMES - num_masks), dtype=object),
        "mask_valid": np.arange(NUM_FRAMES) < num_masks,
        "audio": audio,
    }
