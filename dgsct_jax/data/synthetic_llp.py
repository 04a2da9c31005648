"""A procedural LLP look-alike, so AVVP trains end to end without a download.

Why: CI and the demo need AVVP's structure (weakly labelled training videos,
dense per-modality labels to score) with no dataset. Each video has 10
one-second segments and 1..max_events distinct event classes. An event is
audio-visual, audio-only or visual-only, over a random contiguous span of
segments; an audio-visual event's visual span is either its audio span or
another span overlapping it, so the two modalities genuinely differ, as in LLP.
The classes are those of the AVE look-alike (`synthetic.py`): a visible event
draws the class sprite (each class in its own cell of the frame, jittered per
segment, so sprites never hide each other), an audible event adds the class
tone. `r2p1d`, the stand-in for the R(2+1)D motion features, is per segment the
sum of fixed per-class random directions of the visible classes, plus noise.

Elements have `LlpSource`'s format (dgsct_jax/data/datasets/llp/source.py):
frames float32 (10, 3, H, W) ImageNet-normalised, audio float32 (10, S), r2p1d
float32 (10, feature_dim), weak float32 (num_classes,) multi-hot, gt_audio and
gt_visual uint8 (num_classes, 10), filename str. As in LLP, the train split has
weak labels only: its gt_* are all zero. Element i of a split is a pure function
of (seed, split, i).
"""
import dataclasses
import functools

import numpy as np

from dgsct_jax.data import preprocess
from dgsct_jax.data import synthetic

_AUDIO_VISUAL, _AUDIO_ONLY, _VISUAL_ONLY = 0, 1, 2
_EVENT_KINDS = (0.5, 0.25, 0.25)
_OTHER_VISUAL_SPAN = 0.5  # Probability that an audio-visual event is seen over another span.


@dataclasses.dataclass(frozen=True)
class SyntheticLlpConfig:
  num_classes: int = 6
  num_segments: int = 10
  image_size: tuple[int, int] = (64, 64)
  samples_per_segment: int = 32_000
  sample_rate: int = 32_000
  feature_dim: int = 512  # The R(2+1)D feature width.
  noise_level: float = 0.05
  max_events: int = 3
  seed: int = 0


class SyntheticLlpSource(synthetic.GeneratedSource):
  """Random-access source (`len`, `[i]`) of synthetic LLP-like videos for one split."""

  def __init__(self, split: str = "train", size: int | None = None,
               config: SyntheticLlpConfig = SyntheticLlpConfig()):
    if not 1 <= config.max_events <= config.num_classes:
      raise ValueError(f"max_events must be in [1, num_classes={config.num_classes}], "
                       f"got {config.max_events}")
    super().__init__(split, size, config)

  def __getitem__(self, index: int) -> dict:
    index = int(index)
    rng = self.rng(index)
    audible, visible = sample_events(rng, self.config)
    element = render(audible, visible, rng, self.config)
    dense = self.split != "train"  # LLP's training videos have weak labels only.
    element.update(
        weak=(audible | visible).any(1).astype(np.float32),
        gt_audio=(audible & dense).astype(np.uint8),
        gt_visual=(visible & dense).astype(np.uint8),
        filename=f"synthetic_llp_{self.split}_{index:07d}")
    return element


def random_span(rng: np.random.Generator, t_count: int, inside: int | None = None) -> np.ndarray:
  """bool (t_count,): a random contiguous run of segments, containing `inside` if given."""
  length = int(rng.integers(1, t_count + 1))
  lo, hi = 0, t_count - length
  if inside is not None:
    lo, hi = max(0, inside - length + 1), min(inside, hi)
  start = int(rng.integers(lo, hi + 1))
  return (np.arange(t_count) >= start) & (np.arange(t_count) < start + length)


def sample_events(rng: np.random.Generator, cfg: SyntheticLlpConfig
                  ) -> tuple[np.ndarray, np.ndarray]:
  """(audible, visible), bool (num_classes, num_segments): where each class is heard/seen."""
  shape = (cfg.num_classes, cfg.num_segments)
  audible, visible = np.zeros(shape, bool), np.zeros(shape, bool)
  count = int(rng.integers(1, cfg.max_events + 1))
  for c in rng.choice(cfg.num_classes, size=count, replace=False):
    kind = rng.choice(3, p=_EVENT_KINDS)
    audio_span = visual_span = random_span(rng, cfg.num_segments)
    if kind == _AUDIO_VISUAL and rng.random() < _OTHER_VISUAL_SPAN:
      inside = int(rng.choice(np.flatnonzero(audio_span)))
      visual_span = random_span(rng, cfg.num_segments, inside)
    audible[c] = audio_span & (kind != _VISUAL_ONLY)
    visible[c] = visual_span & (kind != _AUDIO_ONLY)
  return audible, visible


