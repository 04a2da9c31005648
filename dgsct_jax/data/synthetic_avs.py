"""A procedural AVSBench look-alike, so AVS trains end to end without a download.

Why: CI and the demo need AVS's structure (which of the objects on screen makes the
sound, as a pixel mask) with no dataset. Each video has 5 one-second frames showing
1..max_objects objects of distinct classes, each in a cell of its own (jittered per
frame); a sounding object adds its class tone to that second's audio, and its
silhouette is that frame's mask. Silent objects are distractors, so the masks cannot
be read from the frames alone. The classes are those of the AVE look-alike
(`synthetic.py`: same sprites and tones), so encoders pretrained on it fit.

Two settings, as AVSBench's subsets:
  S4  (multi_source=False): one object sounds in every frame; as in AVSBench-S4, the
      training split annotates the first frame only (the others: mask_valid False,
      masks zero).
  MS3 (multi_source=True): every object sounds over its own random run of frames
      (at least one object sounds somewhere); all frames are annotated.

Elements have `AvsSource`'s format (dgsct_jax/data/datasets/avsbench/source.py):
frames float32 (5, 3, H, W) ImageNet-normalised, masks float32 (5, H, W) in {0, 1},
mask_valid bool (5,), audio float32 (5, S), name str, category_id int32 (the class
of the first sounding object). Element i of a split is a pure function of
(seed, split, i).
"""
import dataclasses

import numpy as np

from dgsct_jax.data import preprocess
from dgsct_jax.data import synthetic
from dgsct_jax.data import synthetic_llp


@dataclasses.dataclass(frozen=True)
class SyntheticAvsConfig:
  num_classes: int = 6
  num_segments: int = 5
  image_size: tuple[int, int] = (96, 96)
  samples_per_segment: int = 32_000
  sample_rate: int = 32_000
  noise_level: float = 0.05
  max_objects: int = 3
  multi_source: bool = False
  seed: int = 0


class SyntheticAvsSource(synthetic.GeneratedSource):
  """Random-access source (`len`, `[i]`) of synthetic AVSBench-like videos for one split."""

  def __init__(self, split: str = "train", size: int | None = None,
               config: SyntheticAvsConfig = SyntheticAvsConfig()):
    if not 1 <= config.max_objects <= config.num_classes:
      raise ValueError(f"max_objects must be in [1, num_classes={config.num_classes}], "
                       f"got {config.max_objects}")
    sprite = synthetic_llp.class_bank(config).sprites.shape[-1]
    num_cells = len(synthetic_llp.cells(*config.image_size, sprite)[0])
    if config.max_objects > num_cells:
      raise ValueError(f"max_objects={config.max_objects}: a {config.image_size} frame has "
                       f"room for {num_cells} objects")
    super().__init__(split, size, config)

  def __getitem__(self, index: int) -> dict:
    index = int(index)
    cfg = self.config
    rng = self.rng(index)
    classes = rng.choice(cfg.num_classes, size=int(rng.integers(1, cfg.max_objects + 1)),
                         replace=False)
    sounding = sample_sounding(rng, len(classes), cfg)
    element = render(classes, sounding, rng, cfg)
    valid = np.ones(cfg.num_segments, bool)
    if self.split == "train" and not cfg.multi_source:
      valid[1:] = False  # AVSBench-S4's training split annotates the first frame only
    element["masks"] *= valid[:, None, None]
    first = sounding.any(1).argmax()
    element.update(mask_valid=valid, name=f"synthetic_avs_{self.split}_{index:07d}",
                   category_id=np.int32(classes[first]))
    return element


def sample_sounding(rng: np.random.Generator, num_objects: int,
                    cfg: SyntheticAvsConfig) -> np.ndarray:
  """bool (num_objects, num_segments): which object sounds in which frame."""
  sounding = np.zeros((num_objects, cfg.num_segments), bool)
  if not cfg.multi_source:
    sounding[rng.integers(num_objects)] = True
    return sounding
  for k in range(num_objects):
    sounding[k] = synthetic_llp.random_span(rng, cfg.num_segments)
  sounding[rng.integers(num_objects), rng.integers(cfg.num_segments)] = True
  return sounding


def render(classes: np.ndarray, sounding: np.ndarray, rng: np.random.Generator,
           cfg: SyntheticAvsConfig, *, with_positions: bool = False) -> dict:
  """frames, masks and audio of a video showing `classes` (one object each, every
  frame) where object k sounds in the frames `sounding[k]`; `with_positions` adds
  `positions` int (K, T, 2), each object's top-left (y, x) in each frame."""
  bank = synthetic_llp.class_bank(cfg)
  t_count, (h, w) = cfg.num_segments, cfg.image_size
  s = bank.sprites.shape[-1]
  frames = synthetic.backgrounds(rng, bank, t_count)
  masks = np.zeros((t_count, h, w), np.float32)
  corners, cell = synthetic_llp.cells(h, w, s)
  corners = corners[rng.permutation(len(corners))[:len(classes)]]
  jitter = rng.integers(0, (cell[0] - s + 1, cell[1] - s + 1), size=(len(classes), t_count, 2))
  for k, c in enumerate(classes):
    for t in range(t_count):
      y, x = corners[k] + jitter[k, t]
      synthetic.paste_sprite(frames[t], bank, c, y, x)
      if sounding[k, t]:
        np.maximum(masks[t, y:y + s, x:x + s], bank.masks[c, 0], out=masks[t, y:y + s, x:x + s])
  frames = preprocess.normalize_chw(frames, scale=1.0)

  audio = synthetic_llp.mix_tones(rng, bank, classes, sounding, cfg)
  video = {"frames": frames, "masks": masks, "audio": audio}
  if with_positions:
    video["positions"] = corners[:, None] + jitter
  return video
