"""HTS-AT vs laion-clap's HTS-AT (the official class), random weights, converted by the real converter.

The PyTorch model is built with the AudioSet config DG-SCT uses, every learned
tensor and BN statistic is randomised (so LayerNorm/bias/bn0 mappings matter),
saved as a file and converted with `convert.convert_file`; the JAX side runs
through the arch's `run` (host validation + jit), as `weight_conversion.run` does.
Reference pieces are called the way DG-SCT's forward_swin calls them.
"""
import types

import numpy as np
import pytest

import torch_refs
from weight_conversion import archs
from weight_conversion import convert
from weight_conversion import engine
from weight_conversion import store

TOL = 1e-4

AUDIOSET_AUDIO = dict(mel_bins=64, window_size=1024, hop_size=320, sample_rate=32000, fmin=50,
                      fmax=14000)
# A small non-default configuration the official class accepts: other audio
# settings, 3 stages, patch 6 with stride 4 (padded conv), window 4, no qkv bias,
# absolute position embedding, mlp ratio 2, 10 classes.
TINY_AUDIO = dict(mel_bins=32, window_size=512, hop_size=160, sample_rate=16000, fmin=50,
                  fmax=8000)
TINY_TORCH = dict(spec_size=64, patch_size=6, patch_stride=(4, 4), in_chans=1, num_classes=10,
                  embed_dim=16, depths=[2, 2, 2], num_heads=[2, 4, 8], window_size=4,
                  mlp_ratio=2.0, qkv_bias=False, ape=True, drop_path_rate=0.2)
TINY_OURS = dict(TINY_TORCH, sample_rate=16000, window=512, hop=160, mel_bins=32, fmin=50.0,
                 fmax=8000.0, num_samples=16000)
CONSTANTS = ("conv_real.weight", "conv_imag.weight", "melW", "attn_mask", "relative_position_index")


def rel_err(ours, ref):
  ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
  assert ours.shape == ref.shape, (ours.shape, ref.shape)
  return float(np.max(np.abs(ours - ref)) / np.max(np.abs(ref)))


def randomise(model, seed):
  """Every learned tensor and BN statistic gets a random value (constants untouched)."""
  torch = torch_refs.import_torch()
  rng = np.random.default_rng(seed)
  with torch.no_grad():
    for key, value in model.state_dict().items():
      if not value.is_floating_point() or key.endswith(CONSTANTS):
        continue
      shape = tuple(value.shape)
      if key.endswith("running_var"):
        new = 0.5 + rng.random(shape)
      elif key.endswith("running_mean"):
        new = 0.1 * rng.standard_normal(shape)
      elif value.ndim == 1 and key.endswith("weight"):
        new = 1.0 + 0.1 * rng.standard_normal(shape)
      elif value.ndim == 1:
        new = 0.02 * rng.standard_normal(shape)
      else:
        new = rng.standard_normal(shape) / np.sqrt(float(np.prod(shape[1:])))
      value.copy_(torch.from_numpy(new.astype(np.float32)))
  return model.eval()


def torch_reference(model, waves):
  """DG-SCT's order: front end → bn0 → reshape_wav2img → patch_embed → blocks (per stage)."""
  torch = torch_refs.import_torch()
  ref = {}
  with torch.no_grad():
    x = model.logmel_extractor(model.spectrogram_extractor(torch.from_numpy(waves)))
    x = model.bn0(x.transpose(1, 3)).transpose(1, 3)
    ref["logmel"] = x[:, 0].numpy()
    image = model.reshape_wav2img(x)
    ref["image"] = image.permute(0, 2, 3, 1).numpy()
    y = model.patch_embed(image)
    if model.ape:
      y = y + model.absolute_pos_embed
    for i, layer in enumerate(model.layers):
      for block in layer.blocks:
        y, _ = block(y)
      ref[f"stage{i}"] = y.numpy()
      if layer.downsample is not None:
        y = layer.downsample(y)
    head = model.forward_features(image)
  ref["features"] = ref[f"stage{len(model.layers) - 1}"]
  ref.update({k: v.numpy() for k, v in head.items()})
  return ref


def build_torch(htsat_module, audio, seed, **kwargs):
  torch = torch_refs.import_torch()
  torch.manual_seed(seed)
  return randomise(htsat_module.HTSAT_Swin_Transformer(config=types.SimpleNamespace(**audio),
                                                       **kwargs), seed)


