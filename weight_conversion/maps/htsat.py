"""HTS-AT (`HTSAT_Swin_Transformer`) → dgsct_jax.models.encoders.htsat.HTSAT.

Archs:
  htsat_audioset    the AudioSet HTS-AT DG-SCT uses (32 kHz, hop 320, 64 mel, 50–14000 Hz,
                    embed 96, depths (2,2,6,2), 527 classes). Sources: the official
                    Lightning checkpoint (HTSAT_AudioSet_Saved_*.ckpt: `state_dict`, keys
                    `sed_model.*`, both found automatically) or a plain state dict.
  htsat_dgsct       the `htsat.` sub-tree of an official DG-SCT checkpoint (same config).
  htsat_laion_clap  laion-clap's audio branch (HTSAT-tiny: 48 kHz, hop 480, 480 000
                    samples); keys `audio_branch.*` (with or without DDP's `module.`),
                    the CLAP text/projection parts are ignored. Other laion sizes
                    (base/large) via --model_config, e.g. {"embed_dim": 128,
                    "depths": [2, 2, 12, 2]}. Fusion checkpoints are refused.

Every parameter is an identity rename (our attribute names mirror the
reference) except `bn0.*` → `frontend.bn0.*`. Ignored, with reasons: the STFT
bases and the mel matrix (the front end recomputes them), `relative_position_index`
and `attn_mask` (recomputed), `bn0.num_batches_tracked`. Ignored constants are
not trusted blindly: `check_source` compares them with what our model
recomputes and stops the conversion when they differ (e.g. a checkpoint made
with other mel settings), naming the key and the mismatch.

`run` (weight_conversion.run): input `waveforms` (B, samples) float32 at the
model's sample rate (validated on the host: rank, sample count, dtype, NaN/Inf).
Outputs (eval mode, our channels-last layouts): `logmel` (B, frames, mel) after
bn0, before resizing/folding; `image` (B, 256, 256, 1) the folded patch-embed
input (PyTorch: (B, 1, 256, 256)); `stage0`..`stage3` (B, L_i, C_i) after the
blocks of stage i, before merging; `features` (B, 64, 768) the last stage
without the final norm (what DG-SCT pools); `clipwise_logits`,
`clipwise_output` (B, 527) of the token-semantic head.
"""
import re
from typing import Sequence

import jax
import numpy as np
from flax import nnx

from dgsct_jax.models import layers
from dgsct_jax.models import presets
from dgsct_jax.models.encoders import audio_frontend
from dgsct_jax.models.encoders import htsat
from weight_conversion import engine
from weight_conversion import archs
from weight_conversion.archs import Arch

STFT_KEYS = ("spectrogram_extractor.stft.conv_real.weight",
             "spectrogram_extractor.stft.conv_imag.weight")
MEL_KEY = "logmel_extractor.melW"
_INDEX = re.compile(r"layers\.(\d+)\.blocks\.(\d+)\.attn\.relative_position_index")
_MASK = re.compile(r"layers\.(\d+)\.blocks\.(\d+)\.attn_mask")
RECOMPUTED = "(checked equal to the source at conversion)"


def _ignored(p: str) -> list[engine.Rule]:
  return [
      engine.ignore(p + r"spectrogram_extractor\.stft\.conv_(real|imag)\.weight",
                    f"torchlibrosa STFT basis (frozen): the front end recomputes it {RECOMPUTED}"),
      engine.ignore(p + r"logmel_extractor\.melW",
                    f"Slaney mel filter bank (frozen): the front end recomputes it {RECOMPUTED}"),
      engine.ignore(p + r"bn0\.num_batches_tracked",
                    "PyTorch BatchNorm step counter: unused with a fixed momentum"),
      engine.ignore(p + r"layers\.\d+\.blocks\.\d+\.attn\.relative_position_index",
                    f"buffer recomputed from the window size {RECOMPUTED}"),
      engine.ignore(p + r"layers\.\d+\.blocks\.\d+\.attn_mask",
                    f"shifted-window mask buffer recomputed from grid, window and shift {RECOMPUTED}"),
  ]


def _renames(p: str) -> list[engine.Rule]:
  return [engine.Rule(p + r"bn0\.(.*)", r"frontend.bn0.\1"),
          engine.Rule(p + r"(.*)", r"\1")]


def rules(keys: Sequence[str]) -> list[engine.Rule]:
  """HTS-AT's own state dict, optionally prefixed `sed_model.` (Lightning)."""
  del keys
  p = r"(?:sed_model\.)?"
  return _ignored(p) + _renames(p)


LAION_OTHER_PARTS = ("text_branch", "text_transform", "text_projection", "audio_transform",
                     "audio_projection", "logit_scale_a", "logit_scale_t")


def laion_rules(keys: Sequence[str]) -> list[engine.Rule]:
  """A CLAP state dict: `(module.)audio_branch.*` is HTS-AT, the rest is ignored."""
  del keys
  p = r"(?:module\.)?(?:audio_branch\.)?"
  other = "|".join(LAION_OTHER_PARTS)
  return ([engine.ignore(rf"(?:module\.)?(?:{other})(\..*)?",
                         "CLAP text branch / projections / logit scales: not part of HTS-AT")]
          + _ignored(p) + _renames(p))


def _strip(key: str) -> str:
  return re.sub(r"^(?:module\.)?(?:audio_branch\.|sed_model\.)?", "", key)


