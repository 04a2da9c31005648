"""MUSIC-AVQA elements for the grain pipeline: `make_source` and the joining `AvqaSource`.

A question (`music_avqa/qa`) is joined with its video (`music_avqa/videos`).
Frames as the reference loader reads them: JPEG -> /255 -> torch-exact bicubic
resize to 192 -> ImageNet normalisation (`records.decode_frames`), float32
(10, 3, 192, 192), and as many negatives. Audio stays (10, 32000); the model
tiles it on device.

A videos build that lacks videos (skipped under --skip_bad, or beyond
--max_videos_per_split) is joined through its build record: the questions of
the missing videos are dropped, with a warning naming how many and which
videos, so that no element ever asks for a video that is not there.
"""
import collections
from collections.abc import Mapping, Sequence
import dataclasses
import logging
import re

import numpy as np

from dgsct_jax.data import records
from dgsct_jax.data.datasets import base
from dgsct_jax.data.datasets import build_record
from dgsct_jax.data.datasets.music_avqa import builder
from dgsct_jax.metrics import avqa as avqa_metrics

_ONE_SPLIT = re.compile(r"^\s*(\w+)\s*(\[[^\]]*\])?\s*$")  # 'train', 'train[:10%]'


@dataclasses.dataclass
class AvqaSource:
  """AVQA elements: a QA record joined with its video, plus 10 negative frames.

  Negatives follow the reference: for each slot draw a frame id uniformly in
  [0, 10·#videos); with `reference_negative_rule` reject only when
  `id // 60 == video position` (the reference's leftover divisor, so a
  negative can come from the same video), otherwise when `id // 10 == video
  position`; the frame is `frames[id % 10]` of the video at position `id //
  10` of `video_records`, so negatives come only from videos that were built.
  The draw is seeded by (seed, epoch, question row): redrawn every training epoch
  as the reference's loader does, yet reproducible (and resumable: the pipeline
  passes the epoch to `at_epoch`). Evaluation reads epoch 0, so every evaluation
  sees the same negatives (the reference draws unseeded there too). Positions
  equal the reference's video indices when the videos build is complete.
  """
  qa_records: object
  video_records: object
  image_size: tuple[int, int] = (192, 192)
  seed: int = 0
  negatives: bool = True
  reference_negative_rule: bool = True
  # video_index -> position in video_records; None: they are equal (complete build).
  positions: Mapping[int, int] | None = None
  # The rows of qa_records served, in order; None: all of them.
  questions: Sequence[int] | None = None
  # The answer vocabulary (id → answer string), when known.
  answer_names: Sequence[str] | None = None

  def __post_init__(self):
    divisor = 60 if self.reference_negative_rule else 10
    if self.negatives and 10 * len(self.video_records) <= divisor:
      raise ValueError(
          f"no negative frame can be drawn for video 0 among {len(self.video_records)} videos "
          f"(the rule rejects every id < {divisor}): build more videos, or pass "
          "negatives=False or reference_negative_rule=False")

  def __len__(self) -> int:
    return len(self.qa_records if self.questions is None else self.questions)

  def _negatives(self, row: int, own: int, num_videos: int, epoch: int = 0) -> np.ndarray:
    """10 frame ids (video position · 10 + frame) for question `row` of video `own`."""
    divisor = 60 if self.reference_negative_rule else 10
    rng = np.random.default_rng((self.seed, int(epoch), int(row)))
    out = []
    for _ in range(10):
      while True:
        frame_id = int(rng.integers(0, 10 * num_videos))
        if frame_id // divisor != own:
          break
      out.append(frame_id)
    return np.asarray(out)

  def _video(self, row: int, video_index: int, video_id: str) -> tuple[int, dict]:
    """(position in video_records, record) of the video of question `row`."""
    position = video_index if self.positions is None else self.positions[video_index]
    video = self.video_records[position] if position < len(self.video_records) else None
    if video is None or records.as_str(video["video_id"]) != video_id:
      raise ValueError(f"question row {row} is about video {video_id} (index {video_index}), "
                       f"which is not at position {position} of the videos build: the qa and "
                       "videos builds come from different jsons; rebuild both")
    return position, video

  def __getitem__(self, index: int) -> dict:
    return self.at_epoch(index, 0)

  def at_epoch(self, index: int, epoch: int) -> dict:
    """Element `index` as read in pass `epoch` (its negatives are that epoch's draw)."""
    row = int(index) if self.questions is None else self.questions[int(index)]
    q = self.qa_records[row]
    vid = records.as_str(q["video_id"])
    position, video = self._video(row, int(q["video_index"]), vid)
    element = {
        "frames": records.decode_frames(video["frames"], self.image_size),
        "audio": np.asarray(video["audio"], np.float32),
        "question": np.asarray(q["question"], np.int32),
        "question_text": records.as_str(q["question_text"]),
        "answer": np.int32(q["answer"]),
        "modality": np.int32(q["modality"]),
        "subtype": records.as_str(q["subtype"]),
        "type": records.as_str(q["type"]),
        "type_id": np.int32(avqa_metrics.type_id(records.as_str(q["type"]))),
        "question_id": np.int32(q["question_id"]),
        "video_id": vid,
    }
    if self.negatives:
      ids = self._negatives(row, position, len(self.video_records), epoch)
      frames = [self.video_records[i // 10]["frames"][i % 10] for i in ids]
      element["negatives"] = records.decode_frames(frames, self.image_size)
    return element


def split_name(split: str) -> str:
  """The one split of a split spec: 'train[:10%]' -> 'train'.

  Questions are joined with the videos of their split (video indices count
  within it), so a spec that joins splits ('train+val') is an error.
  """
  match = _ONE_SPLIT.match(split)
  if not match:
    raise ValueError(f"music_avqa takes one split, optionally sliced ('train[:10%]'), got "
                     f"{split!r}: questions are joined with the videos of their split")
  return match.group(1)


def join(qa_records, videos: builder.MusicAvqa, split: str):
  """(positions, questions) of `AvqaSource` for the videos build `videos`.

  (None, None) when it holds every video of `split`. Otherwise the questions
  whose video is missing are left out of `questions`, with a warning.
  """
  record = videos.build_record()
  if record is None:
    raise build_record.PartialBuildError(
        f"music_avqa/videos in {videos.data_path} has no {build_record.FILENAME}, so which "
        "videos it holds is unknown; rebuild it (python -m dgsct_jax.data.build "
        "--dataset=music_avqa/videos ...)")
  split_record = record.splits[split]
  if split_record.built == split_record.listed:
    return None, None
  positions = {index: p for p, index in enumerate(split_record.kept_positions())}
  questions, dropped = [], collections.Counter()
  rows = list(range(len(qa_records)))
  for row, q in zip(rows, qa_records.__getitems__(rows)):  # One batched read.
    if int(q["video_index"]) in positions:
      questions.append(row)
    else:
      dropped[records.as_str(q["video_id"])] += 1
  where = f"MUSIC-AVQA {split} ({videos.data_path})"
  if not questions:
    raise ValueError(f"{where}: none of the {len(qa_records)} questions has its video built")
  if dropped:
    logging.warning(
        "%s: dropped %d of %d questions whose video is not in the videos build (skipped for bad "
        "media or beyond max_videos_per_split): %d videos, e.g. %s", where, sum(dropped.values()),
        len(qa_records), len(dropped), ", ".join(list(dropped)[:5]))
  return positions, questions


def make_source(split: str, data_dir=None, image_size=None, *, allow_partial: bool = True,
                **kwargs) -> AvqaSource:
  """The split's questions joined with its videos, from the builds in `data_dir`.

  `split` may slice the questions ('val[:100]'); the videos are always the
  whole split's. `allow_partial` is `base.built`'s. kwargs are `AvqaSource`
  fields (`seed`, `negatives`, `reference_negative_rule`).
  """
  name = split_name(split)
  qa = base.built(builder.MusicAvqa, data_dir, config="qa", allow_partial=allow_partial)
  videos = base.built(builder.MusicAvqa, data_dir, config="videos", allow_partial=allow_partial)
  qa_records = qa.as_data_source(split=split)
  video_records = videos.as_data_source(split=name)  # Raises first for a split not built.
  positions, questions = join(qa_records, videos, name)
  return AvqaSource(qa_records, video_records, image_size or (192, 192), positions=positions,
                    questions=questions, answer_names=list(qa.info.features["answer"].names),
                    **kwargs)
