"""Model presets: the paper's encoders, adapters and heads, and their CPU-sized twins.

The one place where a model's shape is written down. Configs (`configs/*.py`)
and the converters (`weight_conversion/maps/*`) both read it.

`large` is the paper's model (Swin-V2-L 192² + HTS-AT AudioSet). `tiny` has the
same structure at CPU size: 64×64 frames, 1-s audio (no tiling), 16 mel bins
folded into a 64×64 image; Swin depths (1, 1, 3, 1) against HTS-AT (1, 1, 1, 1)
keep the reference's "audio block k under visual block 3k + 2" pattern in stage 3.
"""
VARIANTS = ("large", "tiny")

# timm `swinv2_large_window12_192_22k`.
SWINV2_LARGE_192 = dict(img_size=192, patch_size=4, in_chans=3, embed_dim=192,
                        depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48), window_size=12,
                        pretrained_window_sizes=(0, 0, 0, 0), mlp_ratio=4.0, drop_path_rate=0.1)
# HTS-AT `HTSAT_AudioSet_Saved_1.ckpt`: 32 kHz, 10-s clips, 64 mel bins, 527 classes.
HTSAT_AUDIOSET = dict(sample_rate=32000, window=1024, hop=320, mel_bins=64, fmin=50.0,
                      fmax=14000.0, num_samples=320000, spec_size=256, patch_size=4,
                      patch_stride=(4, 4), in_chans=1, num_classes=527, embed_dim=96,
                      depths=(2, 2, 6, 2), num_heads=(4, 8, 16, 32), window_size=8,
                      mlp_ratio=4.0, qkv_bias=True, drop_path_rate=0.1, ape=False,
                      patch_norm=True, enable_tscam=True)
# laion-clap's audio branch (HTSAT-tiny at 48 kHz).
HTSAT_LAION_CLAP_TINY = dict(HTSAT_AUDIOSET, sample_rate=48000, hop=480, num_samples=480000)

SWINV2_TINY = dict(SWINV2_LARGE_192, img_size=64, embed_dim=32, depths=(1, 1, 3, 1),
                   num_heads=(1, 2, 4, 8), window_size=4)
HTSAT_TINY = dict(HTSAT_AUDIOSET, mel_bins=16, num_samples=32000, spec_size=64, embed_dim=16,
                  depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8), window_size=4, num_classes=10,
                  enable_tscam=False)

ENCODERS = {"large": {"swin": SWINV2_LARGE_192, "htsat": HTSAT_AUDIOSET},
            "tiny": {"swin": SWINV2_TINY, "htsat": HTSAT_TINY}}

# The AVE adapters (`AdapterConfig` fields).
ADAPTER_AVE = dict(reduction_factor=8, num_conv_group=2, num_tokens=32, use_bn=True,
                   ln_before=True, ln_post=True, audio_gate=True, latent_tokens=True,
                   channel=True, spatial=True, temporal=False, alpha=0.3, beta=0.05, gamma=0.05)

# AVS (spec dgsct_tasks.md §0): no BN anywhere, ungated audio adapters, no ln_before in
# the multimodal branch, the gate before ln_post, zero-initialised tokens, no gate_tk.
# S4 aligns the guide by fc + bicubic resize of its token grid; MS3 keeps AVE's token
# mixing, with r = 2 (the default its train.sh keeps) and α, β = 0.2, 0.1.
ADAPTER_AVS_S4 = dict(ADAPTER_AVE, use_bn=False, ln_before=False, audio_gate=False,
                      guide_alignment="resize", gate_before_ln_post=True, token_init="zeros",
                      gate_tk=False)
ADAPTER_AVS_MS3 = dict(ADAPTER_AVS_S4, guide_alignment="token_mix", reduction_factor=2,
                       alpha=0.2, beta=0.1)

HEAD_AVE = dict(visual_dim=1536, audio_dim=768, video_fc_dim=512, audio_fc_dim=128, d_model=256,
                nhead=4, feedforward_dim=1024, gamma=0.1, av_score_weight=0.3, top_k=4,
                input_dropout=0.2, attention_dropout=0.1, inter_dropout=0.2,
                keep_dead_params=True)
