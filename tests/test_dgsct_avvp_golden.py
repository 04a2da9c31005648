"""The whole DG-SCT AVVP model (`MGN_Net`) against the official PyTorch code (fixture
`avvp_full`, 1 video, eval, float32).

The golden weights are regenerated from the rule (all 3064 official keys; the 22
computed tables are AVE's), converted by the real `dgsct_avvp` rules and
`check_source` into the abstract model, and the model runs once. The MGN head
damps the encoders' rounding noise (the reference's own float32-vs-float64 gap is
3.7e-6 relative on the probabilities), so the seven outputs must agree to 1e-4
with both reference runs; the pooled features carry the backbone's amplified
float32 noise and are checked as in test_dgsct_ave_golden.py (1e-4 relative RMS,
3e-4 max). Semantic parity in float64: the backbone is AVE's
(test_dgsct_ave_golden_f64.py; log-mel mixup is off in evaluation), the MGN head
is test_avvp_head.py's float64 run.
"""
import json

import numpy as np
import pytest

import jax
from flax import nnx

import golden_f64
from golden_weights import max_rel
from golden_weights import rms_rel
from weight_conversion import archs
from weight_conversion.maps import avvp as avvp_map

pytestmark = pytest.mark.memory_heavy


@nnx.jit
def _forward(model, audio, frames, video_st):
  return model(audio, frames, video_st)


@pytest.fixture(scope="module")
def golden_run(golden_dir):
  model, conversion = golden_f64.convert(golden_dir, "avvp_full", "dgsct_avvp")
  ignored, mapping = conversion["ignored"], conversion["mapping"]
  io = dict(np.load(golden_dir / "avvp_full_io.npz"))
  args = [io[k].astype(np.float32) for k in
          ("input_wave_f16", "input_video_s_f16", "input_video_st_f16")]
  out = jax.tree.map(np.asarray, _forward(model, *args))
  return {"out": out, "io": io, "ignored": ignored, "mapping": mapping}


@pytest.mark.parametrize("name", avvp_map.OUTPUTS)
def test_outputs_match_official(golden_run, name):
  out, io = golden_run["out"], golden_run["io"]
  assert out[name].shape == io[f"out_{name}"].shape
  assert max_rel(out[name], io[f"out_{name}"]) <= 1e-4
  assert max_rel(out[name], io[f"out64_{name}"]) <= 1e-4


@pytest.mark.parametrize("ours_key, ref_key", [("pooled_visual", "vis"), ("pooled_audio", "audio")])
def test_pooled_features_match_official(golden_run, ours_key, ref_key):
  out, io = golden_run["out"], golden_run["io"]
  assert out[ours_key].shape == io[f"pooled_{ref_key}"].shape
  for ref in (io[f"pooled_{ref_key}"], io[f"pooled64_{ref_key}"]):
    assert rms_rel(out[ours_key], ref) <= 1e-4
    assert max_rel(out[ours_key], ref) <= 3e-4


def test_conversion_ignores_only_named_keys(golden_run):
  ignored, mapping = golden_run["ignored"], golden_run["mapping"]
  for dead in ("fc_caption", "temporal_gated"):
    keys = [k for k in ignored if f".{dead}." in k]
    assert len(keys) == 4 * 12 * 2 and "never" in ignored[keys[0]]
  assert sum(k.startswith("adapter_token_downsampler.") for k in ignored) == 3
  assert not [k for k in ignored if k.startswith(avvp_map.HEAD_MODULES)]
  assert mapping["audio_cug.han_encoder.assign.proj.weight"] == (
      "head.audio_cug.han_encoder.assign.proj.kernel")
  assert mapping["vis_adapter_blocks_p2.11.my_tokens"] == "vis_adapter_blocks_p2.11.my_tokens"


def test_data_parallel_keys_convert(golden_dir):
  """A checkpoint saved through nn.DataParallel (`module.` + key) maps to the same leaves."""
  arch = archs.get("dgsct_avvp")
  keys = list(json.loads((golden_dir / "avvp_full_manifest.json").read_text())["keys"])
  plain, prefixed = arch.rules(keys), arch.rules([f"module.{k}" for k in keys])
  for key in keys[::50]:
    a = next(r for r in plain if r.match(key))
    b = next(r for r in prefixed if r.match(f"module.{key}"))
    assert (a.target is None) == (b.target is None)
    if a.target is not None:
      assert a.match(key).expand(a.target) == b.match(f"module.{key}").expand(b.target)
