"""The weight rule of ../shared/golden/README.md, regenerated in numpy.

Every state_dict entry of the official model is drawn independently from its
key: seed = crc32(key), one draw of default_rng(seed) in the PyTorch shape, a
float64 formula chosen by the rule named in the manifest, cast once to float32.
"""
import json
import pathlib
import zlib

import numpy as np


def rule_value(key: str, shape, rule: str) -> np.ndarray:
  shape = tuple(shape)
  rng = np.random.default_rng(zlib.crc32(key.encode("utf-8")))
  normal = lambda: rng.standard_normal(shape)
  uniform = lambda: rng.random(shape)
  if rule == "keep_int":
    return np.zeros(shape, np.int64)
  if rule == "running_mean":
    value = 0.1 * normal()
  elif rule == "running_var":
    value = 0.5 + uniform()
  elif rule == "norm_weight":
    value = 1.0 + 0.1 * normal()
  elif rule in ("bias", "other_1d"):
    value = 0.02 * normal()
  elif rule == "logit_scale":
    value = np.log(10.0) + 0.1 * normal()
  elif rule == "gate":
    value = 0.5 * normal()
  elif rule == "my_tokens":
    value = uniform()
  elif rule == "fan_in":
    value = normal() / np.sqrt(float(np.prod(shape[1:])))
  else:
    raise ValueError(f"{key}: no generator for rule {rule!r}")
  return np.asarray(value).astype(np.float32)


def golden_state_dict(manifest_path, computed_path=None) -> dict[str, np.ndarray]:
  """The whole state dict of a golden fixture, checked against its manifest.

  Keys with rule `computed` (construction-time tables) are read from
  `computed_path` when given, else left out.
  """
  manifest = json.loads(pathlib.Path(manifest_path).read_text())
  computed = dict(np.load(computed_path)) if computed_path else {}
  state = {}
  for key, info in manifest["keys"].items():
    if info["rule"] == "computed":
      if key in computed:
        state[key] = computed[key]
      continue
    value = rule_value(key, info["shape"], info["rule"])
    np.testing.assert_array_equal(value.reshape(-1)[:4], np.asarray(info["first4"], value.dtype),
                                  err_msg=f"{key}: first4 differs from the manifest")
    np.testing.assert_allclose(value.astype(np.float64).sum(), info["sum_f64"], rtol=1e-9,
                               atol=1e-9, err_msg=f"{key}: sum_f64 differs from the manifest")
    state[key] = value
  return state


def max_rel(ours, ref) -> float:
  """max|ours − ref| / max|ref|, in float64: the parity measure of every golden test."""
  ref = np.asarray(ref, np.float64)
  return float(np.abs(np.asarray(ours, np.float64) - ref).max() / np.abs(ref).max())


def rms_rel(ours, ref) -> float:
  """‖ours − ref‖ / ‖ref‖ (for features whose single elements carry amplified float32 noise)."""
  ref = np.asarray(ref, np.float64)
  return float(np.linalg.norm(np.asarray(ours, np.float64) - ref) / np.linalg.norm(ref))
