"""The Task interface: everything the one trainer needs to know about a task.

The trainer (`train.py`), the evaluation and predict loops (`evaluation.py`)
and the scoring CLI (`score.py`) never import a task; they get one from the
registry (`dgsct_jax.tasks.get`, by `config.task`) and call these methods.

A task says
* what a batch holds (`batch_spec`): which fields go to the device as model
  inputs, which as targets, which stay on the host (ids);
* how to build its model from `config.model` and how to call it;
* its losses (a dict with the `total` that is differentiated);
* its per-example evaluation outputs (computed inside the jitted eval step);
* how those outputs are scored (`metrics`: an accumulator that the offline
  scoring CLI shares), written (`prediction_rows`, `read_predictions`),
  summarised in one line and drawn (`figure`);
* the metric, and its direction, that selects the best checkpoint and drives
  early stopping (`selection_metric`, `selection_mode`).

A task whose model does not exist yet implements only the scoring half (its
predictions can be scored, it cannot be trained: `trainable` is False).
"""
import dataclasses
import json
import pathlib
from typing import Any, Protocol

import numpy as np

INPUT, TARGET, HOST = "input", "target", "host"


@dataclasses.dataclass(frozen=True)
class Field:
  """One field of a task's batch, per example (the batch axis is not in `shape`).

  `role`: INPUT (on the device, a keyword argument of the model), TARGET (on
  the device, seen by `losses` and `eval_outputs` only) or HOST (kept on the
  host, e.g. ids; strings have dtype 'str' and shape ()). `maxval`: integer
  fields hold values in [0, maxval) (for `random_example`).
  """
  shape: tuple[int, ...]
  dtype: str
  role: str
  maxval: int | None = None

  def __post_init__(self):
    if self.role not in (INPUT, TARGET, HOST):
      raise ValueError(f"Field role {self.role!r}: choose {INPUT!r}, {TARGET!r} or {HOST!r}")


class Metrics(Protocol):
  """An accumulator of a task's metric over a split."""

  def update(self, rows: dict[str, np.ndarray]) -> None:
    """Adds rows: arrays with a leading example axis, gathered from every host and
    without padding (the same rows `Task.read_predictions` returns)."""

  def result(self) -> dict[str, float]:
    """The metric values (percent where the reference reports percent)."""


