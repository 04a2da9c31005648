"""The sweep a config file declares, in big_vision's convention: a function
`get_hyper(hyper)` next to `get_config`, which returns the points of the sweep built with
this module's `sweep`, `fixed` and `product`:

    def get_hyper(hyper):
      return hyper.product([
          hyper.sweep("ablation", ["", "lavish", "no_spatial"]),
          hyper.sweep("seed", [43, 44, 45]),
      ])

A point is a dict {name: value}. A plain name is an argument of the config file (the
`:name=value,...` part of `--config`, e.g. `ablation`, `seed`, `shots`); a name
`config.<dotted path>` overrides a field of the built config, as
`--config.<dotted path>=value` on the command line does.
"""
import itertools


def sweep(name: str, values) -> list[dict]:
  """One point per value of `name`."""
  return [{name: value} for value in values]


def fixed(name: str, value) -> list[dict]:
  """One point that sets `name` to `value` (a constant of a product)."""
  return [{name: value}]


def product(axes: list[list[dict]]) -> list[dict]:
  """Every combination of one point of each axis, the last axis varying fastest."""
  points = []
  for combination in itertools.product(*axes):
    point = {}
    for part in combination:
      repeated = set(point) & set(part)
      if repeated:
        raise ValueError(f"hyper.product: {sorted(repeated)} set by two axes")
      point.update(part)
    points.append(point)
  return points
