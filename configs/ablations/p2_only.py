"""Ablation: p2 only — adapters around the MLP; none around attention.

    --config=configs/ablations/p2_only.py:variant=large     (the AVE recipe, this switch flipped)
    --config=configs/demo.py:ablation=p2_only               (the demo on synthetic data)
"""
from configs import ave


def apply(c):
  c.model.p1 = False
  return c


def get_config(arg=None):
  return apply(ave.get_config(arg))
