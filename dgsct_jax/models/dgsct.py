"""Two frozen encoders interleaved block by block with DG-SCT adapters (spec §2).

`DGSCT` is generic over its encoders. It needs from each (Swin-V2 and HTS-AT
implement it): `embed(inputs, *, deterministic, rngs)` → tokens (B, L, C);
`layers[i].blocks[j]` with `attn_residual`, `mlp_residual` and `__call__`;
`layers[i].resolution` (token grid), `.dim`, `.downsample` (patch merging at
the end of stage i, None on the last stage); `finalize(x)` (final norm).

Which blocks carry adapters is the pairing table (`pairing.py`, data). Pair i
owns `vis_adapter_blocks_p1[i]`, `vis_adapter_blocks_p2[i]` (audio guides
visual, A2V) and `audio_adapter_blocks_p1[i]`, `audio_adapter_blocks_p2[i]`
(visual guides audio, V2A). A paired block runs the official order (§2.2):

    r_a1 = A_p1(f_a | f_v);  r_v1 = V_p1(f_v | f_a)            (block inputs)
    f_v = attn_residual(f_v) + r_v1
    f_a = audio_block(f_a) + r_a1                                (whole audio block)
    r_a2 = A_p2(f_a | f_v);  r_v2 = V_p2(f_v | f_a)            (f_v mid-block)
    f_v = mlp_residual(f_v) + r_v2;  f_a = f_a + r_a2

Unpaired blocks run plain. Each stream is advanced to the next pair on its own
(patch merging happens when a stream enters its next stage); since the streams
only interact inside pairs this equals the reference's stage-by-stage loop.
After the last block: `visual.finalize` (Swin final norm) and, faithful to the
reference, no final norm on the audio stream (`audio_final_norm=False`).
Pooling (§2.3): each stream's tokens are weighted by the softmax spatial map of
the last adapter that ran on it (the p2 adapter of the last pair); a stream
without such a map (no adapters, `spatial=False`) is mean-pooled.

Modes. `deterministic=False` puts the adapters' BatchNorms in training mode
(batch statistics over (BT, N), running-stat updates) and, when
`encoder_train_mode` is True (faithful: the reference calls `model.train()` on
its frozen encoders), also the encoders: drop path in both, HTS-AT bn0 batch
statistics (+ running-stat update) and SpecAugment, and with `logmel_mixup` (the
AVVP/AVS/AVQA references; not AVE) the audio encoder's log-mel mixup of each
segment with the batch reversed, λ ~ Beta(0.5, 0.5) per segment, labels unmixed.
`encoder_train_mode=False` keeps the frozen encoders deterministic while the
adapters train.

Rematerialisation (`remat`): 'none'; 'block' recomputes every block (paired
steps with their four adapters as one unit) in the backward pass, saving only
the stream between blocks; 'block_dots' does the same but keeps the outputs of
matmuls without batch dimensions (jax.checkpoint_policies.dots_with_no_batch_dims_saveable).
Both go through `remat.module_checkpoint`, whose recomputation waits for the
block's cotangent (bare `jax.checkpoint` saves nothing on XLA:CPU; see remat.py).
`remat_stages=k` limits rematerialisation to the blocks of the first k stages of
each encoder (a paired step counts when either block is in them): the deep
stages hold few tokens, so keeping their activations costs little memory while
recomputing their many small elementwise ops costs time on CPU.

Matmul precision (`matmul_dtype`): None keeps every matmul in the compute dtype
(faithful); 'bfloat16' rounds the operands of the encoders' and adapters' large
matmuls to bfloat16 and accumulates in float32 (a TPU's default for float32
matmuls; on CPUs with AMX about 4x faster), see `matmul.py`.
"""
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from dgsct_jax.models import adapter as adapter_lib
from dgsct_jax.models import layers
from dgsct_jax.models import matmul
from dgsct_jax.models import pairing as pairing_lib
from dgsct_jax.models import remat as remat_lib

VIS_P1, VIS_P2 = "vis_adapter_blocks_p1", "vis_adapter_blocks_p2"
AUD_P1, AUD_P2 = "audio_adapter_blocks_p1", "audio_adapter_blocks_p2"
ADAPTER_SETS = (AUD_P1, VIS_P1, AUD_P2, VIS_P2)  # order of execution inside a pair

MIXUP_ALPHA = 0.5  # the reference's get_mix_lambda(0.5, B·T)

