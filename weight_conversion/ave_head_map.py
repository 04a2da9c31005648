"""Conversion of the AVE head (`temporal_attn.*`, `CMBS.*` of the official `MMIL_Net`).

Our `AVEHead` mirrors the reference's attribute names and keeps PyTorch's LSTM
and attention-projection layouts, so every key is an identity rename (plus an
optional prefix move); Linear kernels are transposed by the engine.

With the faithful `keep_dead_params=True` the unused reference parameters
(template encoder/decoder layers, decoder `self_attn`, `CMBS.AVInter/VAInter`,
`CMBS.video_norm/audio_norm`) are converted like the others; with `False` the
model lacks them and these rules ignore their keys, saying why.
"""
import re
from typing import Sequence

import jax.numpy as jnp
import numpy as np
from flax import nnx

from dgsct_jax.models import ave_head
from weight_conversion import engine
from weight_conversion.archs import Arch

HEAD_KEYS = r"(?:temporal_attn|CMBS)\..*"

DEAD_KEYS = (
    (r"temporal_attn\.(?:video|audio)_encoder\.encoder_layer\..*",
     "template EncoderLayer the reference deep-copies into `encoder.layers`; never called"),
    (r"temporal_attn\.(?:video|audio)_decoder\.decoder_layer\..*",
     "template DecoderLayer the reference deep-copies into `decoder.layers`; never called"),
    (r"temporal_attn\.(?:video|audio)_decoder\.decoder\.layers\.\d+\.self_attn\..*",
     "DecoderLayer.self_attn is built but never called by the reference"),
    (r"CMBS\.(?:AVInter|VAInter)\..*",
     "CMBS computes AVInter/VAInter but discards their outputs"),
    (r"CMBS\.(?:video|audio)_norm\..*", "CMBS.video_norm/audio_norm are never called"),
)


def rules(source_keys: Sequence[str] = (), *, source_prefix: str = "", target_prefix: str = "",
          keep_dead_params: bool = True) -> list[engine.Rule]:
  """Rules for the head's keys. `source_prefix` precedes `temporal_attn.`/`CMBS.` in the
  source (e.g. `module.`), `target_prefix` places the head inside a bigger model (e.g. `head.`).
  Keys outside the head are left to other rules."""
  del source_keys  # one naming only
  src = re.escape(source_prefix)
  out = []
  if not keep_dead_params:
    out += [engine.ignore(src + pattern, reason) for pattern, reason in DEAD_KEYS]
  out.append(engine.Rule(src + f"({HEAD_KEYS})", target_prefix.replace("\\", r"\\") + r"\1"))
  return out


def build(**config) -> ave_head.AVEHead:
  return ave_head.AVEHead(**config, rngs=nnx.Rngs(0))


def run(model: ave_head.AVEHead, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """{'visual' (B, T, visual_dim), 'audio' (B, T, audio_dim)} → the official outputs:
  is_event_scores (T, B, 1), event_scores (B, K), audio_visual_gate (T, B, 1), av_score (B, K),
  video_query_output / audio_query_output (T, B, d_model); eval mode, float32."""
  for name in ("visual", "audio"):
    if name not in inputs:
      raise KeyError(f"ave_head inputs lack {name!r} (have {sorted(inputs)})")
  visual = jnp.asarray(inputs["visual"], jnp.float32)
  audio = jnp.asarray(inputs["audio"], jnp.float32)
  if visual.ndim != 3 or audio.ndim != 3 or visual.shape[:2] != audio.shape[:2]:
    raise ValueError(f"ave_head inputs must be (B, T, C) with equal B, T: visual {visual.shape}, "
                     f"audio {audio.shape}")
  outputs = nnx.jit(lambda m, v, a: m(v, a, deterministic=True))(model, visual, audio)
  return {k: np.asarray(v) for k, v in ave_head.to_official_layout(outputs).items()}


ARCHS = [
    Arch(name="ave_head",
         description="DG-SCT AVE head: temporal_attn (CMBS-style) + CMBS, keys temporal_attn.*/CMBS.*",
         build=build,
         config={},
         rules=lambda keys: rules(keys) + [engine.ignore(
             r"(?!temporal_attn\.|CMBS\.).*", "outside the AVE head (full MMIL_Net checkpoint)")],
         run=run),
]
