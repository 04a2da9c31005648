r"""Input-pipeline throughput: AVE videos per second per CPU core, end to end.

  python benchmarks/bench_pipeline.py [--resolutions 320x240,640x360] [--seconds 10]

Builds a small AVE dataset (TFDS ArrayRecord, same builder as the real one)
from generated JPEG frames at a few source resolutions, then times the full
host path of `make_pipeline`: ArrayRecord read, JPEG decode, torch-exact
bicubic resize to 192x192, ImageNet normalisation, batching. One process with
one read thread measures one core; a run with worker processes shows scaling.
It also compares tiling the audio to 320 000 samples on the host (numpy)
with tiling on the device (the model's `tile_segments` under jit), including
the host->device transfer of either, and times the synthetic dataset.

Frames are smooth gradients + shapes + mild noise, JPEG quality 90, sized
like ffmpeg-extracted video frames; decode time depends on that content.

Measured on the 2-core CI box under other load (per CPU-second, 1 process):
320x240: 52, 640x360: 33, 1280x720: 11.5 videos/s (needed on a v5e-8 host:
~3). JPEG decode is ~55% of the cost, the banded resize ~30%, the ArrayRecord
read ~10%. Audio tiling: host 2.2 ms CPU/video and 10x the transfer; on device
it is free, so the model tiles on device.
"""
import argparse
import os
import pathlib
import sys
import tempfile
import time

import h5py
import numpy as np
from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from dgsct_jax.data import build  # noqa: E402
from dgsct_jax.data import pipeline  # noqa: E402
from dgsct_jax.data import sources  # noqa: E402
from dgsct_jax.data import synthetic  # noqa: E402

NUM_VIDEOS = 24
FRAMES_PER_VIDEO = 30


