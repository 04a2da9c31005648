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
its head, and the task model (a `models.backbone.SwinHTSAT` subclass) built
from its preset.
"""
from typing import Callable, Sequence

from flax import nnx

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


def whole_model(*, name: str, description: str, model: Callable[..., nnx.Module], config: dict,
                head_rules: Callable[[Sequence[str]], list[engine.Rule]],
                run: Callable[[nnx.Module, dict], dict]) -> Arch:
  """The arch of an official task model: backbone rules + `head_rules(keys)`;
  `model(config, rngs=...)` is the task model class, `config` its preset."""
  return Arch(name=name, description=description,
              build=lambda **cfg: model(cfg, rngs=nnx.Rngs(0)), config=config,
              rules=lambda keys: backbone_rules(keys) + head_rules(keys), run=run,
              check_source=check_source)
