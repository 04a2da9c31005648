"""The DG-SCT backbone's keys, shared by every task's whole-model arch.

An official DG-SCT model (AVE's `MMIL_Net`, and the AVVP, AVS and AVQA nets)
holds the same backbone: `swin.*` (Swin-V2, both timm layouts: maps/swinv2.py),
`htsat.*` (HTS-AT; its recomputed constants are checked against the source:
maps/htsat.py) and the four adapter sets `{vis,audio}_adapter_blocks_p{1,2}.{i}.*`,
mapped by identity (our `Adapter` mirrors `VisualAdapter`; Conv2d weights
(out, in/groups, 1, 1) become HWIO kernels). Ignored, by name and with a
reason: `adapter_token_downsampler.*` (built, never used) and the adapters'
BatchNorm `num_batches_tracked`.

A task's whole-model arch is `whole_model(...)`: these rules plus the rules of
its head (for keys with or without DataParallel's `module.`), and the task model
(a `models.backbone.TaskModel` subclass) built from its preset.
"""
from typing import Callable, Sequence

import numpy as np
from flax import nnx

from dgsct_jax.models.encoders import htsat
from weight_conversion import engine
from weight_conversion.archs import Arch
from weight_conversion.maps import htsat as htsat_map
from weight_conversion.maps import swinv2 as swinv2_map

ADAPTER_SETS = r"(?:vis|audio)_adapter_blocks_p[12]"


def _sub_keys(keys: Sequence[str], prefix: str) -> list[str]:
  return [k[len(prefix):] for k in keys if k.startswith(prefix)]


def adapter_rules() -> list[engine.Rule]:
  return [
      engine.ignore(ADAPTER_SETS + r"\.\d+\.bn[12]\.num_batches_tracked",
                    "PyTorch BatchNorm step counter: unused with a fixed momentum"),
      engine.Rule(f"({ADAPTER_SETS}" + r"\.\d+\..*)", r"\1"),
  ]


def backbone_rules(keys: Sequence[str]) -> list[engine.Rule]:
  """Rules for the backbone keys of an official DG-SCT state dict (the head's are not here)."""
  return (
      [engine.ignore(r"adapter_token_downsampler\..*",
                     "the official nets build adapter_token_downsampler but never use it")]
      + engine.prefixed(swinv2_map.rules(_sub_keys(keys, "swin.")), "swin.", "swin.")
      + engine.prefixed(htsat_map.rules(_sub_keys(keys, "htsat.")), "htsat.", "htsat.")
      + adapter_rules())


def check_source(state_dict: dict, config: dict):
  """HTS-AT's recomputed constants (STFT, mel, indices, masks) must equal the source's."""
  sub = {k[len("htsat."):]: v for k, v in state_dict.items() if k.startswith("htsat.")}
  htsat_map.check_source(sub, config["htsat"])


def float_input(inputs: dict, name: str, rank: int) -> np.ndarray:
  """`inputs[name]` as float32, which must be a float array of `rank` dimensions."""
  if name not in inputs:
    raise ValueError(f"the inputs need {name!r}; found {sorted(inputs)}")
  value = np.asarray(inputs[name])
  if value.ndim != rank or not np.issubdtype(value.dtype, np.floating):
    raise ValueError(f"input {name!r} must be a float array of rank {rank}, "
                     f"got {value.dtype} {value.shape}")
  return value.astype(np.float32)


def audio_input(model, inputs: dict) -> np.ndarray:
  """`inputs['audio']` (B, T, S) waveforms, S at most the model's clip length (shorter
  segments are tiled by the model), checked like HTS-AT's inputs."""
  audio = float_input(inputs, "audio", 3)
  b, t, s = audio.shape
  if s > model.clip_samples:
    raise ValueError(f"input 'audio' has {s} samples per segment, more than the model's clip "
                     f"length {model.clip_samples}")
  try:
    htsat.validate_waveforms(audio.reshape(b * t, s), num_samples=None)
  except ValueError as e:
    raise ValueError(f"input 'audio': {e}") from e
  return audio


def data_parallel_prefix(keys: Sequence[str]) -> str:
  """'module.' when every key has it (a checkpoint saved through nn.DataParallel), else ''."""
  return "module." if keys and all(k.startswith("module.") for k in keys) else ""


def whole_model(*, name: str, description: str, model: Callable[..., nnx.Module], config: dict,
                head_rules: Callable[[Sequence[str]], list[engine.Rule]],
                run: Callable[[nnx.Module, dict], dict]) -> Arch:
  """The arch of an official task model: `head_rules(keys)` (first, so that they may also
  ignore the task's dead backbone keys) + the backbone rules, for keys with or without
  DataParallel's `module.` prefix; `model(config, rngs=...)` is the task model class,
  `config` its preset."""

  def rules(keys):
    prefix = data_parallel_prefix(keys)
    keys = _sub_keys(keys, prefix)
    return engine.prefixed(head_rules(keys) + backbone_rules(keys), prefix, "")

  def check(state_dict, cfg):
    prefix = data_parallel_prefix(list(state_dict))
    check_source({k[len(prefix):]: v for k, v in state_dict.items()}, cfg)

  return Arch(name=name, description=description,
              build=lambda **cfg: model(cfg, rngs=nnx.Rngs(0)), config=config,
              rules=rules, run=run, check_source=check)
