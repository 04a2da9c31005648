r"""Official DG-SCT AVE checkpoints (`MMIL_Net` state dict) → dgsct_jax.models.ave.AVEModel.

    python -m weight_conversion.convert --arch=dgsct_ave --src=best_82.18.pt --out=DIR

Every key of the official model is mapped with the rules of the part it belongs to:
`swin.*` with the Swin-V2 rules (weight_conversion/swinv2_map.py, both timm layouts),
`htsat.*` with the HTS-AT rules (htsat_map.py; its recomputed constants are checked
against the source), `temporal_attn.*` / `CMBS.*` with the head rules
(ave_head_map.py) moved under `head.`, and the four adapter sets
`{vis,audio}_adapter_blocks_p{1,2}.{i}.*` by identity (our `Adapter` mirrors
`VisualAdapter`; Conv2d weights (out, in/groups, 1, 1) become HWIO kernels).
Ignored, by name and with a reason: `adapter_token_downsampler.*` (built, never
used), BatchNorm `num_batches_tracked`, the Swin classifier head, and the encoders'
recomputed buffers. Anything else unknown or missing stops the conversion.

`assemble(swin_dir, htsat_dir)` builds the starting point of training instead: a
fresh AVE model (adapters and head initialised as in the reference, output gates
at 0) whose frozen encoders come from separately converted Swin-V2 and HTS-AT
directories.

`run` (weight_conversion.run): inputs `audio` (B, T, S) waveforms (S = 320 000, or
32 000 segments that the model tiles) and `frames` (B, T, 3, 192, 192) normalised
images; outputs in the official layouts `is_event_scores` (T, B, 1), `event_scores`
(B, 28), `audio_visual_gate` (T, B, 1), `av_score` (B, 28), plus `pooled_visual`
(B, T, 1536) and `pooled_audio` (B, T, 768) (the inputs of `temporal_attn`).
"""
import dataclasses
import re
from typing import Sequence

import jax
import numpy as np
from flax import nnx

from dgsct_jax.models import ave
from dgsct_jax.models import ave_head
from dgsct_jax.models import htsat
from weight_conversion import ave_head_map
from weight_conversion import engine
from weight_conversion import htsat_map
from weight_conversion import store
from weight_conversion import swinv2_map
from weight_conversion.archs import Arch

ADAPTER_SETS = r"(?:vis|audio)_adapter_blocks_p[12]"


def prefixed(rules: Sequence[engine.Rule], source_prefix: str, target_prefix: str
             ) -> list[engine.Rule]:
  """Rules of a sub-model applied under `source_prefix` and moved to `target_prefix`."""
  out = []
  for rule in rules:
    target = None if rule.target is None else target_prefix + rule.target
    out.append(dataclasses.replace(rule, pattern=re.escape(source_prefix) + f"(?:{rule.pattern})",
                                   target=target))
  return out


def _sub_keys(keys: Sequence[str], prefix: str) -> list[str]:
  return [k[len(prefix):] for k in keys if k.startswith(prefix)]


def adapter_rules() -> list[engine.Rule]:
  return [
      engine.ignore(ADAPTER_SETS + r"\.\d+\.bn[12]\.num_batches_tracked",
                    "PyTorch BatchNorm step counter: unused with a fixed momentum"),
      engine.Rule(f"({ADAPTER_SETS}" + r"\.\d+\..*)", r"\1"),
  ]


def rules(keys: Sequence[str]) -> list[engine.Rule]:
  """All rules for an official AVE `MMIL_Net` state dict."""
  return (
      [engine.ignore(r"adapter_token_downsampler\..*",
                     "MMIL_Net builds adapter_token_downsampler but its forward never uses it")]
      + prefixed(swinv2_map.rules(_sub_keys(keys, "swin.")), "swin.", "swin.")
      + prefixed(htsat_map.rules(_sub_keys(keys, "htsat.")), "htsat.", "htsat.")
      + ave_head_map.rules(keys, target_prefix="head.")
      + adapter_rules())


def check_source(state_dict: dict, config: dict):
  """HTS-AT's recomputed constants (STFT, mel, indices, masks) must equal the source's."""
  sub = {k[len("htsat."):]: v for k, v in state_dict.items() if k.startswith("htsat.")}
  htsat_map.check_source(sub, config["htsat"])


