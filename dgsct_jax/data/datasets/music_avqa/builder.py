"""MUSIC-AVQA for the AVST head: a QA-level and a video-level dataset, joined by `video_id`.

Two configs, built TF-free into ArrayRecord from the DG-SCT `data/AVQA` folder
in `manual_dir` (layout in README.md next to this file):
* `music_avqa/qa`: one example per QA pair in json order (`question_id`
  repeats in MUSIC-AVQA, so the key is the row): the 14 question token ids
  (`dgsct_jax.data.avqa_text`, exactly the reference's tokenisation), the
  answer id in the answer vocabulary, the (modality, subtype) type kept per
  sample, and `video_index`, the video's position in the split's video list
  (first-appearance order: the index space of the reference's negatives).
* `music_avqa/videos`: one example per video of each split's video list: the
  10 sampled JPEG frames (`int(linspace(1, n, 10))`, 1-based, as AVE) as the
  original bytes, and the 32 kHz wave (10, 32000). Negatives are drawn at
  input time from this table.

Vocabularies: built from `json/avqa-train.json` by first appearance (93
question tokens, 42 answers) and checked against the release dumps
`ques_vocab.txt` / `ans_vocab.txt` when present (mismatch is an error). When
the train json is absent the dumps are used (logged), and only the splits
whose json exists are built. A bad json entry (missing key, unreadable type
or template values, unknown word or answer) raises
`annotations.AnnotationError` naming the file and the line where it starts.

The media options (skip_bad, max_videos_per_split, min_frames) act on the
videos config only; the qa config always holds every question. A question
whose video is missing from the videos build is dropped by `source.py`.
"""
import dataclasses
import logging
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from dgsct_jax.data import annotations
from dgsct_jax.data import avqa_text
from dgsct_jax.data import records
from dgsct_jax.data.datasets import base
from dgsct_jax.metrics import avqa as avqa_metrics

NUM_SEGMENTS = 10
SAMPLE_RATE = 32_000
SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class SplitJson:
  """The QA samples of json/avqa-<split>.json and the line where each starts."""
  path: pathlib.Path
  samples: list[dict]
  lines: list[int]

  def where(self, row: int) -> str:
    """Sample `row` in messages: "<path>:<line> (entry <row>)"."""
    return f"{self.path}:{self.lines[row]} (entry {row})"


def read_split_json(manual, split: str) -> SplitJson | None:
  """json/avqa-<split>.json, checked (`avqa_text.check_sample`, known modality); None when
  absent."""
  path = pathlib.Path(manual) / "json" / f"avqa-{split}.json"
  if not path.is_file():
    return None
  entries = avqa_text.load_json_entries(path)
  split_json = SplitJson(path, [s for _, s in entries], [line for line, _ in entries])
  for row, sample in enumerate(split_json.samples):
    with annotations.located(split_json.where(row)):
      modality, _ = avqa_metrics.parse_type(sample["type"])
      if modality not in avqa_metrics.MODALITIES:
        raise ValueError(f"unknown modality {modality!r} in type {sample['type']!r}")
  return split_json


def video_list(samples: list[dict]) -> list[str]:
  """Video ids in order of first appearance (the reference's `video_list`)."""
  return list(dict.fromkeys(s["video_id"] for s in samples))


def vocabularies(manual) -> tuple[list[str], list[str]]:
  """(question vocabulary, answer vocabulary) as the reference builds them, checked."""
  manual = pathlib.Path(manual)
  q_dump, a_dump = manual / "ques_vocab.txt", manual / "ans_vocab.txt"
  dumps = None
  if q_dump.is_file() and a_dump.is_file():
    dumps = (avqa_text.read_vocab_dump(q_dump, avqa_text.NUM_QUESTION_TOKENS),
             avqa_text.read_vocab_dump(a_dump, avqa_text.NUM_ANSWERS))
  train = read_split_json(manual, "train")
  if train is None:
    if dumps is None:
      raise FileNotFoundError(f"need {manual}/json/avqa-train.json or the vocabulary dumps "
                              f"{q_dump.name} and {a_dump.name} in {manual}")
    logging.warning("MUSIC-AVQA: json/avqa-train.json absent, using %s and %s", q_dump, a_dump)
    return dumps
  ques, ans = avqa_text.build_vocabularies(train.samples)
  if dumps is not None:
    avqa_text.check_vocab(ques, dumps[0], f"question vocabulary of {train.path} and {q_dump}")
    avqa_text.check_vocab(ans, dumps[1], f"answer vocabulary of {train.path} and {a_dump}")
  return ques, ans


def _qa_example(row: int, s: dict, index: dict, word_to_ix: dict, ans_to_ix: dict) -> dict:
  """The qa example of json row `row`, sample `s`; ValueError/KeyError on a bad sample."""
  if s["anser"] not in ans_to_ix:
    raise ValueError(f"answer {s['anser']!r} is not in the answer vocabulary")
  modality, subtype = avqa_metrics.parse_type(s["type"])
  return {
      "row": row,
      "question_id": s["question_id"],
      "video_id": s["video_id"],
      "video_index": index[s["video_id"]],
      "modality": modality,
      "subtype": subtype,
      "type": s["type"],
      "question": np.asarray(avqa_text.encode_question(s, word_to_ix), np.int32),
      "question_text": " ".join(avqa_text.question_words(s)),
      "answer": ans_to_ix[s["anser"]],
      "answer_text": s["anser"],
  }


