"""The registry of convertible architectures.

Each `*_map` module next to this one defines `ARCHS`, a list of `Arch`. An arch
says how to build our model (from its default config plus overrides), which
rename rules apply to a given source (rules may look at the source keys, e.g.
to tell the timm 0.6 layout from the 1.x layout), and how to run the model on
the arrays of an `--inputs` file for `weight_conversion.run`.
"""
import dataclasses
import importlib
import importlib.util
from typing import Any, Callable, Sequence

import jax.numpy as jnp
import numpy as np
from flax import nnx

from weight_conversion import engine

MAP_MODULES = (
    "weight_conversion.swinv2_map",
    "weight_conversion.htsat_map",
    "weight_conversion.ave_head_map",
    "weight_conversion.dgsct_map",
)


@dataclasses.dataclass(frozen=True)
class Arch:
  name: str
  description: str
  build: Callable[..., nnx.Module]                          # build(**config) -> model
  config: dict[str, Any]                                    # default config of `build`
  rules: Callable[[Sequence[str]], Sequence[engine.Rule]]   # rules(source_keys)
  run: Callable[[nnx.Module, dict[str, np.ndarray]], dict[str, np.ndarray]]
  default_key: str | None = None      # nesting key of the usual source file
  default_prefix: str | None = None   # sub-tree prefix of the usual source file
  # check_source(state_dict, config): raises engine.ConversionError when values the
  # rules ignore (recomputed constants) disagree with what the model recomputes.
  check_source: Callable[[dict, dict], None] | None = None


def all_archs() -> dict[str, Arch]:
  archs = {}
  for name in MAP_MODULES:
    if importlib.util.find_spec(name) is None:
      continue
    for arch in importlib.import_module(name).ARCHS:
      archs[arch.name] = arch
  return archs


def get(name: str) -> Arch:
  archs = all_archs()
  if name not in archs:
    raise KeyError(f"unknown --arch {name!r}; known: {sorted(archs)}")
  return archs[name]


def abstract_model(arch: Arch, config: dict) -> nnx.Module:
  """The model's structure without allocating or initialising its weights."""
  return nnx.eval_shape(lambda: arch.build(**config))


def materialize(arch: Arch, config: dict, values: dict[str, np.ndarray]) -> nnx.Module:
  """A concrete model whose every variable comes from `values` (dotted paths)."""
  graphdef, state = nnx.split(abstract_model(arch, config))
  missing = []
  for path, var in state.flat_state():
    dotted = ".".join(str(p) for p in path)
    if dotted not in values:
      missing.append(dotted)
      continue
    var.set_value(jnp.asarray(values[dotted]))
  if missing:
    raise engine.ConversionError(f"converted values lack {len(missing)} model leaves, "
                                 f"e.g. {missing[:10]} (wrong --arch or model config?)")
  return nnx.merge(graphdef, state)
