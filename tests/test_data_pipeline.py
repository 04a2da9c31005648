"""The shared grain pipeline: format, seeded shuffling, sharding, padding, state."""
import os
import pathlib

import numpy as np
import pytest

from dgsct_jax.data import pipeline
from dgsct_jax.data import sources
from dgsct_jax.data import synthetic

SMALL = synthetic.SyntheticConfig(image_size=(16, 16), samples_per_segment=800)


class IndexSource:
  """Elements that carry their index, so orders can be compared exactly."""

  def __init__(self, n):
    self.n = n

  def __len__(self):
    return self.n

  def __getitem__(self, i):
    return {"index": np.int64(i), "x": np.full((2,), i, np.float32)}


class EpochSource(IndexSource):
  """Elements that also carry the pass they were read in (`at_epoch`)."""

  def at_epoch(self, i, epoch):
    return {**self[i], "epoch": np.int64(epoch)}


def indices(it, steps):
  return [next(it)["index"].tolist() for _ in range(steps)]


def test_element_format_from_synthetic():
  src = sources.get_source("synthetic", "train", size=12, config=SMALL)
  it = pipeline.make_pipeline(src, batch_size=4, seed=0, shard_index=0, shard_count=1)
  batch = next(it)
  assert batch["frames"].shape == (4, 10, 3, 16, 16) and batch["frames"].dtype == np.float32
  assert batch["audio"].shape == (4, 10, 800) and batch["audio"].dtype == np.float32
  assert batch["label"].shape == (4, 10, 7) and batch["label"].dtype == np.float32
  assert batch["mask"].dtype == np.bool_ and batch["mask"].all()
  assert batch["video_id"].shape == (4,) and str(batch["video_id"][0]).startswith("synthetic_train_")
  # The batch holds the source's elements unchanged.
  k = int(str(batch["video_id"][1]).rsplit("_", 1)[1])
  np.testing.assert_array_equal(batch["audio"][1], src[k]["audio"])


