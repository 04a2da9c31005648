"""Test set-up shared by every test module.

* 8 virtual CPU devices, set before jax is imported anywhere, so sharding tests
  see a real mesh.
* `shared_dir`: the read-only reference material in ../shared (golden outputs,
  real annotation files); tests that need it skip with a message when absent.
* `import_timm()` / `import_laion_htsat()`: the PyTorch references, importable
  without torchvision and without laion-clap's hub-bound package import.
* `pytest.mark.memory_heavy` on a module: its module-scoped fixtures build the
  full-size model (7–12 GiB at peak), so at most one such module runs at a time across
  xdist workers (a file lock), and its worker hands the memory back to the OS
  when the module ends. Two at once do not fit in CI's 24 GiB.
* `DGSCT_TEST_MEMORY_LOG=path`: appends each test's peak RSS, to find new
  heavy tests.
"""
import ctypes
import fcntl
import gc
import os
import pathlib

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared"


def existing_dir(path: pathlib.Path, what: str) -> pathlib.Path:
  """`path` if it is a folder, else skip the test saying what is missing where."""
  if not path.is_dir():
    pytest.skip(f"{what} not found at {path}")
  return path


@pytest.fixture(scope="session")
def shared_dir() -> pathlib.Path:
  return existing_dir(SHARED, "reference material")


@pytest.fixture(scope="session")
def golden_dir(shared_dir) -> pathlib.Path:
  return existing_dir(shared_dir / "golden", "golden fixtures")


@pytest.fixture(scope="session")
def annotations_dir(shared_dir) -> pathlib.Path:
  return existing_dir(shared_dir / "annotations", "annotation files")


@pytest.fixture(scope="session")
def llp_dir(annotations_dir) -> pathlib.Path:
  return existing_dir(annotations_dir / "AVVP", "LLP annotations")


@pytest.fixture(scope="session")
def avqa_dir(annotations_dir) -> pathlib.Path:
  return existing_dir(annotations_dir / "AVQA", "MUSIC-AVQA annotations")


def _peak_rss_reset() -> bool:
  try:
    pathlib.Path("/proc/self/clear_refs").write_text("5")
    return True
  except OSError:
    return False


def _peak_rss_gib() -> float:
  for line in pathlib.Path("/proc/self/status").read_text().splitlines():
    if line.startswith("VmHWM:"):
      return int(line.split()[1]) / 2**20
  return float("nan")


def pytest_configure(config):
  config.addinivalue_line(
      "markers", "memory_heavy: builds the full-size model; one such module at a time")


@pytest.fixture(scope="module", autouse=True)
def _module_memory(request, tmp_path_factory):
  """Autouse, so set up before the module's own fixtures and torn down after them.

  Every module hands its freed memory back to the OS when it ends; a
  `memory_heavy` module also waits for any other worker's heavy module to end.
  """
  if request.node.get_closest_marker("memory_heavy") is None:
    yield
    _release_memory(clear_jax_caches=False)
    return
  # With xdist each worker's basetemp is <run>/popen-gwN: the lock lives in <run>.
  lock_path = tmp_path_factory.getbasetemp().parent / "memory_heavy.lock"
  with open(lock_path, "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      yield
    finally:
      _release_memory(clear_jax_caches=True)
      fcntl.flock(lock, fcntl.LOCK_UN)


def _release_memory(clear_jax_caches):
  gc.collect()
  if clear_jax_caches:
    import jax  # noqa: PLC0415 (imported late: XLA_FLAGS above must come first)
    jax.clear_caches()
    gc.collect()
  try:
    ctypes.CDLL("libc.so.6").malloc_trim(0)
  except (OSError, AttributeError):
    pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
  """With DGSCT_TEST_MEMORY_LOG=path, appends each test's peak RSS (GiB)."""
  log = os.environ.get("DGSCT_TEST_MEMORY_LOG")
  if not log or not _peak_rss_reset():
    yield
    return
  yield
  with open(log, "a") as f:
    f.write(f"{_peak_rss_gib():.2f}\t{item.nodeid}\n")


# The longest modules first, each full-size (`memory_heavy`) one between two that are not:
# pytest-xdist's loadfile scheduling hands modules out in collection order when it is run
# with --no-loadscope-reorder (the Makefile; by default it orders them by their number of
# tests), so this keeps a worker from starting a long module at the end, and the other
# worker from waiting on the memory lock (measured with a per-test timeline on the 2-core
# CI machine).
LONGEST_FIRST = (
    "test_task_contract.py", "test_dgsct_avs_golden.py", "test_dgsct_ablations.py",
    "test_dgsct_avvp_golden.py", "test_tasks.py", "test_dgsct_ave_golden.py", "test_resume.py",
    "test_dgsct_ave_golden_f64.py", "test_avvp_head.py", "test_dgsct_avqa_golden.py",
    "test_avqa_task.py", "test_convert_cli.py", "test_avs_head.py", "test_avqa_head.py",
    "test_swinv2.py")


def pytest_collection_modifyitems(items):
  rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable within a module


@pytest.fixture(scope="session", autouse=True)
def compile_cache(tmp_path_factory):
  """One persistent compilation cache for the whole test run, in a folder every xdist
  worker shares (fresh for each run): a program compiled once, by any test or any
  `python -m dgsct_jax.main` subprocess (which inherit DGSCT_COMPILE_CACHE), is read by
  the others, and nothing is written to the user's own cache."""
  from dgsct_jax import compile_cache as cache  # pylint: disable=import-outside-toplevel
  path = tmp_path_factory.getbasetemp().parent / "jax_compile_cache"
  path.mkdir(exist_ok=True)
  os.environ[cache.ENV] = str(path)
  cache.enable(str(path))
  return path
