"""Reading PyTorch-side checkpoints as flat {key: numpy array} dicts.

Formats: .pth/.pt/.ckpt/.bin (read with `torch.load(weights_only=True)`: a file
that needs arbitrary code to unpickle is refused), .safetensors and .npz. A
state dict nested under a key (Lightning's `state_dict`, `model`) is selected
with `key`; a sub-tree such as `swin.` is selected, and stripped, with `prefix`.
"""
import hashlib
import pathlib

import numpy as np

TORCH_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
NESTING_KEYS = ("state_dict", "model", "module")


class SourceError(ValueError):
  """A checkpoint (or .npz of arrays) that cannot be read."""


def sha256(path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def _reason(error: Exception) -> str:
  """One line on why a loader failed: its error type and first sentence (for torch's
  weights_only refusal, the sentence that names the refused global)."""
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  refused = [line for line in lines if line.startswith("WeightsUnpickler error:")]
  line = (refused or lines or [""])[0].split(". ")[0]
  return f"{type(error).__name__}: {line}" if line else type(error).__name__


def _existing_file(path: pathlib.Path) -> None:
  if not path.is_file():
    raise SourceError(f"{path}: {'not a file' if path.exists() else 'no such file'}")
  if path.stat().st_size == 0:
    raise SourceError(f"{path}: empty file (0 bytes)")


def _npz_arrays(path) -> dict[str, np.ndarray]:
  with open(path, "rb") as f:
    if f.read(2) != b"PK":  # np.load would take any other file for a pickle or an .npy
      raise ValueError("not a zip archive")
  with np.load(path, allow_pickle=False) as data:
    return {k: data[k] for k in data.files}


def read_npz(path) -> dict[str, np.ndarray]:
  """The named arrays of an .npz file; SourceError (one line) if it cannot be read as one."""
  path = pathlib.Path(path)
  _existing_file(path)
  try:
    return _npz_arrays(path)
  except Exception as e:  # pylint: disable=broad-except  (a damaged file fails in many ways)
    raise SourceError(f"{path}: not a readable .npz of arrays ({_reason(e)})") from e


def _load_safetensors(path):
  from safetensors.numpy import load_file  # pylint: disable=import-outside-toplevel
  try:
    return load_file(str(path))
  except Exception as e:  # pylint: disable=broad-except  (SafetensorError, OSError...)
    raise SourceError(f"{path}: not a readable .safetensors file ({_reason(e)})") from e


def load_state_dict(path, *, key: str | None = None, prefix: str | None = None
                    ) -> dict[str, np.ndarray]:
  """Reads `path` into {key: array}, optionally selecting `key` and `prefix`."""
  path = pathlib.Path(path)
  _existing_file(path)
  if path.suffix in TORCH_SUFFIXES:
    tree = _load_torch(path)
  elif path.suffix == ".safetensors":
    tree = _load_safetensors(path)
  elif path.suffix == ".npz":
    tree = read_npz(path)
  else:
    raise SourceError(f"{path}: unknown checkpoint format {path.suffix!r} "
                      f"(expected one of {TORCH_SUFFIXES + ('.safetensors', '.npz')})")
  tree = _select_key(tree, key, path)
  flat = _to_numpy(tree, path)
  return select_prefix(flat, prefix, path) if prefix else flat


def select_prefix(flat: dict, prefix: str, where="checkpoint") -> dict:
  selected = {k[len(prefix):]: v for k, v in flat.items() if k.startswith(prefix)}
  if not selected:
    heads = sorted({k.split(".")[0] + "." for k in flat})[:20]
    raise SourceError(f"{where}: no key starts with prefix {prefix!r}; top-level prefixes are {heads}")
  return selected


def _load_torch(path):
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise SourceError(f"{path}: reading PyTorch files needs torch (pip install -e '.[test]'), "
                      "or convert it to .safetensors/.npz elsewhere") from e
  try:
    return torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # pylint: disable=broad-except
    raise SourceError(f"{path}: refused or unreadable with torch.load(weights_only=True) "
                      f"(a checkpoint that pickles code is never unpickled): {_reason(e)}") from e


def _is_array(value) -> bool:
  return hasattr(value, "shape") and hasattr(value, "dtype")


def _select_key(tree, key, path):
  if key:
    for part in key.split("/"):
      if not isinstance(tree, dict) or part not in tree:
        keys = sorted(tree)[:20] if isinstance(tree, dict) else type(tree).__name__
        raise SourceError(f"{path}: no key {part!r} in the checkpoint (top-level keys: {keys})")
      tree = tree[part]
    return tree
  if isinstance(tree, dict) and tree and not any(_is_array(v) for v in tree.values()):
    nested = [k for k in NESTING_KEYS if isinstance(tree.get(k), dict)]
    if len(nested) == 1:
      return tree[nested[0]]
    raise SourceError(f"{path}: the checkpoint holds no arrays at the top level; choose the state "
                      f"dict with --key (top-level keys: {sorted(tree)[:20]})")
  return tree


def _to_numpy(tree, path) -> dict[str, np.ndarray]:
  if not isinstance(tree, dict):
    raise SourceError(f"{path}: expected a dict of tensors, found {type(tree).__name__}")
  flat = {}
  for k, v in tree.items():
    if not _is_array(v):
      raise SourceError(f"{path}: entry {k!r} is a {type(v).__name__}, not a tensor")
    if hasattr(v, "detach"):  # torch.Tensor; numpy has no bfloat16
      v = v.detach().cpu()
      if str(v.dtype) == "torch.bfloat16":
        v = v.float()
      v = v.numpy()
    flat[str(k)] = np.asarray(v)
  return flat
