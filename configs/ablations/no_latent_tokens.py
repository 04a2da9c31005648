"""Ablation: w/o latent tokens — no LAVisH latent-token cross-attention inside the adapters.

    --config=configs/ablations/no_latent_tokens.py:variant=large     (the AVE recipe, this switch flipped)
    --config=configs/demo.py:ablation=no_latent_tokens               (the demo on synthetic data)
"""
from configs import ave


def apply(c):
  c.model.adapter.latent_tokens = False
  return c


def get_config(arg=None):
  return apply(ave.get_config(arg))
