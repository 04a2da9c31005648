"""The AVVP losses of the reference (`DG-SCT/AVVP/main.py::train`, spec dgsct_tasks.md §1.3).

Weak (video-level) multi-hot labels y (B, C) train five equally weighted terms:
BCE of the audio-visual `global_prob` against y, of `a_prob` against the audio
target a·y + (1 − a)/2 and of `v_prob` against v·y + (1 − v)/2 (label smoothing,
a = 1.0, v = 0.9: visual positives 0.95, negatives 0.05), and the cross-entropy
of the class tokens' logits `aud_cls_prob` / `vis_cls_prob` (C, C) against
their own index (token i should predict class i). The probabilities are clamped
to [1e-7, 1 − 1e-7] first (no gradient outside, as PyTorch's clamp).
"""
import jax.numpy as jnp

from dgsct_jax import losses as losses_lib

CLAMP = 1e-7


def losses(outputs: dict, weak, *, audio_smoothing: float = 1.0,
           visual_smoothing: float = 0.9) -> dict:
  """The five terms and their sum (`total`)."""
  y = jnp.asarray(weak, jnp.float32)
  prob = {k: jnp.clip(outputs[k], CLAMP, 1 - CLAMP) for k in ("global_prob", "a_prob", "v_prob")}
  classes = jnp.arange(outputs["aud_cls_prob"].shape[0])
  out = {
      "av": losses_lib.bce(prob["global_prob"], y),
      "a": losses_lib.bce(prob["a_prob"], audio_smoothing * y + (1 - audio_smoothing) * 0.5),
      "v": losses_lib.bce(prob["v_prob"], visual_smoothing * y + (1 - visual_smoothing) * 0.5),
      "cls_aud": losses_lib.cross_entropy(outputs["aud_cls_prob"], classes),
      "cls_vis": losses_lib.cross_entropy(outputs["vis_cls_prob"], classes),
  }
  out["total"] = out["cls_aud"] + out["cls_vis"] + out["av"] + out["a"] + out["v"]
  return out