def load_and_run(out_dir, waves):
  values, manifest = store.load(out_dir)
  arch = archs.get(manifest["arch"])
  model = archs.materialize(arch, manifest["model_config"], values)
  return model, arch.run(model, {"waveforms": waves})


@pytest.fixture(scope="module")
def laion():
  torch_refs.install_torchvision_stub()  # laion's utils import torchvision at module level
  return torch_refs.import_laion_htsat()


@pytest.fixture(scope="module")
def full(laion, tmp_path_factory):
  """AudioSet HTS-AT, batch 2 of 10-s clips: reference, converted model and its outputs."""
  torch = torch_refs.import_torch()
  torch.set_num_threads(2)
  model = build_torch(laion, AUDIOSET_AUDIO, seed=0)
  waves = (0.1 * np.random.default_rng(1).standard_normal((2, 320000))).astype(np.float32)
  ref = torch_reference(model, waves)
  tmp = tmp_path_factory.mktemp("htsat_full")
  torch.save(model.state_dict(), tmp / "htsat.pth")
  manifest = convert.convert_file("htsat_audioset", tmp / "htsat.pth", tmp / "out")
  ours_model, ours = load_and_run(tmp / "out", waves)
  return dict(torch_model=model, ref=ref, manifest=manifest, model=ours_model, ours=ours,
              waves=waves)


@pytest.mark.parametrize("name", ["logmel", "image", "stage0", "stage1", "stage2", "stage3",
                                  "features", "clipwise_output"])
def test_full_audioset_parity_per_stage(full, name):
  assert rel_err(full["ours"][name], full["ref"][name]) <= TOL


def test_full_audioset_head_outputs(full):
  head = full["model"].head_outputs(full["ours"]["features"])
  ref = full["ref"]
  for ours_key, ref_key in [("clipwise_output", "clipwise_output"),
                            ("framewise_output", "framewise_output"),
                            ("latent_output", "embedding"),
                            ("fine_grained_embedding", "fine_grained_embedding")]:
    assert rel_err(head[ours_key], ref[ref_key]) <= TOL, ours_key
  np.testing.assert_allclose(np.asarray(head["clipwise_output"]),
                             1 / (1 + np.exp(-np.asarray(head["clipwise_logits"]))), rtol=1e-6)


def test_full_manifest_accounts_for_every_key(full):
  manifest, state = full["manifest"], full["torch_model"].state_dict()
  assert manifest["source"]["num_keys"] == len(state)
  mapped = {m["source"] for m in manifest["mapping"]}
  ignored = {i["source"]: i["reason"] for i in manifest["ignored"]}
  assert mapped.isdisjoint(ignored) and mapped | set(ignored) == set(state)
  assert set(ignored) == {k for k in state if k.endswith(CONSTANTS + ("num_batches_tracked",))}
  assert {m["target"] for m in manifest["mapping"] if m["source"].startswith("bn0.")} == {
      "frontend.bn0.scale", "frontend.bn0.bias", "frontend.bn0.mean", "frontend.bn0.var"}
  assert "checked equal" in ignored["logmel_extractor.melW"]


@pytest.fixture(scope="module")
def tiny(laion, tmp_path_factory):
  torch = torch_refs.import_torch()
  model = build_torch(laion, TINY_AUDIO, seed=3, **TINY_TORCH)
  waves = (0.1 * np.random.default_rng(4).standard_normal((2, 16000))).astype(np.float32)
  tmp = tmp_path_factory.mktemp("htsat_tiny")
  state = model.state_dict()
  torch.save(state, tmp / "plain.pth")
  return dict(model=model, state=state, waves=waves, tmp=tmp, ref=torch_reference(model, waves))


def test_tiny_config_parity(tiny):
  convert.convert_file("htsat_audioset", tiny["tmp"] / "plain.pth", tiny["tmp"] / "plain",
                       config_overrides=TINY_OURS)
  _, ours = load_and_run(tiny["tmp"] / "plain", tiny["waves"])
  for name in ("logmel", "image", "stage0", "stage1", "stage2", "features", "clipwise_output"):
    assert rel_err(ours[name], tiny["ref"][name]) <= TOL, name


