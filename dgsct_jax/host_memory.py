"""The host allocator for CPU training: stop re-faulting XLA's temporaries every step.

XLA:CPU allocates an executable's temporary buffer afresh on every execution
(`posix_memalign`) and frees it after. glibc serves a block that large with a
new `mmap` and gives it back with `munmap`, so every step the kernel faults in
and zeroes new 4 KiB pages. The allocators:

  system      glibc defaults
  glibc_thp   GLIBC_TUNABLES=glibc.malloc.hugetlb=1: the mmaps use transparent
              huge pages (512× fewer faults)
  jemalloc    LD_PRELOAD=libjemalloc.so.2, never returning freed pages
              (`dirty_decay_ms:-1`): the next step reuses them

(In-process `mallopt` cannot do it: XLA executes on threads with their own glibc
arenas, and a single arena makes `_int_malloc` cost as much as it saves.) Both
switches act only at process start, so `reexec_with()` re-executes the command
line once with the environment set. `auto` picks glibc_thp, only on CPU-only
hosts (on TPU/GPU hosts the big buffers live on the device). jemalloc is the
fastest but opt-in (`apt-get install libjemalloc2`, rarely preinstalled): it
never returns pages, so the memory XLA used while compiling stays resident too.
Step times per allocator: benchmarks/README.md.
"""
import importlib.metadata
import importlib.util
import os
import pathlib
import platform
import sys

ALLOCATORS = ("auto", "system", "jemalloc", "glibc_thp")
# Set in the re-executed process: which allocator it runs with (and: do not re-exec again).
ACTIVE_ENV = "DGSCT_HOST_ALLOCATOR_ACTIVE"
JEMALLOC_CONF = "dirty_decay_ms:-1,muzzy_decay_ms:-1"
GLIBC_THP_TUNABLE = "glibc.malloc.hugetlb=1"
_JEMALLOC_NAMES = ("libjemalloc.so.2", "libjemalloc.so")
_LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib/x86_64-linux-gnu",
             "/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib")


def cpu_only_host() -> bool:
  """True when JAX can only run on the CPU here (decided without starting a backend)."""
  platforms = os.environ.get("JAX_PLATFORMS", "").strip()
  if platforms:
    return platforms == "cpu"
  if importlib.util.find_spec("libtpu") is not None:
    return False
  return not list(importlib.metadata.entry_points(group="jax_plugins"))


def find_jemalloc() -> str | None:
  """Path of an installed jemalloc shared library, or None."""
  for directory in _LIB_DIRS:
    for name in _JEMALLOC_NAMES:
      path = pathlib.Path(directory) / name
      if path.is_file():
        return str(path)
  return None


def resolve(name: str) -> str:
  """The allocator `name` stands for on this host ('auto' decided here)."""
  if name not in ALLOCATORS:
    raise ValueError(f"host allocator {name!r}: choose from {ALLOCATORS}")
  if name != "auto":
    return name
  if not cpu_only_host() or platform.system() != "Linux":
    return "system"
  return "glibc_thp" if platform.libc_ver()[0] == "glibc" else "system"


def allocator_env(name: str, environ=None) -> dict[str, str]:
  """The environment variables that select allocator `name` (merged with `environ`'s)."""
  environ = os.environ if environ is None else environ
  name = resolve(name)
  if name == "jemalloc":
    library = find_jemalloc()
    if library is None:
      raise FileNotFoundError(
          f"host allocator 'jemalloc': no {_JEMALLOC_NAMES[0]} in {', '.join(_LIB_DIRS)} "
          "(Debian/Ubuntu: apt-get install libjemalloc2)")
    preload = " ".join(p for p in (library, environ.get("LD_PRELOAD", "")) if p)
    return {"LD_PRELOAD": preload, "MALLOC_CONF": JEMALLOC_CONF}
  if name == "glibc_thp":
    tunables = ":".join(t for t in (environ.get("GLIBC_TUNABLES", ""), GLIBC_THP_TUNABLE) if t)
    return {"GLIBC_TUNABLES": tunables}
  return {}


def reexec_with(name: str) -> str:
  """Re-executes this process's command line under allocator `name`, once.

  Returns the allocator this process runs with; returns at once (no exec) when
  it was already re-executed or when `name` needs no environment change. Call it
  before any work: the process image is replaced (same PID, so signals and
  launchers are unaffected).
  """
  active = os.environ.get(ACTIVE_ENV)
  if active:
    return active
  resolved = resolve(name)
  env = allocator_env(resolved)
  if not env:
    return resolved
  os.environ.update(env)
  os.environ[ACTIVE_ENV] = resolved
  sys.stdout.flush()
  sys.stderr.flush()
  os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
  raise AssertionError("unreachable")