def _compare(problems: list, key: str, source: np.ndarray, expected: np.ndarray, what: str,
             rtol: float = 1e-5):
  source = np.asarray(source)
  if source.shape != expected.shape:
    problems.append(f"{key} {source.shape}: expected {expected.shape} for {what}")
    return
  err = float(np.max(np.abs(source.astype(np.float64) - expected.astype(np.float64)), initial=0))
  scale = float(np.max(np.abs(expected), initial=0)) or 1.0
  if not err <= rtol * scale:
    problems.append(f"{key}: differs from {what} (max|Δ| {err:.3g}, max|ref| {scale:.3g})")


def check_source(state_dict: dict, config: dict):
  """The ignored constants of `state_dict` must equal what the model recomputes.

  STFT bases (torchlibrosa layout (n_fft/2+1, 1, n_fft)), the mel matrix
  ((n_fft/2+1, mel_bins)), every relative_position_index and attn_mask.
  Also refuses laion-clap fusion checkpoints with a clear message.
  """
  keys = {_strip(k): k for k in state_dict}
  fusion = sorted(k for k in keys if k.split(".")[0] in ("fusion_model", "mel_conv1d")
                  or k.startswith("patch_embed.mel_conv2d") or k.startswith("patch_embed.fusion"))
  if fusion:
    raise engine.ConversionError(
        f"the source is a laion-clap *fusion* model ({len(fusion)} fusion keys, e.g. {fusion[:3]}); "
        "only enable_fusion=False checkpoints are supported")
  model = nnx.eval_shape(lambda: build(**config))
  fe = model.frontend
  window = audio_frontend.hann_window(fe.n_fft)
  real, imag = audio_frontend.torchlibrosa_dft_basis(fe.n_fft, window)
  mel = audio_frontend.slaney_mel_filterbank(fe.sample_rate, fe.n_fft, fe.mel_bins, fe.fmin,
                                             fe.fmax).T
  settings = (f"the model's front end (sample_rate {fe.sample_rate}, window {fe.n_fft}, "
              f"mel_bins {fe.mel_bins}, fmin {fe.fmin:g}, fmax {fe.fmax:g})")
  problems = []
  for name, basis in zip(STFT_KEYS, (real, imag)):
    if name in keys:
      _compare(problems, keys[name], state_dict[keys[name]], basis.T[:, None, :],
               f"the STFT basis of {settings}")
  if MEL_KEY in keys:
    _compare(problems, keys[MEL_KEY], state_dict[keys[MEL_KEY]], mel, f"the mel matrix of {settings}")
  for short, key in keys.items():
    if (m := _INDEX.fullmatch(short)) or (m := _MASK.fullmatch(short)):
      i, j = int(m.group(1)), int(m.group(2))
      if i >= len(model.layers) or j >= len(model.layers[i].blocks):
        continue  # an unknown block: the engine reports it as mapped to no leaf
      blk = model.layers[i].blocks[j]
      if m.re is _INDEX:
        expected = layers.relative_position_index(blk.window_size, blk.window_size)
        what = f"the relative position index of window {blk.window_size}"
      else:
        expected = blk.attn_mask
        what = f"the shifted-window mask (window {blk.window_size}, shift {blk.shift_size})"
        if expected is None:
          problems.append(f"{key}: the source has a shift mask, the model block has no shift")
          continue
      _compare(problems, key, state_dict[key], expected, what, rtol=0.0)
  if problems:
    text = "\n".join(f"    {p}" for p in problems[:40])
    more = f"\n    ... and {len(problems) - 40} more" if len(problems) > 40 else ""
    raise engine.ConversionError(
        f"recomputed constants disagree with the source [{len(problems)}] (wrong arch or "
        f"--model_config?):\n{text}{more}")


def build(**config) -> htsat.HTSAT:
  return htsat.HTSAT(**config, rngs=nnx.Rngs(0))


@nnx.jit
def _forward(model, waveforms):
  features, aux = model(waveforms, deterministic=True)
  head = model.head_outputs(features)
  return dict(features=features, **aux, clipwise_logits=head["clipwise_logits"],
              clipwise_output=head["clipwise_output"])


def run(model: htsat.HTSAT, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Eval-mode float32 forward: {'waveforms'} → {'logmel', 'image', 'stage0'.., 'features', ...}."""
  if "waveforms" not in inputs:
    raise ValueError(f"the inputs need an array 'waveforms' (B, samples); found {sorted(inputs)}")
  try:
    waves = htsat.validate_waveforms(inputs["waveforms"], num_samples=model.frontend.num_samples,
                                     min_samples=model.frontend.n_fft // 2 + 1)
  except ValueError as e:
    raise ValueError(f"input 'waveforms': {e}") from e
  outputs = _forward(model, jax.numpy.asarray(waves))
  return {k: np.asarray(v) for k, v in outputs.items()}


CONFIG_KEYS = archs.keyword_args(htsat.HTSAT)
ARCHS = [
    Arch(name="htsat_audioset",
         description="HTS-AT AudioSet (DG-SCT audio encoder): Lightning ckpt (sed_model.*) or state dict",
         build=build, config=presets.HTSAT_AUDIOSET, rules=rules, run=run,
         check_source=check_source, config_keys=CONFIG_KEYS),
    Arch(name="htsat_dgsct",
         description="HTS-AT from an official DG-SCT checkpoint (its htsat.* sub-tree)",
         build=build, config=presets.HTSAT_AUDIOSET, rules=rules, run=run, default_prefix="htsat.",
         check_source=check_source, config_keys=CONFIG_KEYS),
    Arch(name="htsat_laion_clap",
         description="laion-clap audio branch (HTSAT-tiny, 48 kHz; other sizes via --model_config)",
         build=build, config=presets.HTSAT_LAION_CLAP_TINY, rules=laion_rules, run=run,
         check_source=check_source, config_keys=CONFIG_KEYS),
]
