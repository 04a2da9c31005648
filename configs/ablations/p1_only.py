"""Ablation: p1 only — adapters around attention; none around the MLP.

    --config=configs/ablations/p1_only.py:variant=large     (the AVE recipe, this switch flipped)
    --config=configs/demo.py:ablation=p1_only               (the demo on synthetic data)
"""
from configs import ave


def apply(c):
  c.model.p2 = False
  return c


def get_config(arg=None):
  return apply(ave.get_config(arg))
