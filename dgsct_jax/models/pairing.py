"""Which visual block is paired with which audio block (spec §2.1), as data.

A pairing is a tuple of `Pair`s; its position is the adapter index
(`idx_layer` of the reference): pair i carries `vis_adapter_blocks_p{1,2}[i]` and
`audio_adapter_blocks_p{1,2}[i]`. The interleaving code (`dgsct.py`) only needs
the table, so a new pair of encoders (e.g. CLIP ViT-B/32 + CLAP HTS-AT, 12↔12
across HTS-AT stages) is a new table, not new code.
"""
from typing import NamedTuple, Sequence


class Pair(NamedTuple):
  visual: tuple[int, int]   # (stage, block) in the visual encoder, 0-based
  audio: tuple[int, int]    # (stage, block) in the audio encoder, 0-based


def zip_pairing(visual_depths: Sequence[int], audio_depths: Sequence[int]) -> tuple[Pair, ...]:
  """The table the reference builds by zipping the two encoders stage by stage.

  Equal depths pair block j with block j. When the visual stage is r times deeper
  (Swin-V2-L stage 3: 18 vs 6), the reference pads the audio block list with
  None so that audio block k sits under visual block r·k + r − 1.
  """
  if len(visual_depths) != len(audio_depths):
    raise ValueError(f"zip_pairing: {len(visual_depths)} visual vs {len(audio_depths)} audio stages")
  pairs = []
  for stage, (dv, da) in enumerate(zip(visual_depths, audio_depths)):
    if dv % da:
      raise ValueError(f"zip_pairing: stage {stage} has {dv} visual and {da} audio blocks; "
                       "the reference pattern needs a whole ratio (give an explicit table)")
    r = dv // da
    pairs += [Pair((stage, r * k + r - 1), (stage, k)) for k in range(da)]
  return tuple(pairs)


# Swin-V2-L (2, 2, 18, 2) with HTS-AT (2, 2, 6, 2): the official AVE/AVVP/AVS/AVQA table.
AVE_PAIRING = (
    Pair((0, 0), (0, 0)), Pair((0, 1), (0, 1)),
    Pair((1, 0), (1, 0)), Pair((1, 1), (1, 1)),
    Pair((2, 2), (2, 0)), Pair((2, 5), (2, 1)), Pair((2, 8), (2, 2)),
    Pair((2, 11), (2, 3)), Pair((2, 14), (2, 4)), Pair((2, 17), (2, 5)),
    Pair((3, 0), (3, 0)), Pair((3, 1), (3, 1)),
)

# CLIP ViT-B/32 (one stage of 12 blocks) with HTS-AT (2, 2, 6, 2), few-shot code
# (spec §5.1): CLIP block i with the i-th HTS-AT block in stage order.
CLIP_HTSAT_PAIRING = tuple(
    Pair((0, i), a) for i, a in enumerate(
        [(0, 0), (0, 1), (1, 0), (1, 1)] + [(2, k) for k in range(6)] + [(3, 0), (3, 1)]))

TABLES = {"ave": AVE_PAIRING, "clip_htsat": CLIP_HTSAT_PAIRING}


def get(name_or_pairs, visual_depths=None, audio_depths=None) -> tuple[Pair, ...]:
  """A table by name ('ave', 'clip_htsat', 'zip' = derived from the depths) or as given."""
  if isinstance(name_or_pairs, str):
    if name_or_pairs == "zip":
      return zip_pairing(visual_depths, audio_depths)
    if name_or_pairs not in TABLES:
      raise ValueError(f"unknown pairing {name_or_pairs!r}; known: {sorted(TABLES) + ['zip']}")
    pairs = TABLES[name_or_pairs]
  else:
    pairs = tuple(Pair(tuple(p[0]), tuple(p[1])) for p in name_or_pairs)
  if visual_depths is not None and audio_depths is not None:
    validate(pairs, visual_depths, audio_depths)
  return pairs


def validate(pairs: Sequence[Pair], visual_depths: Sequence[int], audio_depths: Sequence[int]):
  """Every pair names an existing block and both streams advance strictly monotonically."""
  flat = lambda depths, sb: sum(depths[:sb[0]]) + sb[1]
  prev_v = prev_a = -1
  for i, p in enumerate(pairs):
    for what, depths, sb in (("visual", visual_depths, p.visual), ("audio", audio_depths, p.audio)):
      if not (0 <= sb[0] < len(depths) and 0 <= sb[1] < depths[sb[0]]):
        raise ValueError(f"pairing[{i}]: {what} block {sb} does not exist (depths {tuple(depths)})")
    v, a = flat(visual_depths, p.visual), flat(audio_depths, p.audio)
    if v <= prev_v or a <= prev_a:
      raise ValueError(f"pairing[{i}] = {p} does not come after pairing[{i - 1}] in both streams")
    prev_v, prev_a = v, a
