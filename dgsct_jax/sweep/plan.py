"""A sweep's plan: the points a config file's `get_hyper` declares (dgsct_jax/sweep/hyper.py),
each checked against the config before anything runs, named by its overrides, and turned
into the `python -m dgsct_jax.main` arguments of its run.

The plan is written to `<root>/sweep.json`, which `collect` reads: the points, in order,
and the task's selection metric.
"""
import dataclasses
import importlib.util
import json
import pathlib
import sys

from etils import epath

from dgsct_jax import config_utils
from dgsct_jax import tasks
from dgsct_jax.sweep import hyper

CONFIG_PREFIX = "config."
SEED_NAMES = ("seed", "config.seed")  # the axis that `collect` averages over
PLAN_FILE = "sweep.json"
POINT_FILE = "sweep_point.json"  # in each point's workdir: its overrides


@dataclasses.dataclass(frozen=True)
class Point:
  """One run of the sweep: {name: value} over the base config (hyper.py says what a name is)."""
  overrides: dict

  @property
  def name(self) -> str:
    """The point's workdir name: its overrides, e.g. 'ablation=lavish,seed=44'."""
    return ",".join(f"{short_name(k)}={_text(v)}" for k, v in self.overrides.items()).replace(
        "/", "_")

  def label(self, leave_out=()) -> str:
    """The point's row in the results: its overrides but the seed and `leave_out`."""
    return ",".join(f"{short_name(k)}={_text(v)}" for k, v in self.overrides.items()
                    if k not in SEED_NAMES and k not in leave_out)

  def config_args(self) -> dict[str, str]:
    return {k: _arg_text(v) for k, v in self.overrides.items() if not k.startswith(CONFIG_PREFIX)}

  def field_overrides(self) -> dict[str, object]:
    return {k[len(CONFIG_PREFIX):]: v for k, v in self.overrides.items()
            if k.startswith(CONFIG_PREFIX)}


@dataclasses.dataclass(frozen=True)
class Plan:
  config_file: str
  base_arg: str  # the `:arg` of --config, without the points' arguments
  task: str
  selection_metric: str
  selection_mode: str
  points: tuple[Point, ...]
  has_pretrain: bool = False  # the config pretrains its own encoders (configs/demo.py)

  def config_spec(self, point: Point) -> str:
    """`--config`'s value for `point`: the file with the base arguments, the point's on top."""
    args = dict(config_utils.arg_tokens(self.base_arg), **point.config_args())
    arg = ",".join(name if text is None else f"{name}={text}" for name, text in args.items())
    return f"{self.config_file}:{arg}" if arg else self.config_file

  def main_args(self, point: Point, workdir: str, extra_flags=()) -> list[str]:
    """The arguments after `python` that run `point` in `workdir` (training, then predict,
    which writes the result.json that marks the point done)."""
    return ["-m", "dgsct_jax.main", f"--config={self.config_spec(point)}",
            f"--workdir={workdir}", "--config.eval.predict_after_train=True",
            *[f"--config.{path}={value}" for path, value in point.field_overrides().items()],
            *extra_flags]

  def fixed_names(self) -> dict:
    """{name: value} of the names that have one value in every point."""
    values = {}
    for point in self.points:
      for k, v in point.overrides.items():
        values.setdefault(k, []).append(v)
    return {k: v[0] for k, v in values.items()
            if len(v) == len(self.points) and all(x == v[0] for x in v)}

  def to_json(self) -> str:
    return json.dumps(dict(dataclasses.asdict(self),
                           points=[p.overrides for p in self.points]), indent=1)


def load(config_spec: str) -> Plan:
  """The plan of `--config=<file.py>[:<arg>]`, every point checked by building its config."""
  config_file, _, base_arg = config_spec.partition(":")
  module = _import(config_file)
  if not hasattr(module, "get_hyper"):
    raise ValueError(f"{config_file} declares no sweep: it needs a get_hyper(hyper) "
                     "(dgsct_jax/sweep/hyper.py)")
  points = tuple(Point(dict(o)) for o in module.get_hyper(hyper))
  if not points:
    raise ValueError(f"{config_file}: get_hyper returned no points")
  names = [p.name for p in points]
  repeated = sorted({n for n in names if names.count(n) > 1})
  if repeated:
    raise ValueError(f"{config_file}: get_hyper repeats the points {repeated}")
  plan = Plan(config_file, base_arg, "", "", "max", points)
  configs = [_checked_config(module, plan, p) for p in points]
  task = tasks.get(configs[0].task)
  return dataclasses.replace(plan, task=configs[0].task, selection_metric=task.selection_metric,
                             selection_mode=task.selection_mode,
                             has_pretrain="pretrain" in configs[0])


def read(root) -> Plan:
  """The plan a sweep wrote into `root`."""
  path = epath.Path(root) / PLAN_FILE
  if not path.exists():
    raise FileNotFoundError(f"{path}: no sweep here (python -m dgsct_jax.sweep --config=... "
                            f"--root={root} writes it)")
  data = json.loads(path.read_text())
  return Plan(**dict(data, points=tuple(Point(o) for o in data["points"])))


def _checked_config(module, plan: Plan, point: Point):
  """The config of `point` with its field overrides set: a bad argument, an unknown field
  or a value of the wrong type is an error that names the point."""
  where = f"{plan.config_file}: point {point.name}"
  try:
    config = module.get_config(plan.config_spec(point).partition(":")[2] or None)
  except (ValueError, TypeError, KeyError) as e:
    raise ValueError(f"{where}: {e}") from e
  for path, value in point.field_overrides().items():
    try:
      config_utils.set_field(config, path, value)
    except KeyError:
      raise ValueError(f"{where}: the config has no field {path}") from None
    except (TypeError, ValueError) as e:
      raise ValueError(f"{where}: {path}={value!r}: {e}") from e
  return config


def _import(config_file: str):
  path = pathlib.Path(config_file)
  if not path.is_file():
    raise FileNotFoundError(f"{config_file}: no such config file")
  spec = importlib.util.spec_from_file_location(f"_sweep_config_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module
  spec.loader.exec_module(module)
  return module


def short_name(name: str) -> str:
  return name[len(CONFIG_PREFIX):] if name.startswith(CONFIG_PREFIX) else name


def _text(value) -> str:
  """A value in a point's name ('none' for the empty string: the full model of `ablation`)."""
  return "none" if value == "" else _arg_text(value)


def _arg_text(value) -> str:
  return str(value).lower() if isinstance(value, bool) else str(value)
