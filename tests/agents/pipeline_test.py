"""`configs/agent.py:runlocal` end to end through launch.train, then resumed."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _train(workdir, *flags):
  return subprocess.run(
      [sys.executable, "-m", "launch.train", "--config", "configs/agent.py:runlocal,method=rlvmr",
       "--workdir", str(workdir), *flags], cwd=ROOT, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_runlocal_trains_evaluates_traces_and_resumes(tmp_path):
  workdir = tmp_path / "agent"
  proc = _train(workdir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  summary = json.loads((workdir / "summary.json").read_text())
  assert summary["method"] == "rlvmr" and summary["steps"] == 3
  for when in ("base", "final"):
    for split in ("seen", "unseen"):
      assert 0.0 <= summary[f"{when}_{split}/success_rate"] <= 1.0
      assert summary[f"{when}_{split}/env_faults"] == 0
  rows = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows] == [1, 2, 3]
  for r in rows:  # the update trained on the agent's tokens of played episodes
    assert r["train/turns"] > 1 and r["model_tokens"] > 20 and r["grad_norm"] > 0
    assert r["skipped"] == 0 and "kl_loss" not in r  # no reference: no KL to log
    assert any(k.startswith("step_reward/") for k in r)  # RLVMR's meta-rewards
  assert "eval/unseen/success_rate" in rows[1]
  traces = json.loads((workdir / "traces" / "step_2.json").read_text())
  events = traces[0]["events"]
  assert "observation" in events[0] and "turn" in events[1] and "observation" in events[2]
  # Rerun: the cold start, base evaluation and RL steps are reused, nothing retrains.
  base_mtime = (workdir / "base_eval.json").stat().st_mtime
  proc = _train(workdir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert (workdir / "base_eval.json").stat().st_mtime == base_mtime
  assert len((workdir / "metrics.jsonl").read_text().splitlines()) == 3
  assert "cold start" not in proc.stderr
  proc = subprocess.run([sys.executable, "-m", "launch.report", "--workdir", str(workdir)],
                        cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  md = (workdir / "report" / "report.md").read_text()
  assert "Trajectories" in md and "<action>" in md and "unseen" in md
