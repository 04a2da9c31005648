"""Mesh and shardings from the config (big_vision/maxtext practice).

* `config.mesh`: `(('data', -1), ('fsdp', 1), ('model', 1))`; -1 takes the
  remaining devices. Axes are `Auto` (GSPMD): the modules carry logical names
  in their metadata and the step is a plain `jax.jit` with named shardings.
* `config.sharding_rules`: logical axis name → mesh axis, a tuple of mesh
  axes, or None. Names without a rule are replicated. Every rule is
  validated: mesh axes must exist, one mesh axis may not shard two dimensions
  of the same array, and sharded dimensions must be divisible.
* `config.fsdp_frozen`: shard each frozen weight of at least
  `config.fsdp_min_size_mb` along its largest dimension divisible by the
  `fsdp` axis (big_vision's `fsdp` tactic); useful on small-HBM chips.

The default (data parallel) maps only `batch` to `('data', 'fsdp')`.
"""
from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

BATCH = "batch"


def make_mesh(mesh_config: Sequence[tuple[str, int]], devices=None) -> Mesh:
  devices = list(jax.devices() if devices is None else devices)
  names = tuple(name for name, _ in mesh_config)
  sizes = [int(size) for _, size in mesh_config]
  if len(set(names)) != len(names):
    raise ValueError(f"config.mesh: duplicate axis names in {names}")
  if sizes.count(-1) > 1:
    raise ValueError(f"config.mesh: at most one axis may be -1, got {mesh_config}")
  known = int(np.prod([s for s in sizes if s != -1]))
  if -1 in sizes:
    if len(devices) % known:
      raise ValueError(f"config.mesh {mesh_config}: {len(devices)} devices not divisible by {known}")
    sizes[sizes.index(-1)] = len(devices) // known
  if int(np.prod(sizes)) != len(devices):
    raise ValueError(f"config.mesh {mesh_config} needs {int(np.prod(sizes))} devices, "
                     f"have {len(devices)}")
  return jax.make_mesh(tuple(sizes), names, devices=devices,
                       axis_types=(jax.sharding.AxisType.Auto,) * len(names))


def validate_rules(rules: Sequence[tuple[str, Any]], mesh: Mesh) -> dict[str, tuple[str, ...]]:
  """`config.sharding_rules` → {logical name: tuple of mesh axes}."""
  table = {}
  for rule in rules:
    if len(rule) != 2:
      raise ValueError(f"config.sharding_rules: expected (logical, mesh axes), got {rule!r}")
    logical, target = rule
    if logical in table:
      raise ValueError(f"config.sharding_rules: logical axis {logical!r} has two rules")
    axes = () if target is None else (target,) if isinstance(target, str) else tuple(target)
    for axis in axes:
      if axis not in mesh.axis_names:
        raise ValueError(f"config.sharding_rules: {logical!r} → {axis!r}, "
                         f"not an axis of the mesh {mesh.axis_names}")
    table[logical] = axes
  return table


def _axes_size(mesh: Mesh, axes: tuple[str, ...]) -> int:
  return int(np.prod([mesh.shape[a] for a in axes])) if axes else 1


def logical_to_spec(names, shape, table, mesh: Mesh, what: str) -> P:
  """Logical names of one array → its PartitionSpec, validated."""
  if names is None:
    return P()
  if len(names) != len(shape):
    raise ValueError(f"{what}: {len(names)} logical names {names} for shape {shape}")
  spec, used = [], set()
  for dim, name in zip(shape, names):
    axes = tuple(a for a in table.get(name, ()) if mesh.shape[a] > 1)
    if used & set(axes):
      raise ValueError(f"{what}: mesh axes {axes} used twice by logical names {names}")
    if dim % _axes_size(mesh, axes):
      raise ValueError(f"{what}: dimension {name}={dim} not divisible by mesh axes {axes} "
                       f"(size {_axes_size(mesh, axes)})")
    used |= set(axes)
    spec.append(None if not axes else axes[0] if len(axes) == 1 else axes)
  return P(*spec)


def _paths(tree):
  return [(jax.tree_util.keystr(path), leaf)
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)]


def tree_shardings(abstract_tree, axes_tree, table, mesh: Mesh):
  """NamedShardings for a tree from its logical axes (replicated where None)."""
  def one(path, leaf, names):
    return NamedSharding(mesh, logical_to_spec(names, leaf.shape, table, mesh,
                                               jax.tree_util.keystr(path)))
  return jax.tree_util.tree_map_with_path(one, abstract_tree, axes_tree,
                                          is_leaf=lambda x: x is None or isinstance(x, tuple))


def fsdp_shardings(abstract_tree, base_shardings, mesh: Mesh, *, axis: str = "fsdp",
                   min_size_mb: float = 4.0):
  """Adds `axis` on the largest free, divisible dimension of big leaves."""
  size = mesh.shape.get(axis, 1)
  if size == 1:
    return base_shardings

  def one(leaf, sharding):
    spec = list(sharding.spec) + [None] * (len(leaf.shape) - len(sharding.spec))
    nbytes = np.prod(leaf.shape) * np.dtype(leaf.dtype).itemsize
    if nbytes < min_size_mb * 2**20 or any(axis == s or (isinstance(s, tuple) and axis in s)
                                           for s in spec):
      return sharding
    for dim in np.argsort(leaf.shape)[::-1]:
      if spec[dim] is None and leaf.shape[dim] % size == 0:
        spec[dim] = axis
        return NamedSharding(mesh, P(*spec))
    return sharding

  return jax.tree.map(one, abstract_tree, base_shardings)


def batch_sharding(table, mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension over the mesh axes of the `batch` rule."""
  axes = tuple(a for a in table.get(BATCH, ()) if mesh.shape[a] > 1)
  return NamedSharding(mesh, P(axes if axes else None))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())
