"""The whole DG-SCT AVQA model (`AVQA_Fusion_Net`) against the official PyTorch code
(fixture `avqa_full`, 1 question with 10 frames and 10 negative frames, eval, float32).

The golden weights are regenerated from the rule (all 1950 official keys; the 22
computed tables are AVE's), converted by the real `dgsct_avqa` rules and `check_source`
into the abstract model, and the model runs once through the arch's `run` (the
converter's entry point). The reference's own float32-vs-float64 gap is 3.8e-6 relative
on the answer logits and 7e-5 on the match logits, so the outputs must agree to 1e-4
with both reference runs; the encoder outputs (the adapted and the plain Swin maps, the
pooled audio) are checked as in test_dgsct_ave_golden.py (1e-4 relative RMS, 3e-4 max
for the adapted paths). Semantic parity in float64: the AVST head is test_avqa_head.py's
float64 run.
"""
import json

import numpy as np
import pytest

import golden_f64
from golden_weights import max_rel
from golden_weights import rms_rel
from weight_conversion import archs
from weight_conversion.maps import avqa as avqa_map

pytestmark = pytest.mark.memory_heavy


@pytest.fixture(scope="module")
def golden_run(golden_dir):
  model, conversion = golden_f64.convert(golden_dir, "avqa_full", "dgsct_avqa")
  io = dict(np.load(golden_dir / "avqa_full_io.npz"))
  inputs = {"audio": io["input_wave_f16"].astype(np.float32),
            "frames_posi": io["input_visual_posi_f16"].astype(np.float32),
            "frames_nega": io["input_visual_nega_f16"].astype(np.float32),
            "question": io["input_question"]}
  out = archs.get("dgsct_avqa").run(model, inputs)
  return {"out": out, "io": io, "conversion": conversion}


@pytest.mark.parametrize("name", avqa_map.OUTPUTS)
def test_outputs_match_official(golden_run, name):
  out, io = golden_run["out"], golden_run["io"]
  assert out[name].shape == io[name].shape
  assert max_rel(out[name], io[name]) <= 1e-4
  assert max_rel(out[name], io[name.replace("out_", "out64_")]) <= 1e-4


def test_pooled_audio_matches_official(golden_run):
  out, io = golden_run["out"], golden_run["io"]
  for ref in (io["enc_audio_pooled"], io["enc64_audio_pooled"]):
    assert rms_rel(out["pooled_audio"], ref) <= 1e-4
    assert max_rel(out["pooled_audio"], ref) <= 3e-4


def test_conversion_uses_every_key(golden_run, golden_dir):
  """Every adapter and head key has a place (AVQA's adapters have no dead layers; only the
  encoders' recomputed tables and unused heads are ignored), the head's under `head.`; a
  DataParallel checkpoint (`module.` + key) maps to the same leaves."""
  conversion = golden_run["conversion"]
  keys = list(json.loads((golden_dir / "avqa_full_manifest.json").read_text())["keys"])
  assert not [k for k in conversion["ignored"] if k.split(".")[0] not in ("swin", "htsat")]
  assert len(conversion["mapping"]) + len(conversion["ignored"]) == len(keys)
  assert conversion["mapping"]["question_encoder.lstm.weight_ih_l0"] == (
      "head.question_encoder.lstm.weight_ih_l0")
  assert conversion["mapping"]["vis_adapter_blocks_p1.0.my_tokens"] == (
      "vis_adapter_blocks_p1.0.my_tokens")
  arch = archs.get("dgsct_avqa")
  plain, prefixed = arch.rules(keys), arch.rules([f"module.{k}" for k in keys])
  for key in keys[::40]:
    a = next(r for r in plain if r.match(key))
    b = next(r for r in prefixed if r.match(f"module.{key}"))
    assert (a.target is None) == (b.target is None)
    if a.target is not None:
      assert a.match(key).expand(a.target) == b.match(f"module.{key}").expand(b.target)
