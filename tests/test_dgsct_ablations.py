"""Ablation switches, schedule invariants and plumbing of the DG-SCT AVE model.

A micro configuration (2 stages per encoder, Swin depths (1, 3) vs HTS-AT (1, 1),
so the "audio block k under visual block 3k+2" pattern is exercised) keeps every
compile to a few seconds; variants are built abstractly and take the base model's
weights (no per-variant initialisation). Switches inside the adapter are checked
on single adapters; switches of the wrapper on the whole model. Each switch must
change what it should and nothing else.
"""
import copy
import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from dgsct_jax import nnx_utils
from dgsct_jax.models import adapter as adapter_lib
from dgsct_jax.models import ave
from dgsct_jax.models import backbone
from dgsct_jax.models import dgsct
from dgsct_jax.models import layers
from dgsct_jax.models import pairing
from dgsct_jax.models import presets
from weight_conversion import store
from weight_conversion.maps import ave as ave_map

B, T = 1, 4  # T >= the head's top-4


def micro_config(**overrides) -> dict:
  cfg = presets.ave("tiny")
  cfg["swin"].update(img_size=32, embed_dim=16, depths=(1, 3), num_heads=(1, 2), window_size=4)
  cfg["htsat"].update(spec_size=32, mel_bins=8, embed_dim=16, depths=(1, 1), num_heads=(1, 2),
                      window_size=4)
  cfg["head"].update(visual_dim=32, audio_dim=32)
  adapter = overrides.pop("adapter", {})
  cfg.update(overrides)
  cfg["adapter"].update(adapter)
  return cfg


def variant(base_model, cfg):
  """A model of config `cfg` carrying `base_model`'s weights where paths and shapes agree
  (anything else, e.g. a switched-on branch, gets small random values)."""
  graphdef, state = nnx.split(nnx.eval_shape(lambda: ave.AVEModel(cfg, rngs=nnx.Rngs(0))))
  known = {p: v for p, v in nnx.state(base_model).flat_state()}
  rng = np.random.default_rng(0)
  for path, var in state.flat_state():
    if path in known and known[path].get_value().shape == var.get_value().shape:
      var.set_value(known[path].get_value())
    else:
      var.set_value(jnp.asarray(0.1 * rng.standard_normal(var.get_value().shape), var.get_value().dtype))
  return nnx.merge(graphdef, state)


def randomize_gates(model, seed=1):
  """Nonzero output and latent-token gates, so that every adapter acts."""
  key = jax.random.key(seed)
  for path, var in nnx.state(model, layers.Trainable).flat_state():
    if str(path[-1]) in ("gate", "gate_av"):
      key, sub = jax.random.split(key)
      var.set_value(0.5 * jax.random.normal(sub, var.get_value().shape))
  return model


def copy_common(src, dst):
  """dst gets every variable of src that it also has (same path and shape)."""
  src_flat = {p: v for p, v in nnx.state(src).flat_state()}
  state = nnx.state(dst)
  for path, var in state.flat_state():
    if path in src_flat and src_flat[path].get_value().shape == var.get_value().shape:
      var.set_value(src_flat[path].get_value())
  nnx.update(dst, state)
  return dst


@pytest.fixture(scope="module")
def inputs():
  audio = 0.1 * jax.random.normal(jax.random.key(0), (B, T, 32000))
  frames = jax.random.normal(jax.random.key(1), (B, T, 3, 32, 32))
  return audio, frames


@nnx.jit
def encode(model, audio, frames):
  b, t = frames.shape[:2]
  v, a, aux = model.encode(frames.reshape(b * t, 3, 32, 32), audio.reshape(b * t, -1),
                           capture=True)
  return v, a, aux


def encode_np(model, audio, frames):
  return jax.tree.map(np.asarray, encode(model, audio, frames))


