"""Swin-V2 weight conversion through the real CLI path (convert_file → store → run_directory,
and once the `python -m` entry points), from the timm 1.x layout, the timm 0.6.12 layout and
a DG-SCT-style checkpoint (`swin.` sub-tree of a bigger dict); strict errors on real keys."""
import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
import torch_refs

import test_swinv2 as ref  # helpers only (module import: its tests are not collected twice)
from weight_conversion import convert as convert_cli
from weight_conversion import engine
from weight_conversion import run as run_cli
from weight_conversion import sources
from weight_conversion import store
from weight_conversion.maps import swinv2 as swinv2_map

CONFIG = ref.TINY
REPO = pathlib.Path(__file__).resolve().parents[1]


def to_timm_06(state: dict) -> dict:
  """timm 1.x state dict → the timm 0.6.12 one: `layers.{i+1}.downsample` → `layers.{i}.downsample`,
  plus the persistent `attn_mask` buffers of shifted blocks and the head as `head.*`."""
  out = {}
  for key, value in state.items():
    key = re.sub(r"layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) - 1}.downsample", key)
    out[key.replace("head.fc.", "head.")] = value
  return out


@pytest.fixture(scope="module")
def timm_case():
  """The tiny timm model, its 1.x and 0.6 state dicts (with a classifier head, as
  checkpoints have) and its outputs on fixed images."""
  torch = torch_refs.import_torch()
  model = ref.timm_swinv2(CONFIG)
  state_1x = ref.timm_state(model)
  rng = np.random.default_rng(5)
  head = {"head.fc.weight": rng.standard_normal((10, 64)).astype(np.float32),
          "head.fc.bias": rng.standard_normal(10).astype(np.float32)}
  state_1x.update(head)
  state_06 = to_timm_06(state_1x)
  for i, stage in enumerate(model.layers):
    for j, block in enumerate(stage.blocks):
      if block.attn_mask is not None:
        state_06[f"layers.{i}.blocks.{j}.attn_mask"] = block.attn_mask.numpy()
  images = ref.images_for(CONFIG)
  return dict(state_1x=state_1x, state_06=state_06, images=images,
              outputs=ref.timm_outputs(model, images))


def save_pth(path, state: dict):
  torch = torch_refs.import_torch()
  torch.save({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}, path)
  return path


def dgsct_checkpoint(state_06: dict) -> dict:
  """A DG-SCT-like state dict: the encoder under `swin.`, next to other modules."""
  rng = np.random.default_rng(6)
  out = {f"swin.{k}": v for k, v in state_06.items()}
  out["htsat.layers.0.blocks.0.attn.qkv.weight"] = rng.standard_normal((12, 4)).astype(np.float32)
  out["vis_adapter_blocks_p1.0.gate_av"] = np.zeros(1, np.float32)
  return out


def test_layout_detection():
  keys_06 = ["layers.0.blocks.0.attn.qkv.weight", "layers.0.downsample.reduction.weight",
             "layers.1.downsample.norm.weight"]
  keys_1x = ["layers.0.blocks.0.attn.qkv.weight", "layers.1.downsample.reduction.weight",
             "layers.2.downsample.norm.weight"]
  assert swinv2_map.detect_layout(keys_06) == "0.6"
  assert swinv2_map.detect_layout(keys_1x) == "1.x"
  assert swinv2_map.detect_layout(["layers.0.blocks.0.norm1.weight"]) == "none"
  targets = {r.pattern: r.target for r in swinv2_map.rules(keys_1x) if r.target}
  assert targets[r"layers\.2\.downsample\.(.*)"] == r"layers.1.downsample.\1"


