"""The agent config: one source for every field, clear errors, launch.train's dispatch."""

import os
import re
import subprocess
import sys

import pytest

from configs import agent, agent_study
from launch import cli
from rljax.agents import study
from rljax.agents.config import AgentConfig, from_config_dict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_config_file_writes_every_default():
  assert from_config_dict(agent.get_config()) == AgentConfig()
  local = from_config_dict(agent.get_config("runlocal,method=rlvmr,seed=2"))
  assert local.rl.method == "rlvmr" and local.seed == 2 and local.rl.steps < AgentConfig().rl.steps
  assert isinstance(cli.config_or_exit(agent.get_config()), AgentConfig)


@pytest.mark.parametrize("mutate,message", [
    (lambda c: c.rl.update(method="ppo_agent"), "['grpo', 'rlvmr']"),
    (lambda c: c.meta.update(mode="z"), "mean_std_norm"),
    (lambda c: c.sampling.update(max_new_tokens=16), "turn_tokens"),
    (lambda c: c.cold_start.update(noise=1.0), "noise"),
    (lambda c: c.world.update(locks=9), "locks"),
])
def test_bad_values_name_the_field(mutate, message):
  c = agent.get_config()
  mutate(c)
  with pytest.raises(ValueError, match=re.escape(message)):
    from_config_dict(c)


def test_the_study_plans_methods_by_seeds():
  configs = study.plan(agent_study.get_config())
  assert sorted(configs) == [(m, s) for m in ("grpo", "rlvmr") for s in (0, 1, 2)]
  assert configs[("rlvmr", 1)].seed == 1 and configs[("rlvmr", 1)].rl.method == "rlvmr"


def test_study_intervals_and_verdict_hand_derived():
  # Differences -0.02, -0.03, -0.04: mean -0.03, std 0.01, t(0.975, 2) = 4.302653
  # -> half width 4.302653 * 0.01 / sqrt(3) = 0.024841: [-0.054841, -0.005159].
  iv = study.t_interval([-0.02, -0.03, -0.04])
  assert iv["mean"] == pytest.approx(-0.03)
  assert (iv["lo"], iv["hi"]) == pytest.approx((-0.054841, -0.005159), abs=1e-6)
  assert study.verdict(iv["lo"], iv["hi"]) == "reproduced"
  assert study.verdict(-0.01, 0.02) == "mixed" and study.verdict(0.01, 0.02) == "refuted"
  key = study.VERDICT_KEY
  sums = {("grpo", s): {key: 0.10} for s in range(3)}
  sums.update({("rlvmr", s): {key: 0.10 + d} for s, d in enumerate((-0.02, -0.03, -0.04))})
  out = study.summarize(sums)
  assert out["repetition"]["verdict"] == "reproduced"
  assert out["repetition"]["relative_change"] == pytest.approx(-0.3)
  assert out["table"]["rlvmr"][key]["mean"] == pytest.approx(0.07)


def test_launch_train_rejects_agent_misuse_in_one_line(tmp_path):
  for flags, message in ((["--config.rl.method=ppo_agent"], "valid: ['grpo', 'rlvmr']"),
                         (["--dry_run"], "agent pipeline")):
    proc = subprocess.run(
        [sys.executable, "-m", "launch.train", "--config", "configs/agent.py:runlocal",
         "--workdir", str(tmp_path / "run"), *flags],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and message in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
