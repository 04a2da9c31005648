"""The trainer's input side: config → sources, batch iterators, global device batches.

Which fields of a batch go to the device, and their per-example shapes and
dtypes, are the task's (`Task.batch_spec`); every batch is checked against
them, so a dataset that does not fit the task fails naming the field.
"""
import jax
import numpy as np

from dgsct_jax import tasks
from dgsct_jax.data import pipeline
from dgsct_jax.data import sources
from dgsct_jax.data.datasets import build_record
from dgsct_jax.tasks import base

MASK = "mask"  # added by the pipeline: False on the padding of evaluation batches


SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}


def get_source(config, split: str):
  """The random-access source of `config.data` for split 'train', 'val' or 'test'.

  `data.name='random'` serves `data.sizes[split]` random examples of the task's
  batch spec (`tasks.base.RandomSource`), for any task, without a dataset.
  The synthetic sources take their config from `data.synthetic` (the keys their
  config has: `sources.synthetic_config`) and their size from `data.sizes[split]`.
  A dataset's own source options (MUSIC-AVQA's negative-frame rule) come from
  `data.source_options` when the config has that section.
  """
  data = config.data
  if data.name == "random":
    if not data.sizes.get(split):
      raise ValueError(f"data.name='random' needs data.sizes.{split} > 0")
    spec = tasks.for_config(config).batch_spec()
    return base.RandomSource(spec, data.sizes[split], seed=SPLIT_SEEDS[split])
  kwargs = {"image_size": tuple(data.image_size) or None}
  if data.name.startswith("synthetic"):
    kwargs["config"] = sources.synthetic_config(data.name, data.synthetic.to_dict())
    kwargs["size"] = data.sizes.get(split) or None
  else:
    kwargs["allow_partial"] = data.allow_partial
    kwargs.update(data.get("source_options", {}))
  try:
    return sources.get_source(data.name, data.splits[split], data.data_dir or None, **kwargs)
  except build_record.PartialBuildError as e:
    raise build_record.PartialBuildError(
        f"{e}; or train on it anyway with --config.data.allow_partial=True") from e


def local_batch_size(global_batch: int) -> int:
  if global_batch % jax.process_count():
    raise ValueError(f"batch size {global_batch} not divisible by {jax.process_count()} processes")
  return global_batch // jax.process_count()


def train_iterator(config, source):
  """Shuffled, repeated forever, full batches (checkpointable grain iterator)."""
  return pipeline.make_pipeline(
      source, batch_size=local_batch_size(config.batch_size), shuffle=config.data.shuffle,
      seed=config.seed, num_epochs=None, worker_count=config.data.worker_count,
      read_threads=config.data.read_threads)


def eval_iterator(config, source):
  """One pass in order; the last batch is padded (`mask` False on the padding)."""
  return pipeline.make_pipeline(
      source, batch_size=local_batch_size(config.eval.batch_size), shuffle=False,
      num_epochs=1, pad_remainder=True, worker_count=0, read_threads=config.data.read_threads)


def check_field(name: str, value: np.ndarray, field) -> np.ndarray:
  """`value` (a local batch of field `name`) cast to the field's dtype; a missing
  or mis-shaped field raises naming it."""
  if tuple(value.shape[1:]) != tuple(field.shape):
    raise ValueError(f"batch field {name!r} has per-example shape {tuple(value.shape[1:])}, "
                     f"the task expects {tuple(field.shape)} (data and model config disagree?)")
  kind = np.dtype(field.dtype).kind
  if (kind == "f") != (value.dtype.kind == "f") or value.dtype.kind in "OUS":
    raise ValueError(f"batch field {name!r} has dtype {value.dtype}, the task expects "
                     f"{field.dtype}")
  return value.astype(field.dtype, copy=False)


def to_global(batch: dict, spec: dict, names, sharding) -> dict:
  """The fields `names` of a process-local numpy batch → global jax.Arrays sharded over
  the batch axis. `spec` is the task's batch spec; `mask` becomes float32."""
  out = {}
  for name in names:
    if name not in batch:
      raise KeyError(f"the batch has no field {name!r} (fields: {sorted(batch)}); the task "
                     f"needs {sorted(spec)}")
    value = np.asarray(batch[name])
    value = value.astype(np.float32) if name == MASK else check_field(name, value, spec[name])
    out[name] = jax.make_array_from_process_local_data(sharding, value)
  return out
