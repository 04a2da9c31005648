"""The run state: the model split into trees, their shardings, frozen encoders, checkpoints.

The model is split once into a static graphdef and three pytrees
(`nnx_utils`): `trainable` (differentiated, optimised, checkpointed), `frozen`
(encoder weights: an input of the step, never differentiated, never donated,
never checkpointed; re-read from converted-weights directories and checked by
sha256) and `stats` (BatchNorm statistics, checkpointed). The model comes from
the task (`Task.build_model`); nothing here knows which task it is.
"""
import dataclasses
import functools
import pathlib
import subprocess
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from dgsct_jax import checkpointing
from dgsct_jax import nnx_utils
from dgsct_jax import sharding as sharding_lib
from dgsct_jax import tasks as tasks_lib

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class ResumeRefused(ValueError):
  """The workdir's checkpoint does not fit the config of the run that resumes it."""


def cast_floats(tree, dtype):
  return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x,
                      tree)


@dataclasses.dataclass
class Layout:
  """Static pieces of a run: graphdef, abstract trees and their shardings."""
  graphdef: Any
  mesh: Any
  rules: dict
  abstract: nnx_utils.Parts
  trainable_sh: Any
  frozen_sh: Any
  stats_sh: Any
  batch_sh: Any
  repl: Any


def _builder(config, task):
  return lambda: task.build_model(nnx.Rngs(config.seed))


def make_layout(config, task, mesh) -> Layout:
  abstract, (axes_t, axes_f, axes_s) = nnx_utils.abstract(_builder(config, task))
  rules = sharding_lib.validate_rules(config.sharding_rules, mesh)
  shard = functools.partial(sharding_lib.tree_shardings, table=rules, mesh=mesh)
  frozen_sh = shard(abstract.frozen, axes_f)
  if config.fsdp_frozen:
    frozen_sh = sharding_lib.fsdp_shardings(abstract.frozen, frozen_sh, mesh,
                                            min_size_mb=config.fsdp_min_size_mb)
  return Layout(abstract.graphdef, mesh, rules, abstract, shard(abstract.trainable, axes_t),
                frozen_sh, shard(abstract.stats, axes_s),
                sharding_lib.batch_sharding(rules, mesh), sharding_lib.replicated(mesh))


def init_parts(config, task, layout: Layout) -> nnx_utils.Parts:
  """Freshly initialised model parts (seeded by config.seed), placed on their shardings.

  Built eagerly: on CPU a jitted init of the whole model compiles for longer than
  the eager construction takes, and the frozen part is overwritten by the
  converted encoders anyway.
  """
  parts = nnx_utils.split(_builder(config, task)())
  return nnx_utils.Parts(layout.graphdef, *jax.device_put(
      (parts.trainable, parts.frozen, parts.stats),
      (layout.trainable_sh, layout.frozen_sh, layout.stats_sh)))


def load_encoders(config, parts: nnx_utils.Parts) -> tuple[nnx_utils.Parts, dict]:
  """Frozen encoder weights from their converted-weights directories.

  `config.init_from.<name>` = (dir relative to `config.weights_dir`, model prefix,
  expected sha256 or ''). Returns the filled parts and {name: params_sha256}.
  """
  from weight_conversion import store  # pylint: disable=import-outside-toplevel
  digests = {}
  for name, spec in sorted(config.init_from.items()):
    if not config.weights_dir:
      raise ValueError(f"config.init_from.{name} needs --weights_dir (or DGSCT_WEIGHTS_DIR)")
    directory = pathlib.Path(config.weights_dir).expanduser() / spec.dir
    values, manifest = store.load(directory, verify=True)
    digest = manifest["params_sha256"]
    if spec.sha256 and spec.sha256 != digest:
      raise ValueError(f"{directory}: params_sha256 {digest} != config.init_from.{name}.sha256 "
                       f"{spec.sha256}")
    parts = nnx_utils.assign_pretrained(parts, values, spec.prefix, str(directory))
    digests[name] = digest
  return parts, digests


def place_frozen(config, frozen, layout: Layout):
  """Frozen weights on their shardings, stored in the compute dtype (bf16 halves them)."""
  if config.compute_dtype != "float32":
    frozen = cast_floats(frozen, DTYPES[config.compute_dtype])
  return jax.device_put(frozen, layout.frozen_sh)


def init_state(config, parts: nnx_utils.Parts, tx, state_sh=None):
  """The train state: trainable, optimizer state, BN statistics, step, base RNG key."""
  def init(trainable, stats):
    return {"trainable": trainable, "opt_state": tx.init(trainable), "stats": stats,
            "step": jnp.zeros((), jnp.int32),
            "rng": jax.random.key_data(jax.random.PRNGKey(config.seed))}
  if state_sh is None:
    return init(parts.trainable, parts.stats)
  return jax.jit(init, out_shardings=state_sh)(parts.trainable, parts.stats)


