r"""The AVS head (`Pred_endecoder` after the encoders), S4 and MS3.

    python -m weight_conversion.convert --arch=avs_head --src=S4_pvt_best.pth --out=DIR

Arch:
  avs_head  the head alone (`heads.avs.AVSHead`): `x{1..4}_linear_`, `audio_linear`,
            `temporal_attn`, `tpavi_b{1..4}`, `path{1..4}`, `output_conv`; the other keys
            of a full checkpoint are ignored (named: PVT-v2-b5, ASPP and `x*_linear`,
            built but unused by DG-SCT). `run`: `stage1..stage4` (BF, N_i, C_i) Swin
            tokens, `audio` (B, T, 768) pooled audio → `pred` (BF, 1, 224, 224) logits and
            `a_fea_stage1..4` (B, T, 256), the official layouts. The MS3 head is the same
            with `--model_config='{"gamma": 0.1}'` (MS3's training γ).

`AVSHead` mirrors the reference's attribute names (`audio_gated.{i}.0` is the Linear
of a Sequential, `output_conv.{0,2,4}` its convs), so head keys are identity renames.
The engine transposes Linear kernels and turns Conv2d OIHW into HWIO; TPAVI's Conv3d
1×1×1 weights (out, in, 1, 1, 1) become Linear kernels (in, out) (`conv1x1x1_to_linear`).
Ignored by name, with the reason: TPAVI BatchNorm's `num_batches_tracked`, and with
`keep_dead_params=False` the dead head parameters (temporal decoders, template encoder
layers, `path4.resConfUnit1`).
"""
import re
from typing import Sequence

import jax.numpy as jnp
import numpy as np
from flax import nnx

from dgsct_jax.models.heads import avs as avs_head
from weight_conversion import archs
from weight_conversion import engine
from weight_conversion.archs import Arch
from weight_conversion.maps import dgsct

HEAD_MODULES = ("x1_linear_", "x2_linear_", "x3_linear_", "x4_linear_", "audio_linear",
                "temporal_attn", "tpavi_b1", "tpavi_b2", "tpavi_b3", "tpavi_b4", "path1", "path2",
                "path3", "path4", "output_conv")
HEAD_KEYS = "(?:" + "|".join(HEAD_MODULES) + r")\..*"
STAGES = ("stage1", "stage2", "stage3", "stage4")
OUTPUTS = ("pred",) + tuple(f"a_fea_{s}" for s in STAGES)

DEAD_HEAD_KEYS = (
    (r"temporal_attn\.(?:video|audio)_decoder\..*",
     "TemporalAttention computes the CMBS decoders and discards their outputs"),
    (r"temporal_attn\.(?:video|audio)_encoder\.\d+\.encoder_layer\..*",
     "template EncoderLayer the reference deep-copies into `encoder.layers`; never called"),
    (r"path4\.resConfUnit1\..*", "path4 gets a single input, so its resConfUnit1 is never called"),
)
# Modules of the full `Pred_endecoder` that DG-SCT builds but never calls.
UNUSED_MODEL_KEYS = (
    (r"encoder_backbone\..*", "the PVT-v2-b5 backbone is built but DG-SCT runs Swin-V2"),
    (r"conv[1-4]\..*", "the ASPP Classifier_Modules are built but not called"),
    (r"x[1-4]_linear\..*", "x*_linear (without underscore) are built but not called"),
)


def conv1x1x1_to_linear(weight: np.ndarray) -> np.ndarray:
  """Conv3d 1×1×1 weight (out, in, 1, 1, 1) → Linear kernel (in, out)."""
  return weight.reshape(weight.shape[:2]).T


def rules(source_keys: Sequence[str] = (), *, target_prefix: str = "",
          keep_dead_params: bool = True) -> list[engine.Rule]:
  """Rules for the AVS head's keys; `target_prefix` places the head inside a whole model."""
  del source_keys  # one naming only
  target = target_prefix.replace("\\", r"\\") + r"\1"
  out = [engine.ignore(r"tpavi_b[1-4]\.W_z\.1\.num_batches_tracked",
                       "PyTorch BatchNorm step counter: unused with a fixed momentum")]
  if not keep_dead_params:
    out += [engine.ignore(pattern, reason) for pattern, reason in DEAD_HEAD_KEYS]
  out.append(engine.Rule(r"(tpavi_b[1-4]\.(?:theta|phi|g|W_z\.0)\.weight)", target,
                         transform=conv1x1x1_to_linear))
  out.append(engine.Rule(f"({HEAD_KEYS})", target))
  return out


def run_head(model: avs_head.AVSHead, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """{'stage1'..'stage4' (BF, N_i, C_i), 'audio' (B, T, 768)} → `pred` (BF, 1, 224, 224),
  `a_fea_stage1..4` (B, T, 256); eval mode, float32."""
  stages = [jnp.asarray(dgsct.float_input(inputs, name, 3)) for name in STAGES]
  audio = jnp.asarray(dgsct.float_input(inputs, "audio", 3))
  out = nnx.jit(lambda m, s, a: m(s, a, deterministic=True))(model, stages, audio)
  official = avs_head.to_official_layout({k: out[k] for k in OUTPUTS})
  return {k: np.asarray(v) for k, v in official.items()}


def _outside_head() -> engine.Rule:
  modules = "|".join(map(re.escape, HEAD_MODULES))
  return engine.ignore(rf"(?!(?:{modules})\.).*", "outside the AVS head (full Pred_endecoder "
                       "checkpoint: encoders and adapters)")


ARCHS = [
    Arch(name="avs_head",
         description="DG-SCT AVS head (S4; MS3 with gamma 0.1): x*_linear_, audio_linear, "
                     "temporal_attn, tpavi_b*, path*, output_conv",
         build=lambda **config: avs_head.AVSHead(**config, rngs=nnx.Rngs(0)),
         config={}, config_keys=archs.keyword_args(avs_head.AVSHead),
         rules=lambda keys: (rules(keys) + [engine.ignore(p, r) for p, r in UNUSED_MODEL_KEYS]
                             + [_outside_head()]),
         run=run_head),
]
