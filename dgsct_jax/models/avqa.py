"""The DG-SCT AVQA model (MUSIC-AVQA): the Swin-V2 + HTS-AT backbone in AVQA's setting,
then the AVST head of `heads.avqa` (spec dgsct_tasks.md §0, §3.2).

    model = AVQAModel(presets.avqa("large"), rngs=nnx.Rngs(0))
    out = model(audio (B, T, S), frames (B, T, 3, 192, 192), negatives (B, T, 3, 192, 192),
                question (B, L))

The reference's `AVQA_Fusion_Net`: AVQA's adapters (`presets.ADAPTER_AVQA`), log-mel
mixup in training, and a head that reads the adapted Swin's final map after its norm
(unpooled, (B, T, N, C)) and the audio pooled by the last p2 audio adapter's spatial
map. The negative frames go through the plain frozen Swin (no adapters, no gradient:
the reference's `swin.forward_features` under `no_grad`), in train mode when the
encoders are. State paths mirror the official keys (`swin.*`, `htsat.*`, the adapter
sets at the top level) with the head under `head.` (weight_conversion/maps/avqa.py).

Outputs (batch-major dict): those of `heads.avqa.AVQAHead` (`out_qa` (B, 42),
`out_match_posi`, `out_match_nega` (B, T, 2)) plus `pooled_audio` (B, T, C_a).
"""
import jax
from flax import nnx

from dgsct_jax.models import backbone
from dgsct_jax.models import matmul
from dgsct_jax.models.heads import avqa as avqa_head


class AVQAModel(backbone.TaskModel):
  """DG-SCT (`swin` + `htsat` + adapters) and the AVST head `head`."""

  TASK = "AVQA"
  HEAD = avqa_head.AVQAHead

  def plain_visual_map(self, frames, *, deterministic: bool, rngs):
    """(B, T, 3, H, W) frames → the frozen Swin's final map (B, T, N, C), without
    adapters and without gradient."""
    with matmul.operand_dtype(self.matmul_dtype):
      tokens, _ = self.swin(self.images(frames),
                            deterministic=self.encoders_deterministic(deterministic), rngs=rngs)
    return jax.lax.stop_gradient(tokens).reshape(*frames.shape[:2], *tokens.shape[1:])

  def __call__(self, audio, frames, negatives, question, *, deterministic: bool = True,
               rngs: nnx.Rngs | None = None, capture: bool = False):
    """audio (B, T, S) waveforms, frames and negatives (B, T, 3, H, W) normalised images,
    question (B, L) token ids → dict (module doc)."""
    _, a, aux = self.encode_segments(audio, frames, deterministic=deterministic, rngs=rngs,
                                     capture=capture)
    posi_map = aux["visual_tokens"].reshape(*frames.shape[:2], *aux["visual_tokens"].shape[1:])
    nega_map = self.plain_visual_map(negatives, deterministic=deterministic, rngs=rngs)
    out = self.head(posi_map, nega_map, a, question, deterministic=deterministic, rngs=rngs,
                    capture=capture)
    out["pooled_audio"] = a
    if capture:
      aux.update(posi_map=posi_map, nega_map=nega_map)
      out["aux"] = aux
    return out
