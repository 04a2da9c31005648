"""Reading the arrays of a saved predictions file (.npz, .json or the trainer's .jsonl)."""
import json
import pathlib

import numpy as np

from dgsct_jax.tasks import base


def load(path) -> dict:
  """.npz → its arrays; .jsonl → `base.read_jsonl_rows`; .json → {'json': the parsed value}."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"predictions file not found: {path}")
  if path.suffix == ".jsonl":
    return base.read_jsonl_rows(path)
  if path.suffix == ".json":
    return {"json": json.loads(path.read_text())}
  with np.load(path, allow_pickle=False) as data:
    return {k: data[k] for k in data.files}


def need(data: dict, keys, path) -> None:
  """Raises KeyError naming the file and the missing arrays."""
  missing = [k for k in keys if k not in data]
  if missing:
    raise KeyError(f"{path}: missing arrays {missing} (found {sorted(data)})")
