"""The DG-SCT AVVP model: the Swin-V2 + HTS-AT backbone, then the MGN head (spec
dgsct_tasks.md §0, §1.2).

    model = AVVPModel(presets.avvp("large"), rngs=nnx.Rngs(0))
    out = model(audio (B, T, S), frames (B, T, 3, H, W), video_st (B, T, 512))

The backbone is AVE's (the same adapters, pairing and pooling by the last p2
adapters' spatial maps) with log-mel mixup in training. State paths mirror the
official `MGN_Net` (`swin.*`, `htsat.*`, the adapter sets at the top level) with
the MGN layers under `head.` (weight_conversion/maps/avvp.py).

Outputs (batch-major dict): those of `heads.avvp.MGNHead` (`global_prob`,
`a_prob`, `v_prob` (B, C); `a_frame_prob`, `v_frame_prob` (B, T, C);
`aud_cls_prob`, `vis_cls_prob` (C, C)) plus `pooled_visual` (B, T, C_v) and
`pooled_audio` (B, T, C_a) (the head's inputs).
"""
from flax import nnx

from dgsct_jax.models import backbone
from dgsct_jax.models.heads import avvp as avvp_head


class AVVPModel(backbone.TaskModel):
  """DG-SCT (`swin` + `htsat` + adapters) and the MGN head `head`."""

  TASK = "AVVP"
  HEAD = avvp_head.MGNHead

  def __call__(self, audio, frames, video_st, *, deterministic: bool = True,
               rngs: nnx.Rngs | None = None, capture: bool = False):
    """audio (B, T, S) waveforms, frames (B, T, 3, H, W) normalised images, video_st
    (B, T, 512) R(2+1)D features → dict (module doc)."""
    v, a, aux = self.encode_segments(audio, frames, deterministic=deterministic, rngs=rngs,
                                     capture=capture)
    out = self.head(v, a, video_st, deterministic=deterministic, rngs=rngs, capture=capture)
    out.update(pooled_visual=v, pooled_audio=a)
    if capture:
      out["aux"] = aux
    return out
