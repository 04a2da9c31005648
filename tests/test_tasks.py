"""The Task interface: the registry, a task defined outside the package (tests/toy_task.py)
trained, evaluated, predicted and scored through the public entry points, and the documented
configs run end to end (the contract of every registered task: tests/contract.py)."""
import importlib
import json
import pathlib

import numpy as np
import pytest

from dgsct_jax import score
from dgsct_jax import tasks
from dgsct_jax.tasks import base
import contract
import main_runs

def test_registry_names_and_dotted_paths():
  assert tasks.get("ave").__name__ == "AVE"
  toy = tasks.get("toy_task:VideoClassification")
  assert toy is tasks.get("toy_task.VideoClassification") and issubclass(toy, base.Task)
  with pytest.raises(ValueError, match=r"unknown task 'nope'.*'ave'"):
    tasks.get("nope")
  with pytest.raises(ValueError, match="cannot load"):
    tasks.get("toy_task:Missing")
  with pytest.raises(ValueError, match="not a subclass"):
    tasks.get("toy_task:ErrorRate")
  assert "ave" in tasks.trainable_names()


@pytest.mark.parametrize("name", sorted(set(tasks.REGISTRY) - set(tasks.trainable_names())))
def test_scoring_only_tasks_are_refused_by_the_trainer(name):
  config = importlib.import_module("trainer_configs").standin_config(task=name)
  with pytest.raises(ValueError, match=f"python -m dgsct_jax.score --task={name}"):
    tasks.for_config(config)


def test_a_task_from_outside_the_package_trains_predicts_and_scores(tmp_path):
  config = [f"--config={main_runs.REPO / 'tests' / 'standin_config.py'}:epochs=3",
            "--config.task=toy_task:VideoClassification", f"--workdir={tmp_path}"]
  run = main_runs.run("-m", "dgsct_jax.main", *config)
  assert run.returncode == 0, run.stderr[-3000:]
  evals = [r for r in main_runs.records(tmp_path) if r["split"] == "test"]
  assert len(evals) == 3 and all("error" in r and "accuracy" not in r for r in evals)
  best = min(r["error"] for r in evals)  # selection_mode 'min'
  meta = json.loads(next((tmp_path / "best").glob("*/meta/metadata")).read_text())
  assert meta["result"]["error"] == best

  run = main_runs.run("-m", "dgsct_jax.main", *config, "--mode=predict")
  assert run.returncode == 0, run.stderr[-3000:]
  assert f"test video error {best:.2f}%" in run.stdout
  rows = [json.loads(l) for l in (tmp_path / "predictions.jsonl").read_text().splitlines()]
  assert len(rows) == 8 and set(rows[0]) == {"video_id", "pred", "target"}
  result = json.loads((tmp_path / "result.json").read_text())
  assert result["error"] == best and "figure" not in result

  scored = main_runs.run("-m", "dgsct_jax.score", "--task=toy_task:VideoClassification",
                 f"--predictions={tmp_path / 'predictions.jsonl'}")
  assert scored.returncode == 0, scored.stderr[-3000:]
  assert scored.stdout.strip() == f"video error {best:.2f}% (8 videos)"
  assert score.score("toy_task:VideoClassification", tmp_path / "predictions.jsonl") == {
      "error": best, "videos": 8}


def _tiny_encoders(weights_dir: pathlib.Path):
  """Randomly initialised tiny encoders written like converted checkpoints where
  `configs/ave.py:variant=tiny` reads them (`make demo` pretrains them instead)."""
  from flax import nnx  # pylint: disable=import-outside-toplevel
  from configs import common  # pylint: disable=import-outside-toplevel
  from dgsct_jax.models import presets  # pylint: disable=import-outside-toplevel
  from dgsct_jax.models.encoders import htsat, swinv2  # pylint: disable=import-outside-toplevel
  from weight_conversion import store  # pylint: disable=import-outside-toplevel
  for name, build in (("visual", lambda: swinv2.SwinTransformerV2(**presets.SWINV2_TINY,
                                                                    rngs=nnx.Rngs(0))),
                      ("audio", lambda: htsat.HTSAT(**presets.HTSAT_TINY, rngs=nnx.Rngs(1)))):
    values = {".".join(str(p) for p in path): np.asarray(var.get_value())
              for path, var in nnx.state(build()).flat_state()
              if not isinstance(var, nnx.RngState)}
    store.save(weights_dir / common.ENCODERS["tiny"][name], values, {"arch": name})


