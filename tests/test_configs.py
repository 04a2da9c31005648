"""Every config builds, carries no machine paths, and the AVE defaults are the reference's;
the ablation table, the seed argument and the shared trainer section."""
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from configs import ablations
from configs import ave as ave_config
from configs import avvp as avvp_config
from configs import common
from configs import demo as demo_config
from dgsct_jax.models import presets

REPO = pathlib.Path(__file__).resolve().parents[1]
ABLATIONS = sorted(ablations.ABLATIONS)


def _strings(tree, prefix=""):
  for key, value in tree.items():
    if isinstance(value, dict):
      yield from _strings(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}", value


def _no_machine_paths(config):
  for key, value in _strings(config.to_dict()):
    if isinstance(value, str):
      assert not value.startswith(("/", "~")) and "://" not in value, (key, value)


@pytest.mark.parametrize("arg", ["variant=large", "variant=tiny", "variant=large,clean",
                                 "variant=tiny,data=synthetic,runlocal"])
def test_ave_configs_build(arg):
  config = ave_config.get_config(arg)
  _no_machine_paths(config)
  assert config.model.variant == arg.split(",")[0].split("=")[1]


def test_ave_defaults_are_the_official_recipe():
  c = ave_config.get_config("variant=large")
  assert (c.seed, c.batch_size, c.epochs) == (43, 8, 50)
  assert (c.optim.name, c.optim.lr, c.optim.b1, c.optim.b2, c.optim.eps) == (
      "adam", 5e-4, 0.9, 0.999, 1e-8)
  assert (c.optim.schedule.kind, c.optim.schedule.unit, c.optim.schedule.every,
          c.optim.schedule.gamma) == ("step", "epoch", 3, 0.35)
  # The reference's quirks, faithful by default (spec §8) ...
  assert (c.optim.accum_steps, c.optim.accum_mode) == (2, "discard")
  assert c.model.encoder_train_mode is True
  assert (c.eval.select_split, c.eval.early_stop_epochs) == ("test", 20)
  # ... and fixed by the clean variant.
  clean = ave_config.get_config("variant=large,clean")
  assert (clean.optim.accum_mode, clean.model.encoder_train_mode, clean.eval.select_split) == (
      "sum", False, "val")


@pytest.mark.parametrize("name", ABLATIONS)
def test_ablations_flip_model_switches_only(name):
  base = ave_config.get_config("variant=tiny").to_dict()
  ablated = ave_config.get_config(f"variant=tiny,ablation={name}").to_dict()
  changed = [k for (k, a), (_, b) in zip(_strings(ablated), _strings(base)) if a != b]
  assert sorted(changed) == sorted(ablations.ABLATIONS[name]), changed
  demo = demo_config.get_config(f"ablation={name}")
  _no_machine_paths(demo)
  assert all(str(v) == str(_get(demo, k)) for k, v in ablations.ABLATIONS[name].items())


def _get(config, path):
  for key in path.split("."):
    config = config[key]
  return config


def test_ablations_cover_every_model_switch():
  switches = {"visual_adapters": "v2a_only", "audio_adapters": "a2v_only", "p1": "p2_only",
              "p2": "p1_only"}
  for switch, name in switches.items():
    assert ave_config.get_config("variant=tiny")["model"][switch] is True
    assert ave_config.get_config(f"variant=tiny,ablation={name}").model[switch] is False
  for name in ("frozen_baseline", "lavish", "no_channel", "no_spatial", "no_temporal",
               "no_latent_tokens"):
    assert name in ABLATIONS


def test_ablation_of_a_field_the_task_lacks_names_it():
  config = ave_config.get_config("variant=tiny")
  del config.model["head"]
  with pytest.raises(ValueError, match=r"no_temporal.*model\.head\.gamma"):
    ablations.apply(config, "no_temporal")
  with pytest.raises(ValueError, match="unknown ablation 'no_such'"):
    ablations.apply(config, "no_such")
  with pytest.raises(ValueError, match=r"ablation='no_such': choose one of \['', 'frozen"):
    ave_config.get_config("ablation=no_such")
  with pytest.raises(ValueError, match=r"variant='tinyy': choose one of \['large', 'tiny'\]"):
    ave_config.get_config("variant=tinyy")