# MGN on DG-SCT (`heads.avvp.MGNHead`), the AVVP train.sh flags.
HEAD_AVVP = dict(num_segments=10, dim=128, visual_dim=1536, audio_dim=768, st_dim=512,
                 depth_aud=3, depth_vis=3, depth_av=6, num_heads=8, drop_path=0.1,
                 unimodal_assign="soft", crossmodal_assign="soft", temporal_d_model=64,
                 temporal_feedforward_dim=1024, temporal_dropout=0.1, temporal_gamma=0.05,
                 keep_dead_params=True)
HEAD_AVVP_TINY = dict(HEAD_AVVP, dim=32, visual_dim=256, audio_dim=128, st_dim=512,
                      depth_aud=1, depth_vis=1, depth_av=2, num_heads=2, temporal_d_model=16,
                      temporal_feedforward_dim=64)
# The AVS decoder (`heads.avs.AVSHead`) on the four Swin-V2-L stages; γ: S4 0.05.
HEAD_AVS = dict(stage_dims=(192, 384, 768, 1536), audio_dim=768, channel=256, audio_channels=128,
                feature_sizes=(56, 28, 14, 7), d_model=256, nhead=4, feedforward_dim=1024,
                num_encoder_layers=2, num_decoder_layers=1, input_dropout=0.2,
                attention_dropout=0.1, gamma=0.05, output_dims=(128, 32), keep_dead_params=True)
# Tiny: Swin grids 16/8/4/2 resized to 24/12/6/3, so masks are 96² like the tiny frames.
HEAD_AVS_TINY = dict(HEAD_AVS, stage_dims=(32, 64, 128, 256), audio_dim=128, channel=32,
                     audio_channels=16, feature_sizes=(24, 12, 6, 3), d_model=32, nhead=2,
                     feedforward_dim=64, output_dims=(16, 8))
AVS_SUBSETS = ("s4", "ms3")
# AVQA (spec dgsct_tasks.md §0): AVE's adapters with 2 zero-initialised latent tokens, 4
# conv groups, no BN, ungated audio adapters and no gate_tk.
ADAPTER_AVQA = dict(ADAPTER_AVE, num_tokens=2, num_conv_group=4, use_bn=False, audio_gate=False,
                    token_init="zeros", gate_tk=False)
# AVST on DG-SCT (`heads.avqa.AVQAHead`): its width is the final Swin width.
HEAD_AVQA = dict(visual_dim=1536, audio_dim=768, vocab_size=93, num_heads=4,
                 attention_dropout=0.1, dropout=0.1, match_dims=(512, 256, 128),
                 pack_questions=False, keep_dead_params=True)
HEAD_AVQA_TINY = dict(HEAD_AVQA, visual_dim=256, audio_dim=128, num_heads=2,
                      match_dims=(64, 32, 16))
HEAD_AVE_TINY = dict(HEAD_AVE, visual_dim=256, audio_dim=128, video_fc_dim=64, audio_fc_dim=32,
                     d_model=32, nhead=2, feedforward_dim=64)


def _check(variant: str):
  if variant not in VARIANTS:
    raise ValueError(f"unknown model variant {variant!r}; choose one of {VARIANTS}")


