"""Ablation: LAVisH* — latent tokens + bottleneck adapters with cross-modal
projection, no spatial/channel guidance (alpha = beta = 0, mean pooling).

    --config=configs/ablations/lavish.py:variant=large     (the AVE recipe, this switch flipped)
    --config=configs/demo.py:ablation=lavish               (the demo on synthetic data)
"""
from configs import ave


def apply(c):
  c.model.adapter.update(channel=False, spatial=False)
  return c


def get_config(arg=None):
  return apply(ave.get_config(arg))
