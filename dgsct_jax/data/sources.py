"""`get_source(name, split, ...)`: random-access sources of decoded element dicts.

Both sources return elements in the format documented in `pipeline.py`, so
one grain pipeline serves the real and the synthetic data. Decoding happens in
`__getitem__`, hence inside grain's read threads / worker processes.
"""
import dataclasses

import numpy as np

from dgsct_jax.data import records
from dgsct_jax.data import synthetic


@dataclasses.dataclass
class AveSource:
  """AVE records from `builder.as_data_source()`, decoded to element dicts.

  Frames: JPEG bytes -> uint8 RGB -> torch-exact bicubic resize to
  `image_size` -> ImageNet normalisation (the reference's preprocessing).
  """
  records: object  # tfds ArrayRecord data source of one split
  image_size: tuple[int, int] = (192, 192)
  num_labels: int = 29

  def __len__(self) -> int:
    return len(self.records)

  def __getitem__(self, index: int) -> dict:
    return decode_ave(self.records[int(index)], self.image_size, self.num_labels)


def decode_ave(record: dict, image_size=(192, 192), num_labels: int = 29) -> dict:
  """One stored AVE record -> element dict (frames, audio, label, video_id)."""
  video_id = record["video_id"]
  return {
      "frames": records.decode_frames(record["frames"], image_size),
      "audio": np.asarray(record["audio"], np.float32),
      "label": records.one_hot_segments(np.asarray(record["label"]), num_labels),
      "video_id": video_id.decode() if isinstance(video_id, bytes) else str(video_id),
  }


def get_source(name: str, split: str, data_dir=None, *, image_size=None, size=None,
               config: synthetic.SyntheticConfig | None = None):
  """A random-access source (`len`, `[i]` -> element dict) for one split.

  Args:
    name: 'ave' (the TFDS dataset built by `python -m
      dgsct_jax.data.builders.ave.build`) or 'synthetic'.
    split: 'train', 'val' or 'test'; for 'ave' any TFDS split spec ('train[:10%]').
    data_dir: TFDS data dir for 'ave' (default: TFDS's, ~/tensorflow_datasets).
    image_size: (H, W) of the output frames; default (192, 192) for 'ave',
      the config's for 'synthetic' (pass `config` to change it there).
    size: number of videos of a synthetic split (default per split).
    config: `synthetic.SyntheticConfig` (classes, frame size, samples, seed).
  """
  if name == "ave":
    from dgsct_jax.data.builders.ave import ave  # pylint: disable=g-import-not-at-top
    builder = ave.Ave(data_dir=data_dir)
    if not builder.data_path.exists() or not (builder.data_path / "dataset_info.json").exists():
      raise FileNotFoundError(
          f"AVE is not built in {builder.data_path}; build it once with `python -m "
          "dgsct_jax.data.builders.ave.build --manual_dir=<AVE folder> --data_dir=<dir>`")
    num_labels = builder.info.features["label"].feature.num_classes
    return AveSource(builder.as_data_source(split=split), tuple(image_size or (192, 192)),
                     num_labels)
  if name == "synthetic":
    config = config or synthetic.SyntheticConfig()
    if image_size is not None and tuple(image_size) != tuple(config.image_size):
      config = dataclasses.replace(config, image_size=tuple(image_size))
    return synthetic.SyntheticSource(split, size, config)
  raise ValueError(f"unknown dataset {name!r}; expected 'ave' or 'synthetic'")
