"""Ablation: A2V only — audio guides visual (vis_adapter_blocks_*); no V2A adapters.

    --config=configs/ablations/a2v_only.py:variant=large     (the AVE recipe, this switch flipped)
    --config=configs/demo.py:ablation=a2v_only               (the demo on synthetic data)
"""
from configs import ave


def apply(c):
  c.model.audio_adapters = False
  return c


def get_config(arg=None):
  return apply(ave.get_config(arg))
