"""Partial builds (skip_bad, max_videos_per_split, min_frames) never read as complete, and
`~` in the paths of the build command and of `get_source`.

On the 4-row AVE tree of test_data_ave_builder (train 1, val 2, test 1): the
build record says what a build left out, the build command rebuilds a build
made with other options, readers warn about a partial build or refuse it.
"""
import json
import re

import numpy as np
import pytest
from test_data_ave_builder import break_corrupt_jpeg, mini_tree, write_video

from dgsct_jax.data import build
from dgsct_jax.data import sources
from dgsct_jax.data.datasets import base
from dgsct_jax.data.datasets import build_record
from dgsct_jax.data.datasets.ave import builder as ave
from dgsct_jax.data.datasets.llp import builder as llp

VERSION = str(ave.Ave.VERSION)


@pytest.fixture
def tree(tmp_path):
  """(argv of the build command on a mini tree whose val video vidB has a corrupt frame,
  data_dir, manual_dir)."""
  manual = tmp_path / "manual"
  folders = mini_tree(manual, np.random.default_rng(0))
  break_corrupt_jpeg(manual, folders["vidB"])
  data_dir = tmp_path / "data"
  return ["--dataset=ave", f"--manual_dir={manual}", f"--data_dir={data_dir}"], data_dir, manual


def test_skip_bad_build_records_what_it_left_out(tree, capsys):
  argv, data_dir, manual = tree
  assert build.main(argv + ["--skip_bad"]) == 0
  out = capsys.readouterr().out
  assert ("partial build (readers warn; allow_partial=False refuses it): "
          "val: 1 of 2 videos (1 skipped for bad media)") in out
  record = json.loads((data_dir / "ave" / VERSION / build_record.FILENAME).read_text())
  assert record["options"] == {"skip_bad": True, "max_videos_per_split": None, "min_frames": 10}
  assert record["splits"]["train"] == {"listed": 1, "beyond_limit": 0, "skipped": []}
  [[position, name, reason]] = record["splits"]["val"]["skipped"]
  assert (position, name) == (0, "row 1 (vidB)") and reason.startswith("corrupt JPEG")
  assert str(manual / "frames" / "vidB") in reason


def test_reader_warns_about_a_partial_build_or_refuses_it(tree, caplog):
  argv, data_dir, _ = tree
  assert build.main(argv + ["--skip_bad"]) == 0
  caplog.clear()
  assert len(sources.get_source("ave", "val", data_dir)) == 1
  assert (f"ave in {data_dir / 'ave' / VERSION} is a partial build: "
          "val: 1 of 2 videos (1 skipped for bad media)") in caplog.text
  with pytest.raises(build_record.PartialBuildError,
                     match=r"val: 1 of 2 videos .*\(allow_partial=False\): fix the media "
                           r"and rebuild it with the default options"):
    sources.get_source("ave", "train", data_dir, allow_partial=False)


@pytest.mark.parametrize("flag,left_out", [
    ("--max_videos_per_split=1", "val: 1 of 2 videos (1 beyond max_videos_per_split=1)"),
    ("--min_frames=5", "built with min_frames=5 (default 10)"),
])
def test_limits_are_recorded_and_make_the_build_partial(flag, left_out, tmp_path, capsys, caplog):
  mini_tree(tmp_path / "manual", np.random.default_rng(1))
  data_dir = tmp_path / "data"
  assert build.main(["--dataset=ave", f"--manual_dir={tmp_path / 'manual'}",
                     f"--data_dir={data_dir}", flag]) == 0
  assert f"partial build (readers warn; allow_partial=False refuses it): {left_out}" in (
      capsys.readouterr().out)
  sources.get_source("ave", "val", data_dir)
  assert f"is a partial build: {left_out}" in caplog.text
  with pytest.raises(build_record.PartialBuildError, match=re.escape(left_out)):
    sources.get_source("ave", "val", data_dir, allow_partial=False)


def test_complete_build_reads_without_a_warning(tmp_path, caplog):
  mini_tree(tmp_path / "manual", np.random.default_rng(2))
  build.build("ave", tmp_path / "manual", tmp_path / "data", skip_bad=True,
              max_videos_per_split=5)  # Nothing bad, no split longer than 5: complete.
  caplog.clear()
  assert len(sources.get_source("ave", "val", tmp_path / "data", allow_partial=False)) == 2
  assert "partial" not in caplog.text


