"""Several processes, one run: JAX's own multi-controller runtime, no cluster layer.

Every process (one per TPU VM worker or GPU host) runs the same command. After
`initialize`, each sees the global device list; the mesh spans all of them.

How a step's data moves (the trainer's host logic stays global and deterministic):

* Each process reads its own shard of a dataset and draws and encodes only its own
  share of each step's prompts; `gather_objects` / `gather_shares` then give every
  process the whole step (problems and prompt arrays, a few KB), so the host arrays
  are global and identical on every process. `to_global` hands each process's rows,
  and only those, to its own devices (`jax.make_array_from_process_local_data`).
* Device results come back with `to_host`: all rows on every process (an allgather
  over the processes), so every process takes the same host decisions (dynamic
  sampling's rounds, controllers, resets) without another round of communication.
* Rewards are scored where the texts are: `score_shares` runs the verifier on this
  process's rows only and gathers the scores.
* Only process 0 writes files (metrics, traces, summaries, reports); orbax
  checkpoints are written by all processes together.

With one process every function here is the identity or a plain `device_get`, so a
single-host run computes exactly what it did before.
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
from typing import NamedTuple

import jax
import numpy as np
from jax.experimental import multihost_utils


class DistributedError(RuntimeError):
  """The processes of a run could not all join, or their rows cannot be split."""


def initialize(coordinator_address: str = "", num_processes: int = 0, process_id: int = -1,
               timeout_s: int = 300) -> None:
  """Joins this process to the run; fails fast, naming what is missing.

  On TPU VMs (and SLURM / Open MPI clusters) JAX reads the cluster from the
  environment: call with no arguments. Elsewhere pass all three of
  `coordinator_address` (host:port of process 0), `num_processes` and `process_id`.
  On CPU the collectives go over gloo.
  """
  given = [bool(coordinator_address), num_processes > 0, process_id >= 0]
  if any(given) and not all(given):
    missing = [n for n, g in zip(("--coordinator_address", "--num_processes",
                                  "--process_id"), given) if not g]
    raise DistributedError(f"distributed: {', '.join(missing)} missing; pass all three, "
                           f"or none on a TPU VM / SLURM cluster (read from the environment)")
  if jax.config.jax_platforms in (None, "", "cpu") or os.environ.get("JAX_PLATFORMS") == "cpu":
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  kwargs = dict(coordinator_address=coordinator_address, num_processes=num_processes,
                process_id=process_id) if all(given) else {}
  who = (f"process {process_id} of {num_processes} (coordinator {coordinator_address})"
         if all(given) else "this process (cluster read from the environment)")
  message = (f"distributed: {who} could not join the run within {timeout_s} s: not every "
             f"process started, or the coordinator is unreachable. Start the same command "
             f"on every host (launch/tpu/run.sh uses --worker=all).")
  # JAX's runtime aborts the process when its own deadline passes (no exception to
  # catch), so a watchdog with a shorter deadline says what is missing and exits first.
  joined = threading.Event()

  def watchdog():
    if not joined.wait(timeout_s):
      sys.stderr.write(f"error: {message}\n")
      sys.stderr.flush()
      os._exit(2)

  threading.Thread(target=watchdog, daemon=True).start()
  try:
    jax.distributed.initialize(initialization_timeout=timeout_s + 60, **kwargs)
  except Exception as e:  # the runtime raises several types; name what happened instead
    raise DistributedError(f"{message} ({type(e).__name__}: {str(e)[:300]})") from e
  finally:
    joined.set()
  if all(given) and jax.process_count() != num_processes:
    raise DistributedError(f"distributed: {jax.process_count()} processes joined, "
                           f"{num_processes} expected")


def is_main() -> bool:
  """Process 0: the one that writes files."""
  return jax.process_index() == 0


def multi() -> bool:
  return jax.process_count() > 1


def _rows(sharding, shape) -> slice:
  """The contiguous rows (axis 0) of a `shape` array that this process's devices hold."""
  spans = {(idx[0].start or 0, shape[0] if idx[0].stop is None else idx[0].stop)
           for idx in sharding.addressable_devices_indices_map(shape).values()}
  start, stop = min(s for s, _ in spans), max(e for _, e in spans)
  if sum(e - s for s, e in spans) != stop - start:
    raise DistributedError(f"this process's rows of {shape} are not contiguous: {sorted(spans)}")
  return slice(start, stop)


