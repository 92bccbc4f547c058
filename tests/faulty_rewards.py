"""Reward functions that misbehave on purpose, for the fault-injection tests.

They are module-level so the reward worker process can import them by name. Which
call misbehaves is a pure function of the completion, so a run is reproducible.
"""

import math
import time
import zlib

from rljax.tasks.testbed_data import TestbedTask


def _bucket(completion: str) -> int:
  return zlib.crc32(completion.encode()) % 7


def raises(problem, completion):
  if _bucket(completion) == 0:
    raise RuntimeError("verifier bug")
  return TestbedTask.reward(problem, completion)


def hangs(problem, completion):
  if _bucket(completion) == 0:
    time.sleep(3600)
  return TestbedTask.reward(problem, completion)


def returns_nan(problem, completion):
  if _bucket(completion) == 0:
    return math.nan
  return TestbedTask.reward(problem, completion)
