"""`--config=tests/standin_config.py:<trainer_configs.standin_config kwargs as k=v>`
for subprocess tests of `dgsct_jax.main` with the stand-in model."""
import ast

import trainer_configs


def get_config(arg=None):
  overrides = {}
  for token in filter(None, (arg or "").split(";")):
    key, _, text = token.partition("=")
    overrides[key] = ast.literal_eval(text)
  return trainer_configs.standin_config(**overrides)
