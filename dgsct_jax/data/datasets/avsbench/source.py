"""AVSBench elements for the grain pipeline: `make_source` and the decoding `AvsSource`.

Frames as the reference loader reads them: PNG -> /255 -> ImageNet
normalisation at the stored 224x224, float32 (5, 3, 224, 224); the model does
the 224 -> 192 bicubic resize. Audio stays (5, 32000); the model tiles it on
device.
"""
import dataclasses

import numpy as np

from dgsct_jax.data import preprocess
from dgsct_jax.data import records
from dgsct_jax.data import task_media
from dgsct_jax.data.datasets import base
from dgsct_jax.data.datasets.avsbench import builder


@dataclasses.dataclass
class AvsSource:
  """AVSBench elements: frames (5, 3, 224, 224), masks (5, H, W) float32, mask_valid, audio."""
  records: object  # tfds ArrayRecord data source of one split

  def __len__(self) -> int:
    return len(self.records)

  def __getitem__(self, index: int) -> dict:
    r = self.records[int(index)]
    frames = np.stack([records.decode_rgb(b) for b in r["frames"]]).transpose(0, 3, 1, 2)
    frames = preprocess.normalize_chw(preprocess.to_unit(frames))  # ToTensor, Normalize
    valid = np.asarray(r["mask_valid"], bool)
    h, w = frames.shape[-2:]
    masks = np.zeros((len(valid), h, w), np.float32)
    for k in np.nonzero(valid)[0]:
      masks[k] = task_media.decode_mask_png(r["masks"][k])
    return {"frames": frames, "masks": masks, "mask_valid": valid,
            "audio": np.asarray(r["audio"], np.float32), "name": records.as_str(r["name"]),
            "category_id": np.int32(r["category_id"])}


def make_source(split: str, data_dir=None, image_size=None, *, subset: str,
                allow_partial: bool = True, **kwargs) -> AvsSource:
  """The split of the `avsbench/<subset>` build in `data_dir` (`allow_partial`:
  `base.built`'s); kwargs are `AvsSource` fields."""
  if image_size is not None:
    raise ValueError("avsbench frames keep their stored 224x224 size (the model resizes); "
                     f"image_size={image_size} is not supported")
  avs = base.built(builder.Avsbench, data_dir, config=subset, allow_partial=allow_partial)
  return AvsSource(avs.as_data_source(split=split), **kwargs)
