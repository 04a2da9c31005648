"""Swin-V2 (timm `SwinTransformerV2`) → dgsct_jax.models.encoders.swinv2.SwinTransformerV2.

Archs:
  swinv2_large_window12_192   DG-SCT's visual encoder (timm `swinv2_large_window12_192_22k`):
                              embed 192, depths (2,2,18,2), heads (6,12,24,48), window 12, 192².
  swinv2                      any Swin-V2; the model config must be given with --model_config
                              (JSON of SwinTransformerV2's constructor arguments).

Sources: a timm state dict (`model.state_dict()`), the original Microsoft
release (`{'model': ...}`, selected automatically) or a sub-tree of a bigger
checkpoint (DG-SCT: `--prefix=swin.`).

Layouts. Our model keeps patch merging at the end of stage i
(`layers.{i}.downsample`), as timm 0.6.x and the original release do; timm
≥ 0.9 moved it to the start of stage i+1 (`layers.{i+1}.downsample`). The
layout is read from the source keys: a `layers.0.downsample.*` key means the
0.6 layout (stage 0 always merges there, whatever the depth); downsample keys
that all sit in stages ≥ 1 mean the 1.x layout, and those are renamed to stage
i−1. (This is the test timm's own `checkpoint_filter_fn` uses.) A one-stage
model has no patch merging, so both layouts coincide.

Everything else is an identity rename (`cpb_mlp.{0,2}` included: our cpb_mlp
is a List whose index 1 is the parameterless ReLU). Ignored, with reasons:
buffers recomputed from the config (relative_coords_table,
relative_position_index, attn_mask, k_bias) and the classifier head.

`run` (weight_conversion.run): inputs `images` (B, C, H, W) float32 in NCHW as
in PyTorch; outputs `features` (B, L, C) after the final norm and `stage0` ..
`stage{n-1}`, each stage's tokens before its patch merging.
"""
import re
from typing import Sequence

import jax
import numpy as np
from flax import nnx

from dgsct_jax.models import presets
from dgsct_jax.models.encoders import swinv2
from weight_conversion import engine
from weight_conversion import archs
from weight_conversion.archs import Arch

REQUIRED_GENERIC = ("img_size", "embed_dim", "depths", "num_heads", "window_size")

_DOWNSAMPLE = re.compile(r"layers\.(\d+)\.downsample\.")

IGNORED = [
    engine.ignore(r"head(\..*)?", "classifier head (timm `head` / `head.fc`): not part of the encoder"),
    engine.ignore(r"layers\.\d+\.blocks\.\d+\.attn\.relative_coords_table",
                  "buffer recomputed from the window sizes (swinv2.relative_coords_table)"),
    engine.ignore(r"layers\.\d+\.blocks\.\d+\.attn\.relative_position_index",
                  "buffer recomputed from the window size (swinv2.relative_position_index)"),
    engine.ignore(r"layers\.\d+\.blocks\.\d+\.attn_mask",
                  "shifted-window mask buffer (persistent in timm 0.6.x), recomputed from the "
                  "grid, window and shift (layers.shifted_window_mask)"),
    engine.ignore(r"layers\.\d+\.blocks\.\d+\.attn\.k_bias", "constant zero k bias buffer"),
]


def detect_layout(keys: Sequence[str]) -> str:
  """'0.6' (merging at the end of stage i), '1.x' (at the start of stage i+1) or 'none'."""
  stages = {int(m.group(1)) for k in keys if (m := _DOWNSAMPLE.match(k))}
  if not stages:
    return "none"
  return "0.6" if 0 in stages else "1.x"


def rules(keys: Sequence[str]) -> list[engine.Rule]:
  out = list(IGNORED)
  if detect_layout(keys) == "1.x":
    stages = sorted({int(m.group(1)) for k in keys if (m := _DOWNSAMPLE.match(k))})
    out += [engine.Rule(rf"layers\.{i}\.downsample\.(.*)", rf"layers.{i - 1}.downsample.\1")
            for i in stages]
  return out + [engine.IDENTITY]


def build(**config) -> swinv2.SwinTransformerV2:
  return swinv2.SwinTransformerV2(**config, rngs=nnx.Rngs(0))


def build_generic(**config) -> swinv2.SwinTransformerV2:
  missing = [k for k in REQUIRED_GENERIC if k not in config]
  if missing:
    raise engine.ConversionError(
        f"arch 'swinv2' needs its model config via --model_config (JSON); missing {missing}, e.g. "
        '--model_config=\'{"img_size": 224, "embed_dim": 96, "depths": [2, 2, 6, 2], '
        '"num_heads": [3, 6, 12, 24], "window_size": 8}\'')
  return build(**config)


@nnx.jit
def _forward(model, images):
  features, aux = model(images, deterministic=True)
  return dict(features=features, **aux)


def run(model: swinv2.SwinTransformerV2, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Eval-mode float32 forward: {'images'} → {'features', 'stage0', ...}."""
  if "images" not in inputs:
    raise ValueError(f"the inputs need an array 'images' (B, C, H, W); found {sorted(inputs)}")
  images = np.asarray(inputs["images"])
  embed = model.patch_embed
  expected = (embed.in_chans,) + embed.img_size
  if images.ndim != 4 or tuple(images.shape[1:]) != expected:
    raise ValueError(f"'images' must be (B, {expected[0]}, {expected[1]}, {expected[2]}) (NCHW, "
                     f"the model's in_chans and img_size); got {images.shape}")
  if not np.issubdtype(images.dtype, np.floating):
    raise ValueError(f"'images' must be floating point, got {images.dtype}")
  outputs = _forward(model, jax.numpy.asarray(images, np.float32))
  return {k: np.asarray(v) for k, v in outputs.items()}


CONFIG_KEYS = archs.keyword_args(swinv2.SwinTransformerV2)
ARCHS = [
    Arch(name="swinv2_large_window12_192",
         description="Swin-V2-L 192² window 12 (DG-SCT visual encoder, timm swinv2_large_window12_192_22k)",
         build=build, config=presets.SWINV2_LARGE_192, rules=rules, run=run,
         config_keys=CONFIG_KEYS),
    Arch(name="swinv2",
         description="any timm Swin-V2; give the model config with --model_config (JSON)",
         build=build_generic, config={}, rules=rules, run=run, config_keys=CONFIG_KEYS),
]
