r"""The AVE head (`temporal_attn.*`, `CMBS.*`) and the whole official AVE model.

    python -m weight_conversion.convert --arch=dgsct_ave --src=best_82.18.pt --out=DIR

Archs:
  ave_head    the head alone (`heads.ave.AVEHead`); other keys of a full checkpoint
              are ignored. `run`: `visual` (B, T, 1536), `audio` (B, T, 768) → the
              official outputs.
  dgsct_ave   a whole official `MMIL_Net` state dict (`best_82.18.pt`) →
              `models.ave.AVEModel`: the backbone rules of maps/dgsct.py plus the head
              rules moved under `head.`.

Our `AVEHead` mirrors the reference's attribute names and keeps PyTorch's LSTM
and attention-projection layouts, so every head key is an identity rename (plus
a prefix move); Linear kernels are transposed by the engine. With the faithful
`keep_dead_params=True` the unused reference parameters (template
encoder/decoder layers, decoder `self_attn`, `CMBS.AVInter/VAInter`,
`CMBS.video_norm/audio_norm`) are converted like the others; with `False` the
model lacks them and the rules ignore their keys, saying why.

`run` of dgsct_ave (weight_conversion.run): inputs `audio` (B, T, S) waveforms
(S = 320 000, or 32 000 segments that the model tiles) and `frames`
(B, T, 3, 192, 192) normalised images; outputs in the official layouts
`is_event_scores` (T, B, 1), `event_scores` (B, 28), `audio_visual_gate`
(T, B, 1), `av_score` (B, 28), plus `pooled_visual` (B, T, 1536) and
`pooled_audio` (B, T, 768) (the inputs of `temporal_attn`).
"""
import re
from typing import Sequence

import jax.numpy as jnp
import numpy as np
from flax import nnx

from dgsct_jax.models import ave
from dgsct_jax.models import presets
from dgsct_jax.models.heads import ave as ave_head
from weight_conversion import engine
from weight_conversion import archs
from weight_conversion.archs import Arch
from weight_conversion.maps import dgsct

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


def run_head(model: ave_head.AVEHead, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """{'visual' (B, T, visual_dim), 'audio' (B, T, audio_dim)} → the official outputs:
  is_event_scores (T, B, 1), event_scores (B, K), audio_visual_gate (T, B, 1), av_score (B, K),
  video_query_output / audio_query_output (T, B, d_model); eval mode, float32."""
  visual, audio = dgsct.float_input(inputs, "visual", 3), dgsct.float_input(inputs, "audio", 3)
  if visual.shape[:2] != audio.shape[:2]:
    raise ValueError(f"ave_head inputs must be (B, T, C) with equal B, T: visual {visual.shape}, "
                     f"audio {audio.shape}")
  outputs = nnx.jit(lambda m, v, a: m(v, a, deterministic=True))(model, jnp.asarray(visual),
                                                                  jnp.asarray(audio))
  return {k: np.asarray(v) for k, v in ave_head.to_official_layout(outputs).items()}


@nnx.jit
def _forward(model, audio, frames):
  return model(audio, frames, deterministic=True)


def run(model: ave.AVEModel, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Eval-mode float32 forward: {'audio', 'frames'} → official-layout outputs + pooled features."""
  audio, frames = dgsct.audio_input(model, inputs), dgsct.float_input(inputs, "frames", 5)
  out = _forward(model, jnp.asarray(audio), jnp.asarray(frames))
  official = ave_head.to_official_layout(
      {k: out[k] for k in ("is_event_scores", "event_scores", "audio_visual_gate", "av_score")})
  official.update(pooled_visual=out["pooled_visual"], pooled_audio=out["pooled_audio"])
  return {k: np.asarray(v) for k, v in official.items()}


ARCHS = [
    Arch(name="ave_head",
         description="DG-SCT AVE head: temporal_attn (CMBS-style) + CMBS, keys temporal_attn.*/CMBS.*",
         build=lambda **config: ave_head.AVEHead(**config, rngs=nnx.Rngs(0)),
         config={}, config_keys=archs.keyword_args(ave_head.AVEHead),
         rules=lambda keys: rules(keys) + [engine.ignore(
             r"(?!temporal_attn\.|CMBS\.).*", "outside the AVE head (full MMIL_Net checkpoint)")],
         run=run_head),
    dgsct.whole_model(
        name="dgsct_ave",
        description="official DG-SCT AVE model (MMIL_Net: swin.*, htsat.*, 4 adapter sets, "
                    "temporal_attn.*, CMBS.*), e.g. best_82.18.pt",
        model=ave.AVEModel, config=presets.ave("large"),
        head_rules=lambda keys: rules(keys, target_prefix="head."), run=run),
]
