"""`host_memory.keep_freed_memory`: a large block, freed and allocated again, reuses the
pages it had instead of fresh ones the kernel must zero (one fault per 4 KiB), which
is what XLA:CPU does with each execution's buffers."""

import os
import subprocess
import sys

import pytest

_PROGRAM = """
import ctypes, ctypes.util, resource
from rljax import host_memory
applied = host_memory.keep_freed_memory()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
n = 64 << 20  # 64 MiB: over glibc's largest mmap threshold (32 MiB)

def faults_to_fill():
  block = libc.malloc(n)
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  ctypes.memset(block, 1, n)
  faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
  libc.free(block)
  return faults

first = faults_to_fill()
print(applied, first, min(faults_to_fill() for _ in range(3)))
"""


def _run(keep: str) -> tuple[bool, int, int]:
  out = subprocess.run([sys.executable, "-c", _PROGRAM], capture_output=True, text=True,
                       check=True, env={**os.environ, "RLJAX_KEEP_FREED_MEMORY": keep})
  applied, first, again = out.stdout.split()
  return applied == "True", int(first), int(again)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_freed_block_keeps_its_pages_for_the_next_allocation():
  pages = (64 << 20) // 4096
  applied, first, again = _run("0")
  assert not applied
  assert first > pages / 2 and again > pages / 2, (first, again)  # fresh pages every time
  applied, first, again = _run("1")
  assert applied
  assert first > pages / 2, first          # the first touch still faults them in
  assert again < pages / 100, again        # then they stay: no fault on reuse
