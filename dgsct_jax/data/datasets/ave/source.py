"""AVE elements for the grain pipeline: `make_source` and the decoding `AveSource`.

Frames: JPEG bytes -> uint8 RGB -> /255 -> torch-exact bicubic resize to
`image_size` -> ImageNet normalisation (the reference's preprocessing), float32
(10, 3, H, W). Audio stays (10, 32000); the model tiles it on device.
"""
import dataclasses

import numpy as np

from dgsct_jax.data import records
from dgsct_jax.data.datasets import base
from dgsct_jax.data.datasets.ave import builder


@dataclasses.dataclass
class AveSource:
  """AVE records from `builder.as_data_source()`, decoded in `__getitem__` (grain's readers)."""
  records: object  # tfds ArrayRecord data source of one split
  image_size: tuple[int, int] = (192, 192)
  num_labels: int = builder.NUM_CLASSES + 1

  def __len__(self) -> int:
    return len(self.records)

  def __getitem__(self, index: int) -> dict:
    return decode_ave(self.records[int(index)], self.image_size, self.num_labels)


def decode_ave(record: dict, image_size=(192, 192),
               num_labels: int = builder.NUM_CLASSES + 1) -> dict:
  """One stored AVE record -> element dict (frames, audio, label, video_id)."""
  return {
      "frames": records.decode_frames(record["frames"], image_size),
      "audio": np.asarray(record["audio"], np.float32),
      "label": records.one_hot_segments(np.asarray(record["label"]), num_labels),
      "video_id": records.as_str(record["video_id"]),
  }


def make_source(split: str, data_dir=None, image_size=None, *, allow_partial: bool = True,
                **kwargs) -> AveSource:
  """The split of the AVE build in `data_dir` (`allow_partial`: `base.built`'s); kwargs are
  `AveSource` fields."""
  ave = base.built(builder.Ave, data_dir, allow_partial=allow_partial)
  num_labels = ave.info.features["label"].feature.num_classes
  return AveSource(ave.as_data_source(split=split), image_size or (192, 192), num_labels,
                   **kwargs)
