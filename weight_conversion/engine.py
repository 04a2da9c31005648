"""The strict mapping engine: PyTorch state dict → the state of an NNX model.

A conversion is a list of `Rule`s that rename source keys into the *module
key* of our model, i.e. the PyTorch-style dotted path of our own attribute
names (`layers.0.blocks.1.attn.qkv.weight`). Because the modules mirror the
PyTorch attribute names, most rules are identities or prefix moves. The suffix
is then resolved to the Flax leaf (`weight` → `kernel` | `scale` | `embedding`,
`running_mean` → `mean`, `running_var` → `var`) and the layout is converted
(Linear (out, in) → (in, out), Conv OIHW → HWIO, Conv1d OIW → WIO) unless a
rule gives its own transform.

Strictness: every source key is used exactly once or ignored by a rule that
says why; every target leaf is assigned exactly once; shapes and dtype kinds
match. Otherwise `ConversionError` lists all offending keys with their shapes.
"""
import dataclasses
import re
from typing import Callable, Iterable, Sequence

import numpy as np
from flax import nnx

Transform = Callable[[np.ndarray], np.ndarray]

SUFFIX_CANDIDATES = {
    "weight": ("kernel", "scale", "embedding", "weight"),
    "running_mean": ("mean",),
    "running_var": ("var",),
}


@dataclasses.dataclass(frozen=True)
class Rule:
  """`pattern` (regex, full match on the source key) → `target` module key.

  `target` may use regex group references (`\\1`). `target=None` ignores the
  key; `reason` then says why (recomputed buffer, unused by the reference...).
  `transform` replaces the automatic layout conversion.
  """
  pattern: str
  target: str | None
  transform: Transform | None = None
  reason: str = ""

  def match(self, key: str):
    return re.fullmatch(self.pattern, key)


def ignore(pattern: str, reason: str) -> Rule:
  return Rule(pattern, None, reason=reason)


IDENTITY = Rule(r"(.*)", r"\1")


def prefixed(rules: Sequence[Rule], source_prefix: str, target_prefix: str) -> list[Rule]:
  """Rules of a sub-model applied under `source_prefix` and moved to `target_prefix`."""
  out = []
  for rule in rules:
    target = None if rule.target is None else target_prefix + rule.target
    out.append(dataclasses.replace(rule, pattern=re.escape(source_prefix) + f"(?:{rule.pattern})",
                                   target=target))
  return out


class ConversionError(ValueError):
  """The source does not map one-to-one onto the model."""


@dataclasses.dataclass
class Conversion:
  """The outcome: values for every target leaf and a record of what was done."""
  values: dict[str, np.ndarray]                      # dotted Flax path → array
  mapping: list[tuple[str, str, str]]                # (source key, target path, transform)
  ignored: list[tuple[str, str]]                     # (source key, reason)


def target_leaves(model_or_state) -> dict[str, tuple[tuple, np.dtype, type]]:
  """Dotted Flax path → (shape, dtype, variable type) of every variable but RNG state."""
  state = model_or_state if isinstance(model_or_state, nnx.State) else nnx.state(model_or_state)
  leaves = {}
  for path, var in state.flat_state():
    if isinstance(var, nnx.RngState):
      continue
    value = var.get_value()
    leaves[".".join(str(p) for p in path)] = (tuple(value.shape), np.dtype(value.dtype), type(var))
  return leaves


def auto_transform(source: np.ndarray, target_path: str, target_shape: tuple) -> tuple[np.ndarray, str]:
  """PyTorch layout → Flax layout, decided by the target leaf."""
  if target_path.endswith(".kernel") or target_path == "kernel":
    if source.ndim == 2:
      return source.T, "transpose"
    if source.ndim == 4:
      return source.transpose(2, 3, 1, 0), "OIHW->HWIO"
    if source.ndim == 3:
      return source.transpose(2, 1, 0), "OIW->WIO"
  if source.shape != tuple(target_shape) and source.size == int(np.prod(target_shape)):
    if source.squeeze().shape == tuple(d for d in target_shape if d != 1):
      return source.reshape(target_shape), "reshape"
  return source, "identity"


def resolve_leaf(module_key: str, leaves: dict) -> str | None:
  """Module key (PyTorch naming) → the dotted path of an existing Flax leaf."""
  if module_key in leaves:
    return module_key
  head, _, suffix = module_key.rpartition(".")
  for candidate in SUFFIX_CANDIDATES.get(suffix, ()):
    path = f"{head}.{candidate}" if head else candidate
    if path in leaves:
      return path
  return None


