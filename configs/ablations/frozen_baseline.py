"""Ablation: no DG-SCT: frozen encoders + the AVE head (spec §7, first row).
No adapter is built; each stream's final tokens are mean-pooled.

    --config=configs/ablations/frozen_baseline.py:variant=large     (the AVE recipe, this switch flipped)
    --config=configs/demo.py:ablation=frozen_baseline               (the demo on synthetic data)
"""
from configs import ave


def apply(c):
  c.model.update(visual_adapters=False, audio_adapters=False, p1=False, p2=False)
  return c


def get_config(arg=None):
  return apply(ave.get_config(arg))
