"""Random-access sources of decoded elements for LLP, AVSBench and MUSIC-AVQA.

Each wraps `builder.as_data_source(split)` records and decodes in
`__getitem__`, so decoding runs in grain's read threads / workers through the
shared `dgsct_jax.data.pipeline.make_pipeline`. Frames follow the reference
loaders:
* LLP, AVQA: JPEG → /255 → torch-exact bicubic resize to 192 → ImageNet
  normalisation (`records.decode_frames`), float32 (T, 3, 192, 192);
* AVSBench: PNG → /255 → ImageNet normalisation at 224×224, float32
  (5, 3, 224, 224); the model does the 224 → 192 bicubic resize.
Audio stays (T, 32000); the model tiles it (`preprocess.tile_audio`).
"""
import dataclasses

import numpy as np

from dgsct_jax.data import preprocess
from dgsct_jax.data import records
from dgsct_jax.data import task_media


def _text(x) -> str:
  return x.decode() if isinstance(x, bytes) else str(x)


@dataclasses.dataclass
class LlpSource:
  """LLP elements: frames, audio, r2p1d, weak (25,), gt_audio/gt_visual (25, 10), filename."""
  records: object
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
        "filename": _text(r["filename"]),
    }


@dataclasses.dataclass
class AvsSource:
  """AVSBench elements: frames (5, 3, 224, 224), masks (5, H, W) float32, mask_valid, audio."""
  records: object

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
            "audio": np.asarray(r["audio"], np.float32), "name": _text(r["name"]),
            "category_id": np.int32(r["category_id"])}


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
      if r is not None and _text(r["video_id"]) == video_id:
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
    vid = _text(q["video_id"])
    position, video = self._video(int(q["video_index"]), vid)
    element = {
        "frames": records.decode_frames(video["frames"], self.image_size),
        "audio": np.asarray(video["audio"], np.float32),
        "question": np.asarray(q["question"], np.int32),
        "answer": np.int32(q["answer"]),
        "modality": np.int32(q["modality"]),
        "subtype": _text(q["subtype"]),
        "video_id": vid,
    }
    if self.negatives:
      ids = self._negatives(index, position, len(self.video_records))
      frames = [self.video_records[i // 10]["frames"][i % 10] for i in ids]
      element["negatives"] = records.decode_frames(frames, self.image_size)
    return element
