"""Host memory: freed buffers stay in the process for the next step instead of going
back to the kernel.

XLA:CPU allocates each execution's buffers (the activations the backward reads, the
outputs) with malloc, and glibc hands large freed blocks back to the kernel: blocks
it mmap'd (every block over 32 MB), the heaps of its per-thread arenas, the main
heap's top beyond M_TRIM_THRESHOLD. The next execution then touches fresh pages,
which the kernel zeroes one 4 KiB page fault at a time. On the benchmark's GRPO
update that was 150,000 faults (600 MB zeroed) per step (benchmarks/README.md). With
one arena, no mmap'd blocks and no trimming, a step mostly reuses the previous
step's pages (the heap still grows now and then, when a block does not fit where one
was freed): the testbed demo went from 75.6 M faults to 1.0 M, 361 s to 291 s.

The costs: the process keeps its peak heap (a training process returns to that peak
every step anyway), and XLA's multi-threaded compiles, sharing one arena, take longer
(the benchmark's first step 19 s -> 23-29 s). Applied by the launch commands and the
benchmark; RLJAX_KEEP_FREED_MEMORY=0 leaves malloc as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_SETTINGS = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2 ** 31 - 1))


def keep_freed_memory() -> bool:
  """Sets glibc's malloc to keep freed memory (see the module docstring); returns
  whether it did (False off glibc / Linux, or with RLJAX_KEEP_FREED_MEMORY=0).

  Call it first thing, before JAX starts its backend: threads that have already made
  their own arena keep it.
  """
  if os.environ.get("RLJAX_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
    return False
  try:
    mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
  except (OSError, AttributeError):
    return False
  return all(mallopt(param, value) == 1 for param, value in _SETTINGS)
