"""The registry of convertible architectures.

Every module of `weight_conversion/maps/` defines `ARCHS`, a list of `Arch`;
they are found by listing that package, so a new map is a new file there. An
arch says how to build our model (from its default config plus overrides),
which rename rules apply to a given source (rules may look at the source keys,
e.g. to tell the timm 0.6 layout from the 1.x layout), and how to run the model
on the arrays of an `--inputs` file for `weight_conversion.run`.
"""
import dataclasses
import importlib
import inspect
import pkgutil
from typing import Any, Callable, Sequence

import jax.numpy as jnp
import numpy as np
from flax import nnx

from weight_conversion import engine

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
  # --model_config keys accepted besides those of `config` (e.g. `keyword_args(Model)`).
  config_keys: Sequence[str] = ()


def keyword_args(cls) -> tuple[str, ...]:
  """The arguments of `cls.__init__` but `rngs`: what a --model_config may set."""
  return tuple(p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "rngs"))


def model_config(arch: Arch, overrides: dict) -> dict:
  """The arch's config with `overrides` (a --model_config); unknown keys are refused."""
  if not isinstance(overrides, dict):
    raise engine.ConversionError(f"--model_config must be a JSON object, got {overrides!r}")
  known = set(arch.config) | set(arch.config_keys)
  unknown = sorted(set(overrides) - known)
  if unknown:
    raise engine.ConversionError(f"--model_config: arch {arch.name!r} has no key(s) {unknown}; "
                                 f"its keys: {sorted(known)}")
  return dict(arch.config, **overrides)


def all_archs() -> dict[str, Arch]:
  """Every `Arch` of every module in weight_conversion/maps/, by name (names are unique)."""
  from weight_conversion import maps  # pylint: disable=import-outside-toplevel
  archs = {}
  for info in pkgutil.iter_modules(maps.__path__):
    module = importlib.import_module(f"{maps.__name__}.{info.name}")
    for arch in getattr(module, "ARCHS", ()):
      if arch.name in archs:
        raise ValueError(f"arch {arch.name!r} is defined twice (weight_conversion/maps/"
                         f"{info.name}.py and another map)")
      archs[arch.name] = arch
  return archs


def get(name: str) -> Arch:
  archs = all_archs()
  if name not in archs:
    raise KeyError(f"unknown --arch {name!r}; known: {sorted(archs)}")
  return archs[name]


def abstract_model(arch: Arch, config: dict) -> nnx.Module:
  """The model's structure without allocating or initialising its weights."""
  try:
    return nnx.eval_shape(lambda: arch.build(**config))
  except TypeError as e:  # a --model_config value of the wrong type
    raise engine.ConversionError(f"arch {arch.name!r}: cannot build the model from its config "
                                 f"({e}); check --model_config") from e


def materialize(arch: Arch, config: dict, values: dict[str, np.ndarray], *,
                abstract: nnx.Module | None = None) -> nnx.Module:
  """A concrete model whose every variable comes from `values` (dotted paths);
  `abstract`: the `abstract_model(arch, config)` a conversion already built."""
  abstract = abstract_model(arch, config) if abstract is None else abstract
  graphdef, state = nnx.split(abstract)
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