@pytest.mark.parametrize("layout", ["timm_1x", "timm_06", "dgsct_prefixed"])
def test_convert_file_and_run_directory_match_timm(timm_case, layout, tmp_path):
  state = {"timm_1x": timm_case["state_1x"], "timm_06": timm_case["state_06"],
           "dgsct_prefixed": dgsct_checkpoint(timm_case["state_06"])}[layout]
  src = save_pth(tmp_path / "src.pth", state)
  prefix = "swin." if layout == "dgsct_prefixed" else None
  manifest = convert_cli.convert_file("swinv2", src, tmp_path / "out", prefix=prefix,
                                      config_overrides=CONFIG)
  ignored = {m["source"]: m["reason"] for m in manifest["ignored"]}
  head = ["head.fc.weight", "head.fc.bias"] if layout == "timm_1x" else ["head.weight", "head.bias"]
  masks = sorted(k for k in timm_case["state_06"] if k.endswith("attn_mask"))
  assert masks == [f"layers.{i}.blocks.1.attn_mask" for i in range(3)]  # stage 2: shift along W only
  assert sorted(ignored) == sorted(head + ([] if layout == "timm_1x" else masks))
  assert all("classifier head" in ignored[k] for k in head)
  assert all("recomputed" in ignored[k] for k in ignored if k.endswith("attn_mask"))
  mapped = {m["source"]: m["target"] for m in manifest["mapping"]}
  assert len(mapped) + len(ignored) == manifest["source"]["num_keys"]
  merge_key = "layers.1.downsample.reduction.weight" if layout == "timm_1x" else \
      "layers.0.downsample.reduction.weight"
  assert mapped[merge_key] == "layers.0.downsample.reduction.kernel"
  assert mapped["layers.0.blocks.0.attn.cpb_mlp.2.weight"] == "layers.0.blocks.0.attn.cpb_mlp.2.kernel"
  outputs = run_cli.run_directory(tmp_path / "out", {"images": timm_case["images"]}, "swinv2")
  ref.check_parity(outputs, timm_case["outputs"], f"converted from {layout}")


def test_cli_entry_points(timm_case, tmp_path):
  src = save_pth(tmp_path / "swinv2_06.pth", timm_case["state_06"])
  np.savez(tmp_path / "in.npz", images=timm_case["images"])
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
  run = lambda *args: subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env,
                                     capture_output=True, text=True, timeout=300)
  done = run("weight_conversion.convert", "--arch=swinv2", f"--src={src}",
             f"--out={tmp_path / 'w'}", f"--model_config={json.dumps(CONFIG)}")
  assert done.returncode == 0, done.stderr
  assert "params_sha256" in done.stdout
  done = run("weight_conversion.run", "--arch=swinv2", f"--params={tmp_path / 'w'}",
             f"--inputs={tmp_path / 'in.npz'}", f"--outputs={tmp_path / 'out.npz'}")
  assert done.returncode == 0, done.stderr
  with np.load(tmp_path / "out.npz") as data:
    outputs = {k: data[k] for k in data.files}
  ref.check_parity(outputs, timm_case["outputs"], "python -m weight_conversion.run")
  # A failing conversion exits 1 with the listing on stderr.
  done = run("weight_conversion.convert", "--arch=swinv2", f"--src={src}",
             f"--out={tmp_path / 'w2'}", '--model_config={"img_size": 64}')
  assert done.returncode == 1 and "missing" in done.stderr and "--model_config" in done.stderr


@pytest.mark.parametrize("mutate, message", [
    (lambda s: s.pop("layers.1.blocks.2.attn.cpb_mlp.2.weight"),
     r"not assigned.*\n\s+layers\.1\.blocks\.2\.attn\.cpb_mlp\.2\.kernel \(512, 2\)"),
    (lambda s: s.update({"layers.0.blocks.0.attn.extra_scale": np.ones(2, np.float32)}),
     r"mapped to no model leaf.*\n\s+layers\.0\.blocks\.0\.attn\.extra_scale \(2,\)"),
    (lambda s: s.update({"layers.2.blocks.0.attn.qkv.weight": np.zeros((192, 32), np.float32)}),
     r"shape mismatches.*\n\s+layers\.2\.blocks\.0\.attn\.qkv\.weight \(192, 32\) -> "
     r"layers\.2\.blocks\.0\.attn\.qkv\.kernel expects \(64, 192\)"),
    (lambda s: s.update({"layers.0.blocks.1.attn.q_bias": np.zeros(16, np.int64)}),
     r"dtype mismatches.*\n\s+layers\.0\.blocks\.1\.attn\.q_bias int64"),
], ids=["missing", "extra", "shape", "dtype"])
def test_conversion_errors_list_offending_keys(timm_case, tmp_path, mutate, message):
  state = dict(timm_case["state_1x"])
  mutate(state)
  src = save_pth(tmp_path / "bad.pth", state)
  with pytest.raises(engine.ConversionError, match=message):
    convert_cli.convert_file("swinv2", src, tmp_path / "out", config_overrides=CONFIG)
  assert not (tmp_path / "out" / store.PARAMS).exists()