REMAT_POLICIES = {
    "none": None,
    "block": jax.checkpoint_policies.nothing_saveable,
    "block_dots": jax.checkpoint_policies.save_from_both_policies(
        jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
        jax.checkpoint_policies.save_only_these_names(matmul.NO_BATCH_DOT)),
}


def _depths(encoder) -> list[int]:
  return [len(layer.blocks) for layer in encoder.layers]


def _tokens(layer) -> int:
  h, w = layer.resolution
  return h * w


@dataclasses.dataclass(frozen=True)
class Options:
  """How the encoders are interleaved and adapted (the backbone keys of a model config,
  documented in `presets.backbone`)."""
  pairing: Any = "zip"
  adapter: Any = None
  visual_adapters: bool = True
  audio_adapters: bool = True
  p1: bool = True
  p2: bool = True
  encoder_train_mode: bool = True
  audio_final_norm: bool = False
  logmel_mixup: bool = False
  train_audio_encoder: bool = False
  remat: str = "none"
  remat_stages: int | None = None
  matmul_dtype: str | None = None

  @classmethod
  def from_config(cls, config) -> "Options":
    """The option fields present in a (task) model config; other keys are the task's."""
    return cls(**{f.name: config[f.name] for f in dataclasses.fields(cls) if f.name in config})


