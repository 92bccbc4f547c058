"""A CPU host as N JAX devices, so that the batch's data axis runs one part per core.

XLA:CPU runs an execution's chain of dependent ops one after another; only its large
products (YNNPACK's) are split over the thread pool. A decode step is mostly one chain
of small ops (the attention over each row's cache, the token draw, norms, rotary
embeddings), so on one device one core waits while the other runs them. As one device
per core, with the batch split over the mesh's `data` axis (`mesh.data = -1` in
`configs/*.py` takes every device), each device runs its rows' chain and the two chains
fill both cores: on the benchmark workload (2 cores) the 64-token decode is 17% faster
and the 256-token decode 20-27%, its training as fast as on one device, the testbed
demo 10% faster (benchmarks/README.md). The devices share XLA's one host thread pool,
so a product that runs alone still uses every core.

The costs of an update split over the cores too: results are those of a data-parallel
run (each device's gradient summed across devices), equal to one device's up to float
summation order, not bit-equal; the host holds each device's buffers (the testbed
demo's peak RSS 2.5 -> 4.3 GB); and larger models' updates run slower (the benchmark's
94M-parameter update 30%: AdamW runs on every device's replica, each product on half
the rows). So `make demo` keeps the update on one of them (`mesh.train_devices = 1`,
`sharding.train_and_rollout_meshes`) and samples on all: the split `benchmarks.run`
reports as rljax's headline. The same setting simulates a pod slice's devices for
`launch.train --dry_run`.
"""

from __future__ import annotations

import os

import jax


def use(n: int) -> int:
  """Runs JAX on n CPU devices (n = -1: one per core this process may run on); returns
  n. Call it before any JAX operation: the count is read when the backend starts."""
  if n == -1:
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  if n < 1:
    raise ValueError(f"cpu_devices must be a positive count or -1 (one per core), got {n}")
  os.environ["JAX_PLATFORMS"] = "cpu"  # for processes this one starts
  jax.config.update("jax_platforms", "cpu")
  jax.config.update("jax_num_cpu_devices", n)  # RuntimeError once the backend has started
  return n