def to_global(tree, shardings):
  """Host arrays (identical on every process) as global arrays: each process places its
  own rows. With one process the arrays are returned as they are (jit places them)."""
  if not multi():
    return tree

  def one(x, sh):
    x = np.asarray(x)
    if sh.is_fully_replicated:
      return jax.make_array_from_process_local_data(sh, x, x.shape)
    return jax.make_array_from_process_local_data(sh, x[_rows(sh, x.shape)], x.shape)

  return jax.tree.map(one, tree, shardings)


def to_host(tree):
  """Global arrays as numpy on every process (all rows)."""
  def one(x):
    if not isinstance(x, jax.Array) or x.is_fully_addressable:
      return np.asarray(jax.device_get(x))
    if x.is_fully_replicated:
      return np.asarray(x.addressable_data(0))
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return jax.tree.map(one, tree)


class Shard(NamedTuple):
  """Shard `index` of `count` of a dataset: the part one process reads.

  Shard p of k holds the contiguous rows [p*n//k, (p+1)*n//k) of n (sizes differ by at
  most one): contiguous, so a parquet reader opens only the row groups it needs.
  """

  index: int = 0
  count: int = 1

  @classmethod
  def of_process(cls) -> "Shard":
    return cls(jax.process_index(), jax.process_count())

  def rows(self, n: int) -> range:
    return range(self.index * n // self.count, (self.index + 1) * n // self.count)

  def describe(self, n: int) -> str:
    r = self.rows(n)
    return f"shard {self.index} of {self.count}: rows [{r.start}, {r.stop}) of {n}"


def process_count() -> int:
  return jax.process_count()


def share(n: int) -> slice:
  """This process's contiguous share of n host items (n divisible by the process count):
  its `Shard`'s rows."""
  if n % jax.process_count():
    raise DistributedError(f"{n} items cannot be split evenly over {jax.process_count()} "
                           f"processes")
  rows = Shard.of_process().rows(n)
  return slice(rows.start, rows.stop)


def local_count(n: int) -> int:
  """How many of n items each process holds (n divisible by the process count)."""
  s = share(n)
  return s.stop - s.start


def gather_shares(local: np.ndarray) -> np.ndarray:
  """Each process's share (same shape on every process), concatenated in process order."""
  if not multi():
    return np.asarray(local)
  return np.asarray(multihost_utils.process_allgather(np.asarray(local), tiled=True))


def gather_objects(local: list) -> list:
  """Each process's list of picklable items (lengths may differ), concatenated in process
  order on every process: the problems behind a step's prompts."""
  if not multi():
    return list(local)
  data = np.frombuffer(pickle.dumps(list(local)), np.uint8)
  sizes = gather_shares(np.array([data.size], np.int64))
  padded = np.zeros(int(sizes.max()), np.uint8)
  padded[:data.size] = data
  every = np.asarray(multihost_utils.process_allgather(padded))  # [processes, max size]
  return [x for row, n in zip(every, sizes) for x in pickle.loads(row[:n].tobytes())]


def score_shares(score, items: list):
  """`score(items) -> (scores [n], failure counts {kind: int})` run on this process's
  share of `items` only; every process gets all n scores and the summed counts."""
  if not multi():
    return score(items)
  scores, failures = score(items[share(len(items))])
  kinds = sorted(failures)
  counts = gather_shares(np.array([[failures[k] for k in kinds]], np.int64)).sum(0)
  return gather_shares(np.asarray(scores, np.float32)), dict(zip(kinds, counts.tolist()))


def barrier(name: str) -> None:
  if multi():
    multihost_utils.sync_global_devices(name)