def test_seeded_shuffle_epochs_are_permutations_and_differ():
  n, bs = 24, 4
  run = lambda seed: indices(pipeline.make_pipeline(
      IndexSource(n), batch_size=bs, seed=seed, shard_index=0, shard_count=1), 3 * n // bs)
  a, b, c = run(0), run(0), run(1)
  assert a == b and a != c
  epochs = [sum(a[e * n // bs:(e + 1) * n // bs], []) for e in range(3)]
  for epoch in epochs:
    assert sorted(epoch) == list(range(n))
  assert epochs[0] != epochs[1] != epochs[2]  # Reshuffled every epoch.
  assert epochs[0] != list(range(n))


def test_unshuffled_finite_epochs():
  it = pipeline.make_pipeline(IndexSource(10), batch_size=3, shuffle=False, num_epochs=2,
                              shard_index=0, shard_count=1)
  # Epochs are concatenated before batching (batches may span two epochs).
  assert [b["index"].tolist() for b in it] == [[0, 1, 2], [3, 4, 5], [6, 7, 8],
                                               [9, 0, 1], [2, 3, 4], [5, 6, 7]]


def test_training_shards_are_equal_disjoint_and_strided():
  n, count = 23, 4
  shards = []
  for k in range(count):
    it = pipeline.make_pipeline(IndexSource(n), batch_size=1, shuffle=False, num_epochs=1,
                                shard_index=k, shard_count=count)
    shards.append(sum((b["index"].tolist() for b in it), []))
  assert [len(s) for s in shards] == [5] * count  # 23 // 4: equal steps on every host.
  assert shards[1] == [1, 5, 9, 13, 17]
  assert len(set(sum(shards, []))) == 20


def test_eval_padding_keeps_every_element_once():
  n, count, bs = 23, 4, 4
  seen, steps = [], set()
  for k in range(count):
    it = pipeline.make_pipeline(IndexSource(n), batch_size=bs, shuffle=False, num_epochs=1,
                                shard_index=k, shard_count=count, pad_remainder=True)
    batches = list(it)
    steps.add(len(batches))
    for b in batches:
      seen += b["index"][b["mask"]].tolist()
      assert not set(b["index"][~b["mask"]].tolist()) - set(range(n))
  assert steps == {2}  # ceil(ceil(23/4)/4): the same on every host.
  assert sorted(seen) == list(range(n))


def test_checkpoint_state_resumes_exactly():
  make = lambda: pipeline.make_pipeline(IndexSource(30), batch_size=4, seed=3,
                                        shard_index=1, shard_count=2)
  it = make()
  indices(it, 5)  # Into the second epoch (15 per shard).
  state = it.get_state()
  expected = indices(it, 6)
  fresh = make()
  fresh.set_state(state)
  assert indices(fresh, 6) == expected
  it.set_state(state)
  assert indices(it, 6) == expected


def test_an_epoch_aware_source_reads_each_pass_with_its_epoch():
  """A source with `at_epoch` gets the pass over its shard (training repeats, shuffled,
  sharded, resumed mid-epoch) and 0 in evaluation; the order is a plain source's."""
  n, bs = 12, 4  # 6 per shard: batches span two passes
  make = lambda source: pipeline.make_pipeline(source, batch_size=bs, seed=5, shard_index=1,
                                               shard_count=2)
  batches = [next(it) for it in [make(EpochSource(n))] for _ in range(6)]
  got = np.concatenate([b["index"] for b in batches]), np.concatenate([b["epoch"] for b in batches])
  np.testing.assert_array_equal(got[0], sum(indices(make(IndexSource(n)), 6), []))
  np.testing.assert_array_equal(got[1], np.repeat([0, 1, 2, 3], 6))
  for epoch in range(4):
    assert sorted(got[0][got[1] == epoch]) == list(range(1, n, 2))
  it = make(EpochSource(n))
  next(it)
  fresh = make(EpochSource(n))
  fresh.set_state(it.get_state())
  np.testing.assert_array_equal(np.concatenate([next(fresh)["epoch"] for _ in range(5)]),
                                got[1][bs:])
  evaluation = pipeline.make_pipeline(EpochSource(n), batch_size=5, shuffle=False, num_epochs=1,
                                      pad_remainder=True, shard_index=0, shard_count=1)
  assert all((b["epoch"] == 0).all() for b in evaluation)


def test_transforms_apply_before_batching():
  double = lambda e: {**e, "x": e["x"] * 2}
  it = pipeline.make_pipeline(IndexSource(8), batch_size=2, shuffle=False, shard_index=0,
                              shard_count=1, transforms=[double])
  b = next(it)
  np.testing.assert_array_equal(b["x"], [[0, 0], [2, 2]])


def test_worker_processes_cover_the_shard_and_checkpoint():
  src = sources.get_source("synthetic", "val", size=16, config=SMALL)
  it = pipeline.make_pipeline(src, batch_size=2, seed=0, shard_index=0, shard_count=1,
                              worker_count=2, num_epochs=None)
  try:
    first = [next(it) for _ in range(8)]  # One epoch.
    ids = sorted(str(v) for b in first for v in b["video_id"])
    assert ids == [f"synthetic_val_{i:07d}" for i in range(16)]
    k = int(str(first[0]["video_id"][0]).rsplit("_", 1)[1])
    np.testing.assert_array_equal(first[0]["frames"][0], src[k]["frames"])
    state = it.get_state()
    expected = [next(it)["video_id"].tolist() for _ in range(3)]
    it.set_state(state)
    assert [next(it)["video_id"].tolist() for _ in range(3)] == expected
  finally:
    it.close()


def test_shard_errors():
  with pytest.raises(ValueError, match="shard_index"):
    pipeline.shard_source(IndexSource(4), shard_index=2, shard_count=2)
  with pytest.raises(ValueError, match="too small"):
    pipeline.shard_source(IndexSource(3), shard_index=0, shard_count=4)


def test_worker_pipeline_exits_quietly():
  """The README's snippet with worker processes: plain numpy batches (not views of the
  workers' shared memory), and nothing printed at interpreter exit."""
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  code = ("from dgsct_jax.data import sources, pipeline\n"
          "it = pipeline.make_pipeline(sources.get_source('synthetic', 'train', size=32),\n"
          "                            batch_size=8, seed=0, worker_count=2)\n"
          "batch = next(it); state = it.get_state()\n"
          "print(type(batch['frames']).__name__, batch['frames'].shape)\n")
  repo = pathlib.Path(__file__).resolve().parents[1]
  run = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, PYTHONPATH=str(repo)))
  assert run.returncode == 0, run.stderr[-3000:]
  assert run.stdout.strip() == "ndarray (8, 10, 3, 64, 64)"
  assert run.stderr == "", run.stderr[-3000:]
