"""The DG-SCT AVE model: the Swin-V2 + HTS-AT backbone, then the CMBS head (spec §4).

    model = AVEModel(presets.ave("large"), rngs=nnx.Rngs(43))
    out = model(audio (B, T, S), frames (B, T, 3, H, W), deterministic=True)

State paths mirror the official `MMIL_Net` state dict: `swin.*`, `htsat.*`,
`{vis,audio}_adapter_blocks_p{1,2}.{i}.*`, and the head under `head.`
(`head.temporal_attn.*`, `head.CMBS.*`); see weight_conversion/maps/ave.py.

Outputs (batch-major dict): `is_event_scores` (B, T) logits, `event_scores`
(B, K), `audio_visual_gate` (B, T), `av_score` (B, K) (head; official layouts
via `heads.ave.to_official_layout`), `video_query_output`/`audio_query_output`
(B, T, 256), `pooled_visual` (B, T, C_v), `pooled_audio` (B, T, C_a), and, when
the last adapters have spatial maps, `visual_smap` (B, T, N_v) / `audio_smap`
(B, T, N_a) (softmax pooling maps over the final token grids `smap_grids()`;
the audio grid is over the folded log-mel image). With `capture=True` also
`aux` (the backbone's per-stage features and every adapter's outputs).
"""
from flax import nnx

from dgsct_jax.models import backbone
from dgsct_jax.models.heads import ave as ave_head


class AVEModel(backbone.TaskModel):
  """DG-SCT (`swin` + `htsat` + adapters) and the AVE head `head`."""

  TASK = "AVE"
  HEAD = ave_head.AVEHead

  def __call__(self, audio, frames, *, deterministic: bool = True, rngs: nnx.Rngs | None = None,
               capture: bool = False):
    """audio (B, T, S) waveforms, frames (B, T, 3, H, W) normalised images → dict (module doc)."""
    v, a, aux = self.encode_segments(audio, frames, deterministic=deterministic, rngs=rngs,
                                     capture=capture)
    out = self.head(v, a, deterministic=deterministic, rngs=rngs)
    out.update(pooled_visual=v, pooled_audio=a)
    out.update({k: aux[k] for k in ("visual_smap", "audio_smap") if aux[k] is not None})
    if capture:
      out["aux"] = aux
    return out
