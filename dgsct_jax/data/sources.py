"""`get_source(name, split, ...)`: random-access sources of decoded element dicts.

Names: 'ave', 'synthetic' (AVE-format elements, see `pipeline.py`), and the
task sources of `task_sources.py`: 'llp', 'avsbench/s4', 'avsbench/ms3',
'music_avqa'. Every source is served by the same grain pipeline. Decoding
happens in `__getitem__`, hence inside grain's read threads / worker processes.
"""
import dataclasses

import numpy as np

from dgsct_jax.data import records
from dgsct_jax.data import synthetic
from dgsct_jax.data import task_sources


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


def _built(builder, name: str, how: str | None = None):
  """The builder, after checking that its dataset exists on disk."""
  if not (builder.data_path / "dataset_info.json").exists():
    how = how or f"see dgsct_jax/data/builders/{name.split('/')[0]}/README.md"
    raise FileNotFoundError(f"{name} is not built in {builder.data_path}; build it once "
                            f"({how}) and pass its data_dir")
  return builder


def _ave(split, data_dir, image_size, **kwargs):
  from dgsct_jax.data.builders.ave import ave  # pylint: disable=g-import-not-at-top
  builder = _built(ave.Ave(data_dir=data_dir), "ave", "`python -m dgsct_jax.data.builders.ave."
                   "build --manual_dir=<AVE folder> --data_dir=<dir>`")
  num_labels = builder.info.features["label"].feature.num_classes
  return AveSource(builder.as_data_source(split=split), image_size or (192, 192), num_labels,
                   **kwargs)


def _llp(split, data_dir, image_size, **kwargs):
  from dgsct_jax.data.builders.llp import Llp  # pylint: disable=g-import-not-at-top
  builder = _built(Llp(data_dir=data_dir), "llp")
  return task_sources.LlpSource(builder.as_data_source(split=split), image_size or (192, 192),
                                **kwargs)


def _avsbench(subset):
  def make(split, data_dir, image_size, **kwargs):
    from dgsct_jax.data.builders.avsbench import Avsbench  # pylint: disable=g-import-not-at-top
    if image_size is not None:
      raise ValueError("avsbench frames keep their stored 224x224 size (the model resizes); "
                       f"image_size={image_size} is not supported")
    builder = _built(Avsbench(config=subset, data_dir=data_dir), f"avsbench/{subset}")
    return task_sources.AvsSource(builder.as_data_source(split=split), **kwargs)
  return make


def _music_avqa(split, data_dir, image_size, **kwargs):
  from dgsct_jax.data.builders.music_avqa import MusicAvqa  # pylint: disable=g-import-not-at-top
  qa = _built(MusicAvqa(config="qa", data_dir=data_dir), "music_avqa/qa")
  videos = _built(MusicAvqa(config="videos", data_dir=data_dir), "music_avqa/videos")
  return task_sources.AvqaSource(qa.as_data_source(split=split),
                                 videos.as_data_source(split=split), image_size or (192, 192),
                                 **kwargs)


_TFDS_SOURCES = {
    "ave": _ave,
    "llp": _llp,
    "avsbench/s4": _avsbench("s4"),
    "avsbench/ms3": _avsbench("ms3"),
    "music_avqa": _music_avqa,
}
KNOWN_SOURCES = (*_TFDS_SOURCES, "synthetic")


def get_source(name: str, split: str, data_dir=None, *, image_size=None, size=None,
               config: synthetic.SyntheticConfig | None = None, **source_kwargs):
  """A random-access source (`len`, `[i]` -> element dict) for one split.

  Args:
    name: one of `KNOWN_SOURCES`: 'ave', 'llp', 'avsbench/s4', 'avsbench/ms3',
      'music_avqa' (TFDS datasets built once from the releases, see
      dgsct_jax/data/builders/*/README.md) or 'synthetic'.
    split: 'train', 'val' or 'test'; for the TFDS datasets any split spec
      ('train[:10%]'); music_avqa joins the qa and videos configs of the split.
    data_dir: TFDS data dir (default: TFDS's, ~/tensorflow_datasets).
    image_size: (H, W) of the output frames; default (192, 192), the config's
      for 'synthetic' (pass `config` to change it there); not for avsbench.
    size: number of videos of a synthetic split (default per split).
    config: `synthetic.SyntheticConfig` (classes, frame size, samples, seed).
    **source_kwargs: fields of the task source, e.g. AvqaSource's `seed`,
      `negatives`, `reference_negative_rule`.
  """
  image_size = tuple(image_size) if image_size is not None else None
  if name in _TFDS_SOURCES:
    return _TFDS_SOURCES[name](split, data_dir, image_size, **source_kwargs)
  if name == "synthetic":
    if source_kwargs:
      raise TypeError(f"synthetic takes no source options, got {sorted(source_kwargs)}")
    config = config or synthetic.SyntheticConfig()
    if image_size is not None and image_size != tuple(config.image_size):
      config = dataclasses.replace(config, image_size=image_size)
    return synthetic.SyntheticSource(split, size, config)
  raise ValueError(f"unknown dataset {name!r}; known: {', '.join(KNOWN_SOURCES)}")