def backbone(variant: str = "large", *, adapter: dict = ADAPTER_AVE) -> dict:
  """The DG-SCT backbone section of a model config (`models.backbone.SwinHTSAT`).

  Keys:
    swin, htsat: constructor arguments of the encoders (htsat.num_samples = clip length).
    adapter: `AdapterConfig` fields shared by every adapter (ablation switches:
      channel / spatial / temporal / latent_tokens, alpha / beta / gamma, ...).
    pairing: 'ave' (the official table), 'zip' (derived from the depths) or a table.
    visual_adapters / audio_adapters: A2V (`vis_adapter_blocks_*`) / V2A
      (`audio_adapter_blocks_*`) guidance; p1 / p2: adapters around attention / MLP.
      All four False = the frozen-encoder baseline (mean-pooled features).
    encoder_train_mode: training also runs the frozen encoders in train mode (drop path,
      SpecAugment, bn0 batch statistics) as the reference does (True, faithful).
    audio_final_norm: HTS-AT final LayerNorm before pooling (reference: False).
    logmel_mixup: in training, mix each segment's log-mel with the reversed batch's
      inside HTS-AT (AVVP/AVS/AVQA references: True; AVE: False).
    train_audio_encoder: HTS-AT's weights are trained with the adapters (AVS-S4's
      reference: True) instead of frozen.
    tile_audio: tile short audio segments to htsat.num_samples on device.
    resize_frames: frames of another size than swin.img_size are bicubic-resized in the
      model (AVS: 224² → 192², align_corners=False); False: such frames are an error.
    remat: 'none' | 'block' | 'block_dots' (models/dgsct.py).
    remat_stages: rematerialise only the first k stages of each encoder (None: all).
    matmul_dtype: None (faithful: matmuls in the compute dtype) or 'bfloat16' (bf16
      operands, float32 accumulation in the encoders and adapters; models/matmul.py).
  """
  _check(variant)
  return dict(
      swin=dict(ENCODERS[variant]["swin"]),
      htsat=dict(ENCODERS[variant]["htsat"]),
      adapter=dict(adapter),
      pairing="ave" if variant == "large" else "zip",
      visual_adapters=True, audio_adapters=True, p1=True, p2=True,
      encoder_train_mode=True,
      audio_final_norm=False,
      logmel_mixup=False,
      train_audio_encoder=False,
      tile_audio=True,
      resize_frames=False,
      remat="none",
      remat_stages=None,
      matmul_dtype=None,
  )


def ave(variant: str = "large") -> dict:
  """The AVE model config (`models.ave.AVEModel`): the backbone plus
  `variant`, `num_classes` (28 events; background is the separate is_event
  score) and `head` (`heads.ave.AVEHead` arguments; its widths are the encoders')."""
  _check(variant)
  return dict(backbone(variant), variant=variant, num_classes=28,
              head=dict(HEAD_AVE if variant == "large" else HEAD_AVE_TINY))


def avvp(variant: str = "large") -> dict:
  """The AVVP model config (`models.avvp.AVVPModel`): the backbone in AVVP's setting
  (spec dgsct_tasks.md §0: AVE's adapters, log-mel mixup in training), 25 LLP
  classes and the MGN `head` (`heads.avvp.MGNHead` arguments)."""
  _check(variant)
  return dict(backbone(variant), logmel_mixup=True, variant=variant, num_classes=25,
              head=dict(HEAD_AVVP if variant == "large" else HEAD_AVVP_TINY))


def avs(variant: str = "large", subset: str = "s4") -> dict:
  """The AVS model config (`models.avs.AVSModel`) of AVSBench `subset` 's4' or 'ms3'
  (spec dgsct_tasks.md §0, §2.2): the backbone with AVS's adapters, 5-s clips
  (160 000 samples) for T = 5 frames, frames resized in the model, log-mel mixup, HTS-AT
  trained in S4; `num_classes` 1 (a foreground mask); the decoder `head` with γ 0.05
  (S4) or 0.1 (MS3's training default)."""
  _check(variant)
  if subset not in AVS_SUBSETS:
    raise ValueError(f"unknown AVS subset {subset!r}; choose one of {AVS_SUBSETS}")
  s4 = subset == "s4"
  config = backbone(variant, adapter=ADAPTER_AVS_S4 if s4 else ADAPTER_AVS_MS3)
  if variant == "large":
    config["htsat"]["num_samples"] = 160000
  head = dict(HEAD_AVS if variant == "large" else HEAD_AVS_TINY, gamma=0.05 if s4 else 0.1)
  return dict(config, logmel_mixup=True, train_audio_encoder=s4, resize_frames=True,
              variant=variant, num_classes=1, head=head)


def avqa(variant: str = "large") -> dict:
  """The AVQA model config (`models.avqa.AVQAModel`, spec dgsct_tasks.md §0, §3.2): the
  backbone with AVQA's adapters and log-mel mixup in training, the 42 answers of
  MUSIC-AVQA and the AVST `head` (`heads.avqa.AVQAHead` arguments). Tiny: r = 4, so that
  the bottleneck of HTS-AT-tiny's 16 channels splits into the 4 conv groups."""
  _check(variant)
  adapter = ADAPTER_AVQA if variant == "large" else dict(ADAPTER_AVQA, reduction_factor=4)
  return dict(backbone(variant, adapter=adapter), logmel_mixup=True, variant=variant,
              num_classes=42, head=dict(HEAD_AVQA if variant == "large" else HEAD_AVQA_TINY))