@pytest.fixture(scope="module")
def fresh():
  return ave.AVEModel(micro_config(), rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def base(fresh, inputs):
  model = randomize_gates(variant(fresh, micro_config()))
  return model, encode_np(model, *inputs)


@pytest.fixture(scope="module")
def frozen_outputs(base, inputs):
  model, _ = base
  audio, frames = inputs
  feats_v, _ = nnx.jit(lambda m, x: m(x))(model.swin, frames.reshape(B * T, 3, 32, 32))
  feats_a, _ = nnx.jit(lambda m, x: m(x))(model.htsat, audio.reshape(B * T, -1))
  return np.asarray(feats_v), np.asarray(feats_a)


def test_pairing_tables():
  assert pairing.zip_pairing((2, 2, 18, 2), (2, 2, 6, 2)) == pairing.AVE_PAIRING
  assert len(pairing.CLIP_HTSAT_PAIRING) == 12
  pairing.validate(pairing.CLIP_HTSAT_PAIRING, (12,), (2, 2, 6, 2))
  with pytest.raises(ValueError, match="does not exist"):
    pairing.validate(pairing.AVE_PAIRING, (2, 2, 6, 2), (2, 2, 6, 2))
  with pytest.raises(ValueError, match="does not come after"):
    pairing.validate(pairing.AVE_PAIRING[::-1], (2, 2, 18, 2), (2, 2, 6, 2))
  with pytest.raises(ValueError, match="whole ratio"):
    pairing.zip_pairing((2, 5), (2, 2))


def test_default_large_config_counts_201m_trainable():
  model = nnx.eval_shape(lambda: ave.AVEModel(presets.ave("large"),
                                                     rngs=nnx.Rngs(0)))
  count = lambda f: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, f)))
  assert round(count(layers.Trainable) / 1e6, 2) == 201.16   # spec §3.7
  assert round(count(nnx.Param) / 1e6, 2) == 426.61          # + 33.57 M swin head + 1.08 M STFT/mel
  adapters = sum(int(np.prod(x.shape)) for name in dgsct.ADAPTER_SETS
                 for x in jax.tree.leaves(nnx.state(getattr(model, name), layers.Trainable)))
  assert abs(adapters / 1e6 - 2 * (60.573 + 33.696)) < 0.002  # spec §3.7 per-set counts
  assert model.pairs == pairing.AVE_PAIRING


def test_fresh_model_starts_at_the_frozen_backbones(fresh, inputs, frozen_outputs):
  for name in dgsct.ADAPTER_SETS:
    assert all(float(jnp.abs(a.gate.get_value()).max()) == 0 for a in getattr(fresh, name))
  _, _, aux = encode_np(fresh, *inputs)
  np.testing.assert_array_equal(aux["visual_tokens"], frozen_outputs[0])
  np.testing.assert_array_equal(aux["audio_tokens"], frozen_outputs[1])


