"""Training checkpoints: a thin wrapper around orbax's v0 `CheckpointManager`.

    <workdir>/checkpoints/<step>/state   trainable, optimizer state, BN statistics,
                                          step, RNG key (orbax StandardSave, sharded)
    <workdir>/checkpoints/<step>/data    grain iterator position (one file per process)
    <workdir>/checkpoints/<step>/meta    JSON: resolved config, encoder digests, mesh, ...

The frozen encoder weights are not in here: they are re-read from their
converted-weights directories and checked against the `params_sha256` recorded
in `meta` (see `train.py`). Every process must call `save`/`restore` (orbax
synchronises them); never guard them with `process_index() == 0`.

A step directory that was never finalised (a run killed while writing it) is
refused: `latest_step` only returns finalised steps and `restore` checks again.
Saving a step that exists replaces it: a run resumed from an earlier checkpoint
replays its steps and saves them again (e.g. the best model of an epoch whose
regular checkpoint a crash prevented).
"""
import logging
import pathlib
import signal
import threading

import grain
import orbax.checkpoint as ocp

STATE, DATA, META = "state", "data", "meta"
# Exit status of a run that stopped on a signal after saving (EX_TEMPFAIL: run again).
PREEMPTED_EXIT = 75


class Checkpoints:
  """Save every `save_every` steps (or when forced), keep `max_to_keep`."""

  def __init__(self, directory, *, save_every: int, max_to_keep: int | None = 3,
               with_data: bool = True, async_save: bool = True, name: str = "train"):
    self.directory = pathlib.Path(directory).resolve() if "://" not in str(directory) else directory
    self.with_data = with_data
    items = (STATE, DATA, META) if with_data else (STATE, META)
    handlers = {STATE: ocp.StandardCheckpointHandler(), META: ocp.JsonCheckpointHandler()}
    if with_data:
      handlers[DATA] = grain.checkpoint.CheckpointHandler()
    self.manager = ocp.CheckpointManager(
        self.directory,
        item_names=items,
        item_handlers=handlers,
        options=ocp.CheckpointManagerOptions(
            save_interval_steps=save_every, max_to_keep=max_to_keep,
            enable_async_checkpointing=async_save, cleanup_tmp_directories=True,
            # Two managers (latest and best) may save the same step: keep their
            # multi-host barriers apart.
            multiprocessing_options=ocp.options.MultiprocessingOptions(
                barrier_sync_key_prefix=name)))

  def latest_step(self) -> int | None:
    """The newest *finalised* step, or None."""
    for step in sorted(self.manager.all_steps(), reverse=True):
      if self._finalized(step):
        return step
      logging.warning("checkpoint step %d in %s is not finalised; ignoring it", step,
                      self.directory)
    return None

  def _finalized(self, step: int) -> bool:
    path = pathlib.Path(self.directory) / str(step)
    return path.is_dir() and ocp.utils.is_checkpoint_finalized(path)

  def save(self, step: int, state, meta: dict, data_iter=None, *, force: bool = False) -> bool:
    if step in self.manager.all_steps():
      self.manager.wait_until_finished()
      self.manager.delete(step)
    args = {STATE: ocp.args.StandardSave(state), META: ocp.args.JsonSave(meta)}
    if self.with_data:
      args[DATA] = grain.checkpoint.CheckpointSave(data_iter)
    return self.manager.save(step, args=ocp.args.Composite(**args), force=force)

  def restore(self, step: int, abstract_state, data_iter=None):
    """(state, meta); `abstract_state` leaves are ShapeDtypeStructs with shardings."""
    if not self._finalized(step):
      raise ValueError(f"checkpoint {self.directory}/{step} is not finalised; refusing to restore")
    args = {STATE: ocp.args.StandardRestore(abstract_state), META: ocp.args.JsonRestore()}
    if self.with_data:
      args[DATA] = grain.checkpoint.CheckpointRestore(data_iter)
    restored = self.manager.restore(step, args=ocp.args.Composite(**args))
    return restored[STATE], restored[META]

  def restore_meta(self, step: int) -> dict:
    return self.manager.restore(step, args=ocp.args.Composite(**{META: ocp.args.JsonRestore()}))[META]

  def reached_preemption(self, step: int) -> bool:
    return self.manager.reached_preemption(step)

  def wait(self):
    self.manager.wait_until_finished()

  def close(self):
    self.manager.wait_until_finished()
    self.manager.close()


def finalized_steps(directory) -> list[int]:
  """The finalised steps under `directory`, read without creating anything."""
  directory = pathlib.Path(directory)
  if not directory.is_dir():
    return []
  return sorted(int(p.name) for p in directory.iterdir()
                if p.name.isdigit() and ocp.utils.is_checkpoint_finalized(p))


class StopRequest:
  """Turns SIGTERM (TPU maintenance/preemption, `kill`) and SIGINT (Ctrl-C) into a flag
  the loop polls.

  The loop then saves a checkpoint at the current step and exits with
  `PREEMPTED_EXIT`, so a scheduler can requeue it and `--workdir` resumes it.
  """

  def __init__(self, signals=(signal.SIGTERM, signal.SIGINT)):
    self._event = threading.Event()
    self._previous = {}
    if threading.current_thread() is threading.main_thread():
      for sig in signals:
        self._previous[sig] = signal.signal(sig, self._handle)

  def _handle(self, signum, frame):
    del frame
    logging.warning("received signal %d: checkpointing and stopping", signum)
    self._event.set()

  @property
  def requested(self) -> bool:
    return self._event.is_set()

  def restore_handlers(self):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
