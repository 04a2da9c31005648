"""The strict conversion engine and the converted-weights store, on a toy model."""
import pickle

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from dgsct_jax.models import layers
from weight_conversion import engine
from weight_conversion import sources
from weight_conversion import store


class Toy(nnx.Module):

  def __init__(self):
    rngs = nnx.Rngs(0)
    self.proj = layers.linear(3, 4, rngs=rngs)
    self.norm = layers.layer_norm(4, rngs=rngs)
    self.conv = nnx.Conv(2, 5, (3, 3), rngs=rngs)
    self.bn = layers.BatchNorm(5)
    self.blocks = nnx.List([layers.linear(4, 4, use_bias=False, rngs=rngs) for _ in range(2)])


def torch_style_state(rng=np.random.default_rng(0)):
  f = lambda *s: rng.standard_normal(s).astype(np.float32)
  return {
      "proj.weight": f(4, 3), "proj.bias": f(4),
      "norm.weight": f(4), "norm.bias": f(4),
      "conv.weight": f(5, 2, 3, 3), "conv.bias": f(5),
      "bn.weight": f(5), "bn.bias": f(5), "bn.running_mean": f(5), "bn.running_var": f(5),
      "bn.num_batches_tracked": np.array(3, np.int64),
      "blocks.0.weight": f(4, 4), "blocks.1.weight": f(4, 4),
  }


RULES = [engine.ignore(r".*num_batches_tracked", "PyTorch BN counter, unused"), engine.IDENTITY]


def test_convert_maps_every_key_with_layouts():
  src = torch_style_state()
  result = engine.convert(src, Toy(), RULES)
  np.testing.assert_array_equal(result.values["proj.kernel"], src["proj.weight"].T)
  np.testing.assert_array_equal(result.values["norm.scale"], src["norm.weight"])
  np.testing.assert_array_equal(result.values["conv.kernel"], src["conv.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(result.values["bn.var"], src["bn.running_var"])
  np.testing.assert_array_equal(result.values["blocks.1.kernel"], src["blocks.1.weight"].T)
  assert result.ignored == [("bn.num_batches_tracked", "PyTorch BN counter, unused")]


def test_converted_model_computes_like_torch_layout():
  src = torch_style_state()
  model = engine.assign(Toy(), engine.convert(src, Toy(), RULES).values)
  x = np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32)
  np.testing.assert_allclose(model.proj(jnp.asarray(x)), x @ src["proj.weight"].T + src["proj.bias"],
                             rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mutate, message", [
    (lambda s: s.pop("blocks.1.weight"), r"not assigned.*\n\s+blocks\.1\.kernel \(4, 4\)"),
    (lambda s: s.update({"extra.weight": np.zeros((2, 2), np.float32)}), r"mapped to no model leaf.*\n\s+extra\.weight \(2, 2\)"),
    (lambda s: s.update({"proj.weight": np.zeros((4, 5), np.float32)}), r"shape mismatches.*\n\s+proj\.weight \(4, 5\) -> proj\.kernel expects \(3, 4\)"),
    (lambda s: s.update({"proj.bias": np.zeros(4, np.int64)}), r"dtype mismatches.*\n\s+proj\.bias int64"),
])
def test_convert_fails_loudly(mutate, message):
  src = torch_style_state()
  mutate(src)
  with pytest.raises(engine.ConversionError, match=message):
    engine.convert(src, Toy(), RULES)


def test_unmatched_source_key_is_reported_as_unused():
  with pytest.raises(engine.ConversionError, match=r"unused.*\n\s+bn\.num_batches_tracked"):
    engine.convert(torch_style_state(), Toy(), [engine.Rule(r"(?!bn\.num).*", r"\g<0>")])


def test_store_round_trip_and_tamper_check(tmp_path):
  values = engine.convert(torch_style_state(), Toy(), RULES).values
  manifest = store.save(tmp_path / "w", values, {"arch": "toy"})
  loaded, manifest2 = store.load(tmp_path / "w")
  assert manifest2["params_sha256"] == manifest["params_sha256"]
  assert sorted(loaded) == sorted(values)
  for k in values:
    np.testing.assert_array_equal(loaded[k], values[k])
  with pytest.raises(FileExistsError):
    store.save(tmp_path / "w", values, {"arch": "toy"})
  (tmp_path / "w" / "manifest.json").write_text(
      (tmp_path / "w" / "manifest.json").read_text().replace(manifest["params_sha256"], "0" * 64))
  with pytest.raises(ValueError, match="params_sha256"):
    store.load(tmp_path / "w")


def test_sources_formats_and_selection(tmp_path):
  torch = pytest.importorskip("torch")
  src = torch_style_state()
  torch.save({"state_dict": {f"sed_model.{k}": torch.from_numpy(np.asarray(v)) for k, v in src.items()}},
             tmp_path / "a.ckpt")
  loaded = sources.load_state_dict(tmp_path / "a.ckpt", prefix="sed_model.")  # nesting auto-detected
  assert sorted(loaded) == sorted(src)
  np.testing.assert_array_equal(loaded["conv.weight"], src["conv.weight"])
  np.savez(tmp_path / "b.npz", **src)
  assert sorted(sources.load_state_dict(tmp_path / "b.npz")) == sorted(src)
  from safetensors.numpy import save_file
  save_file({k: np.ascontiguousarray(v) for k, v in src.items()}, str(tmp_path / "c.safetensors"))
  np.testing.assert_array_equal(sources.load_state_dict(tmp_path / "c.safetensors")["proj.bias"],
                                src["proj.bias"])
  with pytest.raises(sources.SourceError, match="no key starts with prefix 'swin.'"):
    sources.load_state_dict(tmp_path / "b.npz", prefix="swin.")
  with pytest.raises(sources.SourceError, match="no key 'model'"):
    sources.load_state_dict(tmp_path / "a.ckpt", key="model")


class _Evil:

  def __reduce__(self):
    return (print, ("pickled code ran",))


def test_pickled_code_is_refused(tmp_path):
  torch = pytest.importorskip("torch")
  torch.save({"proj.weight": torch.zeros(4, 3), "payload": _Evil()}, tmp_path / "evil.pth")
  with pytest.raises(sources.SourceError, match="weights_only"):
    sources.load_state_dict(tmp_path / "evil.pth")
  (tmp_path / "x.pkl").write_bytes(pickle.dumps({}))
  with pytest.raises(sources.SourceError, match="unknown checkpoint format"):
    sources.load_state_dict(tmp_path / "x.pkl")
