"""Where training progress goes: a tqdm bar, TensorBoard scalars and a JSON-lines log.

Only process 0 writes (every process computes the same global metrics).

    <workdir>/metrics.jsonl       one {"step": ..., "split": ..., name: value} per line
    <workdir>/tensorboard/        tensorboardX event files (`tensorboard --logdir <workdir>`)

A run that starts at `initial_step` (a resume, or 0) first drops the rows of
later steps: a run that stopped after logging them but before checkpointing
replays those steps and logs them again, so each step has its rows once.
"""
import json
import math
import os
import pathlib
import sys
import time

import jax
import tqdm


def _scalar(value) -> float:
  return float(value)


def _row_step(line: str) -> int | None:
  try:
    return int(json.loads(line)["step"])
  except (ValueError, KeyError, TypeError):
    return None  # a line cut short by a crash


def _drop_rows_after(path: pathlib.Path, step: int):
  """Rewrites `path` without the rows of steps after `step` (and without a line cut
  short by a crash), atomically."""
  if not path.exists():
    return
  lines = path.read_text(encoding="utf-8").splitlines()
  keep = [l for l in lines if (s := _row_step(l)) is not None and s <= step]
  if len(keep) == len(lines):
    return
  tmp = path.with_suffix(".tmp")
  tmp.write_text("".join(l + "\n" for l in keep), encoding="utf-8")
  os.replace(tmp, path)


class MetricsWriter:

  def __init__(self, workdir, *, total_steps: int, initial_step: int = 0,
               tensorboard: bool = True, progress: bool = True):
    self.enabled = jax.process_index() == 0
    self.workdir = pathlib.Path(workdir)
    self._tb = None
    self._bar = None
    self._jsonl = None
    if not self.enabled:
      return
    self.workdir.mkdir(parents=True, exist_ok=True)
    path = self.workdir / "metrics.jsonl"
    _drop_rows_after(path, initial_step)
    self._jsonl = open(path, "a", encoding="utf-8")
    if tensorboard:
      import tensorboardX  # pylint: disable=import-outside-toplevel
      self._tb = tensorboardX.SummaryWriter(str(self.workdir / "tensorboard"))
    if progress:
      self._bar = tqdm.tqdm(total=total_steps, initial=initial_step, unit="step",
                            dynamic_ncols=True, file=sys.stderr, mininterval=1.0,
                            smoothing=0.1)

  def write(self, step: int, split: str, metrics: dict):
    """Logs scalar metrics of `split` ('train', 'eval', ...) at `step`."""
    if not self.enabled:
      return
    values = {k: _scalar(v) for k, v in metrics.items()}
    record = {"step": int(step), "split": split, "time": round(time.time(), 3)}
    record.update({k: (v if math.isfinite(v) else str(v)) for k, v in values.items()})
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()
    if self._tb is not None:
      for name, value in values.items():
        self._tb.add_scalar(f"{split}/{name}", value, step)
      self._tb.flush()

  def progress(self, step: int, **postfix):
    """Moves the bar to `step` and shows live values (loss, epoch)."""
    if self._bar is not None:
      self._bar.update(step - self._bar.n)
      if postfix:
        self._bar.set_postfix({k: (f"{v:.4g}" if isinstance(v, float) else v)
                               for k, v in postfix.items()}, refresh=False)

  def message(self, text: str):
    if not self.enabled:
      return
    if self._bar is not None:
      self._bar.write(text, file=sys.stderr)
    else:
      print(text, file=sys.stderr, flush=True)

  def close(self):
    if self._bar is not None:
      self._bar.close()
    if self._tb is not None:
      self._tb.close()
    if self._jsonl is not None:
      self._jsonl.close()