def opt_shardings(tx, opt_abstract, layout):
  """Optimizer-state leaves that mirror a trainable leaf take its sharding; others replicate."""
  return optax.tree_map_params(tx, lambda _, sh: sh, opt_abstract, layout.trainable_sh,
                               transform_non_params=lambda _: layout.repl)


def state_shardings(layout: Layout, opt_sh):
  return {"trainable": layout.trainable_sh, "opt_state": opt_sh, "stats": layout.stats_sh,
          "step": layout.repl, "rng": layout.repl}


def abstract_like(tree, shardings):
  """ShapeDtypeStructs of `tree`'s leaves with the given shardings (restore targets)."""
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=s),
                      tree, shardings)


@dataclasses.dataclass
class Run:
  """What train, eval and predict share: the task, the layout, the frozen weights."""
  config: Any
  task: Any
  workdir: pathlib.Path
  layout: Layout
  frozen: Any
  digests: dict
  init: nnx_utils.Parts


def setup(config, workdir) -> Run:
  task = tasks_lib.for_config(config)
  mesh = sharding_lib.make_mesh(config.mesh)
  layout = make_layout(config, task, mesh)
  parts = init_parts(config, task, layout)
  parts, digests = load_encoders(config, parts)
  return Run(config, task, pathlib.Path(workdir), layout,
             place_frozen(config, parts.frozen, layout), digests, parts)


def git_revision() -> str:
  try:
    return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          cwd=pathlib.Path(__file__).parent, timeout=5,
                          check=True).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return "unknown"


def check_encoder_digests(meta: dict, digests: dict, where):
  saved = meta.get("encoder_sha256", {})
  if saved != digests:
    raise ResumeRefused(f"{where} was trained on frozen encoders {saved}, but the converted "
                     f"weights now read are {digests}; refusing to mix them")


def best_dir(workdir) -> pathlib.Path:
  return pathlib.Path(workdir) / "best"


def load_best(run: Run):
  """(trainable, stats, meta) of the best checkpoint of `run.workdir` (model selection)."""
  directory = best_dir(run.workdir)
  ckpt = checkpointing.Checkpoints(directory, save_every=1, with_data=False, async_save=False,
                                   name="best")
  step = ckpt.latest_step()
  if step is None:
    raise FileNotFoundError(f"no finalised checkpoint in {directory}; train first")
  abstract = {"trainable": abstract_like(run.init.trainable, run.layout.trainable_sh),
              "stats": abstract_like(run.init.stats, run.layout.stats_sh)}
  state, meta = ckpt.restore(step, abstract)
  ckpt.close()
  check_encoder_digests(meta, run.digests, directory / str(step))
  return state["trainable"], state["stats"], meta


# What a resumed run may change. STRUCTURE: the checkpoint would not fit (or would
# mean something else): always refused. FREE: where and how a run logs, saves,
# reads and shards; never changes results. Everything else is a hyperparameter:
# refused unless the user allows config changes, then logged.
STRUCTURE = ("task", "model", "data.name", "data.synthetic", "data.image_size")
FREE = ("log", "ckpt", "weights_dir", "init_from", "pretrain", "data.data_dir",
        "data.allow_partial", "data.worker_count", "data.read_threads",
        "eval.predict_after_train", "figure", "mesh", "sharding_rules", "fsdp_frozen",
        "fsdp_min_size_mb")


def _under(path: str, prefixes) -> bool:
  return any(path == p or path.startswith(p + ".") for p in prefixes)


def config_changes(saved: dict, current: dict) -> tuple[dict, dict]:
  """({field: (saved, current)} of structural changes, the same of hyperparameters)
  between two JSON-like configs (dotted field names)."""
  old, new = nnx_utils.flatten(saved), nnx_utils.flatten(current)
  diff = {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new))
          if old.get(k) != new.get(k) and not _under(k, FREE)}
  structure = {k: v for k, v in diff.items() if _under(k, STRUCTURE)}
  return structure, {k: v for k, v in diff.items() if k not in structure}


def check_resumed_config(saved: dict, current: dict, where, *, allow_changes: bool) -> dict:
  """Refuses a resume whose config differs from the checkpoint's; returns the allowed
  hyperparameter changes {field: (saved, current)} (empty without `allow_changes`)."""
  structure, hyper = config_changes(saved, current)
  show = lambda d: "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in
                             ((k, *v) for k, v in list(d.items())[:12]))
  if structure:
    raise ResumeRefused(f"{where} was trained with another model or data: {show(structure)}. "
                     "Start a new --workdir.")
  if hyper and not allow_changes:
    raise ResumeRefused(f"{where} was trained with other settings: {show(hyper)}. Pass "
                     "--allow_config_change to continue with the new ones, or use the saved "
                     "values.")
  return hyper
