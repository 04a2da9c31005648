"""Ablation: w/o S — no spatial map M_s (beta term); final tokens mean-pooled.

    --config=configs/ablations/no_spatial.py:variant=large     (the AVE recipe, this switch flipped)
    --config=configs/demo.py:ablation=no_spatial               (the demo on synthetic data)
"""
from configs import ave


def apply(c):
  c.model.adapter.spatial = False
  return c


def get_config(arg=None):
  return apply(ave.get_config(arg))
