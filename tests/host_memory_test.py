"""`host_memory.keep_freed_memory`: an execution's large buffers reuse the previous
execution's pages instead of fresh ones the kernel must zero (one fault per 4 KiB)."""

import os
import subprocess
import sys

import pytest

_PROGRAM = """
import resource
from rljax import host_memory
applied = host_memory.keep_freed_memory()
import jax, jax.numpy as jnp
# The product is a 64 MiB intermediate (4,096 x 4,096 float32) that the sum reads.
f = jax.jit(lambda a, b: jnp.sum(jnp.dot(a, b) ** 2))
a, b = jnp.ones((4096, 64)), jnp.ones((64, 4096))
for _ in range(2):
  f(a, b).block_until_ready()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
  f(a, b).block_until_ready()
print(applied, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 3)
"""


def _faults_per_run(keep: str) -> tuple[bool, int]:
  out = subprocess.run([sys.executable, "-c", _PROGRAM], capture_output=True, text=True,
                       check=True, env={**os.environ, "RLJAX_KEEP_FREED_MEMORY": keep,
                                        "JAX_PLATFORMS": "cpu"})
  applied, faults = out.stdout.split()
  return applied == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_buffers_are_reused_instead_of_faulted_in_again():
  applied, default = _faults_per_run("0")
  assert not applied
  assert default > 10_000, default          # 16,384 pages of 4 KiB, faulted in every run
  applied, kept = _faults_per_run("1")
  assert applied
  assert kept < default / 20, (kept, default)
