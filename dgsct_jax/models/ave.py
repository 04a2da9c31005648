"""The DG-SCT AVE model: Swin-V2 + HTS-AT with DG-SCT adapters, then the CMBS head (spec §4).

    model = build_ave_model(ave_model_config("large"), rngs=nnx.Rngs(43))
    out = model(audio (B, T, S), frames (B, T, 3, H, W), deterministic=True)

State paths mirror the official `MMIL_Net` state dict: `swin.*`, `htsat.*`,
`{vis,audio}_adapter_blocks_p{1,2}.{i}.*`, and the head under `head.`
(`head.temporal_attn.*`, `head.CMBS.*`); see weight_conversion/dgsct_map.py.

Audio. The reference tiles each 1-s segment (32 000 samples) to a 10-s clip
(320 000) on the host (spec §1.3). Here the model does it on device: with
`tile_audio=True` (default) a segment shorter than `audio.num_samples` is
concatenated with itself until it is at least that long and truncated, so
(B, T, 32000) and pre-tiled (B, T, 320000) inputs give the same result (the
latter costs 10× the host→device bandwidth). `tile_audio=False` requires
exactly `audio.num_samples` samples.

Outputs (batch-major dict): `is_event_scores` (B, T) logits, `event_scores`
(B, K), `audio_visual_gate` (B, T), `av_score` (B, K) (head; official layouts
via `ave_head.to_official_layout`), `video_query_output`/`audio_query_output`
(B, T, 256), `pooled_visual` (B, T, C_v), `pooled_audio` (B, T, C_a), and, when
the last adapters have spatial maps, `visual_smap` (B, T, N_v) / `audio_smap`
(B, T, N_a) (softmax pooling maps over the final token grids `smap_grids()`;
the audio grid is over the folded 256×256 log-mel image). With `capture=True`
also `aux` (the backbone's per-stage features and every adapter's outputs).
"""
import copy

import jax.numpy as jnp
from flax import nnx

from dgsct_jax.models import ave_head
from dgsct_jax.models import dgsct
from dgsct_jax.models import htsat
from dgsct_jax.models import swinv2

SWINV2_LARGE = dict(img_size=192, patch_size=4, in_chans=3, embed_dim=192, depths=(2, 2, 18, 2),
                    num_heads=(6, 12, 24, 48), window_size=12,
                    pretrained_window_sizes=(0, 0, 0, 0), mlp_ratio=4.0, drop_path_rate=0.1)
HTSAT_AUDIOSET = dict(sample_rate=32000, window=1024, hop=320, mel_bins=64, fmin=50.0,
                      fmax=14000.0, num_samples=320000, spec_size=256, patch_size=4,
                      patch_stride=(4, 4), in_chans=1, num_classes=527, embed_dim=96,
                      depths=(2, 2, 6, 2), num_heads=(4, 8, 16, 32), window_size=8,
                      mlp_ratio=4.0, qkv_bias=True, drop_path_rate=0.1, ape=False,
                      patch_norm=True, enable_tscam=True)
ADAPTER_AVE = dict(reduction_factor=8, num_conv_group=2, num_tokens=32, use_bn=True,
                   ln_before=True, ln_post=True, audio_gate=True, latent_tokens=True,
                   channel=True, spatial=True, temporal=False, alpha=0.3, beta=0.05, gamma=0.05)
HEAD_AVE = dict(visual_dim=1536, audio_dim=768, video_fc_dim=512, audio_fc_dim=128, d_model=256,
                nhead=4, feedforward_dim=1024, gamma=0.1, av_score_weight=0.3, top_k=4,
                input_dropout=0.2, attention_dropout=0.1, inter_dropout=0.2,
                keep_dead_params=True)

# CPU-sized model with the same structure: 64×64 frames, 1-s audio (no tiling needed),
# 16 mel bins folded into a 64×64 image; Swin depths (1,1,3,1) vs HTS-AT (1,1,1,1) keep
# the reference's "audio block k under visual block 3k+2" pattern in stage 3.
SWINV2_TINY = dict(SWINV2_LARGE, img_size=64, embed_dim=32, depths=(1, 1, 3, 1),
                   num_heads=(1, 2, 4, 8), window_size=4)
HTSAT_TINY = dict(HTSAT_AUDIOSET, mel_bins=16, num_samples=32000, spec_size=64, embed_dim=16,
                  depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8), window_size=4, num_classes=10,
                  enable_tscam=False)
HEAD_TINY = dict(HEAD_AVE, visual_dim=256, audio_dim=128, video_fc_dim=64, audio_fc_dim=32,
                 d_model=32, nhead=2, feedforward_dim=64)