def test_source_layouts_convert_identically(tiny):
  """Lightning ckpt (state_dict / sed_model.), DG-SCT (htsat. sub-tree), laion CLAP (audio_branch.)."""
  torch = torch_refs.import_torch()
  tmp, state = tiny["tmp"], tiny["state"]
  torch.save({"epoch": 3, "state_dict": {f"sed_model.{k}": v for k, v in state.items()}},
             tmp / "lightning.ckpt")
  torch.save({**{f"htsat.{k}": v for k, v in state.items()}, "swin.norm.weight": torch.ones(4)},
             tmp / "dgsct.pth")
  clap = {f"module.audio_branch.{k}": v for k, v in state.items()}
  clap.update({"module.text_branch.embeddings.weight": torch.zeros(3, 2),
               "module.audio_projection.0.weight": torch.zeros(2, 2),
               "module.logit_scale_a": torch.zeros(())})
  torch.save({"state_dict": clap}, tmp / "clap.pt")
  baseline = convert.convert_file("htsat_audioset", tmp / "plain.pth", tmp / "base",
                                  config_overrides=TINY_OURS)
  base_values, _ = store.load(tmp / "base")
  for arch, src in [("htsat_audioset", "lightning.ckpt"), ("htsat_dgsct", "dgsct.pth"),
                    ("htsat_laion_clap", "clap.pt")]:
    manifest = convert.convert_file(arch, tmp / src, tmp / f"out_{arch}", config_overrides=TINY_OURS)
    assert manifest["params_sha256"] == baseline["params_sha256"], arch
  values, _ = store.load(tmp / "out_htsat_laion_clap")
  assert sorted(values) == sorted(base_values)


def _bad_source(tiny, name, mutate):
  torch = torch_refs.import_torch()
  state = dict(tiny["state"])
  mutate(state, torch)
  torch.save(state, tiny["tmp"] / f"{name}.pth")
  return tiny["tmp"] / f"{name}.pth"


@pytest.mark.parametrize("name, mutate, overrides, message", [
    ("mel_settings", lambda s, t: None, {"fmax": 7000.0},
     r"logmel_extractor\.melW: differs from the mel matrix .*fmax 7000"),
    ("mel_bins", lambda s, t: None, {"mel_bins": 16, "spec_size": 64},
     r"logmel_extractor\.melW \(257, 32\): expected \(257, 16\)"),
    ("stft", lambda s, t: s.update({"spectrogram_extractor.stft.conv_real.weight":
                                    s["spectrogram_extractor.stft.conv_real.weight"] * 1.01}),
     {}, r"conv_real\.weight: differs from the STFT basis"),
    ("index", lambda s, t: s.update({"layers.0.blocks.0.attn.relative_position_index":
                                     t.zeros_like(s["layers.0.blocks.0.attn.relative_position_index"])}),
     {}, r"layers\.0\.blocks\.0\.attn\.relative_position_index: differs"),
    ("fusion", lambda s, t: s.update({"fusion_model.local_att.0.weight": t.zeros(2, 2)}),
     {}, r"laion-clap \*fusion\* model"),
    ("missing", lambda s, t: s.pop("layers.1.blocks.1.mlp.fc2.weight"),
     {}, r"not assigned.*\n\s+layers\.1\.blocks\.1\.mlp\.fc2\.kernel"),
])
def test_bad_sources_fail_loudly(tiny, name, mutate, overrides, message):
  src = _bad_source(tiny, name, mutate)
  with pytest.raises(engine.ConversionError, match=message):
    convert.convert_file("htsat_audioset", src, tiny["tmp"] / f"bad_{name}",
                         config_overrides=dict(TINY_OURS, **overrides))
  assert not (tiny["tmp"] / f"bad_{name}").exists()


@pytest.mark.parametrize("waves, message", [
    (np.zeros((2, 15999), np.float32), r"waveforms.*15999 samples per example, expected 16000"),
    (np.zeros((1, 2, 16000), np.float32), r"waveforms.*rank 2"),
    (np.where(np.arange(16000) == 7, np.nan, 0).astype(np.float32)[None].repeat(2, 0),
     r"waveforms.*example 0 contains NaN at sample 7"),
    (np.zeros((2, 16000), np.int16), r"waveforms.*floating point"),
])
def test_run_rejects_bad_waveforms(tiny, waves, message):
  out = tiny["tmp"] / "plain"
  if not out.exists():
    convert.convert_file("htsat_audioset", tiny["tmp"] / "plain.pth", out, config_overrides=TINY_OURS)
  values, manifest = store.load(out)
  arch = archs.get(manifest["arch"])
  model = archs.materialize(arch, manifest["model_config"], values)
  with pytest.raises(ValueError, match=message):
    arch.run(model, {"waveforms": waves})
  with pytest.raises(ValueError, match=r"need an array 'waveforms'"):
    arch.run(model, {"audio": waves})
