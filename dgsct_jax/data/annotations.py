"""Annotation files read with errors that name the file and the line.

The builders read text, CSV, JSON and HDF5 annotation files. Bad UTF-8, a
malformed line, an unknown class, a bad number or a corrupt file raises
`AnnotationError` naming the file and the line (the line where a JSON entry
starts, the HDF5 dataset) instead of a traceback from csv, json, int() or
h5py; the build command prints the message and exits with status 1.
"""
import contextlib
import csv
import io
import json
import pathlib
import re

import h5py
import numpy as np

_BETWEEN_ENTRIES = re.compile(r"[\s,]*")


class AnnotationError(ValueError):
  """A bad annotation file; the message names the file and the line (or dataset)."""


@contextlib.contextmanager
def located(where: str):
  """Raises a ValueError, KeyError or TypeError of the block as an AnnotationError
  that starts with `where` (e.g. "<path>:12")."""
  try:
    yield
  except AnnotationError:
    raise
  except (ValueError, KeyError, TypeError, SyntaxError) as e:
    message = e.args[0] if isinstance(e, KeyError) and e.args else e  # str(KeyError) adds quotes
    raise AnnotationError(f"{where}: {message}") from e


def read_text(path) -> str:
  """The UTF-8 text of `path`; undecodable bytes or a NUL byte are an error naming the line."""
  path = pathlib.Path(path)
  data = path.read_bytes()
  try:
    text = data.decode("utf-8")
  except UnicodeDecodeError as e:
    line = data.count(b"\n", 0, e.start) + 1
    raise AnnotationError(f"{path}:{line}: not UTF-8 text ({e.reason} at byte {e.start})") from e
  if "\0" in text:
    line = text.count("\n", 0, text.index("\0")) + 1
    raise AnnotationError(f"{path}:{line}: NUL byte in a text file")
  return text


def parse_int(value: str, where: str, what: str) -> int:
  """int(value), or an AnnotationError "<where>: <what> must be an integer"."""
  try:
    return int(value)
  except ValueError:
    raise AnnotationError(f"{where}: {what} must be an integer, got {value!r}") from None


def read_csv(path, delimiter: str = ",") -> list[tuple[int, list[str]]]:
  """(line, fields) of every non-blank row of a CSV file, the header first."""
  path = pathlib.Path(path)
  reader = csv.reader(io.StringIO(read_text(path), newline=""), delimiter=delimiter)
  try:
    return [(reader.line_num, row) for row in reader if row]
  except csv.Error as e:
    raise AnnotationError(f"{path}:{reader.line_num}: {e}") from e


def read_json_array(path) -> list[tuple[int, object]]:
  """(line, entry) of each entry of the JSON array in `path`, `line` where the entry starts."""
  path = pathlib.Path(path)
  text = read_text(path)
  try:
    data = json.loads(text)
  except json.JSONDecodeError as e:
    raise AnnotationError(f"{path}:{e.lineno}: not valid JSON: {e.msg} (column {e.colno})") from e
  if not isinstance(data, list):
    raise AnnotationError(f"{path}: expected a JSON array of entries, got a {type(data).__name__}")
  decoder = json.JSONDecoder()
  out, position, line, counted = [], text.index("[") + 1, 1, 0
  for entry in data:  # Walk the (valid) text again for the offset of each entry.
    position = _BETWEEN_ENTRIES.match(text, position).end()
    line += text.count("\n", counted, position)
    counted = position
    out.append((line, entry))
    position = decoder.raw_decode(text, position)[1]
  return out


def read_h5_indices(path, dataset: str) -> np.ndarray:
  """The non-empty 1-D integer dataset `dataset` of the HDF5 file `path`, as int64."""
  path = pathlib.Path(path)
  try:
    with h5py.File(path, "r") as f:
      if not isinstance(f.get(dataset), h5py.Dataset):
        raise AnnotationError(f"{path}: no HDF5 dataset {dataset!r} (the file holds {sorted(f)})")
      values = np.asarray(f[dataset][()])
  except (OSError, RuntimeError, KeyError) as e:  # h5py's errors for truncated or non-HDF5 files
    raise AnnotationError(f"{path}: unreadable HDF5 file ({e})") from e
  if values.ndim != 1 or values.dtype.kind not in "iu" or not values.size:
    raise AnnotationError(f"{path}: HDF5 dataset {dataset!r} must be a non-empty 1-D integer "
                          f"array, got {values.dtype} {values.shape}")
  return values.astype(np.int64)
