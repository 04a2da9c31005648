"""The one place that talks to NNX's split/merge/state machinery.

The trainer never holds an `nnx.Module` across a step. It holds three plain
pytrees (nested dicts of arrays) plus a static graphdef:

* `trainable`: every `Trainable` variable (adapters, heads): differentiated,
  optimised, checkpointed;
* `frozen`: every other variable except BatchNorm statistics (the Swin-V2 and
  HTS-AT weights): an input of the step, never differentiated, never donated,
  never checkpointed (re-read from the converted-weights directories);
* `stats`: every `nnx.BatchStat` (the adapters' BN and HTS-AT `bn0`): updated
  by the forward pass in train mode, checkpointed.

Keeping NNX calls here means a Flax API change touches one file.
"""
import dataclasses
from typing import Any, Callable

import numpy as np
from flax import nnx

from dgsct_jax.models.layers import Trainable

Tree = Any


@dataclasses.dataclass(frozen=True)
class Parts:
  graphdef: Any
  trainable: Tree
  frozen: Tree
  stats: Tree


def _split(model: nnx.Module):
  graphdef, trainable, stats, frozen = nnx.split(model, Trainable, nnx.BatchStat, ...)
  return graphdef, trainable, frozen, stats


def split(model: nnx.Module) -> Parts:
  """graphdef + pure-dict (trainable, frozen, stats) of a concrete model."""
  graphdef, trainable, frozen, stats = _split(model)
  return Parts(graphdef, nnx.to_pure_dict(trainable), nnx.to_pure_dict(frozen),
               nnx.to_pure_dict(stats))


def merge(graphdef, trainable: Tree, frozen: Tree, stats: Tree) -> nnx.Module:
  return nnx.merge(graphdef, trainable, stats, frozen)


def stats_of(model: nnx.Module) -> Tree:
  return nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))


def abstract(build: Callable[[], nnx.Module]) -> tuple[Parts, tuple[Tree, Tree, Tree]]:
  """Parts with `jax.ShapeDtypeStruct` leaves (nothing allocated), and the logical
  axis names (a tuple, or None) of every leaf of (trainable, frozen, stats)."""
  graphdef, *states = _split(nnx.eval_shape(build))
  parts = Parts(graphdef, *(nnx.to_pure_dict(s) for s in states))
  return parts, tuple(_axes(s) for s in states)


def _axes(state) -> Tree:
  out = {}
  for path, var in state.flat_state():
    meta = var.get_metadata()
    axes = meta.get("out_sharding")
    node = out
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = tuple(axes) if axes else None
  return out


def flatten(tree: Tree, prefix: str = "") -> dict[str, Any]:
  """Nested dict → {dotted path: leaf} (integer keys of nnx.List become digits)."""
  flat = {}
  for key, value in tree.items():
    path = f"{prefix}.{key}" if prefix else str(key)
    if isinstance(value, dict):
      flat.update(flatten(value, path))
    else:
      flat[path] = value
  return flat


def replace_leaves(tree: Tree, values: dict[str, Any], prefix: str = "") -> Tree:
  """A copy of `tree` with the leaves named in `values` (dotted paths) replaced."""
  out = {}
  for key, value in tree.items():
    path = f"{prefix}.{key}" if prefix else str(key)
    if isinstance(value, dict):
      out[key] = replace_leaves(value, values, path)
    else:
      out[key] = values.get(path, value)
  return out


def assign_pretrained(parts: Parts, values: dict[str, np.ndarray], prefix: str,
                      source: str) -> Parts:
  """Puts converted encoder weights (dotted paths relative to `prefix`) into the parts.

  Strict both ways: every converted value must land on a leaf of the same shape,
  and every frozen leaf under `prefix` must be covered. A value may land on a
  trainable leaf: an encoder that is fine-tuned (AVS-S4's HTS-AT) starts from it;
  trainable leaves it does not cover (adapters inserted in the encoder) are left alone.
  """
  frozen, stats = flatten(parts.frozen), flatten(parts.stats)
  trainable = flatten(parts.trainable)
  base = f"{prefix}." if prefix else ""
  new_frozen, new_stats, new_trainable, problems = {}, {}, {}, []
  for key, value in values.items():
    path = base + key
    target = next((new for new, tree in ((new_frozen, frozen), (new_stats, stats),
                                         (new_trainable, trainable)) if path in tree), None)
    if target is None:
      problems.append(f"{path}: no leaf of the model")
      continue
    current = frozen.get(path, stats.get(path, trainable.get(path)))
    if tuple(current.shape) != tuple(np.shape(value)):
      problems.append(f"{path}: shape {np.shape(value)} in {source}, model has {current.shape}")
      continue
    target[path] = np.asarray(value, dtype=current.dtype)
  uncovered = [p for p in frozen if p.startswith(base) and p not in new_frozen]
  problems += [f"{p}: frozen leaf not in {source}" for p in uncovered]
  if problems:
    raise ValueError(f"converted weights {source} do not match the model under "
                     f"{prefix!r} ({len(problems)} problems), e.g. {problems[:8]}")
  return dataclasses.replace(parts, frozen=replace_leaves(parts.frozen, new_frozen),
                             stats=replace_leaves(parts.stats, new_stats),
                             trainable=replace_leaves(parts.trainable, new_trainable))
