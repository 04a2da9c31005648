"""One DG-SCT AVE, AVVP, AVS or AVQA training step at full size on CPU: time, memory, FLOPs, remat
choices.

    .venv/bin/python benchmarks/bench_train_step.py [--task ave|avvp|avs|avqa]
        [--remat block_dots,block_dots:2,...] [--precision f32,bf16_matmul,bf16] [--videos 1]
        [--steps 3] [--max_temp_gib 16] [--host_allocator auto|system|jemalloc|glibc_thp]

The step is the trainer's for `--task` (its config configs/<task>.py, `Task.build_model`,
`Task.apply`, `Task.losses` through `steps.forward`): forward in training mode (frozen encoders
in train mode, adapter BN batch statistics, head dropout; AVVP also log-mel mixup, Gumbel
assignment, drop path; AVS (configs/avs.py, subset s4) log-mel mixup and HTS-AT trained;
AVQA log-mel mixup and the negative frames through the plain frozen Swin),
the task's losses, gradients w.r.t. the `Trainable` leaves only (AVE: 201.16 M), an Adam
update, new BN statistics, on `--videos` videos of the task's `batch_spec` (AVE, AVVP: 10
segments, frames (V, 10, 3, 192, 192), audio (V, 10, 32000) tiled on device, AVVP's r2p1d
features (V, 10, 512); AVS: 5 frames (V, 5, 3, 224, 224) resized in the model, masks at the
decoder's 224²; AVQA: a question with its video's 10 frames, 10 negative frames and audio);
random inputs and targets, as the trainer's `data=random`; the paper's
batch is 8 (AVS S4: 8, MS3: 2). Random weights (the speed does not depend on them). A remat choice is a policy of
dgsct.REMAT_POLICIES, optionally with `:k` = remat_stages (only the first k stages
of each encoder are rematerialised). Precisions (rows = remat × precision):
  f32          float32 everywhere (the reference's numerics; model.matmul_dtype=None);
  bf16_matmul  float32 activations, the encoders' and adapters' matmuls on bfloat16
               operands with float32 accumulation (model.matmul_dtype='bfloat16');
  bf16         also bfloat16 activations and frozen weights (trainer compute_dtype=
               'bfloat16'); trainable weights, Adam state, norms, softmaxes and the
               cosine-attention logits stay float32.
Reported per row: compile time, median step time over `--steps` runs after a warm-up and the
videos per second it gives, the step's matrix-product FLOPs (counted on its jaxpr by
benchmarks/flop_count.py: forward, backward and rematerialised recomputation, the same count
on every backend, where XLA:GPU's cost analysis omits the products it hands to cuBLAS), the
bytes the compiled program accesses and its temporaries (XLA's cost and memory analyses), the
FLOP rate and its utilisation of the device (MFU: that rate over the device's bf16 matmul rate,
measured first in the same run on a large square product), the device's peak memory in use
(accelerators) and the process's peak RSS so far. `--profile DIR` also traces a few steps of
each row into DIR and prints where the device time goes by part of the model and phase
(benchmarks/xla_profile.py). The host allocator is the trainer's (`--host_allocator`,
dgsct_jax/host_memory.py: the script re-executes itself once under it). A choice whose
temporaries would not fit in memory is compiled and reported but not run (step time "nan").
Results: benchmarks/README.md.
"""
import argparse
import importlib
import itertools
import os
import pathlib
import resource
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from dgsct_jax import host_memory  # noqa: E402
from dgsct_jax import nnx_utils  # noqa: E402
from dgsct_jax import steps as steps_lib  # noqa: E402
from dgsct_jax import tasks  # noqa: E402
from dgsct_jax import train_state  # noqa: E402
from dgsct_jax.tasks import base  # noqa: E402
import flop_count  # noqa: E402
import xla_profile  # noqa: E402

PROFILED_STEPS = 3  # steps traced per row by --profile
PRECISIONS = {  # name: (trainer compute dtype, model.matmul_dtype)
    "f32": (jnp.float32, None),
    "bf16_matmul": (jnp.float32, "bfloat16"),
    "bf16": (jnp.bfloat16, "bfloat16"),
}


def physical_gib() -> float:
  return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30


def peak_rss_gib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def make_task(name: str, variant: str, **model) -> base.Task:
  """The task of configs/<name>.py at `variant`, with `model` overriding its model section."""
  config = importlib.import_module(f"configs.{name}").get_config(f"variant={variant}")
  config.model.update(model)
  return tasks.for_config(config)


