"""The DG-SCT AVS model (AVSBench S4 and MS3): the Swin-V2 + HTS-AT backbone in AVS's
setting, then the decoder of `heads.avs` on the four Swin stages (spec
dgsct_tasks.md §0, §2.2).

    model = AVSModel(presets.avs("large", "s4"), rngs=nnx.Rngs(0))
    out = model(audio (B, T, S), frames (B, T, 3, 224, 224))

The reference's `Pred_endecoder`: frames resized 224² → 192² in the model, T = 5
one-second segments each tiled to a 5-s clip (160 000 samples), AVS's adapter
variants (`presets.ADAPTER_AVS_S4` / `_MS3`), log-mel mixup in training and, in
S4, HTS-AT trained. The decoder reads each Swin stage's tokens before its patch
merging (the last stage after the final norm) and the audio pooled by the last
p2 audio adapter's spatial map. State paths mirror the official keys (`swin.*`,
`htsat.*`, the adapter sets at the top level) with the decoder under `head.`
(weight_conversion/maps/avs.py).

Outputs (dict): those of `heads.avs.AVSHead` (`pred` (B·T, H, W, 1) mask logits,
`a_fea_stage{i}`, `v_map_stage{i}`) plus `pooled_audio` (B, T, C_a).
"""
from flax import nnx

from dgsct_jax.models import backbone
from dgsct_jax.models.heads import avs as avs_head


class AVSModel(backbone.TaskModel):
  """DG-SCT (`swin` + `htsat` + adapters) and the AVS decoder `head`."""

  TASK = "AVS"
  HEAD = avs_head.AVSHead

  def head_arguments(self, cfg) -> dict:
    """`head` as is; its stage widths and audio width must be the encoders'."""
    if cfg["num_classes"] != 1:
      raise ValueError(f"AVS model config: num_classes={cfg['num_classes']}, but the decoder "
                       "predicts one foreground mask (num_classes=1)")
    head = dict(cfg["head"])
    self.check_head_dim(head, "stage_dims", tuple(layer.dim for layer in self.swin.layers))
    self.check_head_dim(head, "audio_dim", self.htsat.num_features)
    head["stage_dims"] = tuple(head["stage_dims"])
    return head

  def __call__(self, audio, frames, *, deterministic: bool = True,
               rngs: nnx.Rngs | None = None, capture: bool = False):
    """audio (B, T, S) waveforms, frames (B, T, 3, H, W) normalised images → dict
    (module doc)."""
    _, a, aux = self.encode_segments(audio, frames, deterministic=deterministic, rngs=rngs,
                                     capture=capture)
    stages = list(aux["visual_stages"][:-1]) + [aux["visual_tokens"]]
    out = self.head(stages, a, deterministic=deterministic, rngs=rngs, capture=capture)
    out["pooled_audio"] = a
    if capture:
      out["aux"] = aux
    return out
