"""The persistent compilation cache (dgsct_jax/compile_cache.py): where `--compile_cache`
and DGSCT_COMPILE_CACHE put it, and a second process that compiles nothing."""
import os
import re

import main_runs
from dgsct_jax import compile_cache

SUMMARY = re.compile(r"compilation cache (\S+): (\d+) programs read \(\d+ s of compiling "
                     r"saved\), (\d+) compiled")


def test_flag_beats_env_beats_default(monkeypatch, tmp_path):
  monkeypatch.delenv(compile_cache.ENV, raising=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  assert compile_cache.resolve(None) == str(tmp_path / "xdg" / "dgsct_jax" / "xla")
  monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "env"))
  assert compile_cache.resolve(None) == str(tmp_path / "env")
  assert compile_cache.resolve("~/flag") == os.path.expanduser("~/flag")
  assert compile_cache.resolve("gs://bucket/xla") == "gs://bucket/xla"
  for off in ("off", "", "None"):
    assert compile_cache.resolve(off) is None
  monkeypatch.setenv(compile_cache.ENV, "off")
  assert compile_cache.resolve(None) is None


def _train(workdir, *flags):
  run = main_runs.run("-m", "dgsct_jax.main",
                      f"--config={main_runs.REPO / 'tests' / 'standin_config.py'}:epochs=1",
                      f"--workdir={workdir}", *flags, devices=1)
  assert run.returncode == 0, run.stderr[-3000:]
  return SUMMARY.findall(run.stderr)


def test_a_second_process_reads_every_program(tmp_path):
  """A first run compiles and writes its programs; a second run of the same config (a
  new workdir, a new process) reads them all and compiles none."""
  cache = tmp_path / "cache"
  [(where, read, compiled)] = _train(tmp_path / "first", f"--compile_cache={cache}")
  assert where == str(cache) and int(read) == 0 and int(compiled) > 0
  assert len(list(cache.iterdir())) >= int(compiled)
  [(_, read_again, compiled_again)] = _train(tmp_path / "second", f"--compile_cache={cache}")
  assert (int(read_again), int(compiled_again)) == (int(compiled), 0)


def test_off_disables_it(tmp_path):
  """(Every spelling of off resolves to None: test_flag_beats_env_beats_default.)"""
  assert _train(tmp_path / "run", "--compile_cache=off") == []