def make_step(task, graphdef, tx, dtype):
  """The trainer's pattern: pure-dict parts merged inside the differentiated loss."""
  inputs = task.fields(base.INPUT)

  def loss_fn(trainable, frozen, stats, batch, rng):
    out, new_stats = steps_lib.forward(task, graphdef, trainable, frozen, stats,
                                       {k: batch[k] for k in inputs}, deterministic=False,
                                       rng=rng, dtype=dtype)
    return task.losses(out, batch)["total"], new_stats

  def step(trainable, opt_state, frozen, stats, batch, rng):
    (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        trainable, frozen, stats, batch, rng)
    updates, opt_state = tx.update(grads, opt_state, trainable)
    return optax.apply_updates(trainable, updates), opt_state, stats, loss

  return jax.jit(step, donate_argnums=(0, 1, 3))


def matmul_peak_tflops(n: int) -> float:
  """The device's bf16 × bf16 → float32 matmul rate on an n×n×n product (best of 5)."""
  a = jnp.ones((n, n), jnp.bfloat16)
  product = jax.jit(lambda x, y: jnp.dot(x, y, preferred_element_type=jnp.float32))
  product(a, a).block_until_ready()
  best = float("inf")
  for _ in range(5):
    start = time.perf_counter()
    product(a, a).block_until_ready()
    best = min(best, time.perf_counter() - start)
  return 2 * n ** 3 / best / 1e12


def device_peak_gib() -> float:
  """The first device's peak memory in use so far (nan where the backend does not say)."""
  stats = jax.devices()[0].memory_stats() or {}
  return stats.get("peak_bytes_in_use", float("nan")) / 2 ** 30


def run(task_name: str, variant: str, remat: str, precision: str, state, batch, steps: int,
        max_temp_gib: float, profile_dir: str | None = None) -> dict:
  policy, _, stages = remat.partition(":")
  dtype, matmul_dtype = PRECISIONS[precision]
  task = make_task(task_name, variant, remat=policy,
                   remat_stages=int(stages) if stages else None, matmul_dtype=matmul_dtype)
  graphdef, _ = nnx.split(nnx.eval_shape(lambda: task.build_model(nnx.Rngs(0))))
  parts = nnx_utils.split(nnx.merge(graphdef, state))
  # The step donates trainable and stats; `state` is reused by the next row.
  trainable, stats = jax.tree.map(jnp.copy, (parts.trainable, parts.stats))
  frozen = (train_state.cast_floats(parts.frozen, dtype) if dtype != jnp.float32
            else parts.frozen)
  tx = optax.adam(5e-4)
  opt_state = tx.init(trainable)
  step = make_step(task, parts.graphdef, tx, dtype)
  rng = jax.random.key(0)
  start = time.perf_counter()
  traced = step.trace(trainable, opt_state, frozen, stats, batch, rng)
  compiled = traced.lower().compile()
  compile_s = time.perf_counter() - start
  memory = compiled.memory_analysis()
  temp_gib = getattr(memory, "temp_size_in_bytes", 0) / 2 ** 30
  result = {"remat": remat, "precision": precision, "compile_s": compile_s, "step_s": float("nan"),
            "gflops": flop_count.jaxpr_flops(traced.jaxpr.jaxpr) / 1e9,
            "gbytes": _cost(compiled, "bytes accessed") / 1e9,
            "temp_gib": temp_gib, "rss_gib": peak_rss_gib(), "device_gib": float("nan")}
  if temp_gib > max_temp_gib:
    return result  # would not fit next to the weights: reported, not run
  calls = itertools.count()

  def call():
    nonlocal trainable, opt_state, stats
    trainable, opt_state, stats, loss = compiled(trainable, opt_state, frozen, stats, batch,
                                                 jax.random.fold_in(rng, next(calls)))
    loss.block_until_ready()

  times = []
  for i in range(steps + 1):
    start = time.perf_counter()
    call()
    if i:  # the first run is a warm-up
      times.append(time.perf_counter() - start)
  result.update(step_s=statistics.median(times), rss_gib=peak_rss_gib(),
                device_gib=device_peak_gib())
  if profile_dir:
    try:
      profile = xla_profile.trace(call, PROFILED_STEPS, profile_dir)
      result["profile"] = xla_profile.breakdown(profile, compiled.as_text(), PROFILED_STEPS)
    except Exception as e:  # pylint: disable=broad-except  (the row's numbers still count)
      result["profile_error"] = f"{type(e).__name__}: {e}"
  return result