class DGSCT(nnx.Module):
  """Frozen visual + audio encoders with DG-SCT adapters; pooled per-segment features.

  Args:
    visual, audio: the encoders (frozen `nnx.Param`s, or `Trainable` for the audio encoder
      with `options.train_audio_encoder`; see the module doc for the API).
    options: `Options` (pairing table or name of `pairing.get`, adapter fields, which
      adapter sets exist, train-mode encoders, remat, matmul precision).
    visual_name, audio_name: the attributes holding the encoders (the task models use the
      official `swin` / `htsat`, so that state paths mirror the reference's keys).
  """

  def __init__(self, visual, audio, options: Options = Options(), *,
               visual_name: str = "visual", audio_name: str = "audio", rngs: nnx.Rngs):
    if options.remat not in REMAT_POLICIES:
      raise ValueError(f"remat={options.remat!r}; choose one of {sorted(REMAT_POLICIES)}")
    cfg = options.adapter if isinstance(options.adapter, adapter_lib.AdapterConfig) else (
        adapter_lib.AdapterConfig.from_dict(options.adapter))
    self.visual_name, self.audio_name = visual_name, audio_name
    if options.train_audio_encoder:
      layers.mark_trainable(audio)
    setattr(self, visual_name, visual)
    setattr(self, audio_name, audio)
    self.pairs = pairing_lib.get(options.pairing, _depths(visual), _depths(audio))
    self.encoder_train_mode = options.encoder_train_mode
    self.audio_final_norm = options.audio_final_norm
    self.logmel_mixup = options.logmel_mixup
    self.remat = options.remat
    self.remat_stages = options.remat_stages
    self.matmul_dtype = (None if options.matmul_dtype is None
                         else jnp.dtype(options.matmul_dtype).name)
    built = {VIS_P1: options.visual_adapters and options.p1,
             VIS_P2: options.visual_adapters and options.p2,
             AUD_P1: options.audio_adapters and options.p1,
             AUD_P2: options.audio_adapters and options.p2}
    for name in ADAPTER_SETS:
      setattr(self, name, nnx.List([self._adapter(name, pair, cfg, rngs) for pair in self.pairs])
              if built[name] else None)

  def _adapter(self, name, pair, cfg, rngs):
    v_layer = self.visual_encoder.layers[pair.visual[0]]
    a_layer = self.audio_encoder.layers[pair.audio[0]]
    if name.startswith("vis"):
      target, guide, use_gate = v_layer, a_layer, True
    else:
      target, guide, use_gate = a_layer, v_layer, cfg.audio_gate
    return adapter_lib.Adapter(tokens=_tokens(target), dim=target.dim, guide_tokens=_tokens(guide),
                               guide_dim=guide.dim, use_gate=use_gate, config=cfg, rngs=rngs)

  @property
  def visual_encoder(self):
    return getattr(self, self.visual_name)

  @property
  def audio_encoder(self):
    return getattr(self, self.audio_name)

  def adapter_sets(self) -> dict[str, nnx.List]:
    """The adapter lists that exist, by official name."""
    return {name: getattr(self, name) for name in ADAPTER_SETS if getattr(self, name) is not None}

  # -- forward ---------------------------------------------------------------------

  def __call__(self, visual_inputs, audio_inputs, **kw):
    return self.encode(visual_inputs, audio_inputs, **kw)

  def encode(self, visual_inputs, audio_inputs, *, deterministic: bool = True,
             rngs: nnx.Rngs | None = None, capture: bool = False):
    """(visual inputs (BT, ...), audio inputs (BT, ...)) → (v (BT, C_v), a (BT, C_a), aux).

    aux: 'visual_stages' / 'audio_stages' (each stage's tokens before its patch
    merging), 'visual_tokens' (after the final norm) / 'audio_tokens' (what is pooled),
    'visual_smap' / 'audio_smap' (BT, N) pooling maps (None = mean pooling), and with
    `capture` 'adapters': {set name: [(residual (BT, N, C), smap (BT, N) | None)] per pair}.
    """
    with matmul.operand_dtype(self.matmul_dtype):
      return self._encode(visual_inputs, audio_inputs, deterministic=deterministic, rngs=rngs,
                          capture=capture)

  def encoders_deterministic(self, deterministic: bool) -> bool:
    """Whether the frozen encoders run deterministically: in evaluation, or in training
    with `encoder_train_mode=False`."""
    return deterministic or not self.encoder_train_mode

  def _encode(self, visual_inputs, audio_inputs, *, deterministic, rngs, capture):
    enc_det = self.encoders_deterministic(deterministic)
    with jax.named_scope("visual"):
      f_v = self.visual_encoder.embed(visual_inputs, deterministic=enc_det, rngs=rngs)
    with jax.named_scope("audio"):
      f_a = self.audio_encoder.embed(audio_inputs, deterministic=enc_det, rngs=rngs,
                                     **self._mixup(audio_inputs.shape[0], enc_det, rngs))
    streams = {key: _Stream(key, encoder, f) for key, encoder, f in (
        ("visual", self.visual_encoder, f_v), ("audio", self.audio_encoder, f_a))}
    run_plain = lambda stage: self._wrap(_plain_block, stage)
    captured = {name: [] for name in self.adapter_sets()}
    smaps = {"visual": None, "audio": None}
    for i, pair in enumerate(self.pairs):
      for key, stop in (("visual", pair.visual), ("audio", pair.audio)):
        streams[key].advance_to(stop, run_plain, enc_det, rngs)
      modules = {
          "visual": self.visual_encoder.layers[pair.visual[0]].blocks[pair.visual[1]],
          "audio": self.audio_encoder.layers[pair.audio[0]].blocks[pair.audio[1]],
          "adapters": {name: adapters[i] for name, adapters in self.adapter_sets().items()}}
      run_pair = self._wrap(_paired_step, min(pair.visual[0], pair.audio[0]))
      f_v, f_a, outs = run_pair(modules, streams["visual"].x, streams["audio"].x, rngs=rngs,
                                enc_det=enc_det, ad_det=deterministic)
      streams["visual"].x, streams["audio"].x = f_v, f_a
      for name, (res, smap) in outs.items():
        if capture:
          captured[name].append((res, smap))
        if smap is not None:
          smaps["visual" if name.startswith("vis") else "audio"] = smap
    for stream in streams.values():
      stream.finish(run_plain, enc_det, rngs)
    with jax.named_scope("visual"):
      f_v = self.visual_encoder.finalize(streams["visual"].x)
    f_a = streams["audio"].x
    if self.audio_final_norm:
      with jax.named_scope("audio"):
        f_a = self.audio_encoder.finalize(f_a)
    aux = {"visual_stages": streams["visual"].stage_outputs,
           "audio_stages": streams["audio"].stage_outputs,
           "visual_tokens": f_v, "audio_tokens": f_a,
           "visual_smap": smaps["visual"], "audio_smap": smaps["audio"]}
    if capture:
      aux["adapters"] = captured
    return pool(f_v, smaps["visual"]), pool(f_a, smaps["audio"]), aux

  def _mixup(self, batch: int, enc_det: bool, rngs) -> dict:
    """The audio encoder's `mixup_lambda` (B·T,) ~ Beta(α, α) when log-mel mixup runs: in
    training with train-mode encoders, as the reference applies it only while HTS-AT trains."""
    if not self.logmel_mixup or enc_det:
      return {}
    if rngs is None:
      raise ValueError("log-mel mixup needs `rngs` (a 'dropout' stream) in training")
    return {"mixup_lambda": jax.random.beta(rngs.dropout(), MIXUP_ALPHA, MIXUP_ALPHA, (batch,))}

  def _wrap(self, fn, stage: int):
    policy = REMAT_POLICIES[self.remat]
    if policy is None or (self.remat_stages is not None and stage >= self.remat_stages):
      return fn
    return remat_lib.module_checkpoint(fn, policy)


