"""When and how to call `jax.distributed.initialize` (multi-host TPU pods, multi-process CPU).

Asked for by `--distributed` or `DGSCT_DISTRIBUTED=1` (set by launch/tpu_pod.sh on
every worker). On Cloud TPU, JAX discovers the coordinator, process count and id
itself. Elsewhere (the 2-process CPU test, a GPU cluster) pass them explicitly
with `DGSCT_COORDINATOR=host:port`, `DGSCT_NUM_PROCESSES`, `DGSCT_PROCESS_ID`.
It must run before anything touches a JAX device.
"""
import logging
import os

import jax

ENV_FLAG = "DGSCT_DISTRIBUTED"


def requested(flag: bool = False) -> bool:
  return flag or os.environ.get(ENV_FLAG, "0").lower() in ("1", "true", "yes")


def initialize(flag: bool = False) -> None:
  if not requested(flag):
    return
  kwargs = {}
  if "DGSCT_COORDINATOR" in os.environ:
    kwargs = dict(coordinator_address=os.environ["DGSCT_COORDINATOR"],
                  num_processes=int(os.environ["DGSCT_NUM_PROCESSES"]),
                  process_id=int(os.environ["DGSCT_PROCESS_ID"]))
    if jax.config.jax_platforms in (None, "", "cpu") or os.environ.get("JAX_PLATFORMS") == "cpu":
      # CPU collectives across processes need an explicit implementation.
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(**kwargs)
  logging.info("jax.distributed: process %d of %d, %d local / %d global devices",
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count())


def is_primary() -> bool:
  return jax.process_index() == 0