def _cost(stage, key: str) -> float:
  """One entry of a compiled program's cost analysis (nan where absent)."""
  cost = stage.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float((cost or {}).get(key, float("nan")))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--task", default="ave", choices=["ave", "avvp", "avs", "avqa"])
  parser.add_argument("--remat", default="block_dots,block_dots:2")
  parser.add_argument("--precision", default="f32,bf16_matmul,bf16",
                      help=f"comma-separated, of {sorted(PRECISIONS)}")
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--videos", type=int, default=1, help="batch size in videos")
  parser.add_argument("--variant", default="large", choices=["large", "tiny"],
                      help="model size (tiny: a quick check of the script)")
  parser.add_argument("--host_allocator", default="auto", choices=host_memory.ALLOCATORS)
  parser.add_argument("--profile", default=None, metavar="DIR",
                      help="trace a few steps of each row into DIR and print where the device "
                           "time goes (on a GPU with XLA_FLAGS=--xla_gpu_enable_command_buffer=)")
  parser.add_argument("--max_temp_gib", type=float, default=None,
                      help="skip running (but report) choices whose XLA temporaries exceed this "
                           "(default: 90%% of the accelerator's memory, half the host's on CPU)")
  args = parser.parse_args()
  unknown = set(args.precision.split(",")) - set(PRECISIONS)
  if unknown:
    parser.error(f"--precision: unknown {sorted(unknown)}; choose from {sorted(PRECISIONS)}")
  allocator = host_memory.reexec_with(args.host_allocator)
  start = time.perf_counter()
  task = make_task(args.task, args.variant)
  _, state = nnx.split(task.build_model(nnx.Rngs(0)))
  init_s = time.perf_counter() - start
  v = args.videos
  spec = {k: task.batch_spec()[k] for k in steps_lib.train_fields(task)}
  examples = [base.random_example(spec, (0, i)) for i in range(v)]
  batch = {k: jnp.asarray(np.stack([e[k] for e in examples])) for k in spec}
  device = jax.devices()[0]
  max_temp_gib = args.max_temp_gib or (
      0.5 * physical_gib() if device.platform == "cpu"
      else 0.9 * device.memory_stats()["bytes_limit"] / 2 ** 30)
  peak = matmul_peak_tflops(2048 if device.platform == "cpu" else 8192)
  print(f"jax {jax.__version__}, {jax.device_count()} device(s) {device.platform} "
        f"({device.device_kind}); host allocator {allocator}; model init {init_s:.1f} s, peak RSS "
        f"{peak_rss_gib():.1f} GiB; {v} video(s) per step; measured bf16 matmul peak "
        f"{peak:.1f} TFLOP/s")
  header = (f"{'remat':>13} | {'precision':>11} | {'compile s':>9} | {'step s':>7} | "
            f"{'videos/s':>8} | {'GFLOP':>7} | {'TFLOP/s':>7} | {'MFU':>5} | {'GB moved':>8} | "
            f"{'XLA temp GiB':>12} | {'device peak GiB':>15} | {'peak RSS GiB':>12}")
  print(header)
  for remat, precision in itertools.product(args.remat.split(","), args.precision.split(",")):
    r = run(args.task, args.variant, remat, precision, state, batch, args.steps, max_temp_gib,
            args.profile and os.path.join(args.profile, f"{remat}_{precision}"))
    rate = r["gflops"] / r["step_s"] / 1e3
    print(f"{r['remat']:>13} | {r['precision']:>11} | {r['compile_s']:9.1f} | "
          f"{r['step_s']:7.3f} | {v / r['step_s']:8.2f} | {r['gflops']:7.0f} | {rate:7.2f} | "
          f"{rate / peak:5.1%} | {r['gbytes']:8.1f} | {r['temp_gib']:12.2f} | "
          f"{r['device_gib']:15.2f} | {r['rss_gib']:12.2f}", flush=True)
    if r.get("profile") or r.get("profile_error"):
      print(xla_profile.format_breakdown(*r["profile"]) if "profile" in r
            else f"profile failed: {r['profile_error']}", flush=True)
      print(header, flush=True)


if __name__ == "__main__":
  main()
