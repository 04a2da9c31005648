"""The persistent XLA compilation cache: on by default, so that a resumed run, an eval
after training or the next point of a sweep reads its programs instead of compiling them.

Where it lives: `--compile_cache` (main's flag), else the env var DGSCT_COMPILE_CACHE,
else `$XDG_CACHE_HOME/dgsct_jax/xla` (`~/.cache/dgsct_jax/xla`). `off` (or an empty
value) disables it. Any path JAX's cache accepts works, `gs://` included (a shared cache
for every worker of a pod). Every program is cached, however quick its compile: the
model's initialisation alone compiles a few hundred small ones.

`Counts` listens to JAX's cache events, so a run can say how much it read and compiled.
"""
import dataclasses
import os
import pathlib

import jax

ENV = "DGSCT_COMPILE_CACHE"
OFF = ("", "off", "none")


def default_dir() -> str:
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "dgsct_jax", "xla")


def resolve(flag: str | None) -> str | None:
  """The cache directory that `flag` (None: not given) and the environment ask for, or
  None when disabled."""
  value = flag if flag is not None else os.environ.get(ENV, default_dir())
  if value.strip().lower() in OFF:
    return None
  return value if "://" in value else str(pathlib.Path(value).expanduser())


def enable(directory: str | None) -> str | None:
  """Points JAX's persistent cache at `directory` (None leaves it off). Call before the
  first compilation."""
  if directory is None:
    return None
  jax.config.update("jax_compilation_cache_dir", directory)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return directory


@dataclasses.dataclass
class Counts:
  """Programs read from the cache and compiled (and written to it) since `listen()`."""
  read: int = 0
  compiled: int = 0
  saved_s: float = 0.0

  def listen(self) -> "Counts":
    jax.monitoring.register_event_listener(self._event)
    jax.monitoring.register_event_duration_secs_listener(self._duration)
    return self

  def _event(self, event: str, **_):
    if event == "/jax/compilation_cache/cache_hits":
      self.read += 1
    elif event == "/jax/compilation_cache/cache_misses":
      self.compiled += 1

  def _duration(self, event: str, seconds: float, **_):
    if event == "/jax/compilation_cache/compile_time_saved_sec":
      self.saved_s += seconds

  def summary(self, directory: str) -> str:
    return (f"compilation cache {directory}: {self.read} programs read "
            f"({self.saved_s:.0f} s of compiling saved), {self.compiled} compiled")
