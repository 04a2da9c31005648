"""The grain input pipeline shared by every task and by the synthetic dataset.

A *source* is any random-access object with `__len__` and `__getitem__(i)`
returning one element dict (see `dgsct_jax.data.sources.get_source`). A source
whose elements change from epoch to epoch (MUSIC-AVQA's negative frames, redrawn
each epoch as the reference does) also has `at_epoch(i, epoch)`, which the
pipeline calls instead, with the pass over the shard the element is read in
(0 in evaluation); its elements then stay a function of (index, epoch), so a
resumed run reads what an uninterrupted one would. For AVE
and the synthetic dataset an element is

  frames   float32 (T, 3, H, W)  ImageNet-normalised, NCHW like PyTorch
                                 (T = 10 segments, H = W = 192 for AVE);
  audio    float32 (T, S)        raw 1-s segments (S = 32000 for AVE); the model
                                 tiles them to 320 000 samples on device;
  label    float32 (T, C + 1)    one-hot per segment, last index = background;
  video_id str

and the pipeline adds `mask` (bool): False for padding elements, which only
exist with `pad_remainder=True` (evaluation). Batches stack every leaf on a
new leading axis of size `batch_size` (video_id becomes a numpy str array).

Order of operations: shard (per process, equal sizes) -> shuffle (seeded,
reshuffled every epoch) -> repeat -> user transforms -> read threads ->
batch -> worker processes. The iterator is a grain `DatasetIterator`: save
`it.get_state()` with the checkpoint and `it.set_state(state)` to resume at
the same batch.
"""
import atexit
from collections.abc import Callable, Sequence
import dataclasses
import weakref

import grain
import numpy as np


@dataclasses.dataclass(frozen=True)
class _Shard:
  """This process's equal-sized, strided share of `source`, padded if asked.

  Strided (index i of shard k is global k + i*count) so shards stay balanced
  across classes when the source is sorted. Every shard has the same length,
  or multi-host steps would fall out of step: train drops the remainder,
  evaluation pads with copies of real elements marked `mask=False`.
  """
  source: object
  index: int
  count: int
  length: int

  def __len__(self) -> int:
    return self.length

  def element(self, i: int, epoch: int) -> dict:
    """Element `i` of the shard as read in pass `epoch` over it."""
    global_index = self.index + int(i) * self.count
    index = global_index % len(self.source)
    at_epoch = getattr(self.source, "at_epoch", None)
    element = dict(self.source[index] if at_epoch is None else at_epoch(index, epoch))
    element["mask"] = np.bool_(global_index < len(self.source))
    return element


def shard_source(source, *, shard_index: int, shard_count: int,
                 pad_remainder: bool = False, batch_size: int = 1) -> _Shard:
  """Equal-length shard `shard_index` of `shard_count`; see `_Shard`."""
  if not 0 <= shard_index < shard_count:
    raise ValueError(f"shard_index {shard_index} not in [0, {shard_count})")
  n = len(source)
  if pad_remainder:
    per_shard = -(-n // shard_count)
    length = -(-per_shard // batch_size) * batch_size
  else:
    length = n // shard_count
  if length == 0:
    raise ValueError(f"source of {n} elements is too small for {shard_count} shards")
  return _Shard(source, shard_index, shard_count, length)


def _ensure_absl_flags_parsed():
  """grain's worker processes read absl flags; outside an absl app (pytest,
  notebooks) they were never parsed, so mark them parsed with their defaults."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


def make_dataset(source, *, batch_size: int, shuffle: bool = True, seed: int = 0,
                 num_epochs: int | None = None, shard_index: int | None = None,
                 shard_count: int | None = None, pad_remainder: bool = False,
                 worker_count: int = 0, worker_buffer_size: int = 2,
                 read_threads: int = 1, prefetch: int = 2,
                 transforms: Sequence[Callable[[dict], dict]] = ()) -> grain.IterDataset:
  """The pipeline as a grain `IterDataset` of process-local batches.

  Args:
    source: random-access source of element dicts (`sources.get_source`).
    batch_size: per-process batch size; every batch is full.
    shuffle, seed: seeded shuffle of the shard, different in every epoch.
    num_epochs: passes over the shard; None repeats forever (training).
      Epochs are concatenated before batching, so a batch may span two.
    shard_index, shard_count: default `jax.process_index()/process_count()`.
    pad_remainder: evaluation mode: keep every element once (use num_epochs=1,
      shuffle=False) and pad shards and the last batch with `mask=False`
      copies; otherwise the shard's remainder after equal sharding and the
      last partial batch are dropped.
    worker_count: grain worker processes (0: decode in this process).
    worker_buffer_size: batches buffered per worker.
    read_threads, prefetch: threads reading/decoding elements and their
      buffer in batches (per process, or per worker with worker_count > 0).
    transforms: callables element -> element, applied before batching.
  """
  if shard_index is None or shard_count is None:
    import jax  # pylint: disable=g-import-not-at-top
    shard_index, shard_count = jax.process_index(), jax.process_count()
  shard = shard_source(source, shard_index=shard_index, shard_count=shard_count,
                       pad_remainder=pad_remainder, batch_size=batch_size)
  # Positions in the shard, shuffled and repeated, then read: after `repeat`, the k-th
  # element is read in pass k // len(shard).
  ds = grain.MapDataset.range(len(shard))
  if shuffle:
    ds = ds.shuffle(seed=seed)
  if num_epochs != 1:
    ds = ds.repeat(num_epochs)  # None: forever; reshuffles each epoch.
  ds = ds.map_with_index(lambda k, i: shard.element(i, epoch=k // len(shard)))
  for fn in transforms:
    ds = ds.map(fn)
  read = grain.ReadOptions(num_threads=read_threads,
                           prefetch_buffer_size=max(prefetch, 0) * batch_size)
  ds = ds.to_iter_dataset(read)
  ds = ds.batch(batch_size, drop_remainder=True)
  if worker_count > 0:
    _ensure_absl_flags_parsed()
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(
        num_workers=worker_count, per_worker_buffer_size=worker_buffer_size))
    ds = ds.map(_own_memory)
  return ds


def _own_memory(batch: dict) -> dict:
  """The batch's arrays copied out of the workers' shared memory, which is then freed
  while the interpreter runs (not at exit, where grain's cleanup fails noisily)."""
  return {k: np.array(v) for k, v in batch.items()}


def make_pipeline(source, **kwargs) -> grain.DatasetIterator:
  """A checkpointable iterator of process-local batches: `iter(make_dataset(...))`.

  Takes `make_dataset`'s keyword arguments. `get_state()` / `set_state()` on
  the iterator checkpoint and restore its position. With worker processes the
  iterator is closed at interpreter exit (workers stopped, prefetched batches
  released) unless it was garbage-collected before.
  """
  iterator = iter(make_dataset(source, **kwargs))
  if kwargs.get("worker_count", 0) > 0:
    atexit.register(_close_at_exit, weakref.ref(iterator))
  return iterator


def _close_at_exit(ref):
  """Closes a live iterator while the interpreter still runs (its workers stop and
  release their shared memory), then turns off grain iterators' `__del__`, which would
  close them again at teardown, after grain's modules are gone, and fail noisily."""
  iterator = ref()
  if iterator is not None:
    iterator.close()
  grain.DatasetIterator.__del__ = lambda self: None
