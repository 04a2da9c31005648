"""Where a compiled step's device time goes: a profiler trace of a few calls, each kernel
attributed through its HLO instruction's `op_name` to a part of the model and a phase.

Parts are the backbone's named scopes (models/dgsct.py): `visual`, `audio` (the frozen
encoders, the log-mel front end included) and `adapter`; everything else inside the
differentiated function is `head+loss`. Phases: `forward`, `backward` (under `transpose(`),
`recompute` (rematerialised forward work inside the backward pass) and `update` (outside the
gradient: optimizer, metrics).

The trace's kernels are a GPU's (its `Stream` lines), a TPU's (`XLA Ops`) or, on CPU, XLA's
thunks, each named by its HLO instruction. A GPU runs most of a step's kernels inside CUDA
command buffers, which the trace shows as one event each: profile a GPU with
`XLA_FLAGS=--xla_gpu_enable_command_buffer=` (which also changes the step time a little).
"""
import collections
import glob
import os
import re

import jax

PARTS = ("adapter", "visual", "audio")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+) = [^\n]*?op_name=\"([^\"]*)\"", re.M)


def op_names(hlo_text: str) -> dict[str, str]:
  """HLO instruction name → its metadata op_name, over every computation of `hlo_text`."""
  return dict(_INSTRUCTION.findall(hlo_text))


def category(op_name: str) -> tuple[str, str]:
  """(part, phase) of one instruction's op_name (module docstring)."""
  if "transpose(" in op_name:
    phase = "recompute" if "rematted_computation" in op_name else "backward"
  elif "jvp(" in op_name:
    phase = "forward"
  else:
    return "optimizer+metrics", "update"
  scopes = set(re.split(r"[/()]", op_name))
  return next((p for p in PARTS if p in scopes), "head+loss"), phase


def _kernel_events(profile):
  """(HLO instruction, duration ns) of every executed instruction: the device planes' kernels
  where the trace has devices (a GPU's `Stream` lines, a TPU's `XLA Ops`), else XLA:CPU's
  thunks on the host."""
  devices = [p for p in profile.planes if p.name.startswith("/device:")]
  for plane in devices or profile.planes:
    lines = list(plane.lines)
    ops = [line for line in lines if line.name == "XLA Ops"]
    for line in ops or lines:
      if devices and not ops and not line.name.startswith("Stream"):
        continue
      for event in line.events:
        stats = dict(event.stats)
        if devices or "hlo_op" in stats:
          yield str(stats.get("hlo_op", event.name)), event.duration_ns


def trace(run, calls: int, logdir: str):
  """Runs `run()` (which must block until done) `calls` times under the profiler; returns
  the parsed trace."""
  with jax.profiler.trace(logdir):
    for _ in range(calls):
      run()
  newest = max(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True),
               key=os.path.getmtime)
  return jax.profiler.ProfileData.from_file(newest)


def breakdown(profile, hlo_text: str, calls: int):
  """({(part, phase): ms per call}, [(ms per call, instruction, op_name)] slowest first)."""
  names = op_names(hlo_text)
  by_category = collections.defaultdict(float)
  by_instruction = collections.defaultdict(float)
  for instruction, ns in _kernel_events(profile):
    ms = ns / 1e6 / calls
    by_category[category(names.get(instruction, ""))] += ms
    by_instruction[instruction] += ms
  kernels = sorted(((ms, name, names.get(name, "")) for name, ms in by_instruction.items()),
                   reverse=True)
  return dict(by_category), kernels


def format_breakdown(by_category: dict, kernels: list, top: int = 15) -> str:
  """The per-part × phase table (ms per call and share) and the `top` slowest kernels."""
  total = sum(by_category.values()) or float("nan")
  phases = ("forward", "recompute", "backward", "update")
  parts = sorted({part for part, _ in by_category},
                 key=lambda p: -sum(v for (q, _), v in by_category.items() if q == p))
  lines = [f"{'device ms per step':>18} | " + " | ".join(f"{p:>9}" for p in phases)
           + f" | {'total':>9} | share"]
  for part in parts:
    row = [by_category.get((part, phase), 0.0) for phase in phases]
    lines.append(f"{part:>18} | " + " | ".join(f"{v:9.2f}" for v in row)
                 + f" | {sum(row):9.2f} | {sum(row) / total:5.1%}")
  column = [sum(v for (_, q), v in by_category.items() if q == phase) for phase in phases]
  lines.append(f"{'all':>18} | " + " | ".join(f"{v:9.2f}" for v in column)
               + f" | {total:9.2f} | 100%")
  if any(name.startswith("command_buffer") for _, name, _ in kernels):
    lines.append("(kernels run inside CUDA command buffers are traced as one: to attribute "
                 "them, profile with XLA_FLAGS=--xla_gpu_enable_command_buffer=)")
  lines.append("slowest kernels (ms per step, instruction, op_name):")
  for ms, name, op_name in kernels[:top]:
    lines.append(f"  {ms:8.3f}  {name:<28} {op_name[-110:]}")
  return "\n".join(lines)
