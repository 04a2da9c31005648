"""Ablation: V2A only — visual guides audio (audio_adapter_blocks_*); no A2V adapters.

    --config=configs/ablations/v2a_only.py:variant=large     (the AVE recipe, this switch flipped)
    --config=configs/demo.py:ablation=v2a_only               (the demo on synthetic data)
"""
from configs import ave


def apply(c):
  c.model.visual_adapters = False
  return c


def get_config(arg=None):
  return apply(ave.get_config(arg))
