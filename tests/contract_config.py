"""`--config=tests/contract_config.py:task=<name>`: a registered task's own config
(configs/<name>.py, tiny variant, `runlocal`) on the task's synthetic look-alike
(`SYNTHETIC`; random data of its batch spec, `data=random`, for a task without one) with
randomly initialised encoders, and a schedule that trains,
evaluates, checkpoints and predicts (without the task's figure): runlocal's two epochs,
here of 2 steps of 4 examples, a validation split of 4 and a test split of 6 (its last
batch padded). Batches of 4: compiling costs the same at any batch size, running does not,
and 4 videos is the batch the AVS reference scores M_F on."""
import importlib

from dgsct_jax import config_utils

SYNTHETIC = {"ave": "synthetic", "avvp": "synthetic/llp", "avs": "synthetic/avs",
             "avqa": "synthetic/avqa"}


def get_config(arg=None):
  arg = config_utils.parse_arg(arg, task="ave")
  c = importlib.import_module(f"configs.{arg.task}").get_config(
      f"variant=tiny,data={SYNTHETIC.get(arg.task, 'random')},runlocal")
  c.init_from = {}
  c.batch_size = c.eval.batch_size = 4
  c.data.sizes = {"train": 8, "val": 4, "test": 6}
  c.eval.select_split = "val"
  c.log.every_steps = 1
  for key in c.get("figure", {}):  # figures compile a forward of their own; the tasks'
    c.figure[key] = 0              # tests draw them
  return c