def _ave_build(manual: pathlib.Path, data_dir: pathlib.Path, rows=(32, 16, 16)):
  """A complete AVE build of `rows` (train, val, test) videos in the official layout."""
  import h5py  # pylint: disable=import-outside-toplevel
  from PIL import Image  # pylint: disable=import-outside-toplevel
  from dgsct_jax.data import build  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  categories = [f"event{i}" for i in range(28)]
  (manual / "categories.txt").parent.mkdir(parents=True, exist_ok=True)
  (manual / "categories.txt").write_text("\n".join(categories) + "\n")
  lines = ["Category&VideoID&Quality&StartTime&EndTime"]
  for i in range(sum(rows)):
    video = f"video{i:06d}"
    lines.append(f"{categories[i % 28]}&{video}&good&{i % 5}&{5 + i % 5}")
    (manual / "frames" / video).mkdir(parents=True)
    for n in range(1, 13):
      Image.fromarray(rng.integers(0, 256, (36, 48, 3), dtype=np.uint8)).save(
          manual / "frames" / video / f"{n:08d}.jpg")
    (manual / "wave").mkdir(exist_ok=True)
    np.save(manual / "wave" / f"{video}.npy", rng.standard_normal((10, 32000)).astype(np.float32))
  (manual / "Annotations.txt").write_text("\n".join(lines) + "\n")
  start = 0
  for split, n in zip(("train", "val", "test"), rows):
    with h5py.File(manual / f"{split}_order.h5", "w") as f:
      f.create_dataset("order", data=np.arange(start, start + n))
    start += n
  build.build("ave", manual, data_dir)


def test_documented_configs_run_end_to_end(tmp_path):
  """configs/ave.py's tiny variant trains a few steps on a (small, complete) AVE build and
  predicts, through `python -m dgsct_jax.main` with paths given with `~`, and meets the
  task contract (tests/contract.py: AVE's is checked here); its synthetic runlocal variant
  serves its splits. (The large variant's shapes are checked in
  test_configs.py: it does not fit a CI machine.)"""
  from configs import ave as ave_config  # pylint: disable=import-outside-toplevel
  from dgsct_jax import input_pipeline  # pylint: disable=import-outside-toplevel
  synthetic = ave_config.get_config("variant=tiny,data=synthetic,runlocal")
  for split, size in synthetic.data.sizes.items():
    element = input_pipeline.get_source(synthetic, split)[size - 1]
    assert element["frames"].shape == (10, 3, 64, 64)

  home = tmp_path / "home"
  _tiny_encoders(home / "weights")
  _ave_build(tmp_path / "AVE", home / "tfds")
  run = main_runs.run("-m", "dgsct_jax.main", "--config=configs/ave.py:variant=tiny,data=ave,runlocal",
              "--workdir=~/ave", "--weights_dir=~/weights", "--data_dir=~/tfds",
              "--config.log.progress=False", "--config.log.every_steps=1",
              "--config.eval.predict_after_train=True", devices=1, env_extra={"HOME": str(home)})
  assert run.returncode == 0, run.stderr[-3000:]
  contract.check("ave", ave_config.get_config("variant=tiny,data=ave,runlocal"), home / "ave")
  assert not (main_runs.REPO / "~").exists()
  assert run.stdout.startswith("test segment accuracy: ")
  rows = [json.loads(l) for l in (home / "ave" / "predictions.jsonl").read_text().splitlines()]
  assert sorted(r["video_id"] for r in rows) == [f"video{i:06d}" for i in range(48, 64)]
  assert (home / "ave" / "attention.png").is_file()

