r"""Builds a dataset's TFDS ArrayRecord files from its official release, TF-free.

  python -m dgsct_jax.data.build --dataset=ave --manual_dir=/data/AVE \
      [--data_dir=~/tensorflow_datasets] [--skip_bad] [--max_videos_per_split=N] \
      [--annotations_dir=DIR] [--min_frames=10]

--dataset: ave, llp, avsbench/s4, avsbench/ms3, music_avqa/qa,
music_avqa/videos, or avsbench / music_avqa for both configs. The release
layout of each is in dgsct_jax/data/datasets/<name>/README.md. Every builder
takes --skip_bad and --max_videos_per_split; --annotations_dir is for ave and
llp, --min_frames for ave and music_avqa; another is an error.

Why not `tfds build`: this passes the builder options, never tries GCS (no
network needed), and prints the split sizes and the videos skipped under
--skip_bad. Without --skip_bad, bad media stops the build with exit status 1
and a message naming the file; so does a bad annotation file (the message
names the file and line). `~` is expanded in every path flag.

A build is reused only when it was made with the same options (skip_bad,
max_videos_per_split, min_frames): otherwise its version folder is deleted and
built again. What a build left out is recorded with it (`build_record.json`)
and printed; readers (`sources.get_source`) warn about a partial build.
"""
import argparse
import importlib
import logging
import os
import sys

import tensorflow_datasets as tfds

from dgsct_jax.data import annotations
from dgsct_jax.data import datasets
from dgsct_jax.data import records
from dgsct_jax.data.datasets import base


def builder_class(dataset: str) -> type[base.MediaBuilder]:
  """The builder of `dataset` ('ave', 'avsbench/s4', ...), registered with TFDS."""
  name = dataset.split("/")[0]
  if name not in datasets.NAMES:
    raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(datasets.NAMES)}")
  importlib.import_module(f"dgsct_jax.data.datasets.{name}")
  return tfds.builder_cls(name)


def configs(dataset: str) -> list[str]:
  """`dataset` as names of single builds: 'music_avqa' -> music_avqa/qa, music_avqa/videos."""
  name, _, config = dataset.partition("/")
  known = [c.name for c in builder_class(name).BUILDER_CONFIGS]
  if config and config not in known:
    raise ValueError(f"unknown config {dataset!r}; known: "
                     f"{', '.join(f'{name}/{c}' for c in known) or name}")
  if config or not known:
    return [dataset]
  return [f"{name}/{c}" for c in known]


def options(dataset: str) -> set[str]:
  """The keyword options of `dataset`'s builder: skip_bad, min_frames, ..."""
  return set(builder_class(dataset).option_defaults())


def check_options(dataset: str, given) -> None:
  """ValueError naming the `given` options that `dataset`'s builder does not take."""
  unknown = sorted(set(given) - options(dataset))
  if unknown:
    raise ValueError(f"{dataset} does not take {', '.join(unknown)} "
                     f"(its options: {', '.join(sorted(options(dataset)))})")


def build(dataset: str, manual_dir, data_dir=None, **builder_options) -> base.MediaBuilder:
  """Builds (or reuses) one dataset, e.g. 'avsbench/s4'; returns its builder (`.skip_report`).

  A build in `data_dir` made with other options is deleted and built again.

  Args:
    dataset: a name of one build (see `configs`).
    manual_dir: the release folder, laid out as the dataset's README.md says.
    data_dir: TFDS data dir to write to (default: TFDS's, ~/tensorflow_datasets).
    **builder_options: skip_bad, max_videos_per_split, min_frames, ...
      (`check_options`).
  """
  if configs(dataset) != [dataset]:
    raise ValueError(f"{dataset} has several configs; build each of {configs(dataset)}")
  check_options(dataset, builder_options)
  name, _, config = dataset.partition("/")
  builder = _builder(name, config, data_dir, builder_options)
  reason = builder.stale_reason()
  if reason:
    logging.warning("%s: rebuilding %s: %s", dataset, builder.data_path, reason)
    builder.data_path.rmtree()  # This build's own folder: <data_dir>/<name>/[<config>/]<version>.
    builder = _builder(name, config, data_dir, builder_options)  # Info from code, not the files.
  builder.download_and_prepare(
      file_format="array_record",
      download_config=tfds.download.DownloadConfig(
          manual_dir=base.expand_path(manual_dir), try_download_gcs=False))
  return builder


def _builder(name: str, config: str, data_dir, builder_options: dict) -> base.MediaBuilder:
  return builder_class(name)(config=config or None, data_dir=base.expand_path(data_dir),
                             **builder_options)


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m dgsct_jax.data.build",
                                   description=__doc__.splitlines()[0])
  parser.add_argument("--dataset", required=True,
                      help="ave, llp, avsbench[/s4|/ms3] or music_avqa[/qa|/videos]")
  parser.add_argument("--manual_dir", required=True, type=os.path.expanduser,
                      help="the release folder (dgsct_jax/data/datasets/<name>/README.md)")
  parser.add_argument("--data_dir", default=None, type=os.path.expanduser,
                      help="TFDS data dir to write to")
  parser.add_argument("--skip_bad", action="store_true",
                      help="leave out videos with bad or missing media, and report them")
  parser.add_argument("--max_videos_per_split", type=int, default=None,
                      help="build only the first N videos of each split (smoke builds)")
  parser.add_argument("--annotations_dir", default=None, type=os.path.expanduser,
                      help="ave, llp: annotation files, if not in manual_dir")
  parser.add_argument("--min_frames", type=int, default=None,
                      help="ave, music_avqa: fewer available frames is bad input (default 10)")
  return parser


_BUILDER_FLAGS = ("skip_bad", "max_videos_per_split", "annotations_dir", "min_frames")


def main(argv=None) -> int:
  parser = _parser()
  args = parser.parse_args(argv)
  given = {k: getattr(args, k) for k in _BUILDER_FLAGS if getattr(args, k) not in (None, False)}
  try:
    names = configs(args.dataset)
    check_options(args.dataset, given)
  except ValueError as e:
    parser.error(str(e))
  if not os.path.isdir(args.manual_dir):
    parser.error(f"--manual_dir={args.manual_dir} is not a folder")
  logging.basicConfig(level=logging.WARNING)
  for name in names:
    try:
      builder = build(name, args.manual_dir, args.data_dir, **given)
    except (records.BadMediaError, annotations.AnnotationError, FileNotFoundError) as e:
      print(f"error: {e}", file=sys.stderr)
      return 1
    _print_summary(name, builder)
  return 0


def _print_summary(name: str, builder: base.MediaBuilder) -> None:
  """Split sizes, the videos skipped now and what the build left out."""
  sizes = {split: info.num_examples for split, info in builder.info.splits.items()}
  if builder.reused:
    print(f"{name}: reusing the build in {builder.data_dir} (same options): {sizes}")
  else:
    print(f"{name} built in {builder.data_dir}: {sizes}")
  if builder.skip_report.count():
    print(builder.skip_report.summary())
  left_out = builder.left_out()
  if left_out:
    print(f"partial build (readers warn; allow_partial=False refuses it): {'; '.join(left_out)}")


if __name__ == "__main__":
  sys.exit(main())