def natural_frame(rng, h, w) -> np.ndarray:
  y, x = np.mgrid[:h, :w] / max(h, w)
  img = np.stack([np.sin(6 * x + rng.uniform(0, 6)), np.cos(5 * y + rng.uniform(0, 6)),
                  np.sin(4 * (x + y))], -1) * 60 + 120
  for _ in range(6):
    cy, cx, r = rng.uniform(0, 1, 3) * (h / max(h, w), w / max(h, w), 0.2)
    img[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = rng.uniform(0, 255, 3)
  img += rng.normal(0, 6, img.shape)
  return np.clip(img, 0, 255).astype(np.uint8)


def make_tree(root: pathlib.Path, h: int, w: int) -> int:
  """A minimal AVE manual_dir: NUM_VIDEOS rows, all in every split; returns JPEG bytes/frame."""
  rng = np.random.default_rng(0)
  root.mkdir(parents=True)
  (root / "categories.txt").write_text("".join(f"Class {k}\n" for k in range(28)))
  (root / "Annotations.txt").write_text("Category&VideoID&Quality&StartTime&EndTime\n" + "".join(
      f"Class {k % 28}&vid{k:03d}&good&2&8\n" for k in range(NUM_VIDEOS)))
  for split in ("train", "val", "test"):
    with h5py.File(root / f"{split}_order.h5", "w") as f:
      f["order"] = np.arange(NUM_VIDEOS)
  (root / "wave").mkdir()
  sizes = []
  base = [natural_frame(rng, h, w) for _ in range(4)]
  for k in range(NUM_VIDEOS):
    folder = root / "frames" / f"vid{k:03d}"
    folder.mkdir(parents=True)
    for n in range(1, FRAMES_PER_VIDEO + 1):
      frame = np.roll(base[k % 4], 3 * n, axis=1)  # Some motion between frames.
      Image.fromarray(frame).save(folder / f"{n:08d}.jpg", quality=90)
    sizes.append((folder / "00000001.jpg").stat().st_size)
    np.save(root / "wave" / f"vid{k:03d}.npy", rng.standard_normal((10, 32000)).astype(np.float32))
  return int(np.mean(sizes))


def _descendants(pid: int) -> list[int]:
  children = []
  for entry in os.listdir("/proc"):
    if entry.isdigit():
      try:
        stat = pathlib.Path(f"/proc/{entry}/stat").read_text()
      except OSError:
        continue
      if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
        children.append(int(entry))
  return children + [d for c in children for d in _descendants(c)]


def cpu_seconds() -> float:
  """CPU time of this process and its live descendants (grain workers), user + sys.

  Per-core throughput = videos / CPU seconds: unlike wall time it does not
  depend on other load on the machine (shared CI boxes).
  """
  total = time.process_time()
  tick = os.sysconf("SC_CLK_TCK")
  for pid in _descendants(os.getpid()):
    try:
      fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
      total += (int(fields[11]) + int(fields[12])) / tick
    except OSError:
      pass
  return total


def videos_per_second(src, *, batch_size, worker_count, read_threads, seconds, warmup=3):
  """(videos per wall second, videos per CPU second) over `seconds` of wall time."""
  it = pipeline.make_pipeline(src, batch_size=batch_size, seed=0, shard_index=0, shard_count=1,
                              worker_count=worker_count, read_threads=read_threads)
  try:
    for _ in range(warmup):
      next(it)
    count, start, cpu = 0, time.perf_counter(), cpu_seconds()
    while time.perf_counter() - start < seconds:
      batch = next(it)
      count += len(batch["video_id"])
    return count / (time.perf_counter() - start), count / (cpu_seconds() - cpu)
  finally:
    if hasattr(it, "close"):
      it.close()


def bench_tiling(batch_size: int, repeats: int = 20):
  """CPU ms per video: tile on host (+ transfer 10x the bytes) vs transfer + tile on device.

  On the CPU backend `device_put` is a host memcpy and the "device" tile runs
  on the host cores too, so only the host-side rows transfer to a TPU host.
  """
  import jax  # pylint: disable=g-import-not-at-top
  from dgsct_jax.models import backbone  # pylint: disable=g-import-not-at-top
  audio = np.random.default_rng(0).standard_normal((batch_size, 10, 32000)).astype(np.float32)
  tile = jax.jit(lambda a: backbone.tile_segments(a, 320_000))

  def host_only():
    return np.tile(audio, (1, 1, 10))  # 10 x 32 000 = 320 000 samples

  def host():
    return jax.block_until_ready(jax.device_put(host_only()))

  def device():
    return jax.block_until_ready(tile(jax.device_put(audio)))

  out = {}
  for name, fn in (("host tile (numpy) only", host_only), ("host tile + device_put", host),
                   ("device_put + device tile", device)):
    fn()
    times = []
    for _ in range(repeats):
      start = time.process_time()
      fn()
      times.append(time.process_time() - start)
    out[name] = 1e3 * min(times) / batch_size
  return out, jax.devices()[0].platform


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--resolutions", default="320x240,640x360,1280x720")
  parser.add_argument("--seconds", type=float, default=8.0)
  parser.add_argument("--batch_size", type=int, default=8)
  parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
  args = parser.parse_args()
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  print(f"CPU cores: {os.cpu_count()}, batch {args.batch_size}, {args.seconds:.0f} s per row\n")
  print("| frames (source) | JPEG KiB | setting | videos/s (wall) | videos per CPU-second |")
  print("| --- | --- | --- | --- | --- |")
  with tempfile.TemporaryDirectory() as tmp:
    for res in args.resolutions.split(","):
      w, h = map(int, res.split("x"))
      jpeg = make_tree(pathlib.Path(tmp) / res / "manual", h, w)
      build.build("ave", pathlib.Path(tmp) / res / "manual", pathlib.Path(tmp) / res / "data")
      src = sources.get_source("ave", "train", data_dir=pathlib.Path(tmp) / res / "data")
      wall, per_cpu = videos_per_second(src, batch_size=args.batch_size, worker_count=0,
                                        read_threads=1, seconds=args.seconds)
      print(f"| AVE {w}x{h} -> 192x192 | {jpeg / 1024:.0f} | 1 process, 1 thread | "
            f"{wall:.1f} | {per_cpu:.1f} |", flush=True)
      if args.workers > 1:
        wall, per_cpu = videos_per_second(src, batch_size=args.batch_size,
                                          worker_count=args.workers, read_threads=1,
                                          seconds=args.seconds)
        print(f"| AVE {w}x{h} -> 192x192 | {jpeg / 1024:.0f} | {args.workers} worker processes | "
              f"{wall:.1f} | {per_cpu:.1f} |", flush=True)
  for size in (64, 192):
    cfg = synthetic.SyntheticConfig(image_size=(size, size))
    src = synthetic.SyntheticSource("train", 4096, cfg)
    wall, per_cpu = videos_per_second(src, batch_size=args.batch_size, worker_count=0,
                                      read_threads=1, seconds=args.seconds / 2)
    print(f"| synthetic {size}x{size} | - | 1 process, 1 thread | {wall:.1f} | {per_cpu:.1f} |")
  tiling, platform = bench_tiling(args.batch_size)
  print(f"\nAudio to 320 000 samples, ms per video (device: {platform}); "
        "host tiling also ships 12.8 MB instead of 1.28 MB per video:")
  for name, ms in tiling.items():
    print(f"  {name:28s} {ms:7.3f} ms/video")


if __name__ == "__main__":
  main()
