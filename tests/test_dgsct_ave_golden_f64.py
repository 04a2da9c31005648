"""Semantic parity with the official AVE model, proven in float64 (golden fixture 1).

In float32 this random-weight network amplifies rounding noise ~10³× (the
reference's own float32 run is 6.7e-5 / 9.1e-5 max-relative from its float64 run
on the pooled features; see test_dgsct_ave_golden.py), so float32 comparisons
cannot separate a subtle semantic difference from noise. In float64 they can:
our float64 run must equal the reference's float64 run to ~1e-10, where any
wrong formula, order of operations, constant or layout errs by ≥1e-7.
"""

import numpy as np
import pytest

from dgsct_jax.models.heads import ave as ave_head
import golden_f64
from golden_weights import max_rel



# The float64 subprocess peaks near 11 GiB: no other full-size module may run beside it.
pytestmark = pytest.mark.memory_heavy


@pytest.fixture(scope="module")
def f64_outputs(golden_dir, tmp_path_factory):
  out = tmp_path_factory.mktemp("golden_f64") / "out.npz"
  return (golden_f64.run_subprocess(golden_dir, "ave_full", out),
          dict(np.load(golden_dir / "ave_full_io.npz")))


@pytest.mark.parametrize("name", ["is_event_scores", "event_scores", "audio_visual_gate",
                                  "av_score"])
def test_outputs_equal_official_float64(f64_outputs, name):
  ours, io = f64_outputs
  assert ours[name].dtype == np.float64
  value = ave_head.to_official_layout({name: ours[name]})[name]
  assert max_rel(value, io[f"out64_{name}"]) <= 1e-10


@pytest.mark.parametrize("ours_key, ref_key", [("pooled_visual", "vis"), ("pooled_audio", "audio")])
def test_pooled_features_equal_official_float64(f64_outputs, ours_key, ref_key):
  ours, io = f64_outputs
  assert ours[ours_key].dtype == np.float64
  assert max_rel(ours[ours_key], io[f"pooled64_{ref_key}"]) <= 1e-10
  # The float32 reference is far from it by comparison: the bound above is meaningful.
  assert max_rel(io[f"pooled_{ref_key}"], io[f"pooled64_{ref_key}"]) > 1e-6
