"""A procedural MUSIC-AVQA look-alike, so AVQA trains end to end without a download.

Why: CI and the demo need AVQA's structure (a question about who plays, how many, where,
answered from the frames, the audio or both) with no dataset. Each video has 10
one-second frames showing 1..max_objects "instruments" (the synthetic classes of the AVE
look-alike, `synthetic.py`, named by their shape), each in a cell of its own; an
instrument sounds over its own run of seconds (at least one sounds), as in the AVS
look-alike's MS3 setting (`synthetic_avs.render`), or stays silent (a distractor, each
but one with probability `SILENT_P`). One templated question per video,
of four MUSIC-AVQA types, with its answer derived from what was generated:

  Audio / Counting               "How many instruments are sounding"     one | two | three
  Visual / Counting              "How many instruments are in the video" one | two | three
  Visual / Location              "Where is the <shape>"                  left | right
  Audio-Visual / Existential     "Is the <shape> playing"                yes | no

(the shape asked about is on screen; whether it plays is drawn 50/50 when the video has
a silent one). Tokens and answers come from this module's vocabularies (`WORDS`,
`ANSWERS`), padded with <pad> = 0 at the end to 14 tokens as MUSIC-AVQA's.

Elements have `AvqaSource`'s format (dgsct_jax/data/datasets/music_avqa/source.py):
frames and negatives float32 (10, 3, H, W) ImageNet-normalised (the negatives are the
frames of another generated video), audio float32 (10, S), question int32 (14,),
answer, modality, type_id, question_id int32, subtype, type, question_text, video_id str.
Element i of a split is a pure function of (seed, split, i).
"""
import dataclasses
import json

import numpy as np

from dgsct_jax.data import synthetic
from dgsct_jax.data import synthetic_avs
from dgsct_jax.data import synthetic_llp
from dgsct_jax.metrics import avqa as avqa_metrics

MAX_LEN = 14
SILENT_P = 0.4  # each instrument but one is a silent distractor with this probability
NUMBERS = ("one", "two", "three")
SHAPES = synthetic.SHAPES
ANSWERS = NUMBERS + ("left", "right", "yes", "no")
TEMPLATES = {  # (modality, subtype) → question text ('{}' = a shape on screen)
    ("Audio", "Counting"): "How many instruments are sounding",
    ("Visual", "Counting"): "How many instruments are in the video",
    ("Visual", "Location"): "Where is the {}",
    ("Audio-Visual", "Existential"): "Is the {} playing",
}
WORDS = ("<pad>",) + tuple(dict.fromkeys(
    " ".join(TEMPLATES.values()).replace("{}", "").split() + list(SHAPES)))


@dataclasses.dataclass(frozen=True)
class SyntheticAvqaConfig:
  num_classes: int = 6
  num_segments: int = 10
  image_size: tuple[int, int] = (64, 64)
  samples_per_segment: int = 32_000
  sample_rate: int = 32_000
  noise_level: float = 0.05
  max_objects: int = 3
  seed: int = 0


def tokens(text: str) -> np.ndarray:
  """int32 (MAX_LEN,) ids in `WORDS`, padded with <pad> = 0 at the end."""
  ids = [WORDS.index(w) for w in text.split()]
  return np.asarray(ids + [0] * (MAX_LEN - len(ids)), np.int32)


class SyntheticAvqaSource(synthetic.GeneratedSource):
  """Random-access source (`len`, `[i]`) of synthetic MUSIC-AVQA-like questions."""

  answer_names = ANSWERS

  def __init__(self, split: str = "train", size: int | None = None,
               config: SyntheticAvqaConfig = SyntheticAvqaConfig()):
    if not 1 <= config.max_objects <= min(config.num_classes, len(NUMBERS)):
      raise ValueError(f"max_objects must be in [1, {min(config.num_classes, len(NUMBERS))}] "
                       f"(num_classes={config.num_classes}, answers up to "
                       f"{NUMBERS[-1]!r}), got {config.max_objects}")
    if config.num_classes > len(SHAPES):
      raise ValueError(f"num_classes={config.num_classes}: the synthetic instruments are the "
                       f"{len(SHAPES)} shapes {SHAPES}")
    super().__init__(split, size, config)
    self._render_config = synthetic_avs.SyntheticAvsConfig(
        **{f.name: getattr(config, f.name) for f in dataclasses.fields(config)},
        multi_source=True)

  def _video(self, rng):
    """(classes, sounding (K, T), frames/audio/masks/positions of `synthetic_avs.render`)."""
    cfg = self._render_config
    classes = rng.choice(cfg.num_classes, size=int(rng.integers(1, cfg.max_objects + 1)),
                         replace=False)
    sounding = synthetic_avs.sample_sounding(rng, len(classes), cfg)
    lead = int(rng.integers(len(classes)))
    silent = rng.random(len(classes)) < SILENT_P
    silent[lead] = False
    sounding[silent] = False
    if not sounding[lead].any():
      sounding[lead, rng.integers(cfg.num_segments)] = True
    return classes, sounding, synthetic_avs.render(classes, sounding, rng, cfg,
                                                   with_positions=True)

  def _existential(self, rng, classes, sounding) -> tuple[str, bool]:
    """(shape asked about, whether it plays): half the time a playing instrument, else a
    silent one on screen, or one that is not in the video when none is silent."""
    if rng.random() < 0.5:
      return SHAPES[classes[rng.choice(np.flatnonzero(sounding.any(1)))]], True
    silent = classes[~sounding.any(1)]
    if not len(silent):
      silent = np.setdiff1d(np.arange(self.config.num_classes), classes)
    return SHAPES[rng.choice(silent)], False

  def __getitem__(self, index: int) -> dict:
    index = int(index)
    rng = self.rng(index)
    classes, sounding, video = self._video(rng)
    kind = list(TEMPLATES)[int(rng.integers(len(TEMPLATES)))]
    k = int(rng.integers(len(classes)))
    shape = SHAPES[classes[k]]
    if kind == ("Audio", "Counting"):
      answer = NUMBERS[int(sounding.any(1).sum()) - 1]
    elif kind == ("Visual", "Counting"):
      answer = NUMBERS[len(classes) - 1]
    elif kind == ("Visual", "Location"):
      sprite = synthetic_llp.class_bank(self.config).sprites.shape[-1]
      centre_x = video["positions"][k, :, 1].mean() + sprite / 2
      answer = "left" if centre_x < self.config.image_size[1] / 2 else "right"
    else:
      shape, playing = self._existential(rng, classes, sounding)
      answer = "yes" if playing else "no"
    text = TEMPLATES[kind].format(shape)
    _, _, negative = self._video(rng)
    return {
        "frames": video["frames"], "negatives": negative["frames"], "audio": video["audio"],
        "question": tokens(text), "question_text": text,
        "answer": np.int32(ANSWERS.index(answer)),
        "modality": np.int32(avqa_metrics.MODALITIES.index(kind[0])), "subtype": kind[1],
        "type": json.dumps(list(kind)), "type_id": np.int32(avqa_metrics.type_id(kind)),
        "question_id": np.int32(index), "video_id": f"synthetic_avqa_{self.split}_{index:07d}",
    }
