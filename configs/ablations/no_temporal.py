"""Ablation: w/o T — no temporal gating in the head (gamma = 0: the G^a/G^v
scaling of temporal_attn removed; spec §7).

    --config=configs/ablations/no_temporal.py:variant=large     (the AVE recipe, this switch flipped)
    --config=configs/demo.py:ablation=no_temporal               (the demo on synthetic data)
"""
from configs import ave


def apply(c):
  c.model.head.gamma = 0.0
  return c


def get_config(arg=None):
  return apply(ave.get_config(arg))
