"""AVSBench builder (S4, MS3) on a tiny generated tree.

The AVSBench meta CSVs are not among the shipped annotations (spec §2.1), so
this test writes its own meta CSVs with the reference's column layout.
"""
import io

import numpy as np
import pytest
from PIL import Image

tfds = pytest.importorskip("tensorflow_datasets")

from dgsct_jax.data import task_media  # noqa: E402
from dgsct_jax.data.datasets.avsbench import Avsbench, read_meta  # noqa: E402

VIDEOS = {"train": ["-tr0_a", "tr1_b"], "val": ["va0_c"], "test": ["te0_d", "te1_e"]}
CATS = {"-tr0_a": "dog", "tr1_b": "baby_laughter", "va0_c": "dog", "te0_d": "car", "te1_e": "dog"}


def _png(arr, mode=None, palette=False) -> bytes:
  img = Image.fromarray(arr, mode) if mode else Image.fromarray(arr)
  if palette:
    img = img.convert("P")
    img.putpalette([0, 0, 0, 128, 0, 0] + [0] * (254 * 3))
  buf = io.BytesIO()
  img.save(buf, format="PNG")
  return buf.getvalue()


def _mask_array(seed):
  m = np.zeros((16, 16), np.uint8)
  m[seed % 8:seed % 8 + 6, 2:9] = 1
  return m


def _tree(root, subset):
  rng = np.random.default_rng(0)
  truth = {}
  if subset == "s4":
    base = root / "Single-source"
    lines = ["name,start,category,split"]
  else:
    base = root / "Multi-sources"
    lines = ["video_id,start,split"]
  waves = {}
  for split, names in VIDEOS.items():
    for v, name in enumerate(names):
      cat = CATS[name]
      lines.append(f"{name},0,{cat},{split}" if subset == "s4" else f"{name},0,{split}")
      frames, masks = [], []
      for k in range(1, 6):
        rgb = rng.integers(0, 255, (16, 16, 3), np.uint8)
        m = _mask_array(k + v)
        if subset == "s4":
          fdir = base / "s4_data/visual_frames" / split / cat / name
          mdir = base / "s4_data/gt_masks" / split / cat / name
          fpath, mpath = fdir / f"{name}_{k}.png", mdir / f"{name}_{k}.png"
          mbytes = _png(m * 255)                       # grey 0/255, read as PIL '1'
        else:
          fdir = base / "ms3_data/visual_frames" / name
          mdir = base / "ms3_data/gt_masks" / split / name
          fpath, mpath = fdir / f"{name}.mp4_{k}.png", mdir / f"{name}_{k}.png"
          mbytes = _png(m, palette=True)               # palette *index* 1 (not 255)
        fdir.mkdir(parents=True, exist_ok=True)
        mdir.mkdir(parents=True, exist_ok=True)
        fpath.write_bytes(_png(rgb))
        frames.append(fpath.read_bytes())
        if subset == "ms3" or split != "train" or k == 1:  # S4 train: first mask only
          mpath.write_bytes(mbytes)
          masks.append(m)
      wave = rng.normal(size=160_000).astype(np.float32)
      wkey = (split, cat) if subset == "s4" else (split,)
      waves.setdefault(wkey, {})[f"{name}.wav"] = wave
      truth[name] = (frames, masks, wave)
  for wkey, table in waves.items():
    wdir = base / ("s4_data/wave" if subset == "s4" else "ms3_data/wave") / "/".join(wkey)
    wdir.mkdir(parents=True, exist_ok=True)
    np.save(wdir / "AVS.npy", np.array(table, dtype=object), allow_pickle=True)
  csv_name = "s4_meta_data.csv" if subset == "s4" else "ms3_meta_data.csv"
  (base / csv_name).write_text("\n".join(lines) + "\n")
  return truth


@pytest.mark.parametrize("subset", ["s4", "ms3"])
def test_build_and_read_back(tmp_path, subset):
  manual = tmp_path / "manual"
  truth = _tree(manual, subset)
  builder = Avsbench(config=subset, data_dir=str(tmp_path / "data"),
                     file_format="array_record")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(manual)))
  cats = sorted(set(CATS.values()))
  for split, names in VIDEOS.items():
    src = builder.as_data_source(split=split)
    assert len(src) == len(names)
    for i, name in enumerate(names):
      ex = src[i]
      frames, masks, wave = truth[name]
      got_name = ex["name"].decode() if isinstance(ex["name"], bytes) else ex["name"]
      assert got_name == name
      assert [bytes(b) for b in ex["frames"]] == frames
      n = 1 if (subset == "s4" and split == "train") else 5
      assert ex["mask_valid"].tolist() == [True] * n + [False] * (5 - n)
      for k in range(n):
        np.testing.assert_array_equal(task_media.decode_mask_png(ex["masks"][k]), masks[k])
      np.testing.assert_array_equal(ex["audio"], wave.reshape(5, 32_000))
      want = cats.index(CATS[name]) if subset == "s4" else -1
      assert int(ex["category_id"]) == want