def pool(tokens, smap):
  """(BT, N, C) tokens weighted by a (BT, N) map, or their mean when the map is None."""
  if smap is None:
    return tokens.mean(axis=1)
  return jnp.einsum("bn,bnc->bc", smap, tokens)


def _plain_block(block, x, *, rngs, deterministic: bool):
  return block(x, deterministic=deterministic, rngs=rngs)


def _paired_step(modules, f_v, f_a, *, rngs, enc_det: bool, ad_det: bool):
  """One paired block with its (up to) four adapters, in the reference's order.

  The named scopes `visual`, `audio` and `adapter` (also of the plain blocks) let a
  profile attribute each kernel to its part of the model."""
  v_block, a_block, sets = modules["visual"], modules["audio"], modules["adapters"]
  outs = {}

  def adapt(name, target, guide):
    if name not in sets:
      return None
    with jax.named_scope("adapter"):
      outs[name] = sets[name](target, guide, deterministic=ad_det)
    return outs[name][0]

  r_a1 = adapt(AUD_P1, f_a, f_v)
  r_v1 = adapt(VIS_P1, f_v, f_a)
  with jax.named_scope("visual"):
    f_v = v_block.attn_residual(f_v, deterministic=enc_det, rngs=rngs)
  if r_v1 is not None:
    f_v = f_v + r_v1
  with jax.named_scope("audio"):
    f_a = a_block(f_a, deterministic=enc_det, rngs=rngs)
  if r_a1 is not None:
    f_a = f_a + r_a1
  r_a2 = adapt(AUD_P2, f_a, f_v)
  r_v2 = adapt(VIS_P2, f_v, f_a)
  with jax.named_scope("visual"):
    f_v = v_block.mlp_residual(f_v, deterministic=enc_det, rngs=rngs)
  if r_v2 is not None:
    f_v = f_v + r_v2
  if r_a2 is not None:
    f_a = f_a + r_a2
  return f_v, f_a, outs


class _Stream:
  """One encoder's token stream and its position (stage, block) in the block sequence;
  its blocks and patch merging run in the named scope `name`."""

  def __init__(self, name, encoder, x):
    self.name = name
    self.encoder = encoder
    self.x = x
    self.stage, self.block = 0, 0
    self.stage_outputs = []

  def _enter_next_stage(self):
    layer = self.encoder.layers[self.stage]
    self.stage_outputs.append(self.x)
    if layer.downsample is not None:
      with jax.named_scope(self.name):
        self.x = layer.downsample(self.x)
    self.stage, self.block = self.stage + 1, 0

  def advance_to(self, stop: tuple[int, int], run_plain, deterministic, rngs):
    """Runs the plain blocks before block `stop` = (stage, block), merging between stages."""
    while (self.stage, self.block) != tuple(stop):
      if self.block == len(self.encoder.layers[self.stage].blocks):
        self._enter_next_stage()
        continue
      self._run(self.encoder.layers[self.stage].blocks[self.block], run_plain, deterministic,
                rngs)
    self.block += 1  # the caller runs block `stop` itself

  def finish(self, run_plain, deterministic, rngs):
    """Runs the remaining blocks; records the last stage's output."""
    layers = self.encoder.layers
    while not (self.stage == len(layers) - 1 and self.block == len(layers[-1].blocks)):
      if self.block == len(layers[self.stage].blocks):
        self._enter_next_stage()
        continue
      self._run(layers[self.stage].blocks[self.block], run_plain, deterministic, rngs)
    self.stage_outputs.append(self.x)

  def _run(self, block, run_plain, deterministic, rngs):
    with jax.named_scope(self.name):
      self.x = run_plain(self.stage)(block, self.x, rngs=rngs, deterministic=deterministic)
    self.block += 1
