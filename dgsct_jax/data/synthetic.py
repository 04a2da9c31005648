"""A procedural AVE look-alike: learnable, deterministic, generated per index.

Why: the demo and CI need a dataset with AVE's structure and no download.
Each video has 10 one-second segments; one event class per video spans a
contiguous random range of segments. Every class is a visual pattern (a
coloured shape) plus an audio signature (fundamental, number of harmonics,
amplitude-modulation rate). The label of a segment is the class only where the
event is BOTH visible and audible; elsewhere it is background (last index),
and those background segments are often distractors of the same class: the
shape visible but silent, or the sound audible but off-screen. So neither
modality alone localises the event, as in AVE.

Elements have the format of the real pipeline (see dgsct_jax/data/pipeline.py):
frames float32 (10, 3, H, W) ImageNet-normalised, audio float32 (10, S),
label float32 (10, num_classes + 1), video_id str. Nothing is stored: element
i of a split is a pure function of (seed, split, i), so any worker can make it.
Class definitions depend only on `num_classes` (the same across seeds/splits).
"""
import dataclasses
import functools

import numpy as np

from dgsct_jax.data import preprocess

SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
DEFAULT_SPLIT_SIZES = {"train": 2048, "val": 256, "test": 256}

# Segment kinds outside the event span, with probabilities.
_NEITHER, _VISUAL_ONLY, _AUDIO_ONLY = 0, 1, 2
_BACKGROUND_KINDS = (0.4, 0.3, 0.3)
SHAPES = ("disc", "square", "triangle", "ring", "cross", "hstripes", "vstripes", "diamond")
_COLOURS = ((0.95, 0.2, 0.2), (0.2, 0.9, 0.25), (0.25, 0.35, 0.95), (0.95, 0.85, 0.2),
            (0.9, 0.3, 0.9), (0.2, 0.9, 0.9), (1.0, 0.6, 0.2), (0.95, 0.95, 0.95))


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  num_classes: int = 6
  num_segments: int = 10
  image_size: tuple[int, int] = (64, 64)
  samples_per_segment: int = 32_000
  sample_rate: int = 32_000
  noise_level: float = 0.05
  seed: int = 0


def _shape_mask(kind: str, size: int) -> np.ndarray:
  """float32 (size, size) in [0, 1]: the silhouette of one class."""
  y, x = (np.mgrid[:size, :size] + 0.5) / size * 2 - 1
  r = np.hypot(x, y)
  masks = {
      "disc": r < 0.9,
      "square": (abs(x) < 0.75) & (abs(y) < 0.75),
      "triangle": (y > -0.8) & (y < 0.8) & (abs(x) < (y + 0.8) / 1.6 * 0.9),
      "ring": (r < 0.9) & (r > 0.5),
      "cross": ((abs(x) < 0.25) | (abs(y) < 0.25)) & (r < 1.0),
      "hstripes": (np.floor((y + 1) * 3) % 2 == 0) & (abs(x) < 0.9) & (abs(y) < 0.9),
      "vstripes": (np.floor((x + 1) * 3) % 2 == 0) & (abs(x) < 0.9) & (abs(y) < 0.9),
      "diamond": abs(x) + abs(y) < 0.9,
  }
  return masks[kind].astype(np.float32)


class GeneratedSource:
  """What every generated source shares: a split of `size` videos (default: the split's
  `DEFAULT_SPLIT_SIZES`) whose element i is a pure function of (config.seed, split, i),
  drawn from `rng(i)`."""

  def __init__(self, split: str, size: int | None, config):
    if split not in SPLIT_IDS:
      raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLIT_IDS)}")
    self.split = split
    self.size = DEFAULT_SPLIT_SIZES[split] if size is None else int(size)
    self.config = config

  def __len__(self) -> int:
    return self.size

  def __repr__(self) -> str:
    return f"{type(self).__name__}(split={self.split!r}, size={self.size}, config={self.config})"

  def rng(self, index: int) -> np.random.Generator:
    """The random generator of element `index` (which must be in the split)."""
    if not 0 <= index < self.size:
      raise IndexError(f"index {index} out of range for split {self.split!r} of size {self.size}")
    return np.random.default_rng((self.config.seed, SPLIT_IDS[self.split], index))


class SyntheticSource(GeneratedSource):
  """Random-access source (`len`, `[i]`) of synthetic AVE-like videos for one split."""

  def __init__(self, split: str = "train", size: int | None = None,
               config: SyntheticConfig = SyntheticConfig()):
    super().__init__(split, size, config)
    self.num_labels = config.num_classes + 1
    self._bank = class_bank(config)

  def __getitem__(self, index: int) -> dict:
    index = int(index)
    return _video(self.rng(index), self.config, self._bank,
                  f"synthetic_{self.split}_{index:07d}")