def class_bank(cfg: SyntheticLlpConfig) -> synthetic.ClassBank:
  """The AVE look-alike's sprites and tones: the classes of both datasets are the same."""
  shared = {f.name for f in dataclasses.fields(synthetic.SyntheticConfig)}
  return synthetic.class_bank(synthetic.SyntheticConfig(
      **{k: v for k, v in dataclasses.asdict(cfg).items() if k in shared}))


@functools.lru_cache(maxsize=8)
def class_features(num_classes: int, dim: int) -> np.ndarray:
  """float32 (num_classes, dim): per class a fixed random direction, scaled to norm sqrt(dim)
  so that entries are O(1) like real features. Row c does not depend on num_classes."""
  v = np.random.default_rng(54321).standard_normal((num_classes, dim))
  return (v * (np.sqrt(dim) / np.linalg.norm(v, axis=1, keepdims=True))).astype(np.float32)


def cells(h: int, w: int, s: int) -> tuple[np.ndarray, tuple[int, int]]:
  """Top-left corners (n, 2) of the non-overlapping cells of a frame, and the cell size."""
  cell = (h // (h // s), w // (w // s))
  ys, xs = np.mgrid[:h // cell[0], :w // cell[1]]
  return np.stack([ys.ravel() * cell[0], xs.ravel() * cell[1]], 1), cell


def mix_tones(rng: np.random.Generator, bank: synthetic.ClassBank, classes: np.ndarray,
              on: np.ndarray, cfg) -> np.ndarray:
  """float32 (T, S) audio: noise, plus the tone of `classes[k]` at a random phase and gain
  in every segment t where `on[k, t]` (bool (K, T))."""
  t_count, spl = on.shape[1], cfg.samples_per_segment
  audio = np.empty((t_count, spl), np.float32)
  noise_at = rng.integers(0, spl, size=t_count)
  tone_at = rng.integers(0, spl, size=on.shape)
  gains = rng.uniform(0.5, 1.0, size=on.shape).astype(np.float32)
  for t in range(t_count):
    np.multiply(bank.audio_noise[noise_at[t]:noise_at[t] + spl], np.float32(cfg.noise_level),
                out=audio[t])
  for k, t in zip(*np.nonzero(on)):
    audio[t] += gains[k, t] * bank.tones[classes[k], tone_at[k, t]:tone_at[k, t] + spl]
  return audio


def render(audible: np.ndarray, visible: np.ndarray, rng: np.random.Generator,
           cfg: SyntheticLlpConfig) -> dict:
  """frames, audio, r2p1d of a video where class c is heard in the segments `audible[c]`
  and seen in `visible[c]` (bool (num_classes, num_segments))."""
  bank = class_bank(cfg)
  t_count, (h, w) = cfg.num_segments, cfg.image_size

  # Frames: every visible class in a cell of its own (cells repeat beyond their number).
  s = bank.sprites.shape[-1]
  frames = synthetic.backgrounds(rng, bank, t_count)
  shown = np.flatnonzero(visible.any(1))
  corners, cell = cells(h, w, s)
  corners = corners[rng.permutation(len(corners))[np.arange(len(shown)) % len(corners)]]
  jitter = rng.integers(0, (cell[0] - s + 1, cell[1] - s + 1), size=(len(shown), t_count, 2))
  for k, c in enumerate(shown):
    for t in np.flatnonzero(visible[c]):
      y, x = corners[k] + jitter[k, t]
      synthetic.paste_sprite(frames[t], bank, c, y, x)
  frames = preprocess.normalize_chw(frames, scale=1.0)

  audio = mix_tones(rng, bank, np.arange(cfg.num_classes), audible, cfg)

  r2p1d = visible.T.astype(np.float32) @ class_features(cfg.num_classes, cfg.feature_dim)
  r2p1d += np.float32(cfg.noise_level) * rng.standard_normal(r2p1d.shape, np.float32)
  return {"frames": frames, "audio": audio, "r2p1d": r2p1d}
