"""LLP elements for the grain pipeline: `make_source` and the decoding `LlpSource`.

Frames as the reference loader reads them: JPEG -> /255 -> torch-exact bicubic
resize to 192 -> ImageNet normalisation (`records.decode_frames`), float32
(10, 3, 192, 192). Audio stays (10, 32000); the model tiles it on device.
"""
import dataclasses

import numpy as np

from dgsct_jax.data import records
from dgsct_jax.data.datasets import base
from dgsct_jax.data.datasets.llp import builder


@dataclasses.dataclass
class LlpSource:
  """LLP elements: frames, audio, r2p1d, weak (25,), gt_audio/gt_visual (25, 10), filename."""
  records: object  # tfds ArrayRecord data source of one split
  image_size: tuple[int, int] = (192, 192)

  def __len__(self) -> int:
    return len(self.records)

  def __getitem__(self, index: int) -> dict:
    r = self.records[int(index)]
    return {
        "frames": records.decode_frames(r["frames"], self.image_size),
        "audio": np.asarray(r["audio"], np.float32),
        "r2p1d": np.asarray(r["r2p1d"], np.float32),
        "weak": np.asarray(r["weak"], np.float32),
        "gt_audio": np.asarray(r["gt_audio"], np.uint8),
        "gt_visual": np.asarray(r["gt_visual"], np.uint8),
        "filename": records.as_str(r["filename"]),
    }


def make_source(split: str, data_dir=None, image_size=None, *, allow_partial: bool = True,
                **kwargs) -> LlpSource:
  """The split of the LLP build in `data_dir` (`allow_partial`: `base.built`'s); kwargs are
  `LlpSource` fields."""
  llp = base.built(builder.Llp, data_dir, allow_partial=allow_partial)
  return LlpSource(llp.as_data_source(split=split), image_size or (192, 192), **kwargs)