@dataclasses.dataclass(frozen=True)
class ClassBank:
  """Precomputed per-class sprites and tones, and noise to slice from (shared with the
  LLP look-alike, `synthetic_llp.py`, so both datasets draw the same classes)."""
  sprites: np.ndarray      # (C, 3, s, s) colour x mask, values in [0, 1]
  masks: np.ndarray        # (C, 1, s, s)
  tones: np.ndarray        # (C, 2 * S): two seconds, sliced at random phases
  audio_noise: np.ndarray  # (4 * S,)
  image_noise: np.ndarray  # (4, 3, H, W)


@functools.lru_cache(maxsize=8)
def class_bank(cfg: SyntheticConfig) -> ClassBank:
  h, w = cfg.image_size
  s = max(4, min(h, w) * 3 // 8)
  masks, sprites, tones = [], [], []
  n = 2 * cfg.samples_per_segment
  t = np.arange(n) / cfg.sample_rate
  for c in range(cfg.num_classes):
    mask = _shape_mask(SHAPES[c % len(SHAPES)], s)
    colour = np.asarray(_COLOURS[(c * 3 + c // len(_COLOURS)) % len(_COLOURS)], np.float32)
    masks.append(mask[None])
    sprites.append(colour[:, None, None] * mask[None])
    f0 = 220.0 * 1.5 ** (c % 8) * (1 + 0.1 * (c // 8))  # Distinct fundamentals.
    harmonics = 1 + c % 3
    am_rate = (0.0, 4.0, 11.0)[(c // 3) % 3]
    tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, harmonics + 1))
    tone *= 1.0 - 0.8 * (0.5 + 0.5 * np.sin(2 * np.pi * am_rate * t)) * (am_rate > 0)
    tones.append((0.5 * tone / np.abs(tone).max()).astype(np.float32))
  rng = np.random.default_rng(12345)
  return ClassBank(
      sprites=np.stack(sprites), masks=np.stack(masks), tones=np.stack(tones),
      audio_noise=rng.standard_normal(4 * cfg.samples_per_segment).astype(np.float32),
      image_noise=rng.standard_normal((4, 3, h, w)).astype(np.float32))


def backgrounds(rng: np.random.Generator, bank: ClassBank, t_count: int) -> np.ndarray:
  """float32 (t_count, 3, H, W) in [0, 1]: a per-video background colour plus noise."""
  base = rng.uniform(0.05, 0.45, size=(3, 1, 1)).astype(np.float32)
  return base + 0.04 * bank.image_noise[rng.integers(len(bank.image_noise), size=t_count)]


def paste_sprite(frame: np.ndarray, bank: ClassBank, cls: int, y: int, x: int) -> None:
  """Draws class `cls`'s sprite into `frame` (3, H, W), in place, top-left corner at (y, x)."""
  s = bank.sprites.shape[-1]
  win = frame[:, y:y + s, x:x + s]
  win *= 1 - bank.masks[cls]
  win += bank.sprites[cls]


def _video(rng: np.random.Generator, cfg: SyntheticConfig, bank: ClassBank,
           video_id: str) -> dict:
  t_count, (h, w), spl = cfg.num_segments, cfg.image_size, cfg.samples_per_segment
  cls = int(rng.integers(cfg.num_classes))
  length = int(rng.integers(1, t_count + 1))
  start = int(rng.integers(0, t_count - length + 1))
  in_event = (np.arange(t_count) >= start) & (np.arange(t_count) < start + length)
  kinds = rng.choice(3, size=t_count, p=_BACKGROUND_KINDS)
  visible = in_event | (kinds == _VISUAL_ONLY)
  audible = in_event | (kinds == _AUDIO_ONLY)

  # Frames: a per-video background colour, noise, and the class sprite when visible.
  s = bank.sprites.shape[-1]
  frames = backgrounds(rng, bank, t_count)
  ys, xs = rng.integers(0, h - s + 1, size=t_count), rng.integers(0, w - s + 1, size=t_count)
  for t in np.flatnonzero(visible):
    paste_sprite(frames[t], bank, cls, ys[t], xs[t])
  frames = preprocess.normalize_chw(frames, scale=1.0)

  # Audio: the class tone at a random phase and gain when audible, plus noise.
  audio = np.empty((t_count, spl), np.float32)
  offsets = rng.integers(0, spl, size=(t_count, 2))
  gains = rng.uniform(0.5, 1.0, size=t_count).astype(np.float32)
  noise_gain = np.float32(cfg.noise_level)
  for t in range(t_count):
    o = offsets[t, 1]
    np.multiply(bank.audio_noise[o:o + spl], noise_gain, out=audio[t])
    if audible[t]:
      audio[t] += gains[t] * bank.tones[cls, offsets[t, 0]:offsets[t, 0] + spl]

  label = np.zeros((t_count, cfg.num_classes + 1), np.float32)
  label[np.arange(t_count), np.where(visible & audible, cls, cfg.num_classes)] = 1.0
  return {"frames": frames, "audio": audio, "label": label, "video_id": video_id}
