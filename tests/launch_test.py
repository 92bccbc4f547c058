"""The command line rejects a bad config before compiling anything or touching the workdir."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("flag,message", [
    ("--config.loss.agg=token-sum", "valid: ['token-mean'"),
    ("--config.rl.stepz=3", 'Did you mean "steps"'),
    ("--config.rl.steps=many", "steps"),
    ("--config.intervention.reward_mode=noise", "wrong_label"),
    ("--config.sampling.top_p=1.5", "top_p"),
    ("--config.rl.reward_fn=no_such_module:score", "cannot be imported"),
])
def test_bad_flag_fails_fast(tmp_path, flag, message):
  workdir = tmp_path / "run"
  proc = subprocess.run(
      [sys.executable, "-m", "launch.train", "--config", "configs/testbed.py:runlocal",
       "--workdir", str(workdir), flag],
      cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert proc.returncode != 0
  assert message in proc.stderr + proc.stdout
  assert "Traceback" not in proc.stderr  # one clear line, not a library's stack
  assert not workdir.exists()