def test_meta_parsing_and_errors(tmp_path):
  p = tmp_path / "meta.csv"
  p.write_text("name,start,category,split\n-abc,0,dog,test\nxyz,1,cat,train\n")
  rows = read_meta(p)
  assert [(r.name, r.category, r.split) for r in rows] == [("-abc", "dog", "test"),
                                                             ("xyz", "cat", "train")]
  p.write_text("name,start,category,split\nxyz,1,cat,dev\n")
  with pytest.raises(ValueError, match=r"meta.csv:2: split 'dev'"):
    read_meta(p)


def test_bad_media_strict_and_skip(tmp_path):
  from dgsct_jax.data import records
  manual = tmp_path / "manual"
  _tree(manual, "ms3")
  (manual / "Multi-sources/ms3_data/gt_masks/test/te1_e/te1_e_3.png").unlink()
  config = tfds.download.DownloadConfig(manual_dir=str(manual))
  with pytest.raises(records.BadMediaError, match=r"te1_e.*missing image.*te1_e_3\.png"):
    Avsbench(config="ms3", data_dir=str(tmp_path / "a"),
             file_format="array_record").download_and_prepare(download_config=config)
  b = Avsbench(config="ms3", data_dir=str(tmp_path / "b"), file_format="array_record",
               skip_bad=True)
  b.download_and_prepare(download_config=config)
  assert len(b.as_data_source(split="test")) == 1 and b.skip_report.count("test") == 1


def test_source_decodes_like_the_reference_loader(tmp_path):
  """AvsSource: ToTensor (/255) + ImageNet Normalize at 224, masks as float {0, 1}."""
  from dgsct_jax.data.datasets.avsbench.source import AvsSource
  manual = tmp_path / "manual"
  truth = _tree(manual, "s4")
  b = Avsbench(config="s4", data_dir=str(tmp_path / "data"), file_format="array_record")
  b.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
  el = AvsSource(b.as_data_source(split="train"))[0]
  frames, masks, _ = truth["-tr0_a"]
  rgb = np.asarray(Image.open(io.BytesIO(frames[2])).convert("RGB"), np.float32)
  want = (rgb[3, 4, 1] / np.float32(255) - np.float32(0.456)) / np.float32(0.224)
  assert el["frames"].shape == (5, 3, 16, 16) and el["frames"][2, 1, 3, 4] == want
  np.testing.assert_array_equal(el["masks"][0], masks[0])
  assert el["masks"][1:].sum() == 0 and el["mask_valid"].tolist() == [True] + [False] * 4


def test_cli_builds_both_subsets(tmp_path, capsys):
  from dgsct_jax.data import build
  from dgsct_jax.data import sources
  manual = tmp_path / "manual"
  _tree(manual, "s4")
  _tree(manual, "ms3")
  assert build.main(["--dataset=avsbench", f"--manual_dir={manual}",
                     f"--data_dir={tmp_path / 'data'}"]) == 0
  out = capsys.readouterr().out
  assert "avsbench/s4 built in" in out and "avsbench/ms3 built in" in out
  for subset in ("s4", "ms3"):
    for split, names in VIDEOS.items():
      assert len(sources.get_source(f"avsbench/{subset}", split, tmp_path / "data")) == len(names)


def test_cli_bad_media_exit_status_and_skip(tmp_path, capsys):
  from dgsct_jax.data import build
  manual = tmp_path / "manual"
  _tree(manual, "ms3")
  bad = manual / "Multi-sources/ms3_data/gt_masks/test/te1_e/te1_e_3.png"
  bad.unlink()
  argv = ["--dataset=avsbench/ms3", f"--manual_dir={manual}"]
  assert build.main(argv + [f"--data_dir={tmp_path / 'a'}"]) == 1
  err = capsys.readouterr().err
  assert "AVSBench ms3 test te1_e (meta line 6)" in err and str(bad) in err
  assert build.main(argv + [f"--data_dir={tmp_path / 'b'}", "--skip_bad"]) == 0
  out = capsys.readouterr().out
  assert "'test': 1" in out and "skipped 1 videos with bad or missing media" in out


def test_split_with_every_video_skipped_is_a_clear_error(tmp_path, capsys):
  from dgsct_jax.data import build
  from dgsct_jax.data import records
  manual = tmp_path / "manual"
  _tree(manual, "ms3")
  for name in VIDEOS["test"]:
    (manual / f"Multi-sources/ms3_data/gt_masks/test/{name}/{name}_1.png").unlink()
  with pytest.raises(records.BadMediaError,
                     match=r"AVSBench ms3 test: all 2 videos were skipped .*te0_d_1\.png"):
    build.build("avsbench/ms3", manual, tmp_path / "a", skip_bad=True)
  assert build.main(["--dataset=avsbench/ms3", f"--manual_dir={manual}",
                     f"--data_dir={tmp_path / 'b'}", "--skip_bad"]) == 1
  assert "all 2 videos were skipped" in capsys.readouterr().err
