"""HTS-AT forward, 10 clips of 10 s at 32 kHz: JAX (jit) vs PyTorch (laion-clap's class, eager).

    .venv/bin/python benchmarks/bench_htsat.py [--batch 10] [--repeats 5]

Both run the whole eval forward (front end, blocks, token-semantic head) on the
same machine and threads, float32, random weights. JAX time excludes the
compile (reported separately); both take the median of `--repeats` runs after
one warm-up. Target: JAX / PyTorch ≤ 0.8.
"""
import argparse
import os
import pathlib
import statistics
import sys
import time
import types

import jax
import numpy as np
from flax import nnx

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from dgsct_jax.models.encoders import htsat  # noqa: E402


def _time(fn, repeats):
  fn()  # warm-up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def bench_jax(waves, repeats):
  model = htsat.HTSAT(rngs=nnx.Rngs(0))

  @nnx.jit
  def forward(model, w):
    features, _ = model(w)
    return model.head_outputs(features)["clipwise_output"]

  x = jax.numpy.asarray(waves)
  start = time.perf_counter()
  forward.lower(model, x).compile()
  compile_s = time.perf_counter() - start
  run_s = _time(lambda: forward(model, x).block_until_ready(), repeats)
  return compile_s, run_s


def bench_torch(waves, repeats):
  import torch  # pylint: disable=import-outside-toplevel
  import torch_refs  # pylint: disable=import-outside-toplevel
  torch_refs.install_torchvision_stub()
  laion = torch_refs.import_laion_htsat()
  torch.set_num_threads(os.cpu_count())
  config = types.SimpleNamespace(mel_bins=64, window_size=1024, hop_size=320, sample_rate=32000,
                                 fmin=50, fmax=14000)
  model = laion.HTSAT_Swin_Transformer(config=config).eval()
  x = torch.from_numpy(waves)

  def run():
    with torch.no_grad():
      model({"waveform": x})["clipwise_output"].sum().item()

  return _time(run, repeats)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=10)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  waves = (0.1 * np.random.default_rng(0).standard_normal((args.batch, 320000))).astype(np.float32)
  compile_s, jax_s = bench_jax(waves, args.repeats)
  try:
    torch_s = bench_torch(waves, args.repeats)
  except Exception as e:  # pylint: disable=broad-except  (torch/laion absent: JAX row only)
    print(f"PyTorch reference unavailable: {e}")
    torch_s = float("nan")
  device = jax.devices()[0]
  print(f"HTS-AT forward, {args.batch} clips × 10 s @ 32 kHz, float32, eval; "
        f"JAX on {device.platform} ({device.device_kind}), {os.cpu_count()} CPU threads\n")
  print("| model | JAX jit (s) | PyTorch eager (s) | JAX / PyTorch | JAX compile (s) |")
  print("|---|---|---|---|---|")
  print(f"| HTS-AT AudioSet (B={args.batch}) | {jax_s:.3f} | {torch_s:.3f} | "
        f"{jax_s / torch_s:.2f} | {compile_s:.1f} |")


if __name__ == "__main__":
  main()