class Task:
  """Base class; see the module docstring. `config` is the whole run config (None
  when only scoring, e.g. in `python -m dgsct_jax.score`)."""

  name = ""
  selection_metric = ""
  selection_mode = "max"  # 'max' or 'min'
  # Options of `metrics` / `read_predictions` that the scoring CLI may pass.
  scoring_options: tuple[str, ...] = ()

  def __init__(self, config=None):
    self.config = config

  @property
  def trainable(self) -> bool:
    """Whether this task has a model (the trainer refuses a scoring-only task)."""
    return type(self).build_model is not Task.build_model

  # -- batch ----------------------------------------------------------------------

  def batch_spec(self) -> dict[str, Field]:
    """The fields of one example, by name (see `Field`)."""
    raise NotImplementedError(self._missing("batch_spec"))

  def fields(self, *roles: str) -> tuple[str, ...]:
    """Names of the batch fields with one of `roles`, in spec order."""
    return tuple(k for k, f in self.batch_spec().items() if f.role in roles)

  # -- model ----------------------------------------------------------------------

  def build_model(self, rngs):
    """The task model (an nnx.Module) from `self.config.model`."""
    raise NotImplementedError(self._missing("build_model"))

  def apply(self, model, inputs: dict, *, deterministic: bool, rngs):
    """The model's outputs (a dict) on the INPUT fields of a batch."""
    return model(**inputs, deterministic=deterministic, rngs=rngs)

  def losses(self, outputs: dict, batch: dict) -> dict:
    """Scalar losses with their sum under 'total' (what is differentiated)."""
    raise NotImplementedError(self._missing("losses"))

  def eval_outputs(self, outputs: dict, batch: dict) -> dict:
    """Per-example arrays (leading batch axis) that `metrics` and `prediction_rows` read.
    Runs inside the jitted eval step."""
    raise NotImplementedError(self._missing("eval_outputs"))

  # -- scoring --------------------------------------------------------------------

  def metrics(self, **options) -> Metrics:
    """A fresh accumulator of the task's metric."""
    raise NotImplementedError(self._missing("metrics"))

  def summary(self, result: dict) -> str:
    """One line for the user, e.g. 'segment accuracy 81.2% (majority baseline ...)'."""
    return ", ".join(f"{k} {v:.2f}" for k, v in result.items() if isinstance(v, float))

  def prediction_rows(self, outputs: dict[str, np.ndarray], host: dict[str, np.ndarray]
                      ) -> list[dict]:
    """JSON-able rows of `predictions.jsonl`, one per example: the eval outputs and the
    HOST fields of the batch (both unpadded, this host's examples)."""
    rows = []
    for i in range(len(next(iter(outputs.values())))):
      row = {k: _jsonable(v[i]) for k, v in host.items()}
      row.update({k: _jsonable(v[i]) for k, v in outputs.items()})
      rows.append(row)
    return rows

  def read_predictions(self, path, **options) -> dict[str, np.ndarray]:
    """A predictions file → rows for `metrics().update`. Default: `predictions.jsonl`
    as written by the trainer's predict mode."""
    del options
    return read_jsonl_rows(path)

  def figure(self, model, source, workdir) -> pathlib.Path | None:
    """An optional figure of the trained model on the first examples of `source`,
    written into `workdir`; returns its path (None: the task draws none)."""
    del model, source, workdir
    return None

  def _missing(self, what: str) -> str:
    return f"task {self.name or type(self).__name__!r} does not define {what}"


def _jsonable(value):
  value = np.asarray(value)
  return value.item() if value.ndim == 0 else value.tolist()


def read_jsonl_rows(path) -> dict[str, np.ndarray]:
  """`predictions.jsonl` (one JSON object per line, the same keys on every line) →
  {key: array with one entry per line}."""
  path = pathlib.Path(path)
  records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
  if not records:
    raise ValueError(f"{path}: no predictions")
  keys = set(records[0])
  for n, record in enumerate(records[1:], start=2):
    if set(record) != keys:
      raise ValueError(f"{path} line {n}: keys {sorted(record)} differ from line 1's "
                       f"{sorted(keys)}")
  return {k: np.asarray([r[k] for r in records]) for k in records[0]}


def random_example(spec: dict[str, Field], key: tuple[int, ...]) -> dict[str, Any]:
  """One example that satisfies `spec`, drawn from the seed `key`: uniform floats in
  [0, 1), integers in [0, maxval), booleans, strings 'example-<key>'."""
  rng = np.random.default_rng(key)
  example = {}
  for name, field in spec.items():
    if field.dtype == "str":
      example[name] = "example-" + "-".join(map(str, key))
    elif np.issubdtype(np.dtype(field.dtype), np.integer):
      example[name] = rng.integers(0, field.maxval or 2, field.shape).astype(field.dtype)
    elif np.dtype(field.dtype) == np.bool_:
      example[name] = rng.random(field.shape) < 0.5
    else:
      example[name] = rng.random(field.shape).astype(field.dtype)
  return example


@dataclasses.dataclass(frozen=True)
class RandomSource:
  """`size` random examples of a task's batch spec (`config.data.name = 'random'`): runs
  any task end to end without a dataset (smoke tests, compile and memory checks)."""
  spec: dict
  size: int
  seed: int = 0

  def __len__(self) -> int:
    return self.size

  def __getitem__(self, index: int) -> dict:
    if not 0 <= index < self.size:
      raise IndexError(f"index {index} out of range for {self.size} random examples")
    return random_example(self.spec, (self.seed, int(index)))