def test_rebuild_without_the_flags_really_rebuilds(tree, capsys, caplog):
  argv, data_dir, manual = tree
  keep = [data_dir / "ave" / "1.0.0" / "keep.txt", data_dir / "other" / "keep.txt"]
  for path in keep:  # Another version and another dataset: never deleted.
    path.parent.mkdir(parents=True)
    path.write_text("x")
  assert build.main(argv + ["--skip_bad"]) == 0
  write_video(manual, "vidB", np.random.default_rng(3))  # The media fixed.
  capsys.readouterr()
  assert build.main(argv) == 0
  out = capsys.readouterr().out
  assert f"ave built in {data_dir / 'ave' / VERSION}: {{'train': 1, 'val': 2, 'test': 1}}" in out
  assert "partial" not in out
  assert (f"ave: rebuilding {data_dir / 'ave' / VERSION}: it was built with skip_bad=True, "
          "asked now with skip_bad=False") in caplog.text
  assert len(sources.get_source("ave", "val", data_dir, allow_partial=False)) == 2
  assert build.main(argv) == 0  # The same options: reused.
  assert (f"ave: reusing the build in {data_dir / 'ave' / VERSION} (same options): "
          "{'train': 1, 'val': 2, 'test': 1}") in capsys.readouterr().out
  assert build.main(argv + ["--max_videos_per_split=1"]) == 0
  assert "{'train': 1, 'val': 1, 'test': 1}" in capsys.readouterr().out
  assert all(path.read_text() == "x" for path in keep)


def test_strict_rebuild_of_bad_media_leaves_no_partial_build(tree, capsys):
  argv, data_dir, _ = tree
  assert build.main(argv + ["--skip_bad"]) == 0
  assert build.main(argv) == 1
  assert "corrupt JPEG" in capsys.readouterr().err
  with pytest.raises(FileNotFoundError, match="ave is not built"):
    sources.get_source("ave", "val", data_dir)


def test_build_without_a_record_is_partial_and_rebuilt(tmp_path, capsys, caplog):
  mini_tree(tmp_path / "manual", np.random.default_rng(4))
  argv = ["--dataset=ave", f"--manual_dir={tmp_path / 'manual'}",
          f"--data_dir={tmp_path / 'data'}"]
  assert build.main(argv) == 0
  (tmp_path / "data" / "ave" / VERSION / build_record.FILENAME).unlink()  # An older build.
  sources.get_source("ave", "val", tmp_path / "data")
  assert "it has no build_record.json, so what it left out is unknown" in caplog.text
  with pytest.raises(build_record.PartialBuildError, match="no build_record.json"):
    sources.get_source("ave", "val", tmp_path / "data", allow_partial=False)
  with pytest.raises(base.StaleBuildError, match="no build_record.json, so its options"):
    ave.Ave(data_dir=tmp_path / "data").download_and_prepare()
  capsys.readouterr()
  assert build.main(argv) == 0
  assert "ave built in" in capsys.readouterr().out
  assert "rebuilding" in caplog.text
  assert len(sources.get_source("ave", "val", tmp_path / "data", allow_partial=False)) == 2


def test_a_builder_refuses_to_reuse_a_build_made_with_other_options(tree):
  argv, data_dir, _ = tree
  assert build.main(argv + ["--skip_bad"]) == 0
  with pytest.raises(base.StaleBuildError,
                     match=r"cannot be reused: it was built with skip_bad=True, asked now with "
                           r"skip_bad=False\. Build with python -m dgsct_jax\.data\.build"):
    ave.Ave(data_dir=data_dir).download_and_prepare()


def test_tilde_in_every_path_is_the_home_folder(tmp_path, monkeypatch, capsys):
  home, cwd = tmp_path / "home", tmp_path / "cwd"
  cwd.mkdir()
  monkeypatch.setenv("HOME", str(home))
  monkeypatch.chdir(cwd)
  mini_tree(home / "manual", np.random.default_rng(5))
  (home / "ann").mkdir()
  for name in ("Annotations.txt", "categories.txt", *ave.SPLITS.values()):
    (home / "manual" / name).rename(home / "ann" / name)
  assert build.main(["--dataset=ave", "--manual_dir=~/manual", "--data_dir=~/tfds",
                     "--annotations_dir=~/ann"]) == 0
  assert f"ave built in {home / 'tfds' / 'ave' / VERSION}" in capsys.readouterr().out
  assert len(sources.get_source("ave", "val", "~/tfds", allow_partial=False)) == 2
  assert not (cwd / "~").exists()
  assert ave.Ave(annotations_dir="~/ann", data_dir=home / "x").annotations_dir == str(home / "ann")
  assert llp.Llp(annotations_dir="~/ann", data_dir=home / "x").annotations_dir == str(home / "ann")
