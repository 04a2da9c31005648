"""The build command (`dgsct_jax.data.build`) and the builders' shared base.

The per-dataset builds through the command run on each dataset's tiny tree in
its own test module (test_data_ave_builder, test_data_avsbench, test_data_llp,
test_data_sources); these tests need no media.
"""
import inspect

import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from dgsct_jax.data import build  # noqa: E402
from dgsct_jax.data import datasets  # noqa: E402
from dgsct_jax.data.datasets import base  # noqa: E402


def test_base_builder_is_not_a_registered_dataset():
  classes = [build.builder_class(name) for name in datasets.NAMES]
  registered = tfds.list_builders(with_community_datasets=False)
  assert inspect.isabstract(base.MediaBuilder)
  assert base.MediaBuilder.name == "media_builder" and "media_builder" not in registered
  for cls in classes:
    assert issubclass(cls, base.MediaBuilder) and not inspect.isabstract(cls)
    assert cls.name in registered
  with pytest.raises(TypeError, match="abstract"):
    base.MediaBuilder()


def test_configs_and_options():
  assert build.configs("ave") == ["ave"]
  assert build.configs("avsbench") == ["avsbench/s4", "avsbench/ms3"]
  assert build.configs("music_avqa") == ["music_avqa/qa", "music_avqa/videos"]
  assert build.configs("music_avqa/videos") == ["music_avqa/videos"]
  shared = {"skip_bad", "max_videos_per_split"}
  assert build.options("ave") == shared | {"min_frames", "annotations_dir"}
  assert build.options("llp") == shared | {"annotations_dir"}
  assert build.options("avsbench/s4") == shared
  assert build.options("music_avqa") == shared | {"min_frames"}


@pytest.mark.parametrize("dataset,flag", [("llp", "--min_frames=5"),
                                          ("avsbench/s4", "--annotations_dir=x"),
                                          ("music_avqa", "--annotations_dir=x")])
def test_an_option_the_builder_does_not_take_is_a_clear_error(dataset, flag, tmp_path, capsys):
  option = flag[2:].split("=")[0]
  with pytest.raises(SystemExit) as exit_info:
    build.main([f"--dataset={dataset}", f"--manual_dir={tmp_path}", flag])
  assert exit_info.value.code == 2
  assert f"{dataset} does not take {option} (its options: " in capsys.readouterr().err
  with pytest.raises(ValueError, match=f"does not take {option}"):
    build.build(build.configs(dataset)[0], tmp_path, tmp_path, **{option: 5})
  assert not any(tmp_path.iterdir())  # Refused before building anything.


@pytest.mark.parametrize("argv,message", [
    (["--dataset=avs"], "unknown dataset 'avs'; known: ave, llp, avsbench, music_avqa"),
    (["--dataset=avsbench/s5"], "unknown config 'avsbench/s5'; known: avsbench/s4, avsbench/ms3"),
    (["--dataset=ave"], "is not a folder"),
])
def test_unknown_dataset_config_or_folder(argv, message, tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    build.main(argv + [f"--manual_dir={tmp_path / 'absent'}"])
  assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_library_build_takes_one_config(tmp_path):
  with pytest.raises(ValueError, match="several configs"):
    build.build("music_avqa", tmp_path)
