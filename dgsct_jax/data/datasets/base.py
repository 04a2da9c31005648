"""`MediaBuilder`: the base of the TFDS builders, which read one media tree per video.

It holds what the four builders share: the `skip_bad` / `max_videos_per_split`
options, the `skip_report`, the dataset info (stored in annotation order), and
the loop over a split's videos that applies the bad-input policy of
`dgsct_jax.data.records`. `media_features` are the frames and audio features
they store alike; `built` opens a dataset built earlier.

The base is abstract (`_features` and TFDS's generator methods are left to the
builders), so TFDS keeps it out of its registry of datasets.
"""
import abc
from collections.abc import Callable, Iterator, Sequence
import logging
from typing import Any, ClassVar, NamedTuple

import numpy as np
import tensorflow_datasets as tfds

from dgsct_jax.data import records


class Video(NamedTuple):
  """One video of a split: its example key, its name in messages, what `read` takes."""
  key: str  # Zero-padded position first: TFDS writes the keys sorted.
  name: str  # After "<dataset> <split> " in messages, e.g. "row 7 (abc.mp4)".
  item: Any


class MediaBuilder(tfds.core.GeneratorBasedBuilder):
  """A TF-free builder of one example per video, from a release in `manual_dir`."""

  DISPLAY_NAME: ClassVar[str]  # The dataset in messages, e.g. "AVE".
  HOMEPAGE: ClassVar[str]
  CITATION: ClassVar[str]

  def __init__(self, *, skip_bad: bool = False, max_videos_per_split: int | None = None,
               **kwargs):
    """The options every builder takes.

    skip_bad: leave out videos with bad media (counted in `self.skip_report`)
      instead of stopping the build.
    max_videos_per_split: build only the first N videos of each split (smoke
      tests, tiny media trees); None builds everything.
    """
    self.skip_bad = skip_bad
    self.max_videos_per_split = max_videos_per_split
    self.skip_report = records.SkipReport()
    super().__init__(**kwargs)

  @abc.abstractmethod
  def _features(self) -> dict:
    """The feature dict of the builder (config)."""

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(self._features()),
        supervised_keys=None,
        # Keep annotation order (keys start with the zero-padded position and
        # TFDS writes them sorted; a class attribute alone is not enough): the
        # reference evaluates in file order (AVE test order, AVS batches of 4
        # in CSV order, AVQA types by json row). Grain shuffles for training.
        disable_shuffling=True,
        homepage=self.HOMEPAGE,
        citation=self.CITATION,
    )

  @property
  def _label(self) -> str:
    """The dataset (and config) in messages, e.g. "AVSBench s4"."""
    config = self.builder_config
    return f"{self.DISPLAY_NAME} {config.name}" if config else self.DISPLAY_NAME

  def _read_videos(self, split: str, videos: Sequence[Video],
                   read: Callable[[Any], dict]) -> Iterator[tuple[str, dict]]:
    """(key, read(item)) for the first `max_videos_per_split` videos, under the policy.

    `read` raises `records.BadMediaError` naming the file. Without `skip_bad`
    that stops the build, the message naming the video too; with it the video
    is left out and counted. A split left empty is an error: TFDS cannot
    write one.
    """
    videos = videos[:self.max_videos_per_split]
    where = f"{self._label} {split}"
    for video in videos:
      try:
        example = read(video.item)
      except records.BadMediaError as e:
        if not self.skip_bad:
          raise records.BadMediaError(
              f"{where} {video.name}: {e}\n"
              "Fix the file or build with skip_bad=True (--skip_bad).") from e
        self.skip_report.add(split, video.key, str(e))
        continue
      yield video.key, example
    skipped = self.skip_report.count(split)
    if videos and skipped == len(videos):
      key, reason = self.skip_report.skipped[split][0]
      raise records.BadMediaError(f"{where}: all {skipped} videos were skipped for bad or "
                                  f"missing media, e.g. {key}: {reason}")
    if skipped:
      logging.warning("%s: skipped %d of %d videos with bad media", where, skipped, len(videos))


def media_features(num_segments: int, sample_rate: int) -> dict:
  """`frames`: the original bytes of one image per segment; `audio`: float32 (T, rate)."""
  return {
      "frames": tfds.features.Tensor(shape=(num_segments,), dtype=np.object_),
      "audio": tfds.features.Tensor(shape=(num_segments, sample_rate), dtype=np.float32),
  }


def built(builder_cls: type[MediaBuilder], data_dir=None, config: str | None = None):
  """A builder of the dataset built earlier in `data_dir`; FileNotFoundError if it is not."""
  builder = builder_cls(config=config, data_dir=data_dir)
  name = f"{builder.name}/{config}" if config else builder.name
  if not (builder.data_path / "dataset_info.json").exists():
    raise FileNotFoundError(
        f"{name} is not built in {builder.data_path}; build it once (`python -m "
        f"dgsct_jax.data.build --dataset={name} --manual_dir=<release folder> "
        f"--data_dir=<dir>`, see dgsct_jax/data/datasets/{builder.name}/README.md) and pass "
        "its data_dir")
  return builder
