"""`MediaBuilder`: the base of the TFDS builders, which read one media tree per video.

It holds what the four builders share: the `skip_bad` / `max_videos_per_split`
options, the `skip_report`, the dataset info (stored in annotation order), the
loop over a split's videos that applies the bad-input policy of
`dgsct_jax.data.records`, and the build record (`build_record.py`): what a
build left out, written with it, so that a build made with other options is
never reused (`dgsct_jax.data.build` rebuilds it) and a partial build never
reads as complete. `media_features` are the frames and audio features they
store alike; `built` opens a dataset built earlier.

The base is abstract (`_features` and TFDS's generator methods are left to the
builders), so TFDS keeps it out of its registry of datasets.
"""
import abc
from collections.abc import Callable, Iterator, Sequence
import inspect
import logging
import os
from typing import Any, ClassVar, NamedTuple

import numpy as np
import tensorflow_datasets as tfds

from dgsct_jax.data import records
from dgsct_jax.data.datasets import build_record


class StaleBuildError(RuntimeError):
  """An earlier build in the same folder was made with other options."""


class Video(NamedTuple):
  """One video of a split: its example key, its name in messages, what `read` takes."""
  key: str  # Zero-padded position first: TFDS writes the keys sorted.
  name: str  # After "<dataset> <split> " in messages, e.g. "row 7 (abc.mp4)".
  item: Any


def expand_path(path):
  """`path` with a leading ~ expanded (None stays None)."""
  return None if path is None else os.path.expanduser(os.fspath(path))


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
    self.reused = False  # Set by download_and_prepare: an earlier build was kept.
    self._record = None  # The build record of a build under way.
    super().__init__(**kwargs)

  @classmethod
  def option_defaults(cls) -> dict:
    """The keyword options of the builder and their defaults: skip_bad, min_frames, ...

    Each constructor up the class chain takes its own keyword-only options and
    passes the rest on, so the options are those of all their signatures.
    """
    return {p.name: p.default for c in cls.__mro__
            if issubclass(c, MediaBuilder) and "__init__" in vars(c)
            for p in inspect.signature(c.__init__).parameters.values()
            if p.kind is p.KEYWORD_ONLY}

  def build_options(self) -> dict:
    """The options that change what is built, as stored in the build record."""
    return {"skip_bad": self.skip_bad, "max_videos_per_split": self.max_videos_per_split}

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

  def build_record(self) -> build_record.Record | None:
    """The record of the build in `data_path`; None where there is none."""
    return build_record.Record.load(self.data_path)

  def left_out(self) -> list[str]:
    """What the build in `data_path` lacks next to a complete default build; [] if nothing."""
    record = self.build_record()
    if record is None:
      return [f"it has no {build_record.FILENAME}, so what it left out is unknown "
              "(built by an older dgsct_jax)"]
    return record.left_out(self.option_defaults())

  def stale_reason(self) -> str | None:
    """Why the build in `data_path` cannot be reused for this builder's options, if any."""
    if not self.data_path.exists():
      return None
    record = self.build_record()
    if record is None:
      return f"it has no {build_record.FILENAME}, so its options are unknown"
    now = self.build_options()
    changed = sorted(k for k in {*record.options, *now} if record.options.get(k) != now.get(k))
    if changed:
      return (f"it was built with {', '.join(f'{k}={record.options.get(k)}' for k in changed)}, "
              f"asked now with {', '.join(f'{k}={now.get(k)}' for k in changed)}")
    return None

  def download_and_prepare(self, *, download_config=None, **kwargs):
    """TFDS's, except that a build made with other options is an error, not reused.

    `dgsct_jax.data.build.build` deletes such a build and builds it again with
    a fresh builder (TFDS cannot rewrite the files of the builder that read
    them).
    """
    download_config = download_config or tfds.download.DownloadConfig()
    overwrite = download_config.download_mode.overwrite_dataset
    reason = self.stale_reason()
    if reason and not overwrite:
      raise StaleBuildError(
          f"{self._label}: the build in {self.data_path} cannot be reused: {reason}. Build "
          "with python -m dgsct_jax.data.build (it rebuilds), or delete that folder")
    self.reused = self.data_path.exists() and not overwrite
    self._record = build_record.Record(self.build_options())
    super().download_and_prepare(download_config=download_config, **kwargs)

  def _download_and_prepare(self, dl_manager, download_config=None):
    super()._download_and_prepare(dl_manager=dl_manager, download_config=download_config)
    # `data_path` is TFDS's temporary folder here, renamed with the ArrayRecord files.
    self._record.save(self.data_path)

  def _read_videos(self, split: str, videos: Sequence[Video],
                   read: Callable[[Any], dict]) -> Iterator[tuple[str, dict]]:
    """(key, read(item)) for the first `max_videos_per_split` videos, under the policy.

    `read` raises `records.BadMediaError` naming the file. Without `skip_bad`
    that stops the build, the message naming the video too; with it the video
    is left out and counted (in `skip_report` and the build record). A split
    left empty is an error: TFDS cannot write one.
    """
    record = self._record.splits[split] = build_record.SplitRecord(len(videos))
    videos = videos[:self.max_videos_per_split]
    record.beyond_limit = record.listed - len(videos)
    where = f"{self._label} {split}"
    for position, video in enumerate(videos):
      try:
        example = read(video.item)
      except records.BadMediaError as e:
        if not self.skip_bad:
          raise records.BadMediaError(
              f"{where} {video.name}: {e}\n"
              "Fix the file or build with skip_bad=True (--skip_bad).") from e
        self.skip_report.add(split, video.key, str(e))
        record.skipped.append((position, video.name, str(e)))
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


def built(builder_cls: type[MediaBuilder], data_dir=None, config: str | None = None, *,
          allow_partial: bool = True):
  """A builder of the dataset built earlier in `data_dir`; FileNotFoundError if it is not.

  A partial build (videos skipped or beyond `max_videos_per_split`, other
  content options than the defaults, or no build record) is logged as a
  warning naming what it lacks per split, or refused with
  `build_record.PartialBuildError` when `allow_partial` is False.
  """
  builder = builder_cls(config=config, data_dir=expand_path(data_dir))
  name = f"{builder.name}/{config}" if config else builder.name
  if not (builder.data_path / "dataset_info.json").exists():
    raise FileNotFoundError(
        f"{name} is not built in {builder.data_path}; build it once (`python -m "
        f"dgsct_jax.data.build --dataset={name} --manual_dir=<release folder> "
        f"--data_dir=<dir>`, see dgsct_jax/data/datasets/{builder.name}/README.md) and pass "
        "its data_dir")
  left_out = builder.left_out()
  if left_out:
    message = f"{name} in {builder.data_path} is a partial build: {'; '.join(left_out)}"
    if not allow_partial:
      raise build_record.PartialBuildError(
          f"{message}. A complete dataset was asked for (allow_partial=False): fix the media "
          f"and rebuild it with the default options (python -m dgsct_jax.data.build "
          f"--dataset={name} ..., without --skip_bad, --max_videos_per_split, --min_frames)")
    logging.warning("%s. Results on it are not those of the full dataset.", message)
  return builder
