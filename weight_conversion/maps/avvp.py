r"""The AVVP head (MGN) and the whole official AVVP model (`MGN_Net`).

    python -m weight_conversion.convert --arch=dgsct_avvp --src=MGN_Net.pt --out=DIR

Archs:
  avvp_head   the MGN head alone (`heads.avvp.MGNHead`); other keys of a full checkpoint
              are ignored. `run`: `visual` (B, T, 1536), `audio` (B, T, 768),
              `video_st` (B, T, 512) → the seven official outputs.
  dgsct_avvp  a whole official `MGN_Net` state dict (with or without DataParallel's
              `module.`) → `models.avvp.AVVPModel`: the backbone rules of maps/dgsct.py
              plus the head rules moved under `head.`.

`MGNHead` mirrors `MGN_Net`'s attribute names and keeps PyTorch's LSTM and
attention-projection layouts: every head key is an identity rename (plus the
`head.` move); the engine transposes Linear kernels. Ignored by name, with the
reason: the AVVP adapters' `fc_caption` and `temporal_gated` (built, or
evaluated, and never used), and with `keep_dead_params=False` the temporal
encoders' template `encoder_layer`.

`run` of dgsct_avvp: `audio` (B, T, S) waveforms (S = 320 000, or 32 000 segments the
model tiles), `frames` (B, T, 3, 192, 192) normalised images, `video_st` (B, T, 512)
→ `aud_cls_prob`, `vis_cls_prob` (25, 25), `global_prob`, `a_prob`, `v_prob` (B, 25),
`a_frame_prob`, `v_frame_prob` (B, T, 25) (the official layouts), `pooled_audio`
(B, T, 768) and `pooled_visual` (B, T, 1536) (the head's inputs).
"""
import re
from typing import Sequence

import jax.numpy as jnp
import numpy as np
from flax import nnx

from dgsct_jax.models import avvp
from dgsct_jax.models import presets
from dgsct_jax.models.heads import avvp as avvp_head
from weight_conversion import archs
from weight_conversion import engine
from weight_conversion.archs import Arch
from weight_conversion.maps import dgsct

HEAD_MODULES = ("fc_a", "fc_v", "fc_st", "fc_fusion", "audio_token", "visual_token",
                "audio_cug", "visual_cug", "av_mcg", "fc_prob", "fc_prob_a", "fc_prob_v",
                "fc_cls", "temporal_attn")
HEAD_KEYS = "(?:" + "|".join(HEAD_MODULES) + r")(?:\..*)?"
OUTPUTS = ("aud_cls_prob", "vis_cls_prob", "global_prob", "a_prob", "v_prob", "a_frame_prob",
           "v_frame_prob")

DEAD_ADAPTER_KEYS = (
    (dgsct.ADAPTER_SETS + r"\.\d+\.fc_caption\..*",
     "AVVP's VisualAdapter builds fc_caption; the forward never passes a caption"),
    (dgsct.ADAPTER_SETS + r"\.\d+\.temporal_gated\..*",
     "AVVP's VisualAdapter evaluates temporal_gated but never uses its output"),
)
DEAD_HEAD_KEYS = (
    (r"temporal_attn\.(?:video|audio)_encoder\.encoder_layer\..*",
     "template EncoderLayer the reference deep-copies into `encoder.layers`; never called"),
)


def rules(source_keys: Sequence[str] = (), *, target_prefix: str = "",
          keep_dead_params: bool = True) -> list[engine.Rule]:
  """Rules for the MGN head's keys (and the AVVP adapters' dead layers);
  `target_prefix` places the head inside the whole model (`head.`)."""
  del source_keys  # one naming only
  out = [engine.ignore(pattern, reason) for pattern, reason in DEAD_ADAPTER_KEYS]
  if not keep_dead_params:
    out += [engine.ignore(pattern, reason) for pattern, reason in DEAD_HEAD_KEYS]
  out.append(engine.Rule(f"({HEAD_KEYS})", target_prefix.replace("\\", r"\\") + r"\1"))
  return out


def run_head(model: avvp_head.MGNHead, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """{'visual', 'audio', 'video_st'} (B, T, ·) → the seven official outputs (eval, float32)."""
  arrays = [dgsct.float_input(inputs, name, 3) for name in ("visual", "audio", "video_st")]
  if len({a.shape[:2] for a in arrays}) != 1:
    raise ValueError(f"avvp_head inputs must be (B, T, C) with equal B, T: "
                     f"{[a.shape for a in arrays]}")
  out = nnx.jit(lambda m, *x: m(*x, deterministic=True))(model, *map(jnp.asarray, arrays))
  return {k: np.asarray(out[k]) for k in OUTPUTS}


@nnx.jit
def _forward(model, audio, frames, video_st):
  return model(audio, frames, video_st, deterministic=True)


def run(model: avvp.AVVPModel, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Eval-mode float32 forward: {'audio', 'frames', 'video_st'} → official outputs +
  pooled features."""
  audio = dgsct.audio_input(model, inputs)
  frames = dgsct.float_input(inputs, "frames", 5)
  video_st = dgsct.float_input(inputs, "video_st", 3)
  out = _forward(model, jnp.asarray(audio), jnp.asarray(frames), jnp.asarray(video_st))
  return {k: np.asarray(out[k]) for k in OUTPUTS + ("pooled_audio", "pooled_visual")}


ARCHS = [
    Arch(name="avvp_head",
         description="DG-SCT AVVP head: MGN grouping + temporal_attn (keys fc_*, *_token, "
                     "audio_cug, visual_cug, av_mcg, temporal_attn)",
         build=lambda **config: avvp_head.MGNHead(**config, rngs=nnx.Rngs(0)),
         config={}, config_keys=archs.keyword_args(avvp_head.MGNHead),
         rules=lambda keys: rules(keys) + [engine.ignore(
             rf"(?!(?:{'|'.join(map(re.escape, HEAD_MODULES))})(?:\.|$)).*",
             "outside the MGN head (full MGN_Net checkpoint)")],
         run=run_head),
    dgsct.whole_model(
        name="dgsct_avvp",
        description="official DG-SCT AVVP model (MGN_Net: swin.*, htsat.*, 4 adapter sets, "
                    "MGN head), e.g. models/MGN_Net.pt",
        model=avvp.AVVPModel, config=presets.avvp("large"),
        head_rules=lambda keys: rules(keys, target_prefix="head."), run=run),
]
