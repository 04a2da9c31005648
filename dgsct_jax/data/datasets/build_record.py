"""What a build left out, stored with it, so that nothing partial reads as complete.

TFDS reuses any build of the same version, whatever options made it. Every
`base.MediaBuilder` build therefore writes `build_record.json` next to its
ArrayRecord files (in TFDS's temporary folder, so it appears with them): the
options that change what is built and, per split, how many videos the
annotations list, how many `max_videos_per_split` left out and which ones
`skip_bad` left out (position in the split's list, name, reason). Plain JSON,
readable without TensorFlow or TFDS:

  {"options": {"skip_bad": true, "max_videos_per_split": null, "min_frames": 10},
   "splits": {"val": {"listed": 402, "beyond_limit": 0,
                      "skipped": [[17, "row 1234 (abc)", "missing frame folder: ..."]]}}}

The builders rebuild a build whose recorded options differ from the requested
ones (or that has no record) instead of reusing it; `sources.get_source` warns
about a partial build, or refuses it with `allow_partial=False`.
"""
import dataclasses
import json

FILENAME = "build_record.json"
# Options whose effect the split counts show: with nothing skipped or beyond
# the limit, a build made with them is complete.
COUNTED_OPTIONS = ("skip_bad", "max_videos_per_split")


class PartialBuildError(ValueError):
  """A partial build where a complete one is required."""


@dataclasses.dataclass
class SplitRecord:
  """The videos of one split: listed in the annotations, left out, built."""
  listed: int
  beyond_limit: int = 0  # Left out by max_videos_per_split.
  skipped: list = dataclasses.field(default_factory=list)  # [position, name, reason] each.

  @property
  def built(self) -> int:
    return self.listed - self.beyond_limit - len(self.skipped)

  def kept_positions(self) -> list[int]:
    """Positions in the split's annotation list of the built examples, in their order."""
    skipped = {position for position, *_ in self.skipped}
    return [p for p in range(self.listed - self.beyond_limit) if p not in skipped]

  def describe(self, split: str, limit) -> str | None:
    """e.g. "val: 3 of 402 videos (1 skipped for bad media, 398 beyond
    max_videos_per_split=4)"; None when the split is complete."""
    parts = []
    if self.skipped:
      parts.append(f"{len(self.skipped)} skipped for bad media")
    if self.beyond_limit:
      parts.append(f"{self.beyond_limit} beyond max_videos_per_split={limit}")
    return f"{split}: {self.built} of {self.listed} videos ({', '.join(parts)})" if parts else None


@dataclasses.dataclass
class Record:
  """The options a build was made with and what each split left out."""
  options: dict
  splits: dict = dataclasses.field(default_factory=dict)  # split -> SplitRecord

  def save(self, folder) -> None:
    """Writes the record into `folder` (a pathlib or etils path)."""
    (folder / FILENAME).write_text(json.dumps(dataclasses.asdict(self), indent=1))

  @classmethod
  def load(cls, folder) -> "Record | None":
    """The record in `folder`, or None where there is none."""
    path = folder / FILENAME
    if not path.exists():
      return None
    data = json.loads(path.read_text())
    return cls(data["options"], {s: SplitRecord(**r) for s, r in data["splits"].items()})

  def left_out(self, defaults: dict) -> list[str]:
    """What sets this build apart from a complete build with the `defaults`; [] if nothing."""
    out = [f"built with {k}={v} (default {defaults.get(k)})" for k, v in self.options.items()
           if k not in COUNTED_OPTIONS and v != defaults.get(k)]
    limit = self.options.get("max_videos_per_split")
    return out + [d for split, r in self.splits.items() if (d := r.describe(split, limit))]
