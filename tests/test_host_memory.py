"""The host allocator switch (dgsct_jax/host_memory.py), in subprocesses.

The measured effect: page faults when a large block is allocated, freed and
allocated again, as XLA:CPU does with its temporaries on every step. A 512 MiB
block is 131072 faults with 4 KiB pages.
"""
import json
import pathlib
import subprocess
import sys

import pytest

from dgsct_jax import host_memory

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Re-executes itself under the allocator in argv[1], then reports per-allocation page faults.
CHILD = r"""
import ctypes, json, os, resource, sys
from dgsct_jax import host_memory
print(json.dumps({"pid_before_exec": os.getpid()}), flush=True)
active = host_memory.reexec_with(sys.argv[1])
libc = ctypes.CDLL(None)  # the process's malloc: LD_PRELOAD's where set
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def faults_of_touching(n_bytes):  # as XLA:CPU's temporaries (numpy would madvise on its own)
  start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  block = libc.malloc(n_bytes)
  ctypes.memset(block, 1, n_bytes)
  faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start
  libc.free(block)
  return faults
first = faults_of_touching(512 * 2**20)
second = faults_of_touching(512 * 2**20)
print(json.dumps({"pid": os.getpid(), "active": active, "first": first, "second": second,
                  "env": {k: os.environ.get(k) for k in ("LD_PRELOAD", "MALLOC_CONF",
                                                         "GLIBC_TUNABLES")}}), flush=True)
"""


def run_child(allocator: str) -> tuple[int, dict]:
  env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
  proc = subprocess.run([sys.executable, "-c", CHILD, allocator], env=env, cwd=ROOT,
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = [json.loads(line) for line in proc.stdout.splitlines()]
  return lines[0]["pid_before_exec"], lines[-1]


def transparent_huge_pages_available() -> bool:
  path = pathlib.Path("/sys/kernel/mm/transparent_hugepage/enabled")
  return path.is_file() and "[never]" not in path.read_text()


def test_system_allocator_faults_every_page_again():
  _, report = run_child("system")
  assert report["active"] == "system"
  assert report["env"] == {"LD_PRELOAD": None, "MALLOC_CONF": None, "GLIBC_TUNABLES": None}
  # The freed block went back to the OS: the second allocation faults all pages again.
  assert report["first"] > 100_000 and report["second"] > 100_000


@pytest.mark.skipif(not transparent_huge_pages_available(),
                    reason="transparent huge pages are disabled on this host")
def test_glibc_thp_reexecutes_once_and_faults_huge_pages():
  pid_before, report = run_child("glibc_thp")
  assert report["pid"] == pid_before  # exec, not a child process: signals still arrive
  assert report["active"] == "glibc_thp"
  assert report["env"]["GLIBC_TUNABLES"] == host_memory.GLIBC_THP_TUNABLE
  assert report["first"] < 10_000 and report["second"] < 10_000


@pytest.mark.skipif(host_memory.find_jemalloc() is None,
                    reason="libjemalloc is not installed (apt-get install libjemalloc2)")
def test_jemalloc_keeps_freed_pages():
  pid_before, report = run_child("jemalloc")
  assert report["pid"] == pid_before and report["active"] == "jemalloc"
  assert report["env"]["LD_PRELOAD"] == host_memory.find_jemalloc()
  assert report["env"]["MALLOC_CONF"] == host_memory.JEMALLOC_CONF
  assert report["first"] > 100_000 and report["second"] < 1_000  # reused, not re-faulted


def test_environment_merges_with_existing_settings():
  env = host_memory.allocator_env("glibc_thp", {"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"})
  assert env == {"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0:glibc.malloc.hugetlb=1"}
  assert host_memory.allocator_env("system", {}) == {}


def test_auto_leaves_accelerator_hosts_alone(monkeypatch):
  monkeypatch.setenv("JAX_PLATFORMS", "tpu")
  assert host_memory.resolve("auto") == "system"
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  assert host_memory.resolve("auto") == "glibc_thp"  # jemalloc is opt-in, installed or not


def test_bad_choices_are_named(monkeypatch):
  with pytest.raises(ValueError, match="'tcmalloc'.*auto"):
    host_memory.resolve("tcmalloc")
  monkeypatch.setattr(host_memory, "find_jemalloc", lambda: None)
  with pytest.raises(FileNotFoundError, match="libjemalloc.so.2.*apt-get install libjemalloc2"):
    host_memory.allocator_env("jemalloc", {})


def test_main_rejects_an_unknown_allocator():
  proc = subprocess.run([sys.executable, "-m", "dgsct_jax.main", "--config=configs/demo.py",
                         "--workdir=/nonexistent", "--host_allocator=tcmalloc"],
                        cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert proc.returncode != 0
  assert "host_allocator" in proc.stderr and "tcmalloc" in proc.stderr