def test_seed_is_a_config_argument():
  assert ave_config.get_config("variant=tiny").seed == 43
  assert ave_config.get_config("variant=tiny,seed=7").seed == 7
  assert demo_config.get_config("seed=3").seed == 3


def test_every_task_config_shares_the_trainer_section():
  """The task configs add their sections to configs/common.py's, and change nothing else
  but what their arguments ask for."""
  arg = common.parse("variant=tiny", data="ave", seed=43)
  shared = common.trainer_config(arg).to_dict()
  task = ave_config.get_config("variant=tiny").to_dict()
  assert shared["data"].pop("image_size") == ()  # the task sets the frame size
  assert task["data"].pop("image_size") == (64, 64)
  assert {k: task[k] for k in shared} == shared
  assert set(task) - set(shared) == {"task", "model", "loss", "figure"}


def test_demo_config_is_consistent():
  c = demo_config.get_config()
  assert c.data.name == "synthetic" and c.model.variant == "tiny"
  assert c.data.synthetic.num_classes == c.model.num_classes
  assert tuple(c.data.synthetic.image_size) == (c.model.swin.img_size,) * 2
  assert set(c.init_from) == {"visual", "audio"} and "pretrain" in c
  assert set(c.pretrain.encoders) == set(c.init_from)
  assert c.task == "ave" and c.eval.predict_after_train


@pytest.mark.parametrize("flags,message", [
    (["--config=configs/ave.py:variant=tiny", "--config.optim.lrr=0.01"],
     'ERROR: --config.optim.lrr: the config has no such field (\'lrr\' Did you mean "lr" '
     'instead of "lrr"?)'),
    (["--config=configs/ave.py:variant=tinyy"],
     "ERROR: flag --config=configs/ave.py:variant=tinyy: Error whilst parsing config file: "
     "ValueError: config arg variant='tinyy': choose one of ['large', 'tiny']"),
    (["--config=configs/ave.py:variant=tiny", "--config.optim.lr=fast"],
     "ERROR: flag --config.optim.lr=fast: could not convert string to float: 'fast'"),
    (["--config=configs/nope.py"], "ERROR: bad --config: Configuration is not available"),
])
def test_bad_config_flags_fail_in_one_line(tmp_path, flags, message):
  """`python -m dgsct_jax.main` with a bad config argument or override: one line naming the
  field and what it takes, exit status 2, nothing created."""
  cmd = [sys.executable, "-m", "dgsct_jax.main", f"--workdir={tmp_path / 'run'}", *flags]
  bad = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
  assert bad.returncode == 2, bad.stderr[-2000:]
  assert len(bad.stderr.strip().splitlines()) == 1 and bad.stderr.startswith(message), (
      bad.stderr[-2000:])
  assert not (tmp_path / "run").exists()
  c = ave_config.get_config("variant=tiny")
  c.lock()
  with pytest.raises(AttributeError):
    c.optim.lrr = 0.01


def test_optional_model_fields_take_command_line_overrides():
  """`--config.model.matmul_dtype=bfloat16` / `--config.model.remat_stages=2` parse (a plain
  None field cannot be overridden by ml_collections); unset they stay None."""
  script = ("from absl import app, flags\n"
            "from ml_collections import config_flags\n"
            "config_flags.DEFINE_config_file('config')\n"
            "def main(_):\n"
            "  model = flags.FLAGS.config.model\n"
            "  print(repr((model.matmul_dtype, model.remat_stages)))\n"
            "app.run(main)\n")
  cmd = [sys.executable, "-c", script, "--config=configs/ave.py:variant=tiny",
         "--config.model.matmul_dtype=bfloat16", "--config.model.remat_stages=2"]
  run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
  assert run.returncode == 0, run.stderr[-2000:]
  assert run.stdout.strip().splitlines()[-1] == "('bfloat16', 2)"
  plain = ave_config.get_config("variant=tiny").to_dict()["model"]
  assert set(common.OPTIONAL_MODEL_KEYS) <= set(plain)
  assert all(plain[key] is None for key in common.OPTIONAL_MODEL_KEYS)


