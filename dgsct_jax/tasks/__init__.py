"""The task registry: `config.task` (or `--task` of the scoring CLI) → a `Task`.

A task is named by a short name of `REGISTRY` or by a dotted path to a
`Task` subclass ('package.module:Class' or 'package.module.Class'), so tests
and projects can bring their own without touching this package. Each
registered task lives in its own folder here (`tasks/<name>/task.py`).
"""
import importlib

from dgsct_jax.tasks.base import Task

REGISTRY = {
    "ave": "dgsct_jax.tasks.ave.task:AVE",
    "avvp": "dgsct_jax.tasks.avvp.task:AVVP",
    "avs": "dgsct_jax.tasks.avs.task:AVS",
    "avqa": "dgsct_jax.tasks.avqa.task:AVQA",
}


def get(name: str) -> type[Task]:
  """The Task class of a registered name or a dotted path."""
  path = REGISTRY.get(name, name)
  module_name, sep, attr = path.partition(":")
  if not sep:
    module_name, _, attr = path.rpartition(".")
  if not module_name or not attr:
    raise ValueError(f"unknown task {name!r}: not one of {sorted(REGISTRY)} and not a dotted "
                     "path 'package.module:Class'")
  try:
    cls = getattr(importlib.import_module(module_name), attr)
  except (ImportError, AttributeError) as e:
    raise ValueError(f"task {name!r}: cannot load {path!r} ({e}); registered tasks: "
                     f"{sorted(REGISTRY)}") from e
  if not (isinstance(cls, type) and issubclass(cls, Task)):
    raise ValueError(f"task {name!r}: {path} is not a subclass of dgsct_jax.tasks.Task")
  return cls


def for_config(config) -> Task:
  """The task of a run config (`config.task`), which must have a model to train."""
  task = get(config.task)(config)
  if not task.trainable:
    raise ValueError(f"task {config.task!r} has no model yet: its predictions can be scored "
                     f"(python -m dgsct_jax.score --task={config.task}), it cannot be trained")
  return task


def trainable_names() -> list[str]:
  """The registered tasks that have a model (the ones the trainer runs)."""
  return [name for name in REGISTRY if get(name)().trainable]
