"""Input-pipeline throughput of the LLP, AVSBench and MUSIC-AVQA datasets (clips/s per core).

Builds small TFDS datasets with realistic media sizes in a temp dir (16 videos
each; the MUSIC-AVQA QA table from the real val json when /work/shared or
--annotations is available, else a generated one), then times the shared grain
pipeline (`dgsct_jax.data.pipeline.make_pipeline`, one read thread, no worker
processes, BLAS pinned to one thread) over the decoding sources of
`dgsct_jax.data.datasets.<name>.source`:

    .venv/bin/python benchmarks/bench_task_pipelines.py [--batches=20]
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
  os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from dgsct_jax.data import build  # noqa: E402
from dgsct_jax.data import pipeline  # noqa: E402
from dgsct_jax.data.datasets.avsbench.source import AvsSource  # noqa: E402
from dgsct_jax.data.datasets.llp import read_splits  # noqa: E402
from dgsct_jax.data.datasets.llp.source import LlpSource  # noqa: E402
from dgsct_jax.data.datasets.music_avqa import video_list  # noqa: E402
from dgsct_jax.data.datasets.music_avqa.source import AvqaSource  # noqa: E402

N_VIDEOS = 16
FRAME_HW = (360, 640)  # typical YouTube frame of the LLP / MUSIC-AVQA releases
RNG = np.random.default_rng(0)


def _image(h, w, fmt) -> bytes:
  # Smooth content so JPEG/PNG sizes are realistic (noise would be far larger).
  y, x = np.mgrid[0:h, 0:w]
  base = np.stack([(x * 255 // w), (y * 255 // h), ((x + y) * 127 // (h + w))], -1)
  img = (base + RNG.integers(0, 16, (h, w, 3))).astype(np.uint8)
  buf = io.BytesIO()
  Image.fromarray(img).save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
  return buf.getvalue()


def llp_source(root, annotations):
  manual = root / "llp"
  manual.mkdir()
  for f in (annotations / "AVVP").iterdir():
    (manual / f.name).write_bytes(f.read_bytes())
  ann = read_splits(manual)
  jpeg = _image(*FRAME_HW, "JPEG")
  for filename, _ in [r for split in ("train", "val", "test") for r in ann[split][:N_VIDEOS]]:
    vid = filename[:11]
    d = manual / "LLP_dataset" / "frame" / vid
    d.mkdir(parents=True)
    for k in range(1, 11):
      (d / f"{k:08d}.jpg").write_bytes(jpeg)
    for sub, arr in (("wave", RNG.normal(size=320_000)), ("feats/r2plus1d_18", RNG.normal(size=(10, 512)))):
      (manual / "LLP_dataset" / sub).mkdir(parents=True, exist_ok=True)
      np.save(manual / "LLP_dataset" / sub / f"{vid}.npy", arr.astype(np.float32))
  b = build.build("llp", manual, root / "data", max_videos_per_split=N_VIDEOS, skip_bad=True)
  return LlpSource(b.as_data_source(split="train"))


def avs_source(root):
  manual = root / "avs"
  base = manual / "Single-source"
  lines = ["name,start,category,split"]
  png = _image(224, 224, "PNG")
  mask = np.zeros((224, 224), np.uint8)
  mask[50:150, 60:170] = 255
  buf = io.BytesIO()
  Image.fromarray(mask).save(buf, format="PNG")
  tables = {}
  for split in ("train", "val", "test"):
    for i in range(N_VIDEOS if split == "test" else 1):
      name = f"{split}{i:03d}"
      lines.append(f"{name},0,dog,{split}")
      for kind, data in (("visual_frames", png), ("gt_masks", buf.getvalue())):
        d = base / "s4_data" / kind / split / "dog" / name
        d.mkdir(parents=True)
        for k in range(1, 6):
          (d / f"{name}_{k}.png").write_bytes(data)
      tables.setdefault(split, {})[f"{name}.wav"] = RNG.normal(size=160_000).astype(np.float32)
  for split, table in tables.items():
    (base / f"s4_data/wave/{split}/dog").mkdir(parents=True)
    np.save(base / f"s4_data/wave/{split}/dog/AVS.npy", np.array(table, dtype=object),
            allow_pickle=True)
  (base / "s4_meta_data.csv").write_text("\n".join(lines) + "\n")
  b = build.build("avsbench/s4", manual, root / "data")
  return AvsSource(b.as_data_source(split="test"))


class _Subset:
  def __init__(self, source, indices):
    self.source, self.indices = source, list(indices)

  def __len__(self):
    return len(self.indices)

  def __getitem__(self, i):
    return self.source[self.indices[int(i)]]


def avqa_source(root, annotations):
  manual = root / "avqa"
  (manual / "json").mkdir(parents=True)
  samples = json.loads((annotations / "AVQA" / "avqa-val.json").read_text())
  (manual / "json" / "avqa-val.json").write_text(json.dumps(samples))
  for name in ("ques_vocab.txt", "ans_vocab.txt"):
    (manual / name).write_bytes((annotations / "AVQA" / name).read_bytes())
  jpeg = _image(*FRAME_HW, "JPEG")
  for vid in video_list(samples)[:N_VIDEOS]:
    d = manual / "frames" / vid
    d.mkdir(parents=True)
    for k in range(1, 61):
      (d / f"{k:08d}.jpg").write_bytes(jpeg)
    (manual / "audio_wave").mkdir(exist_ok=True)
    np.save(manual / "audio_wave" / f"{vid}.npy", RNG.normal(size=320_000).astype(np.float32))
  qa = build.build("music_avqa/qa", manual, root / "data").as_data_source(split="val")
  videos = build.build("music_avqa/videos", manual, root / "data",
                       max_videos_per_split=N_VIDEOS).as_data_source(split="val")
  src = AvqaSource(qa, videos)
  keep = [i for i in range(len(qa)) if int(qa[i]["video_index"]) < N_VIDEOS]
  return _Subset(src, keep)


def throughput(source, batches: int, batch_size: int = 8) -> float:
  it = pipeline.make_pipeline(source, batch_size=batch_size, shuffle=True, seed=0,
                              num_epochs=None, shard_index=0, shard_count=1,
                              worker_count=0, read_threads=1, prefetch=0)
  next(it)  # warm-up
  t = time.perf_counter()
  for _ in range(batches):
    next(it)
  return batches * batch_size / (time.perf_counter() - t)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batches", type=int, default=20)
  parser.add_argument("--annotations", default=str(
      pathlib.Path(__file__).resolve().parents[2] / "shared" / "annotations"))
  args = parser.parse_args()
  annotations = pathlib.Path(args.annotations)
  if not annotations.is_dir():
    print(f"annotations not found at {annotations}; LLP and AVQA need the real CSV/json files")
    return 0
  with tempfile.TemporaryDirectory() as tmp:
    root = pathlib.Path(tmp)
    sources = {"llp (10 JPEG 640x360 -> 192, audio, r2p1d)": llp_source(root, annotations),
               "avsbench/s4 (5 PNG 224, 5 masks, audio)": avs_source(root),
               "music_avqa (10 + 10 negative JPEG 640x360 -> 192)": avqa_source(root, annotations)}
    print(f"{'dataset':55s} clips/s (1 read thread, 1 core)")
    for name, src in sources.items():
      print(f"{name:55s} {throughput(src, args.batches):8.1f}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
