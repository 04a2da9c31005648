"""MUSIC-AVQA elements for the grain pipeline: `make_source` and the joining `AvqaSource`.

A question (`music_avqa/qa`) is joined with its video (`music_avqa/videos`).
Frames as the reference loader reads them: JPEG -> /255 -> torch-exact bicubic
resize to 192 -> ImageNet normalisation (`records.decode_frames`), float32
(10, 3, 192, 192), and as many negatives. Audio stays (10, 32000); the model
tiles it on device.
"""
import dataclasses

import numpy as np

from dgsct_jax.data import records
from dgsct_jax.data.datasets import base
from dgsct_jax.data.datasets.music_avqa import builder


@dataclasses.dataclass
class AvqaSource:
  """AVQA elements: a QA record joined with its video, plus 10 negative frames.

  Negatives follow the reference: for each slot draw a frame id uniformly in
  [0, 10·#videos); with `reference_negative_rule` reject only when
  `id // 60 == video_index` (the reference's leftover divisor, so a negative
  can come from the same video), otherwise when `id // 10 == video_index`;
  the frame is `frames[id % 10]` of video `id // 10`. The draw is seeded by
  (seed, index), so it is reproducible and the same in every epoch (the
  reference draws unseeded, in eval too). Video indices here are positions in
  `video_records`, which equal the reference's when no video was skipped.
  """
  qa_records: object
  video_records: object
  image_size: tuple[int, int] = (192, 192)
  seed: int = 0
  negatives: bool = True
  reference_negative_rule: bool = True

  def __post_init__(self):
    self._position = None  # video_index -> position in video_records, if they differ

  def __len__(self) -> int:
    return len(self.qa_records)

  def _video(self, video_index: int, video_id: str) -> tuple[int, dict]:
    """(position in video_records, record) of the question's video."""
    if self._position is None:
      r = self.video_records[video_index] if video_index < len(self.video_records) else None
      if r is not None and records.as_str(r["video_id"]) == video_id:
        return video_index, r
      # Videos were skipped or subset: index the table once.
      self._position = {int(self.video_records[i]["video_index"]): i
                        for i in range(len(self.video_records))}
    if video_index not in self._position:
      raise KeyError(f"video {video_id} (index {video_index}) is not in the videos table")
    position = self._position[video_index]
    return position, self.video_records[position]

  def _negatives(self, index: int, own: int, num_videos: int) -> np.ndarray:
    """10 frame ids (video position · 10 + frame) for question `index` of video `own`."""
    divisor = 60 if self.reference_negative_rule else 10
    if own == 0 and 10 * num_videos <= divisor:
      raise ValueError(f"no negative frame can be drawn for video 0 among {num_videos} videos "
                       f"(the rule rejects every id < {divisor})")
    rng = np.random.default_rng((self.seed, int(index)))
    out = []
    for _ in range(10):
      while True:
        frame_id = int(rng.integers(0, 10 * num_videos))
        if frame_id // divisor != own:
          break
      out.append(frame_id)
    return np.asarray(out)

  def __getitem__(self, index: int) -> dict:
    q = self.qa_records[int(index)]
    vid = records.as_str(q["video_id"])
    position, video = self._video(int(q["video_index"]), vid)
    element = {
        "frames": records.decode_frames(video["frames"], self.image_size),
        "audio": np.asarray(video["audio"], np.float32),
        "question": np.asarray(q["question"], np.int32),
        "answer": np.int32(q["answer"]),
        "modality": np.int32(q["modality"]),
        "subtype": records.as_str(q["subtype"]),
        "video_id": vid,
    }
    if self.negatives:
      ids = self._negatives(index, position, len(self.video_records))
      frames = [self.video_records[i // 10]["frames"][i % 10] for i in ids]
      element["negatives"] = records.decode_frames(frames, self.image_size)
    return element


def make_source(split: str, data_dir=None, image_size=None, **kwargs) -> AvqaSource:
  """The split's questions joined with its videos, from the builds in `data_dir`.

  kwargs are `AvqaSource` fields (`seed`, `negatives`, `reference_negative_rule`).
  """
  qa = base.built(builder.MusicAvqa, data_dir, config="qa")
  videos = base.built(builder.MusicAvqa, data_dir, config="videos")
  return AvqaSource(qa.as_data_source(split=split), videos.as_data_source(split=split),
                    image_size or (192, 192), **kwargs)