def build(**config) -> ave.AVEModel:
  return ave.AVEModel(config, rngs=nnx.Rngs(0))


@nnx.jit
def _forward(model, audio, frames):
  return model(audio, frames, deterministic=True)


def run(model: ave.AVEModel, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Eval-mode float32 forward: {'audio', 'frames'} → official-layout outputs + pooled features."""
  for name, rank in (("audio", 3), ("frames", 5)):
    if name not in inputs:
      raise ValueError(f"the inputs need {name!r}; found {sorted(inputs)}")
    if np.ndim(inputs[name]) != rank or not np.issubdtype(np.asarray(inputs[name]).dtype,
                                                           np.floating):
      raise ValueError(f"input {name!r} must be a float array of rank {rank}, "
                       f"got {np.asarray(inputs[name]).dtype} {np.shape(inputs[name])}")
  audio = np.asarray(inputs["audio"], np.float32)
  b, t, s = audio.shape
  if s > model.clip_samples:
    raise ValueError(f"input 'audio' has {s} samples per segment, more than the model's clip "
                     f"length {model.clip_samples}")
  try:
    htsat.validate_waveforms(audio.reshape(b * t, s), num_samples=None)
  except ValueError as e:
    raise ValueError(f"input 'audio': {e}") from e
  out = _forward(model, jax.numpy.asarray(audio), jax.numpy.asarray(inputs["frames"], np.float32))
  official = ave_head.to_official_layout(
      {k: out[k] for k in ("is_event_scores", "event_scores", "audio_visual_gate", "av_score")})
  official.update(pooled_visual=out["pooled_visual"], pooled_audio=out["pooled_audio"])
  return {k: np.asarray(v) for k, v in official.items()}


# ----------------------------------------------------------------------------
# A fresh DG-SCT model on separately converted encoders (the start of training)
# ----------------------------------------------------------------------------


def fresh_model(config: dict, seed: int = 0) -> ave.AVEModel:
  """A concretely initialised AVE model (eager: on CPU, compiling one jitted init of
  every parameter takes longer than running the initialisers op by op)."""
  return ave.AVEModel(config, rngs=nnx.Rngs(seed))


def assemble(swin_dir, htsat_dir, config: dict | None = None, *, seed: int = 0) -> ave.AVEModel:
  """AVE model with frozen encoders read from converted directories and fresh adapters/head.

  The directories come from `weight_conversion.convert` with a Swin-V2 arch
  (e.g. swinv2_large_window12_192) and an HTS-AT arch (htsat_audioset). Every
  encoder leaf must be covered, with the same shape, and every value used.
  """
  config = config or ave.ave_model_config("large")
  model = fresh_model(config, seed)
  graphdef, state = nnx.split(model)
  flat = {".".join(str(p) for p in path): var for path, var in state.flat_state()}
  for prefix, directory in (("swin", swin_dir), ("htsat", htsat_dir)):
    values, manifest = store.load(directory)
    targets = {k[len(prefix) + 1:]: var for k, var in flat.items()
               if k.startswith(prefix + ".") and not isinstance(var, nnx.RngState)}
    missing = sorted(set(targets) - set(values))
    unused = sorted(set(values) - set(targets))
    bad = [f"{k} {values[k].shape} vs model {targets[k].get_value().shape}"
           for k in sorted(set(values) & set(targets))
           if tuple(values[k].shape) != tuple(targets[k].get_value().shape)]
    if missing or unused or bad:
      raise engine.ConversionError(
          f"{directory} (arch {manifest.get('arch')}) does not fit the model's `{prefix}`: "
          f"missing {missing[:10]} ({len(missing)}), unused {unused[:10]} ({len(unused)}), "
          f"shape mismatches {bad[:10]} ({len(bad)})")
    for k, var in targets.items():
      var.set_value(jax.numpy.asarray(values[k], var.get_value().dtype))
  return nnx.merge(graphdef, state)


ARCHS = [
    Arch(name="dgsct_ave",
         description="official DG-SCT AVE model (MMIL_Net: swin.*, htsat.*, 4 adapter sets, "
                     "temporal_attn.*, CMBS.*), e.g. best_82.18.pt",
         build=build, config=ave.ave_model_config("large"), rules=rules, run=run,
         check_source=check_source),
]
