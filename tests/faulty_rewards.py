"""Reward functions that misbehave on purpose, for the fault-injection tests.

They are module-level so the reward worker process can import them by name. Which
call misbehaves is a pure function of the completion, so a run is reproducible.
"""

import math
import time
import zlib

from rljax.tasks.testbed_task import TestbedTask


def _bucket(completion: str, buckets: int = 7) -> int:
  return zlib.crc32(completion.encode()) % buckets


def raises(problem, completion):
  if _bucket(completion) == 0:
    raise RuntimeError("verifier bug")
  return TestbedTask.reward(problem, completion)


def hangs(problem, completion):
  # Rarer than the other faults: each hang costs the timeout and a worker restart.
  if _bucket(completion, 23) == 0:
    time.sleep(3600)
  return TestbedTask.reward(problem, completion)


def returns_nan(problem, completion):
  if _bucket(completion) == 0:
    return math.nan
  return TestbedTask.reward(problem, completion)


def by_text(problem, completion):
  """Misbehaves as its completion says: "raise", "sleep", "nan", "text", "exit"."""
  del problem
  if completion == "raise":
    raise ValueError("bad input")
  if completion == "sleep":
    time.sleep(3600)
  if completion == "nan":
    return math.nan
  if completion == "text":
    return "1.0"
  if completion == "exit":
    import os  # pylint: disable=import-outside-toplevel
    os._exit(3)  # the worker dies as a segfault would kill it
  return len(completion)


def length_parity(problem, completion):
  """1.0 for completions of even length: a reward a random tiny model earns about half
  the time, so every group has signal (the intervention tests compare mechanics)."""
  del problem
  return float(len(completion) % 2 == 0)