def test_schedule_runs_every_adapter_once(base):
  _, (v, a, aux) = base
  assert {k: len(x) for k, x in aux["adapters"].items()} == {s: 2 for s in dgsct.ADAPTER_SETS}
  assert [x.shape for x in aux["visual_stages"]] == [(B * T, 64, 16), (B * T, 16, 32)]
  assert [x.shape for x in aux["audio_stages"]] == [(B * T, 64, 16), (B * T, 16, 32)]
  np.testing.assert_allclose(v, np.einsum("bn,bnc->bc", aux["visual_smap"], aux["visual_tokens"]),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(aux["visual_smap"], aux["adapters"][dgsct.VIS_P2][-1][1])
  np.testing.assert_array_equal(aux["audio_smap"], aux["adapters"][dgsct.AUD_P2][-1][1])


@pytest.mark.parametrize("direction", ["visual_adapters", "audio_adapters"])
def test_one_guidance_direction(base, inputs, frozen_outputs, direction):
  model = variant(base[0], micro_config(**{direction: False}))
  _, _, aux = encode_np(model, *inputs)
  sets = set(aux["adapters"])
  if direction == "visual_adapters":   # V2A only: the visual stream stays frozen
    assert sets == {dgsct.AUD_P1, dgsct.AUD_P2}
    np.testing.assert_array_equal(aux["visual_tokens"], frozen_outputs[0])
    assert not np.allclose(aux["audio_tokens"], frozen_outputs[1], atol=1e-3)
    assert aux["visual_smap"] is None
  else:                                # A2V only: the audio stream stays frozen
    assert sets == {dgsct.VIS_P1, dgsct.VIS_P2}
    np.testing.assert_array_equal(aux["audio_tokens"], frozen_outputs[1])
    assert not np.allclose(aux["visual_tokens"], frozen_outputs[0], atol=1e-3)


def test_no_adapters_is_the_frozen_baseline(base, inputs, frozen_outputs):
  model = variant(base[0], micro_config(visual_adapters=False, audio_adapters=False))
  assert model.adapter_sets() == {}
  parts = nnx_utils.split(model)
  assert set(parts.trainable) == {"head"}
  assert not nnx.state(model.swin, layers.Trainable).flat_state()
  assert not nnx.state(model.htsat, layers.Trainable).flat_state()
  v, a, aux = encode_np(model, *inputs)
  np.testing.assert_allclose(v, frozen_outputs[0].mean(1), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(a, frozen_outputs[1].mean(1), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("which", ["p1", "p2"])
def test_one_adapter_position(base, inputs, which):
  model = variant(base[0], micro_config(**{which: False}))
  _, _, aux = encode_np(model, *inputs)
  kept = "p2" if which == "p1" else "p1"
  assert all(name.endswith(kept) for name in aux["adapters"])
  first = dgsct.VIS_P1 if kept == "p1" else dgsct.VIS_P2
  # The first adapter of the kept position sees the same inputs as in the full model
  # only for p1 (p2 follows the p1 residuals).
  same = np.allclose(aux["adapters"][first][0][0], base[1][2]["adapters"][first][0][0])
  assert same == (kept == "p1")


def _adapter_pair(base_adapter, **switches):
  """An adapter with `switches`, carrying `base_adapter`'s weights where they exist."""
  cfg = dataclasses.replace(base_adapter.config, **switches)
  new = adapter_lib.Adapter(tokens=base_adapter.tokens, dim=base_adapter.dim, guide_tokens=64,
                            guide_dim=16, config=cfg, rngs=nnx.Rngs(7))
  return copy_common(base_adapter, new)


@pytest.fixture(scope="module")
def adapter_inputs():
  return (jax.random.normal(jax.random.key(2), (2, 64, 16)),
          jax.random.normal(jax.random.key(3), (2, 64, 16)))


def test_zero_alpha_beta_equals_lavish_style_adapter(base, adapter_inputs):
  full = base[0].vis_adapter_blocks_p1[0]
  zero = _adapter_pair(full, alpha=0.0, beta=0.0)
  lavish = _adapter_pair(full, channel=False, spatial=False)
  res_lavish, smap_lavish = lavish(*adapter_inputs)
  np.testing.assert_allclose(zero(*adapter_inputs)[0], res_lavish, rtol=1e-5, atol=1e-6)
  assert smap_lavish is None  # no spatial branch: the stream is mean-pooled
  assert not np.allclose(full(*adapter_inputs)[0], res_lavish, atol=1e-4)


def test_channel_off_equals_alpha_zero_without_prescaling(base, adapter_inputs):
  """channel=False ≡ α = 0 with a zero channel map feeding the spatial branch."""
  full = base[0].vis_adapter_blocks_p1[0]
  off = _adapter_pair(full, channel=False)
  probe = _adapter_pair(full, alpha=0.0)
  probe.fc_affine_v_c_att.bias.set_value(jnp.full((full.dim,), -1e4))  # M_c = sigmoid(-1e4) = 0
  np.testing.assert_allclose(off(*adapter_inputs)[0], probe(*adapter_inputs)[0], rtol=1e-5,
                             atol=1e-6)
  assert not np.allclose(off(*adapter_inputs)[0], full(*adapter_inputs)[0], atol=1e-4)


def test_spatial_off_drops_beta_term_and_map(base, adapter_inputs):
  full = base[0].vis_adapter_blocks_p1[0]
  off = _adapter_pair(full, spatial=False)
  no_beta = _adapter_pair(full, beta=0.0)
  res, smap = off(*adapter_inputs)
  assert smap is None
  np.testing.assert_allclose(res, no_beta(*adapter_inputs)[0], rtol=1e-5, atol=1e-6)


def test_temporal_gate_and_latent_tokens_switches(base, adapter_inputs):
  full = base[0].vis_adapter_blocks_p1[0]
  temporal = _adapter_pair(full, temporal=True, gamma=0.5)
  assert not np.allclose(temporal(*adapter_inputs)[0], full(*adapter_inputs)[0], atol=1e-4)
  temporal.temporal_gated[0].bias.set_value(jnp.full((1,), -1e4))  # G_t = 0: no temporal term
  np.testing.assert_allclose(temporal(*adapter_inputs)[0], full(*adapter_inputs)[0], rtol=1e-5,
                             atol=1e-6)
  no_latent = _adapter_pair(full, latent_tokens=False)
  gate_av_zero = _adapter_pair(full)
  gate_av_zero.gate_av.set_value(jnp.zeros((1,)))
  np.testing.assert_allclose(no_latent(*adapter_inputs)[0], gate_av_zero(*adapter_inputs)[0],
                             rtol=1e-5, atol=1e-6)
  assert not np.allclose(no_latent(*adapter_inputs)[0], full(*adapter_inputs)[0], atol=1e-4)


def test_encoder_train_mode_switch(base, inputs):
  audio, frames = inputs
  x_v, x_a = frames.reshape(B * T, 3, 32, 32), audio.reshape(B * T, -1)

  @nnx.jit
  def train_encode(model, rngs):
    return model.encode(x_v, x_a, deterministic=False, rngs=rngs)[:2]

  for mode in (True, False):
    model = variant(base[0], micro_config(encoder_train_mode=mode))
    bn0 = np.asarray(model.htsat.frontend.bn0.mean.get_value())
    first = train_encode(model, nnx.Rngs(dropout=0))
    second = train_encode(model, nnx.Rngs(dropout=1))
    moved = not np.allclose(model.htsat.frontend.bn0.mean.get_value(), bn0)
    random = not np.allclose(first[0], second[0])
    assert moved == mode and random == mode, mode
    adapter_bn = model.vis_adapter_blocks_p1[0].bn1.mean.get_value()
    assert not np.allclose(adapter_bn, base[0].vis_adapter_blocks_p1[0].bn1.mean.get_value())


def train_grads(model, inputs, dtype=jnp.float32, grad=True, run=True):
  """Training-mode gradients (the trainer's pattern: pure dicts merged inside the loss,
  `steps.forward`) of event_scores.sum() + pooled_audio.sum() w.r.t. the trainable
  leaves, the BatchNorm statistics after the call, the pooled visual features and the
  number of checkpoints (remat) in the traced program; with `grad=False` the forward pass
  alone (no gradients), with `run=False` only the count (nothing compiled).

  One function for every gradient of this module: two calls on models of one config
  compile the same program, so the persistent compilation cache compiles it once."""
  from dgsct_jax import steps  # pylint: disable=import-outside-toplevel
  from dgsct_jax import train_state  # pylint: disable=import-outside-toplevel
  from dgsct_jax.tasks.ave import task as ave_task  # pylint: disable=import-outside-toplevel
  audio, frames = inputs
  parts = nnx_utils.split(model)

  def loss(trainable, frozen, stats):
    out, new_stats = steps.forward(ave_task.AVE(), parts.graphdef, trainable, frozen, stats,
                                   {"audio": audio, "frames": frames}, deterministic=False,
                                   rng=jax.random.key(0), dtype=dtype)
    return out["event_scores"].sum() + out["pooled_audio"].sum(), (new_stats,
                                                                   out["pooled_visual"])

  fn = jax.grad(loss, has_aux=True) if grad else lambda *p: (None, loss(*p)[1])
  args = (parts.trainable, train_state.cast_floats(parts.frozen, dtype), parts.stats)
  traced = jax.jit(fn).trace(*args)
  checkpoints = str(traced.jaxpr).count("remat2[")
  if not run:
    return None, None, None, checkpoints
  grads, (stats, pooled) = traced.lower().compile()(*args)
  flat = lambda tree: np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])
  return (None if grads is None else flat(grads)), flat(stats), np.asarray(pooled), checkpoints


def test_remat_matches_plain_forward_and_gradients(base, inputs):
  """Training-mode gradients and BatchNorm statistics with block_dots remat equal those
  without.

  'block:1' differs only in which blocks are checkpointed, so its gradients are not
  compiled again: only its checkpoints are counted ('block' differs from 'block_dots'
  only in its policy: test_remat.py checks every policy's gradients)."""
  grads, stats, checkpoints = {}, {}, {}
  for remat in ("none", "block_dots", "block:1"):
    policy, _, stages = remat.partition(":")
    model = variant(base[0], micro_config(
        remat=policy, remat_stages=int(stages) if stages else None, encoder_train_mode=False))
    grads[remat], stats[remat], _, checkpoints[remat] = train_grads(
        model, inputs, run=remat != "block:1")
  scale = np.abs(grads["none"]).max()
  np.testing.assert_allclose(grads["block_dots"], grads["none"], rtol=1e-4, atol=1e-5 * scale)
  np.testing.assert_allclose(stats["block_dots"], stats["none"], rtol=1e-6, atol=1e-7)
  assert np.abs(grads["none"]).max() > 0
  # Swin depths (1, 3), HTS-AT (1, 1): 4 checkpointed units (pairs + plain blocks) with
  # remat everywhere, only the stage-0 pair with remat_stages=1.
  assert checkpoints["none"] == 0
  assert checkpoints["block_dots"] > checkpoints["block:1"] > 0, checkpoints


def test_audio_tiling_on_device(base, inputs):
  segment = np.arange(5.0, dtype=np.float32)[None, None]
  np.testing.assert_array_equal(backbone.tile_segments(segment, 12)[0, 0],
                                np.concatenate([np.arange(5.0)] * 3)[:12])
  with pytest.raises(ValueError, match="more than the model's clip length"):
    backbone.tile_segments(np.zeros((1, 1, 20)), 12)
  cfg = micro_config()
  cfg["htsat"]["num_samples"] = 40000
  model = variant(base[0], cfg)
  audio, frames = inputs
  short = audio[..., :16000]
  run = nnx.jit(lambda m, a, f: m(a, f)["pooled_audio"])
  np.testing.assert_allclose(run(model, short, frames),
                             run(model, jnp.tile(short, (1, 1, 3))[..., :40000], frames),
                             rtol=1e-6, atol=1e-6)
  with pytest.raises(ValueError, match="expected audio"):
    model(audio[0], frames)


def test_outputs_layout_and_trainer_parts(base, inputs):
  model = base[0]
  out = nnx.jit(lambda m, a, f: m(a, f))(model, *inputs)
  assert out["is_event_scores"].shape == (B, T) and out["event_scores"].shape == (B, 28)
  assert out["pooled_visual"].shape == (B, T, 32) and out["pooled_audio"].shape == (B, T, 32)
  assert out["visual_smap"].shape == (B, T, 16) and out["audio_smap"].shape == (B, T, 16)
  assert model.smap_grids() == {"visual_smap": (4, 4), "audio_smap": (4, 4)}
  parts = nnx_utils.split(model)
  assert set(parts.trainable) == set(dgsct.ADAPTER_SETS) | {"head"}
  assert set(parts.frozen) == {"swin", "htsat"}
  official = ave_map.run(model, {"audio": np.asarray(inputs[0]),
                                   "frames": np.asarray(inputs[1])})
  assert official["is_event_scores"].shape == (T, B, 1)
  assert official["audio_visual_gate"].shape == (T, B, 1)
  with pytest.raises(ValueError, match="input 'audio'"):
    bad = np.asarray(inputs[0]).copy()
    bad[0, 1, 7] = np.nan
    ave_map.run(model, {"audio": bad, "frames": np.asarray(inputs[1])})


def test_bad_config_is_named():
  with pytest.raises(ValueError, match=r"unknown key\(s\) \['adaptr'\]"):
    ave.AVEModel(dict(presets.ave("tiny"), adaptr={}), rngs=nnx.Rngs(0))
  cfg = micro_config()
  cfg["head"]["visual_dim"] = 64
  with pytest.raises(ValueError, match="head.visual_dim=64"):
    nnx.eval_shape(lambda: ave.AVEModel(cfg, rngs=nnx.Rngs(0)))
  with pytest.raises(ValueError, match="remat="):
    nnx.eval_shape(lambda: ave.AVEModel(micro_config(remat="all"), rngs=nnx.Rngs(0)))


def test_converted_encoders_fill_a_fresh_model(base, tmp_path):
  """The trainer's start: a fresh model whose frozen encoders come from converted
  directories (config.init_from), adapters and head fresh, output gates at 0."""
  from dgsct_jax import train_state  # pylint: disable=import-outside-toplevel
  model = base[0]
  for prefix in ("swin", "htsat"):
    values = {".".join(str(p) for p in path): np.asarray(var.get_value())
              for path, var in nnx.state(getattr(model, prefix)).flat_state()}
    store.save(tmp_path / prefix, values, {"arch": f"micro_{prefix}"})
  config = ml_collections.ConfigDict({"weights_dir": str(tmp_path), "init_from": {
      name: {"dir": prefix, "prefix": prefix, "sha256": ""}
      for name, prefix in (("visual", "swin"), ("audio", "htsat"))}})
  parts, digests = train_state.load_encoders(
      config, nnx_utils.split(ave.AVEModel(micro_config(), rngs=nnx.Rngs(5))))
  assert set(digests) == {"visual", "audio"}
  loaded = nnx_utils.merge(parts.graphdef, parts.trainable, parts.frozen, parts.stats)
  np.testing.assert_array_equal(loaded.swin.layers[1].blocks[2].attn.qkv.kernel.get_value(),
                                model.swin.layers[1].blocks[2].attn.qkv.kernel.get_value())
  np.testing.assert_array_equal(loaded.htsat.frontend.bn0.var.get_value(),
                                model.htsat.frontend.bn0.var.get_value())
  assert float(jnp.abs(loaded.vis_adapter_blocks_p2[1].gate.get_value()).max()) == 0.0
  other = copy.deepcopy(micro_config())
  other["swin"]["embed_dim"] = 32
  other["head"]["visual_dim"] = 64
  with pytest.raises(ValueError, match=r"do not match the model under 'swin'"):
    train_state.load_encoders(config, nnx_utils.split(ave.AVEModel(other, rngs=nnx.Rngs(5))))


def test_bfloat16_matmuls_and_compute_train(fresh, inputs):
  """model.matmul_dtype='bfloat16' (bf16 operands, f32 accumulation) and the trainer's
  bf16 compute dtype: jitted training gradients run on CPU, stay near float32 (the fresh model: the frozen backbones plus the head), and are
  not float32 (each setting is live); bf16 compute carries bf16 token streams. The
  float32 gradients are the program test_remat_matches_plain_forward_and_gradients
  compiles (read from the compilation cache); the bf16-matmul setting alone is checked on
  the forward pass (its backward products are test_matmul.py's); bf16 through remat is
  test_remat.py's.

  The random-weight model with active adapters amplifies rounding ~10³× (see the golden
  tests), so closeness is checked where the network is well conditioned."""
  from dgsct_jax import train_state  # pylint: disable=import-outside-toplevel
  audio, frames = inputs
  results = {}
  for name, matmul_dtype, dtype, remat in (("f32", None, jnp.float32, "none"),
                                           ("bf16_matmul", "bfloat16", jnp.float32, "none"),
                                           ("bf16", "bfloat16", jnp.bfloat16, "none")):
    model = variant(fresh, micro_config(matmul_dtype=matmul_dtype, encoder_train_mode=False,
                                        remat=remat))
    grads, _, pooled, _ = train_grads(model, inputs, dtype, grad=name != "bf16_matmul")
    parts = nnx_utils.split(model)
    encode_aux = lambda *parts_: nnx_utils.merge(parts.graphdef, *parts_).encode(
        frames.reshape(B * T, 3, 32, 32).astype(dtype), audio.reshape(B * T, -1).astype(dtype))[2]
    aux = jax.eval_shape(encode_aux, train_state.cast_floats(parts.trainable, dtype),
                         train_state.cast_floats(parts.frozen, dtype), parts.stats)
    results[name] = (grads, pooled, aux["visual_tokens"].dtype)
  grads32, pooled32, tokens32 = results["f32"]
  assert tokens32 == jnp.float32
  rms = lambda x: np.sqrt(np.mean(np.square(x)))
  for name, bound in (("bf16_matmul", 3e-2), ("bf16", 8e-2)):  # bf16 measured 3.5e-2
    grads, pooled, tokens = results[name]
    assert tokens == (jnp.bfloat16 if name == "bf16" else jnp.float32), name
    pairs = ((pooled, pooled32),) if grads is None else ((grads, grads32), (pooled, pooled32))
    for got, want in pairs:
      error = rms(got - want) / rms(want)
      assert 1e-5 < error < bound, (name, error)
