"""Reading the arrays of a saved predictions file (.npz, .json or the trainer's .jsonl), and
checking that they cover the split they are scored on."""
import json
import pathlib

import numpy as np

from dgsct_jax.tasks import base


class Rows(dict):
  """Rows for `metrics().update` that cover `scored` of the `total` examples of their split
  (fewer only when the user allowed a subset); `dgsct_jax.score` reports a subset."""

  def __init__(self, rows: dict, *, scored: int, total: int):
    super().__init__(rows)
    self.scored, self.total = scored, total


def load(path) -> dict:
  """.npz → its arrays; .jsonl → `base.read_jsonl_rows`; .json → {'json': the parsed value}."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no such predictions file")
  if path.suffix == ".jsonl":
    return base.read_jsonl_rows(path)
  if path.suffix == ".json":
    return {"json": json.loads(path.read_text())}
  try:
    with np.load(path, allow_pickle=False) as data:
      return {k: data[k] for k in data.files}
  except Exception as e:  # pylint: disable=broad-except  (a damaged file fails in many ways)
    raise ValueError(f"{path}: not a readable .npz of arrays ({type(e).__name__}: {e})") from e


def need(data: dict, keys, path) -> None:
  """Raises KeyError naming the file and the missing arrays."""
  missing = [k for k in keys if k not in data]
  if missing:
    raise KeyError(f"{path}: missing arrays {missing} (found {sorted(data)})")


def check_ids(ids, split_ids, path, what: str) -> None:
  """Every id of the predictions is in the split, once."""
  known = set(split_ids)
  foreign = [i for i in ids if i not in known]
  if foreign:
    raise ValueError(f"{path}: {len(foreign)} {what} not in the split, e.g. {foreign[:3]}")
  seen, repeated = set(), []
  for i in ids:
    if i in seen:
      repeated.append(i)
    seen.add(i)
  if repeated:
    raise ValueError(f"{path}: {len(repeated)} {what} occur more than once, e.g. {repeated[:3]}")


def covering(rows: dict, path, *, scored: int, total: int, what: str, allow_subset: bool) -> Rows:
  """`rows` as `Rows`, refused when they cover fewer than the split's `total` examples
  (unless `allow_subset`) or more."""
  if scored > total:
    raise ValueError(f"{path}: {scored} predictions for the split's {total} {what}")
  if scored < total and not allow_subset:
    raise ValueError(f"{path}: predictions for {scored} of the split's {total} {what} (score "
                     "part of a split only with --allow_subset)")
  return Rows(rows, scored=scored, total=total)
