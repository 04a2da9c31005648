"""The converted-weights directory: an orbax checkpoint of frozen values plus a manifest.

    <out>/params/         orbax StandardCheckpointer tree (dotted paths nested as dicts)
    <out>/manifest.json   arch, model config, source file and sha256, the key mapping,
                          ignored keys with reasons, and `params_sha256`, a digest of the
                          converted values that trainers check when they re-read them.
"""
import hashlib
import json
import pathlib

import numpy as np
import orbax.checkpoint as ocp

from dgsct_jax import nnx_utils

MANIFEST = "manifest.json"
PARAMS = "params"


def params_digest(values: dict[str, np.ndarray]) -> str:
  """Order-independent sha256 over (path, dtype, shape, bytes) of every leaf."""
  digest = hashlib.sha256()
  for path in sorted(values):
    value = np.ascontiguousarray(values[path])
    digest.update(f"{path}|{value.dtype.str}|{value.shape}".encode())
    digest.update(value.tobytes())
  return digest.hexdigest()


def _flat_numpy(tree) -> dict[str, np.ndarray]:
  return {k: np.asarray(v) for k, v in nnx_utils.flatten(tree).items()}


def _nest(values: dict[str, np.ndarray]) -> dict:
  tree = {}
  for path, value in values.items():
    node = tree
    *parents, leaf = path.split(".")
    for part in parents:
      node = node.setdefault(part, {})
    node[leaf] = np.asarray(value)
  return tree


def save(out_dir, values: dict[str, np.ndarray], manifest: dict) -> dict:
  """Writes values and manifest; returns the manifest with `params_sha256` added."""
  out_dir = pathlib.Path(out_dir).resolve()
  out_dir.mkdir(parents=True, exist_ok=True)
  if (out_dir / PARAMS).exists():
    raise FileExistsError(f"{out_dir / PARAMS} exists; choose an empty --out directory")
  manifest = dict(manifest, params_sha256=params_digest(values), num_leaves=len(values),
                  num_values=int(sum(np.asarray(v).size for v in values.values())))
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(out_dir / PARAMS, _nest(values))
  checkpointer.wait_until_finished()
  (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))
  return manifest


def load(directory, *, verify: bool = True) -> tuple[dict[str, np.ndarray], dict]:
  """Reads (values, manifest); with `verify`, checks the values against `params_sha256`."""
  directory = pathlib.Path(directory).resolve()
  manifest_path = directory / MANIFEST
  if not manifest_path.is_file():
    raise FileNotFoundError(f"{manifest_path}: not a converted-weights directory (no manifest)")
  manifest = json.loads(manifest_path.read_text())
  tree = ocp.StandardCheckpointer().restore(directory / PARAMS)
  values = _flat_numpy(tree)
  if verify and params_digest(values) != manifest.get("params_sha256"):
    raise ValueError(f"{directory}: converted values do not match the manifest's params_sha256 "
                     "(the directory was modified or is incomplete)")
  return values, manifest
