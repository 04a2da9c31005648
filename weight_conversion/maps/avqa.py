r"""The AVQA head (AVST) and the whole official AVQA model (`AVQA_Fusion_Net`).

    python -m weight_conversion.convert --arch=dgsct_avqa --src=avst.pt --out=DIR

Archs:
  avqa_head   the AVST head alone (`heads.avqa.AVQAHead`); the other keys of a full
              checkpoint are ignored. `run`: `posi_map`, `nega_map` (B·T, 36, 1536) final
              Swin maps, `audio` (B·T, 768) pooled audio, `question` (B, 14) token ids →
              `out_qa` (B, 42), `out_match_posi`, `out_match_nega` (B·T, 2).
  dgsct_avqa  a whole official `AVQA_Fusion_Net` state dict (with or without
              DataParallel's `module.`) → `models.avqa.AVQAModel`: the backbone rules of
              maps/dgsct.py plus the head rules moved under `head.`. `run`: `audio`
              (B, T, S) waveforms (S = 320 000, or 32 000 segments the model tiles),
              `frames_posi`, `frames_nega` (B, T, 3, 192, 192), `question` (B, 14) → the
              three official outputs and `pooled_audio` (B, T, 768).

`AVQAHead` mirrors `AVQA_Fusion_Net`'s attribute names and keeps PyTorch's LSTM and
attention-projection layouts, so every head key is an identity rename (plus the
`head.` move); the engine transposes Linear kernels and reads Embedding tables as
they are. With `keep_dead_params=False` the dead head weights (`fc_a1_pure`,
`fc_a2_pure`, `norm3`) are ignored by name, with the reason.
"""
import re
from typing import Sequence

import jax.numpy as jnp
import numpy as np
from flax import nnx

from dgsct_jax.models import avqa
from dgsct_jax.models import presets
from dgsct_jax.models.heads import avqa as avqa_head
from weight_conversion import archs
from weight_conversion import engine
from weight_conversion.archs import Arch
from weight_conversion.maps import dgsct

HEAD_MODULES = ("fc_a1", "fc_a2", "fc_a1_pure", "fc_a2_pure", "fc_fusion", "linear11",
                "linear12", "linear21", "linear22", "norm1", "norm2", "norm3", "attn_a", "attn_v",
                "question_encoder", "fc_ans", "fc_gl", "fc1", "fc2", "fc3", "fc4")
HEAD_KEYS = "(?:" + "|".join(HEAD_MODULES) + r")\..*"
OUTPUTS = ("out_qa", "out_match_posi", "out_match_nega")

DEAD_HEAD_KEYS = (
    (r"fc_a[12]_pure\..*", "filled from the stage-1 grounding checkpoint, never called"),
    (r"norm3\..*", "built, never called"),
)


def rules(source_keys: Sequence[str] = (), *, target_prefix: str = "",
          keep_dead_params: bool = True) -> list[engine.Rule]:
  """Rules for the AVST head's keys; `target_prefix` places it inside the whole model."""
  del source_keys  # one naming only
  out = []
  if not keep_dead_params:
    out += [engine.ignore(pattern, reason) for pattern, reason in DEAD_HEAD_KEYS]
  out.append(engine.Rule(f"({HEAD_KEYS})", target_prefix.replace("\\", r"\\") + r"\1"))
  return out


def question_input(inputs: dict) -> np.ndarray:
  """`inputs['question']`: (B, L) integer token ids."""
  if "question" not in inputs:
    raise ValueError(f"the inputs need 'question'; found {sorted(inputs)}")
  question = np.asarray(inputs["question"])
  if question.ndim != 2 or not np.issubdtype(question.dtype, np.integer):
    raise ValueError(f"input 'question' must be (B, L) integer token ids, got "
                     f"{question.dtype} {question.shape}")
  return question.astype(np.int32)


def run_head(model: avqa_head.AVQAHead, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """{'posi_map', 'nega_map' (B·T, N, C), 'audio' (B·T, C_a), 'question' (B, L)} → the
  official outputs (eval, float32)."""
  question = question_input(inputs)
  b = question.shape[0]
  maps = [dgsct.float_input(inputs, name, 3) for name in ("posi_map", "nega_map")]
  audio = dgsct.float_input(inputs, "audio", 2)
  if len({m.shape[0] for m in maps} | {audio.shape[0]}) != 1 or audio.shape[0] % b:
    raise ValueError(f"avqa_head inputs: posi_map, nega_map and audio need the same B·T rows, "
                     f"a multiple of the {b} questions; got {maps[0].shape}, {maps[1].shape}, "
                     f"{audio.shape}")
  per_video = lambda x: jnp.asarray(x.reshape(b, -1, *x.shape[1:]))
  out = nnx.jit(lambda m, *x: m(*x, deterministic=True))(
      model, per_video(maps[0]), per_video(maps[1]), per_video(audio), jnp.asarray(question))
  official = avqa_head.to_official_layout({k: out[k] for k in OUTPUTS})
  return {k: np.asarray(v) for k, v in official.items()}


@nnx.jit
def _forward(model, audio, frames, negatives, question):
  return model(audio, frames, negatives, question, deterministic=True)


def run(model: avqa.AVQAModel, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Eval-mode float32 forward: {'audio', 'frames_posi', 'frames_nega', 'question'} → the
  official outputs and `pooled_audio`."""
  audio = dgsct.audio_input(model, inputs)
  frames = dgsct.float_input(inputs, "frames_posi", 5)
  negatives = dgsct.float_input(inputs, "frames_nega", 5)
  out = _forward(model, *map(jnp.asarray, (audio, frames, negatives, question_input(inputs))))
  official = avqa_head.to_official_layout({k: out[k] for k in OUTPUTS})
  official["pooled_audio"] = out["pooled_audio"]
  return {k: np.asarray(v) for k, v in official.items()}


ARCHS = [
    Arch(name="avqa_head",
         description="DG-SCT AVQA head (AVST): question_encoder, fc_a*, fc_gl, fc1-fc4, "
                     "attn_a/attn_v, linear*, norm*, fc_fusion, fc_ans",
         build=lambda **config: avqa_head.AVQAHead(**config, rngs=nnx.Rngs(0)),
         config={}, config_keys=archs.keyword_args(avqa_head.AVQAHead),
         rules=lambda keys: rules(keys) + [engine.ignore(
             rf"(?!(?:{'|'.join(map(re.escape, HEAD_MODULES))})\.).*",
             "outside the AVST head (full AVQA_Fusion_Net checkpoint)")],
         run=run_head),
    dgsct.whole_model(
        name="dgsct_avqa",
        description="official DG-SCT AVQA model (AVQA_Fusion_Net: swin.*, htsat.*, 4 adapter "
                    "sets, AVST head), e.g. net_grd_avst/avst_models/avst.pt",
        model=avqa.AVQAModel, config=presets.avqa("large"),
        head_rules=lambda keys: rules(keys, target_prefix="head."), run=run),
]
