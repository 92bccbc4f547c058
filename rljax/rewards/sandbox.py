"""Reward and verifier calls isolated in a worker process, each under a time limit.

A reward function is user code run on model output: it may raise, hang, crash
the interpreter or return NaN or a non-number. None of that may stop or corrupt
training. `RewardGuard` runs the function in a worker process (a fresh
interpreter, not a fork: the trainer's process holds JAX's threads) and waits at most
`timeout_s` for each answer. A call that raises, exceeds the limit (the worker
is killed and replaced), kills the worker, or returns something that is not a
finite real number scores `failure_score` and is counted by kind. The first
`log_first` failures are logged with their inputs.

The function and its arguments must pickle (a module-level function or a bound
method of a picklable object).
"""

from __future__ import annotations

import importlib
import math
import numbers
import os
import socket
import subprocess
import sys
from multiprocessing import connection as mp_connection

from tqdm.auto import tqdm

FAILURE_KINDS = ("raised", "timeout", "crashed", "nonfinite", "not_a_number")


def worker_main(fd: int) -> None:
  """The worker process: receive the function, then answer each argument tuple with
  ("ok", value) or ("raised", message) until the trainer closes the connection."""
  conn = mp_connection.Connection(fd)
  try:
    fn = conn.recv()
  except Exception as e:  # pylint: disable=broad-except  # e.g. its module cannot import
    conn.send(("error", f"{type(e).__name__}: {e}"))
    return
  conn.send(("ready", None))
  while True:
    try:
      args = conn.recv()
    except (EOFError, OSError):  # the trainer is gone
      return
    try:
      out = ("ok", fn(*args))
    except BaseException as e:  # pylint: disable=broad-except  # user code: anything goes
      out = ("raised", f"{type(e).__name__}: {e}"[:500])
    try:
      conn.send(out)
    except Exception as e:  # pylint: disable=broad-except  # e.g. an unpicklable result
      conn.send(("ok", f"<unpicklable {type(out[1]).__name__}: {e}>"))


def check_score(value) -> tuple[float | None, str | None]:
  """(score, None) for a finite real number (bools count as 0/1), else (None, failure kind)."""
  if not isinstance(value, numbers.Real):
    return None, "not_a_number"
  value = float(value)
  if not math.isfinite(value):
    return None, "nonfinite"
  return value, None


class RewardGuard:
  """Calls `fn(*args)` in a worker process with a per-call time limit; see module doc."""

  def __init__(self, fn, timeout_s: float = 5.0, failure_score: float = 0.0,
               log_first: int = 5, name: str = "reward", startup_timeout_s: float = 120.0):
    if timeout_s <= 0:
      raise ValueError(f"reward timeout must be positive, got {timeout_s}")
    self.fn, self.timeout_s, self.failure_score = fn, timeout_s, failure_score
    self.log_first, self.name = log_first, name
    self.startup_timeout_s = startup_timeout_s
    self.logged = 0
    self._proc = self._conn = None

  def _start(self) -> None:
    # A fresh interpreter (not multiprocessing's spawn, which re-runs the caller's
    # __main__ and so breaks scripts without a main guard), on one end of a socket pair.
    parent, child = socket.socketpair()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    self._proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from rljax.rewards.sandbox import worker_main; "
         "worker_main(int(sys.argv[1]))", str(child.fileno())],
        pass_fds=(child.fileno(),), env=env)
    child.close()
    self._conn = mp_connection.Connection(parent.detach())
    # Wait for the worker to be up (an interpreter importing the function's module)
    # before any call's time limit starts.
    self._conn.send(self.fn)
    if not self._conn.poll(self.startup_timeout_s):
      self._kill()
      raise RuntimeError(f"the {self.name} worker did not start within "
                         f"{self.startup_timeout_s} s")
    kind, message = self._conn.recv()
    if kind != "ready":
      self._kill()
      raise RuntimeError(f"the {self.name} function cannot be loaded in its worker: {message}")

  def _kill(self) -> None:
    if self._proc is not None:
      self._proc.kill()
      self._proc.wait()
      self._conn.close()
    self._proc = self._conn = None

  def _call(self, args: tuple):
    """(kind, value): kind is "ok", or the failure's kind with a message as value."""
    if self._proc is None or self._proc.poll() is not None:
      self._kill()
      self._start()
    try:
      self._conn.send(args)
      if self._conn.poll(self.timeout_s):
        return self._conn.recv()
    except (EOFError, OSError):
      self._kill()
      return "crashed", "the worker process died"
    self._kill()
    return "timeout", f"no answer within {self.timeout_s} s"

  def score(self, calls: list[tuple]) -> tuple[list[float], dict[str, int]]:
    """Scores each argument tuple; returns (scores, {failure kind: count})."""
    scores, failures = [], dict.fromkeys(FAILURE_KINDS, 0)
    for args in calls:
      kind, value = self._call(args)
      if kind == "ok":
        score, kind = check_score(value)
        if kind is None:
          scores.append(score)
          continue
        detail = f"returned {_short(value, 80)}"
      else:
        detail = value
      failures[kind] += 1
      scores.append(self.failure_score)
      if self.logged < self.log_first:
        self.logged += 1
        tqdm.write(f"{self.name} failure ({kind}: {detail}); scored {self.failure_score}; "
                   f"inputs: {_short(args)}")
    return scores, failures

  def close(self) -> None:
    self._kill()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def resolve(path: str):
  """The function named by "package.module:function" (a clear error if it is not there)."""
  module_name, _, attr = path.partition(":")
  try:
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
      obj = getattr(obj, part)
  except (ImportError, AttributeError) as e:
    raise ValueError(f"reward function {path!r} cannot be imported: {e}") from e
  if not callable(obj):
    raise ValueError(f"reward function {path!r} is not callable")
  return obj


def _short(obj, limit: int = 300) -> str:
  text = repr(obj)
  return text if len(text) <= limit else text[:limit] + "..."
