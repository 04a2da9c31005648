"""Checks of the arrays a metric accumulator is given.

Each returns the array (as numpy) or raises one ValueError naming the array,
the problem and the first offending index, so that a wrong predictions file
or eval output is refused instead of scored.
"""
import numpy as np


def _first(bad: np.ndarray) -> tuple[int, ...]:
  return tuple(int(i) for i in np.argwhere(bad)[0])


def shape(x, name: str, expected: tuple) -> np.ndarray:
  """`x` with `len(expected)` axes of the given sizes (None: any size)."""
  x = np.asarray(x)
  if x.ndim != len(expected) or any(e is not None and s != e for s, e in zip(x.shape, expected)):
    want = "(" + ", ".join("N" if e is None else str(e) for e in expected) + ")"
    raise ValueError(f"{name} must have shape {want}, got {x.shape}")
  return x


def finite(x, name: str) -> np.ndarray:
  """A numeric `x` without NaN or Inf."""
  x = np.asarray(x)
  if x.dtype == bool or np.issubdtype(x.dtype, np.integer):
    return x
  if not np.issubdtype(x.dtype, np.floating):
    raise ValueError(f"{name} must be numeric, got dtype {x.dtype}")
  bad = ~np.isfinite(x)
  if bad.any():
    raise ValueError(f"{name} holds {int(bad.sum())} NaN/Inf value(s), the first at index "
                     f"{_first(bad)}")
  return x


def probabilities(x, name: str, *, upper: float = 1.0) -> np.ndarray:
  """A finite `x` in [0, upper] (probabilities: 1; MGN's frame scores: up to 2)."""
  x = finite(x, name)
  bad = (x < 0) | (x > upper)
  if bad.any():
    raise ValueError(f"{name} holds {int(bad.sum())} value(s) outside [0, {upper:g}] "
                     f"(probabilities), e.g. {x[_first(bad)]} at index {_first(bad)}")
  return x


def class_ids(x, name: str, num_classes: int | None = None) -> np.ndarray:
  """Integer ids in [0, num_classes) (in [0, ∞) when `num_classes` is None)."""
  x = np.asarray(x)
  if x.dtype == bool or not np.issubdtype(x.dtype, np.integer):
    raise ValueError(f"{name} must hold integer ids, got dtype {x.dtype}")
  bad = (x < 0) if num_classes is None else (x < 0) | (x >= num_classes)
  if bad.any():
    valid = "negative" if num_classes is None else f"outside [0, {num_classes})"
    raise ValueError(f"{name} holds {int(bad.sum())} id(s) {valid}, e.g. {x[_first(bad)]} at "
                     f"index {_first(bad)}")
  return x


def binary(x, name: str) -> np.ndarray:
  """`x` whose values are all 0 or 1 (bool, integer or float)."""
  x = np.asarray(x)
  bad = (x != 0) & (x != 1)
  if bad.any():
    raise ValueError(f"{name} must be binary (0/1) but holds {int(bad.sum())} other value(s), "
                     f"e.g. {x[_first(bad)]} at index {_first(bad)}")
  return x


def same_length(name_to_array: dict) -> int:
  """The common length of the arrays' first axes."""
  lengths = {k: len(v) for k, v in name_to_array.items()}
  if len(set(lengths.values())) > 1:
    raise ValueError(f"rows differ in length: {lengths}")
  return next(iter(lengths.values()))