@pytest.mark.parametrize("arg", ["variant=large", "variant=tiny", "variant=tiny,data=synthetic",
                                 "variant=large,clean,ablation=lavish"])
def test_data_fits_the_model(arg):
  """Frames are decoded at the model's image size (the large variant cannot run on a CI
  machine, so its shapes are checked here) and segments fit the audio clip."""
  from dgsct_jax import tasks  # pylint: disable=import-outside-toplevel
  config = ave_config.get_config(arg)
  spec = tasks.for_config(config).batch_spec()
  size = config.model.swin.img_size
  assert tuple(config.data.image_size) == spec["frames"].shape[-2:] == (size, size)
  assert spec["audio"].shape[-1] <= config.model.htsat.num_samples
  if config.data.name == "synthetic":
    assert tuple(config.data.synthetic.image_size) == (size, size)
    assert config.data.synthetic.samples_per_segment == spec["audio"].shape[-1]
  assert spec["label"].shape[-1] == config.model.num_classes + 1


def test_avvp_defaults_are_the_official_recipe():
  """configs/avvp.py = DG-SCT/AVVP/train.sh (spec dgsct_tasks.md §1.3, §0)."""
  c = avvp_config.get_config("variant=large")
  assert (c.task, c.data.name, c.seed, c.batch_size, c.epochs) == ("avvp", "llp", 1, 8, 40)
  assert (c.optim.name, c.optim.lr, c.optim.accum_steps) == ("adam", 3e-4, 1)
  assert (c.optim.schedule.kind, c.optim.schedule.unit, c.optim.schedule.every,
          c.optim.schedule.gamma) == ("step", "epoch", 10, 0.1)
  assert (c.eval.select_split, c.eval.report_split, c.eval.early_stop_epochs) == (
      "val", "test", 0)
  assert (c.loss.audio_smoothing, c.loss.visual_smoothing) == (1.0, 0.9)
  m = c.model
  assert (m.num_classes, m.logmel_mixup, m.encoder_train_mode, m.pairing) == (25, True, True, "ave")
  assert dict(m.adapter) == presets.ADAPTER_AVE
  assert (m.head.dim, m.head.depth_aud, m.head.depth_vis, m.head.depth_av) == (128, 3, 3, 6)
  assert avvp_config.get_config("variant=large,clean").model.encoder_train_mode is False
  _no_machine_paths(c)


@pytest.mark.parametrize("arg", ["variant=large", "variant=tiny,data=synthetic/llp",
                                 "variant=tiny,data=random,runlocal"])
def test_avvp_data_fits_the_model(arg):
  from dgsct_jax import tasks  # pylint: disable=import-outside-toplevel
  from dgsct_jax import input_pipeline  # pylint: disable=import-outside-toplevel
  config = avvp_config.get_config(arg)
  spec = tasks.for_config(config).batch_spec()
  assert spec["r2p1d"].shape == (10, config.model.head.st_dim)
  assert spec["weak"].shape == (config.model.num_classes,)
  if config.data.name != "llp":
    config.data.sizes = {"train": 2, "val": 2, "test": 2}
    element = input_pipeline.get_source(config, "val")[1]
    for name, field in spec.items():
      assert np.shape(element[name]) == field.shape, name


def test_avvp_demo_config():
  c = demo_config.get_config("task=avvp")
  assert (c.task, c.data.name, c.model.variant) == ("avvp", "synthetic/llp", "tiny")
  assert c.data.synthetic.num_classes == c.model.num_classes
  assert c.model.encoder_train_mode is False and c.eval.predict_after_train
