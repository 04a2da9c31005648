"""Ablation: w/o C — no channel map M_c (alpha term and the (M_c + 1) pre-scaling).

    --config=configs/ablations/no_channel.py:variant=large     (the AVE recipe, this switch flipped)
    --config=configs/demo.py:ablation=no_channel               (the demo on synthetic data)
"""
from configs import ave


def apply(c):
  c.model.adapter.channel = False
  return c


def get_config(arg=None):
  return apply(ave.get_config(arg))
