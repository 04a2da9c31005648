"""`--config=tests/contract_config.py:task=<name>`: a registered task's own config
(configs/<name>.py, tiny variant, `runlocal`) on the task's synthetic look-alike
(`SYNTHETIC`; random data of its batch spec, `data=random`, for a task without one) with
randomly initialised encoders, and a schedule that trains,
evaluates, checkpoints and predicts (without the task's figure): runlocal's two epochs,
here of 2 steps of 8 examples, a validation split of 8 and a test split of 12 (its last
batch padded)."""
import importlib

from dgsct_jax import config_utils

SYNTHETIC = {"ave": "synthetic", "avvp": "synthetic/llp", "avs": "synthetic/avs",
             "avqa": "synthetic/avqa"}


def get_config(arg=None):
  arg = config_utils.parse_arg(arg, task="ave")
  c = importlib.import_module(f"configs.{arg.task}").get_config(
      f"variant=tiny,data={SYNTHETIC.get(arg.task, 'random')},runlocal")
  c.init_from = {}
  c.data.sizes = {"train": 16, "val": 8, "test": 12}
  c.eval.select_split = "val"
  c.log.every_steps = 1
  for key in c.get("figure", {}):  # figures compile a forward of their own; the tasks'
    c.figure[key] = 0              # tests draw them
  return c
