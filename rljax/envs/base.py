"""The `Env` protocol: what a multi-turn rollout asks of an environment that answers back.

An environment is reset with a seed (its layout is a pure function of the seed, so a
group of G trajectories on one seed faces one task) and then stepped with the
action text the agent committed to; it answers with the next observation, a reward,
whether the episode ended, and facts the instruments read (`StepInfo`). Text in,
text out: tokenising is the rollout's business, never the environment's.

`guarded_reset` and `guarded_step` are how a rollout calls them: an environment that
raises, hangs, or answers something of the wrong type ends the episode scored 0 with
the fault recorded, so one broken environment never stops a run (as the reward sandbox
does for verifiers, `rewards/sandbox.py`).
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Hashable, Protocol


@dataclasses.dataclass(frozen=True)
class StepInfo:
  """What an environment tells the instruments about one step.

  Attributes:
    valid: the action was one the environment understood and could carry out
      (RLVMR's `is_action_valid`; invalid actions change nothing).
    success: the episode's goal was reached at this step.
    state: a hashable key of the state the action was taken in: the same action in
      the same state twice is a repetitive action.
    fault: why the environment failed at this step ('' when it did not).
  """

  valid: bool
  success: bool = False
  state: Hashable = None
  fault: str = ""


@dataclasses.dataclass(frozen=True)
class Step:
  observation: str
  reward: float
  done: bool
  info: StepInfo


class Env(Protocol):
  """A seeded, text-in text-out environment."""

  def reset(self, seed: int) -> str:
    """Starts the episode of layout `seed` (a pure function of it); the first observation."""

  def step(self, action: str) -> Step:
    """Carries out `action` (the text inside the agent's action delimiters)."""


def _call(fn, timeout_s: float | None):
  """(fn(), '') or (None, why it failed): raised, or no answer within `timeout_s` (then
  `fn` keeps running in a daemon thread that ends with the process)."""
  box = {}

  def run():
    try:
      box["result"] = fn()
    except Exception as e:  # noqa: BLE001 - any environment bug is a fault, never a crash
      box["error"] = f"{type(e).__name__}: {e}"

  if timeout_s is None:
    run()
  else:
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
      return None, f"timeout: no answer in {timeout_s:g} s"
  return box.get("result"), box.get("error", "")


def guarded_reset(env: Env, seed: int, timeout_s: float | None = None) -> tuple[str, str]:
  """(first observation, '') or ('', the fault) for a reset that raises, hangs or
  answers something that is not text; the caller ends that episode before any turn."""
  obs, fault = _call(lambda: env.reset(seed), timeout_s)
  if not fault and not isinstance(obs, str):
    fault = f"reset returned {type(obs).__name__}, not str"
  return ("", fault) if fault else (obs, "")


def guarded_step(env: Env, action: str, state: Hashable = None,
                 timeout_s: float | None = None) -> Step:
  """`env.step(action)`, with a raising, hanging or malformed environment scored as a fault.

  The fault ends the episode with reward 0 and `info.fault` set; `state` (the key of
  the state the action was taken in, when the caller knows it) is kept so the step
  still counts in the instruments. With `timeout_s`, the step runs in a daemon thread
  and is abandoned after that long: the environment object is then unusable (a
  rollout makes one per trajectory).
  """
  result, fault = _call(lambda: env.step(action), timeout_s)
  if not fault and not isinstance(result, Step):
    fault = f"step returned {type(result).__name__}, not Step"
  if fault:
    return Step("", 0.0, True, StepInfo(valid=False, state=state, fault=fault))
  return result
