"""Forward time of the JAX Swin-V2-L (swinv2_large_window12_192) vs timm eager, same machine.

    .venv/bin/python benchmarks/bench_swinv2.py [--batch=10] [--size=192] [--reps=3]

Both run float32 on the CPU with their default thread pools, on the same random weights
(timm's init, converted by weight_conversion's swinv2 rules) and the same images:
JAX = `jax.jit` of the encoder (compile time measured separately, then one warm-up call),
PyTorch = `forward_features` under `torch.no_grad()` in eval mode (one warm-up call).
The two are timed alternately (JAX call, PyTorch call, ...) so that load from other processes
on a shared machine hits both alike; the table gives the best and the median of `--reps` calls
each. Target: JAX ≤ 0.8 × PyTorch.
"""
import argparse
import os
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

import torch_refs  # noqa: E402  (timm without torchvision)
from weight_conversion import archs as archs_lib  # noqa: E402
from weight_conversion import engine  # noqa: E402

ARCH = "swinv2_large_window12_192"


def timed_alternately(fns, reps):
  """[[seconds of rep 0, rep 1, ...] for each fn], calling the fns in turn within each rep."""
  times = [[] for _ in fns]
  for _ in range(reps):
    for fn, out in zip(fns, times):
      start = time.perf_counter()
      fn()
      out.append(time.perf_counter() - start)
  return times


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=10)
  parser.add_argument("--size", type=int, default=192)
  parser.add_argument("--reps", type=int, default=5)
  args = parser.parse_args()

  torch = torch_refs.import_torch()
  timm = torch_refs.import_timm()
  ref = timm.create_model(ARCH, pretrained=False, num_classes=0, img_size=args.size).eval()
  state = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
  arch = archs_lib.get(ARCH)
  config = dict(arch.config, img_size=args.size)
  values = engine.convert(state, archs_lib.abstract_model(arch, config), arch.rules(list(state))).values
  graphdef, params = nnx.split(archs_lib.materialize(arch, config, values))

  @jax.jit
  def forward(params, images):
    return nnx.merge(graphdef, params)(images)[0]

  images = np.random.default_rng(0).standard_normal(
      (args.batch, 3, args.size, args.size)).astype(np.float32)
  x = jax.numpy.asarray(images)

  start = time.perf_counter()
  compiled = forward.lower(params, x).compile()
  compile_s = time.perf_counter() - start
  ours = np.asarray(compiled(params, x))  # warm-up
  xt = torch.from_numpy(images)
  with torch.no_grad():
    theirs = ref.forward_features(xt).reshape(args.batch, -1, ours.shape[-1]).numpy()  # warm-up
    jax_all, torch_all = timed_alternately(
        [lambda: compiled(params, x).block_until_ready(), lambda: ref.forward_features(xt)],
        args.reps)

  err = float(np.abs(ours - theirs).max() / np.abs(theirs).max())
  print(f"\nSwin-V2-L ({ARCH}) forward, batch {args.batch}, {args.size}², float32, "
        f"{os.cpu_count()} CPU cores (torch threads {torch.get_num_threads()}), "
        f"jax {jax.__version__} on {jax.devices()[0].platform}, torch {torch.__version__}")
  rows = [("forward, best (s)", min(jax_all), min(torch_all)),
          ("forward, median (s)", statistics.median(jax_all), statistics.median(torch_all))]
  print(f"| {'':22s} | {'JAX (jit)':>10s} | {'PyTorch eager':>13s} | {'JAX / PyTorch':>13s} |")
  print(f"|{'-' * 24}|{'-' * 12}|{'-' * 15}|{'-' * 15}|")
  for name, ours_s, theirs_s in rows:
    print(f"| {name:22s} | {ours_s:10.3f} | {theirs_s:13.3f} | {ours_s / theirs_s:13.2f} |")
  print(f"| {'jit compile (s)':22s} | {compile_s:10.3f} | {'-':>13s} | {'':13s} |")
  print("all reps (s): JAX " + " ".join(f"{t:.2f}" for t in jax_all) +
        "; PyTorch " + " ".join(f"{t:.2f}" for t in torch_all))
  jax_s, torch_s = min(jax_all), min(torch_all)
  print(f"max relative difference of the features: {err:.2e}; "
        f"target JAX/PyTorch <= 0.80: {'met' if jax_s <= 0.8 * torch_s else 'NOT met'}")


if __name__ == "__main__":
  main()
