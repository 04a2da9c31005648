"""AVE targets and the four losses of the reference.

Reference: `train` in `DG-SCT/AVE/main_trans.py`; spec dgsct_core.md §4.3, §8.5.
Labels are the dataset's (B, T, K + 1) one-hot rows, index K = background.
Model outputs are the batch-major dict of `models.heads.ave.AVEHead`. Every
function is pure jnp (jit-able) and accepts numpy.
"""
import jax.numpy as jnp

from dgsct_jax import losses as losses_lib
from dgsct_jax.metrics import ave as ave_metrics


def targets(labels):
  """(B, T, K + 1) one-hot labels → the reference's training and evaluation targets.

  `segment_is_event` (B, T) float: max over the K foreground entries (1 on event segments).
  `video_class` (B,) int: max over time of the per-segment argmax of the foreground part
  (background segments give argmax 0, so a video with events gets its event class).
  `segment_class` (B, T) int: argmax of the (K + 1)-way row, the accuracy target.
  Argmax ties resolve to the first index, as in PyTorch.
  """
  labels = jnp.asarray(labels)
  foreground = labels[..., :-1]
  return {
      "segment_is_event": foreground.max(axis=-1).astype(jnp.float32),
      "video_class": jnp.argmax(foreground, axis=-1).max(axis=-1),
      "segment_class": ave_metrics.segment_classes(labels),
  }


def losses(outputs: dict, labels, *, gate_loss_on_logits: bool = True) -> dict:
  """The four equally weighted AVE losses and their sum (`total`).

  `gate_loss_on_logits=True` (faithful, spec §8.5): the reference feeds
  `audio_visual_gate`, already a product of two sigmoids in (0, 1), to
  BCE-*with-logits*, i.e. squashes it a second time (inherited from CMBS).
  `False` uses plain BCE on the gate as a probability.
  """
  t = targets(labels)
  seg = t["segment_is_event"]
  gate = outputs["audio_visual_gate"]
  out = {
      "is_event": losses_lib.bce_with_logits(outputs["is_event_scores"], seg),
      "gate": (losses_lib.bce_with_logits(gate, seg) if gate_loss_on_logits
               else losses_lib.bce(gate, seg)),
      "event_class": losses_lib.cross_entropy(outputs["event_scores"], t["video_class"]),
      "cas": losses_lib.cross_entropy(outputs["av_score"], t["video_class"]),
  }
  out["total"] = out["is_event"] + out["gate"] + out["event_class"] + out["cas"]
  return out
