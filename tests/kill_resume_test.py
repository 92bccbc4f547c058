"""SIGKILL at random moments (pretraining, RL steps, a checkpoint write, the final eval) and
a SIGTERM preemption, resuming each time on the same workdir: the result equals an
uninterrupted run's."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from rljax.checkpoint import Checkpointer
from rljax.metrics import read_rows

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMING = ("step_time_s", "tokens_per_s", "elapsed_s")


def _start(workdir, **env):
  return subprocess.Popen([sys.executable, "-m", "tests.kill_driver", workdir], cwd=ROOT,
                          env={**os.environ, "XLA_FLAGS": "", **env},
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _rows(path):
  return read_rows(path) if os.path.exists(path) else []


def _signal_when(proc, ready, signum, delay_s=0.0, timeout_s=300):
  """Sends `signum` to `proc` `delay_s` after `ready()` holds; False if it exited first."""
  t0 = time.time()
  while not ready():
    if proc.poll() is not None:
      return False
    assert time.time() - t0 < timeout_s, "the run made no progress"
    time.sleep(0.02)
  time.sleep(delay_s)
  if proc.poll() is not None:
    return False
  proc.send_signal(signum)
  return True


def _strip(rows):
  return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def test_sigkill_anywhere_then_resume_equals_uninterrupted_run(tmp_path):
  straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
  proc = _start(straight)
  assert proc.wait() == 0, proc.stderr.read()[-3000:]

  rng = random.Random(20261127)
  pre = lambda n: lambda: len(_rows(os.path.join(killed, "pretrain_metrics.jsonl"))) >= n
  rl = lambda n: lambda: len(_rows(os.path.join(killed, "metrics.jsonl"))) >= n
  kill_points = [("pretraining", pre(rng.randint(3, 8)), rng.uniform(0, 0.5)),
                 ("pretraining", pre(rng.randint(12, 18)), rng.uniform(0, 0.5)),
                 ("rl", rl(rng.randint(1, 2)), rng.uniform(0, 1.5)),
                 ("checkpoint write", None, 0.0),
                 ("rl", rl(rng.randint(5, 6)), rng.uniform(0, 1.5)),
                 ("sigterm", None, 0.0),
                 ("rl end", rl(8), rng.uniform(0, 1.0))]
  kills = []
  for name, ready, delay in kill_points:
    if name == "sigterm":  # preemption: a checkpoint after the current step, then exit 0
      start = Checkpointer(os.path.join(killed, "checkpoints")).latest_step() or 0
      assert start <= 6
      metrics, t0 = os.path.join(killed, "metrics.jsonl"), time.time()
      # A row written by this process (rows past the checkpoint are stale until it
      # truncates them): the trainer's signal handler is installed by then.
      fresh = lambda: (os.path.exists(metrics) and os.path.getmtime(metrics) > t0
                       and len(_rows(metrics)) >= start + 1)
      proc = _start(killed)
      assert _signal_when(proc, fresh, signal.SIGTERM)
      assert proc.wait() == 0, proc.stderr.read()[-3000:]
      last = _rows(os.path.join(killed, "metrics.jsonl"))[-1]["step"]
      assert Checkpointer(os.path.join(killed, "checkpoints")).latest_step() == last > start
      assert not os.path.exists(os.path.join(killed, "summary.json"))
    elif ready is None:  # the driver kills itself inside orbax's commit of checkpoint 4
      proc = _start(killed, RLJAX_TEST_KILL_IN_WRITE="4")
      assert proc.wait() == -signal.SIGKILL, proc.stderr.read()[-3000:]
      assert not os.path.exists(os.path.join(killed, "checkpoints", "4"))
      kills.append(name)
    else:
      proc = _start(killed)
      if _signal_when(proc, ready, signal.SIGKILL, delay):
        proc.wait()
        kills.append(name)
  print("killed during:", kills)
  assert len(kills) >= 5, kills
  proc = _start(killed)
  assert proc.wait() == 0, proc.stderr.read()[-3000:]

  a = Checkpointer(os.path.join(straight, "checkpoints")).read_flat(8)
  b = Checkpointer(os.path.join(killed, "checkpoints")).read_flat(8)
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  for name in ("metrics.jsonl", "pretrain_metrics.jsonl"):
    rows_a = _rows(os.path.join(straight, name))
    rows_b = _rows(os.path.join(killed, name))
    assert [r["step"] for r in rows_b] == sorted({r["step"] for r in rows_b})  # no duplicates
    assert _strip(rows_a) == _strip(rows_b), name
  summaries = [json.load(open(os.path.join(d, "summary.json"))) for d in (straight, killed)]
  assert summaries[0]["final_counts"] == summaries[1]["final_counts"]