def test_wrong_arch_reports_shapes(timm_case, tmp_path):
  src = save_pth(tmp_path / "tiny.pth", timm_case["state_06"])
  with pytest.raises(engine.ConversionError) as info:
    convert_cli.convert_file("swinv2_large_window12_192", src, tmp_path / "out")
  text = str(info.value)
  assert "patch_embed.proj.weight (16, 3, 4, 4) -> patch_embed.proj.kernel expects (4, 4, 3, 192)" in text
  missing = re.search(r"model leaves not assigned \(missing in the source\) \[(\d+)\]", text)
  assert missing and int(missing.group(1)) > 2 * 15  # at least stage 3 (2 blocks), absent in tiny


def test_generic_arch_needs_model_config(timm_case, tmp_path):
  src = save_pth(tmp_path / "tiny.pth", timm_case["state_1x"])
  with pytest.raises(engine.ConversionError, match=r"--model_config.*missing \['embed_dim'"):
    convert_cli.convert_file("swinv2", src, tmp_path / "out", config_overrides={"img_size": 64})
  with pytest.raises(engine.ConversionError, match=r"arch 'swinv2' has no key\(s\) \['depth'\]"):
    convert_cli.convert_file("swinv2", src, tmp_path / "out",
                             config_overrides=dict(CONFIG, depth=[2, 2]))
  with pytest.raises(engine.ConversionError, match=r"cannot build the model from its config "
                     r"\('int' object is not iterable\); check --model_config"):
    convert_cli.convert_file("swinv2", src, tmp_path / "out", config_overrides=dict(CONFIG, depths=2))


def test_checkpoint_with_pickled_code_is_refused(tmp_path):
  torch = torch_refs.import_torch()
  model = ref.timm_swinv2(dict(CONFIG, depths=[1, 1, 1]))
  torch.save({"model": model}, tmp_path / "pickled_module.pth")  # a whole nn.Module: needs code
  with pytest.raises(sources.SourceError, match="refused or unreadable"):
    convert_cli.convert_file("swinv2", tmp_path / "pickled_module.pth", tmp_path / "out",
                             config_overrides=CONFIG)
  assert not (tmp_path / "out").exists()


INVERSE = {"transpose": lambda v: v.T, "OIHW->HWIO": lambda v: v.transpose(3, 2, 0, 1),
           "identity": lambda v: v}


def test_round_trip_through_store_and_manifest(timm_case, tmp_path):
  """Stored values → PyTorch layout via the manifest's mapping gives back every source array
  exactly; converting again gives the same digest."""
  state = timm_case["state_06"]
  src = save_pth(tmp_path / "src.pth", state)
  manifest = convert_cli.convert_file("swinv2", src, tmp_path / "a", config_overrides=CONFIG)
  values, loaded = store.load(tmp_path / "a")
  assert loaded["params_sha256"] == manifest["params_sha256"]
  assert len(values) == manifest["num_leaves"] == len(manifest["mapping"])
  for entry in manifest["mapping"]:
    back = INVERSE[entry["transform"]](values[entry["target"]])
    np.testing.assert_array_equal(back, state[entry["source"]], err_msg=entry["source"])
  again = convert_cli.convert_file("swinv2", src, tmp_path / "b", config_overrides=CONFIG)
  assert again["params_sha256"] == manifest["params_sha256"]
  # The 1.x layout of the same weights converts to the same values.
  src_1x = save_pth(tmp_path / "src_1x.pth", timm_case["state_1x"])
  other = convert_cli.convert_file("swinv2", src_1x, tmp_path / "c", config_overrides=CONFIG)
  assert other["params_sha256"] == manifest["params_sha256"]


def test_run_validates_inputs(timm_case, tmp_path):
  src = save_pth(tmp_path / "src.pth", timm_case["state_1x"])
  convert_cli.convert_file("swinv2", src, tmp_path / "w", config_overrides=CONFIG)
  good = timm_case["images"]
  for inputs, message in [({"image": good}, r"need an array 'images'"),
                          ({"images": good[0]}, r"must be \(B, 3, 64, 96\).*got \(3, 64, 96\)"),
                          ({"images": good[:, :2]}, r"must be \(B, 3, 64, 96\)"),
                          ({"images": good[..., :64]}, r"got \(2, 3, 64, 64\)"),
                          ({"images": good.astype(np.int32)}, r"floating point")]:
    with pytest.raises(ValueError, match=message):
      run_cli.run_directory(tmp_path / "w", inputs)
  with pytest.raises(ValueError, match="holds arch 'swinv2'"):
    run_cli.run_directory(tmp_path / "w", {"images": good}, "swinv2_large_window12_192")