def ave_model_config(variant: str = "large") -> dict:
  """The model section of the AVE config; defaults = the official AVE model (`large`).

  Keys:
    variant: 'large' (Swin-V2-L 192² + HTS-AT AudioSet) or 'tiny' (CPU demos).
    num_classes: event classes (28; background is the separate is_event score).
    swin, htsat: constructor arguments of the encoders (htsat.num_samples = clip length).
    head: `AVEHead` arguments (visual_dim/audio_dim must match the encoders' widths).
    adapter: `AdapterConfig` fields shared by all 48 adapters (ablation switches:
      channel / spatial / temporal / latent_tokens, alpha / beta / gamma, ...).
    pairing: 'ave' (the official table), 'zip' (derived from the depths) or a table.
    visual_adapters / audio_adapters: A2V (`vis_adapter_blocks_*`) / V2A
      (`audio_adapter_blocks_*`) guidance; p1 / p2: adapters around attention / MLP.
      All four False = the frozen-encoder baseline (mean-pooled features).
    encoder_train_mode: training also runs the frozen encoders in train mode (drop path,
      SpecAugment, bn0 batch statistics) as the reference does (True, faithful).
    audio_final_norm: HTS-AT final LayerNorm before pooling (reference: False).
    tile_audio: tile short audio segments to htsat.num_samples on device (module doc).
    remat: 'none' | 'block' | 'block_dots' (dgsct.py).
    remat_stages: rematerialise only the first k stages of each encoder (None: all).
    matmul_dtype: None (faithful: matmuls in the compute dtype) or 'bfloat16' (bf16
      operands, float32 accumulation in the encoders and adapters; models/matmul.py).
  """
  if variant not in ("large", "tiny"):
    raise ValueError(f"unknown AVE model variant {variant!r} (choose 'large' or 'tiny')")
  large = variant == "large"
  return dict(
      variant=variant,
      num_classes=28,
      swin=dict(SWINV2_LARGE if large else SWINV2_TINY),
      htsat=dict(HTSAT_AUDIOSET if large else HTSAT_TINY),
      head=dict(HEAD_AVE if large else HEAD_TINY),
      adapter=dict(ADAPTER_AVE),
      pairing="ave" if large else "zip",
      visual_adapters=True, audio_adapters=True, p1=True, p2=True,
      encoder_train_mode=True,
      audio_final_norm=False,
      tile_audio=True,
      remat="none",
      remat_stages=None,
      matmul_dtype=None,
  )


def _plain(config) -> dict:
  config = config.to_dict() if hasattr(config, "to_dict") else copy.deepcopy(dict(config))
  known = set(ave_model_config("large"))
  unknown = set(config) - known
  if unknown:
    raise ValueError(f"AVE model config: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
  missing = known - set(config)
  if missing:
    raise ValueError(f"AVE model config: missing key(s) {sorted(missing)}")
  return config


def tile_segments(audio, num_samples: int):
  """(..., S) → (..., num_samples): repeated end to end, truncated (spec §1.3)."""
  s = audio.shape[-1]
  if s == num_samples:
    return audio
  if s > num_samples:
    raise ValueError(f"audio segments have {s} samples, more than the model's clip length "
                     f"{num_samples} (htsat.num_samples)")
  reps = -(-num_samples // s)
  return jnp.tile(audio, (1,) * (audio.ndim - 1) + (reps,))[..., :num_samples]


class AVEModel(dgsct.DGSCT):
  """DG-SCT (Swin-V2 `swin` + HTS-AT `htsat` + adapters) and the AVE head `head`."""

  def __init__(self, config, *, rngs: nnx.Rngs):
    cfg = _plain(config)
    swin = swinv2.SwinTransformerV2(**cfg["swin"], rngs=rngs)
    hts = htsat.HTSAT(**cfg["htsat"], rngs=rngs)
    super().__init__(swin, hts, visual_name="swin", audio_name="htsat", pairing=cfg["pairing"],
                     adapter=cfg["adapter"], visual_adapters=cfg["visual_adapters"],
                     audio_adapters=cfg["audio_adapters"], p1=cfg["p1"], p2=cfg["p2"],
                     encoder_train_mode=cfg["encoder_train_mode"],
                     audio_final_norm=cfg["audio_final_norm"], remat=cfg["remat"],
                     remat_stages=cfg["remat_stages"], matmul_dtype=cfg["matmul_dtype"],
                     rngs=rngs)
    head = dict(cfg["head"], num_classes=cfg["num_classes"])
    for key, enc in (("visual_dim", swin), ("audio_dim", hts)):
      if head[key] != enc.num_features:
        raise ValueError(f"AVE model config: head.{key}={head[key]} but the encoder's final "
                         f"width is {enc.num_features}")
    self.head = ave_head.AVEHead(**head, rngs=rngs)
    self.tile_audio = cfg["tile_audio"]
    self.clip_samples = cfg["htsat"]["num_samples"]

  def smap_grids(self) -> dict[str, tuple[int, int]]:
    """Token grids of the pooling maps: the last stage of each encoder."""
    return {"visual_smap": tuple(self.swin.layers[-1].resolution),
            "audio_smap": tuple(self.htsat.layers[-1].resolution)}

  def __call__(self, audio, frames, *, deterministic: bool = True, rngs: nnx.Rngs | None = None,
               capture: bool = False):
    """audio (B, T, S) waveforms, frames (B, T, 3, H, W) normalised images → dict (module doc)."""
    if audio.ndim != 3 or frames.ndim != 5 or audio.shape[:2] != frames.shape[:2]:
      raise ValueError(f"expected audio (B, T, samples) and frames (B, T, 3, H, W) with the same "
                       f"(B, T); got audio {tuple(audio.shape)}, frames {tuple(frames.shape)}")
    b, t = frames.shape[:2]
    if self.tile_audio:
      audio = tile_segments(audio, self.clip_samples)
    v, a, aux = self.encode(frames.reshape(b * t, *frames.shape[2:]), audio.reshape(b * t, -1),
                            deterministic=deterministic, rngs=rngs, capture=capture)
    v, a = v.reshape(b, t, -1), a.reshape(b, t, -1)
    out = self.head(v, a, deterministic=deterministic, rngs=rngs)
    out.update(pooled_visual=v, pooled_audio=a)
    for key in ("visual_smap", "audio_smap"):
      if aux[key] is not None:
        out[key] = aux[key].reshape(b, t, -1)
    if capture:
      out["aux"] = aux
    return out


def build_ave_model(config, *, rngs: nnx.Rngs) -> AVEModel:
  """The trainer's entry point (`config.model_builder`): config dict / ConfigDict → model."""
  return AVEModel(config, rngs=rngs)
