"""`--config=tests/sweep_config.py[:<configs/common.py arguments>]`: the stand-in model's
trainer config (trainer_configs.py) with a sweep of two seeds, for the sweep tests."""
import trainer_configs


def get_config(arg=None):
  return trainer_configs.standin_config(arg or "variant=tiny")


def get_hyper(hyper):
  return hyper.product([hyper.fixed("config.optim.lr", 1e-3), hyper.sweep("seed", [43, 44])])