class MusicAvqa(base.MediaBuilder):
  """MUSIC-AVQA QA pairs (tokenised as the reference) and their videos."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: DG-SCT AVQA inputs."}
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name="qa",
                              description="QA pairs: tokens, answer, type, video index."),
      tfds.core.BuilderConfig(name="videos",
                              description="Per video: 10 JPEG frames, 10 x 1 s audio."),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Put the DG-SCT `data/AVQA` folder in `manual_dir`:
    json/avqa-train.json, json/avqa-val.json, json/avqa-test.json
    ques_vocab.txt, ans_vocab.txt
    frames/<video_id>/00000001.jpg ...     (frames.zip of the DG-SCT README)
    audio_wave/<video_id>.npy              (320 000 float samples)
  See dgsct_jax/data/datasets/music_avqa/README.md.
  """
  DISPLAY_NAME = "MUSIC-AVQA"
  HOMEPAGE = "https://gewu-lab.github.io/MUSIC-AVQA/"
  CITATION = """@inproceedings{li2022learning, title={Learning to Answer Questions in
Dynamic Audio-Visual Scenarios}, author={Li, Guangyao and others}, booktitle={CVPR},
year={2022}}"""

  def __init__(self, *, min_frames: int = NUM_SEGMENTS, **kwargs):
    """Options besides `base.MediaBuilder`'s (skip_bad, max_videos_per_split).

    min_frames: fewer available frames is bad input.
    The media options act on the videos config; the qa config reads no media.
    """
    self.min_frames = min_frames
    super().__init__(**kwargs)

  def build_options(self) -> dict:
    if self.builder_config.name == "qa":
      return {}  # The qa config reads no media.
    return {**super().build_options(), "min_frames": self.min_frames}

  def _features(self) -> dict:
    if self.builder_config.name == "qa":
      return {
          "row": tfds.features.Tensor(shape=(), dtype=np.int32),
          "question_id": tfds.features.Tensor(shape=(), dtype=np.int32),
          "video_id": tfds.features.Text(),
          "video_index": tfds.features.Tensor(shape=(), dtype=np.int32),
          "modality": tfds.features.ClassLabel(names=list(avqa_metrics.MODALITIES)),
          "subtype": tfds.features.Text(),
          "type": tfds.features.Text(),
          "question": tfds.features.Tensor(shape=(avqa_text.MAX_LEN,), dtype=np.int32),
          "question_text": tfds.features.Text(),
          "answer": tfds.features.ClassLabel(num_classes=avqa_text.NUM_ANSWERS),
          "answer_text": tfds.features.Text(),
      }
    return {
        **base.media_features(NUM_SEGMENTS, SAMPLE_RATE),
        "video_id": tfds.features.Text(),
        "video_index": tfds.features.Tensor(shape=(), dtype=np.int32),
        "num_frames": tfds.features.Tensor(shape=(), dtype=np.int32),
    }

  def _split_generators(self, dl_manager):
    manual = pathlib.Path(dl_manager.manual_dir)
    splits = {s: read_split_json(manual, s) for s in SPLITS}
    splits = {s: v for s, v in splits.items() if v is not None}
    if not splits:
      raise FileNotFoundError(f"no json/avqa-{{train,val,test}}.json in {manual}")
    if self.builder_config.name == "qa":
      ques, ans = vocabularies(manual)
      self.info.features["answer"].names = ans
      word_to_ix = {w: i for i, w in enumerate(ques)}
      ans_to_ix = {a: i for i, a in enumerate(ans)}
      return {s: self._generate_examples(v, s, word_to_ix=word_to_ix, ans_to_ix=ans_to_ix)
              for s, v in splits.items()}
    return {s: self._generate_examples(v, s, manual=manual) for s, v in splits.items()}

  def _generate_examples(self, split_json: SplitJson, split: str, **kwargs):
    if self.builder_config.name == "qa":
      return self._generate_qa(split_json, **kwargs)
    return self._generate_videos(split_json.samples, split=split, **kwargs)

  def _generate_qa(self, split_json: SplitJson, *, word_to_ix: dict, ans_to_ix: dict):
    index = {v: i for i, v in enumerate(video_list(split_json.samples))}
    for row, s in enumerate(split_json.samples):
      with annotations.located(split_json.where(row)):
        example = _qa_example(row, s, index, word_to_ix, ans_to_ix)
      yield f"{row:06d}", example

  def _generate_videos(self, samples, *, manual: pathlib.Path, split: str):
    videos = [base.Video(f"{i:05d}_{vid}", f"video {vid}", (i, vid))
              for i, vid in enumerate(video_list(samples))]
    return self._read_videos(split, videos, lambda item: self._video(manual, *item))

  def _video(self, manual: pathlib.Path, index: int, video_id: str) -> dict:
    frames, available = records.select_frames(manual / "frames" / video_id, NUM_SEGMENTS,
                                              self.min_frames)
    audio = records.load_wave(manual / "audio_wave" / f"{video_id}.npy", NUM_SEGMENTS,
                              SAMPLE_RATE)
    return {"video_id": video_id, "video_index": index, "frames": np.array(frames, dtype=object),
            "num_frames": available, "audio": audio}