def _fmt(items: Iterable[str], limit: int = 60) -> str:
  items = list(items)
  shown = "\n".join(f"    {x}" for x in items[:limit])
  more = f"\n    ... and {len(items) - limit} more" if len(items) > limit else ""
  return shown + more


def convert(source: dict[str, np.ndarray], model_or_state, rules: Sequence[Rule],
            *, what: str = "checkpoint") -> Conversion:
  """Maps `source` onto the leaves of `model_or_state` (a model or an abstract state)."""
  leaves = target_leaves(model_or_state)
  values, mapping, ignored = {}, [], []
  unused, unknown, bad_shape, bad_dtype, duplicate = [], [], [], [], []
  for key in source:
    rule, match = next(((r, m) for r in rules if (m := r.match(key))), (None, None))
    if rule is None:
      unused.append(f"{key} {tuple(source[key].shape)}")
      continue
    if rule.target is None:
      ignored.append((key, rule.reason))
      continue
    module_key = match.expand(rule.target)
    path = resolve_leaf(module_key, leaves)
    if path is None:
      unknown.append(f"{key} {tuple(source[key].shape)} -> {module_key}")
      continue
    shape, dtype, _ = leaves[path]
    if rule.transform is not None:
      value, how = rule.transform(source[key]), getattr(rule.transform, "__name__", "custom")
    else:
      value, how = auto_transform(source[key], path, shape)
    if tuple(value.shape) != shape:
      bad_shape.append(f"{key} {tuple(source[key].shape)} -> {path} expects {shape} "
                       f"(after {how}: {tuple(value.shape)})")
      continue
    if np.dtype(value.dtype).kind not in _compatible_kinds(dtype):
      bad_dtype.append(f"{key} {value.dtype} -> {path} expects {dtype}")
      continue
    if path in values:
      duplicate.append(f"{key} -> {path} (already set from another key)")
      continue
    values[path] = np.asarray(value).astype(dtype)
    mapping.append((key, path, how))
  missing = [f"{p} {leaves[p][0]}" for p in leaves if p not in values]
  problems = [(f"source keys matched by no rule (unused) [{len(unused)}]", unused),
              (f"source keys mapped to no model leaf [{len(unknown)}]", unknown),
              (f"shape mismatches [{len(bad_shape)}]", bad_shape),
              (f"dtype mismatches [{len(bad_dtype)}]", bad_dtype),
              (f"model leaves set twice [{len(duplicate)}]", duplicate),
              (f"model leaves not assigned (missing in the source) [{len(missing)}]", missing)]
  problems = [(title, items) for title, items in problems if items]
  if problems:
    text = "\n".join(f"  {title}:\n{_fmt(items)}" for title, items in problems)
    raise ConversionError(f"{what} does not match the model:\n{text}")
  return Conversion(values, mapping, ignored)


def nonfinite(arrays: dict[str, np.ndarray]) -> dict[str, dict[str, int]]:
  """{name: {'nan': count, 'inf': count}} of the floating arrays that hold NaN or Inf."""
  out = {}
  for name, value in arrays.items():
    value = np.asarray(value)
    if np.issubdtype(value.dtype, np.inexact):
      counts = {"nan": int(np.isnan(value).sum()), "inf": int(np.isinf(value).sum())}
      if counts["nan"] or counts["inf"]:
        out[name] = counts
  return out


def describe_nonfinite(found: dict[str, dict[str, int]], limit: int = 5) -> str:
  """'a (3 NaN, 0 Inf), b (...) and 2 more' for the result of `nonfinite`."""
  shown = ", ".join(f"{k} ({c['nan']} NaN, {c['inf']} Inf)" for k, c in list(found.items())[:limit])
  return shown + (f" and {len(found) - limit} more" if len(found) > limit else "")


def _compatible_kinds(dtype: np.dtype) -> str:
  return "f" if np.dtype(dtype).kind == "f" else "iub"


def assign(model: nnx.Module, values: dict[str, np.ndarray]) -> nnx.Module:
  """Writes dotted-path values into `model` in place (every leaf must be present)."""
  state = nnx.state(model)
  for path, var in state.flat_state():
    if isinstance(var, nnx.RngState):
      continue
    dotted = ".".join(str(p) for p in path)
    if dotted not in values:
      raise ConversionError(f"no value for model leaf {dotted}")
    var.set_value(np.asarray(values[dotted]))
  nnx.update(model, state)
  return model
