r"""Builds the AVE TFDS dataset (ArrayRecord) from the official release, TF-free.

  python -m dgsct_jax.data.builders.ave.build \
      --manual_dir=/path/to/data/AVE --data_dir=~/tensorflow_datasets [--skip_bad]

Why a CLI of our own rather than `tfds build`: it passes `skip_bad` and
`min_frames` to the builder, never tries GCS (no network needed), and prints
the count of skipped videos. Exit status 1 when a video has bad media and
--skip_bad is not given (the message names the file).
"""
import argparse
import logging
import sys

import tensorflow_datasets as tfds

from dgsct_jax.data import records
from dgsct_jax.data.builders.ave import ave


def build(manual_dir, data_dir=None, *, skip_bad: bool = False, min_frames: int = 10,
          annotations_dir=None) -> ave.Ave:
  """Builds (or reuses) the dataset; returns the builder (see `.skip_report`)."""
  builder = ave.Ave(data_dir=data_dir, skip_bad=skip_bad, min_frames=min_frames,
                    annotations_dir=annotations_dir)
  builder.download_and_prepare(
      file_format="array_record",
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir),
                                                   try_download_gcs=False))
  return builder


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--manual_dir", required=True, help="the AVE folder (see README.md)")
  parser.add_argument("--data_dir", default=None, help="TFDS data dir to write to")
  parser.add_argument("--annotations_dir", default=None,
                      help="annotation files, if not in manual_dir")
  parser.add_argument("--skip_bad", action="store_true",
                      help="leave out videos with bad or missing media, and report them")
  parser.add_argument("--min_frames", type=int, default=ave.NUM_SEGMENTS,
                      help="fewer available frames counts as bad input")
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.WARNING)
  try:
    builder = build(args.manual_dir, args.data_dir, skip_bad=args.skip_bad,
                    min_frames=args.min_frames, annotations_dir=args.annotations_dir)
  except records.BadMediaError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  sizes = {name: split.num_examples for name, split in builder.info.splits.items()}
  print(f"AVE built in {builder.data_dir}: {sizes}")
  if builder.skip_report.count():
    print(builder.skip_report.summary())
  return 0


if __name__ == "__main__":
  sys.exit(main())
