r"""The AVS head (`Pred_endecoder` after the encoders) and the whole official AVS models.

    python -m weight_conversion.convert --arch=dgsct_avs_s4 --src=S4_pvt_best.pth --out=DIR

Archs:
  dgsct_avs_s4, dgsct_avs_ms3  a whole official `Pred_endecoder` state dict (S4 or MS3)
            → `models.avs.AVSModel` (presets.avs): the backbone rules of maps/dgsct.py, the
            head rules below moved under `head.`, and ignored by name: the dead PVT-v2-b5,
            ASPP and `x*_linear`, and the adapters' unused layers (`temporal_gated`,
            `ln_before`, which AVS's multimodal branch skips, and S4's `conv_adapter`).
            `run`: `audio` (B, T, S) waveforms (S = 160 000, or 32 000 segments the model
            tiles), `frames` (B, T, 3, 224, 224) → `pred` (B·T, 1, 224, 224) logits,
            `a_fea_stage1..4` (B, T, 256), `pooled_audio` (B, T, 768). MS3's trained
            model uses γ = 0.1; its test.sh evaluates with 0.05:
            `--model_config='{"head": {..., "gamma": 0.05}}'`.
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

from dgsct_jax.models import avs
from dgsct_jax.models import presets
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




def dead_adapter_rules(adapter: dict) -> list[engine.Rule]:
  """The layers AVS's `VisualAdapter` builds but never uses (which depend on its options)."""
  sets = dgsct.ADAPTER_SETS + r"\.\d+\."
  out = [engine.ignore(sets + r"temporal_gated\..*",
                       "AVS's VisualAdapter builds temporal_gated but never uses its output"),
         engine.ignore(sets + r"ln_before\..*",
                       "built, but the multimodal branch of AVS's VisualAdapter skips ln_before")]
  if adapter["guide_alignment"] == "resize":
    out.append(engine.ignore(sets + r"conv_adapter\..*", "built, but AVS-S4 aligns the guide "
                             "tokens by fc and a bicubic resize instead"))
  return out


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


@nnx.jit
def _forward(model, audio, frames):
  return model(audio, frames, deterministic=True)


def run(model: avs.AVSModel, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Eval-mode float32 forward: {'audio', 'frames'} → `pred`, `a_fea_stage*` (official
  layouts) and `pooled_audio`."""
  audio = dgsct.audio_input(model, inputs)
  frames = dgsct.float_input(inputs, "frames", 5)
  out = _forward(model, jnp.asarray(audio), jnp.asarray(frames))
  official = avs_head.to_official_layout({k: out[k] for k in OUTPUTS})
  official["pooled_audio"] = out["pooled_audio"]
  return {k: np.asarray(v) for k, v in official.items()}


def _whole_model(subset: str) -> Arch:
  config = presets.avs("large", subset)
  return dgsct.whole_model(
      name=f"dgsct_avs_{subset}",
      description=f"official DG-SCT AVS-{subset.upper()} model (Pred_endecoder: swin.*, "
                  f"htsat.*, 4 adapter sets, decoder), e.g. {subset.upper()}_pvt_best.pth",
      model=avs.AVSModel, config=config,
      head_rules=lambda keys: (
          rules(keys, target_prefix="head.") + dead_adapter_rules(config["adapter"])
          + [engine.ignore(p, r) for p, r in UNUSED_MODEL_KEYS]),
      run=run)


ARCHS = [
    Arch(name="avs_head",
         description="DG-SCT AVS head (S4; MS3 with gamma 0.1): x*_linear_, audio_linear, "
                     "temporal_attn, tpavi_b*, path*, output_conv",
         build=lambda **config: avs_head.AVSHead(**config, rngs=nnx.Rngs(0)),
         config={}, config_keys=archs.keyword_args(avs_head.AVSHead),
         rules=lambda keys: (rules(keys) + [engine.ignore(p, r) for p, r in UNUSED_MODEL_KEYS]
                             + [_outside_head()]),
         run=run_head),
    _whole_model("s4"),
    _whole_model("ms3"),
]
