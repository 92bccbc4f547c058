"""Every intervention of configs/interventions.py runs a few testbed steps: finite, logged."""

import os
import shutil

import numpy as np
import pytest

from configs import interventions as icfg
from rljax import experiment
from rljax.config import from_config_dict
from rljax.metrics import read_rows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The metric each intervention is seen by (beyond finite losses).
OWN_METRIC = {
    "clip_cov": "clipfrac", "kl_cov": "ppo_kl", "gppo": "sft_loss", "dapo": "gen_rounds",
    "entropy_adaptive": "entropy_coef", "entropy_bonus": "entropy_coef",
    "kl_loss": "kl_loss", "kl_reward": "reward_mean", "prorl": "reference_reset",
    "rlplus": "offpolicy_frac", "dro": "dro_filtered_groups", "gmpo": "clipfrac_lower",
}


def tiny(method, steps=2):
  c = icfg.get_config(f"method={method},runlocal")
  c.model.preset = "tiny"
  c.task.tiers = (2,)
  c.task.eval_per_cell = 2
  c.prompt_len, c.completion_len, c.sampling.max_new_tokens = 12, 24, 24
  c.pretrain.update(clean_max_steps=2, noisy_steps=2, log_every=1, batch_size=8)
  c.rl.update(steps=steps, prompts_per_step=4, group_size=4, eval_every=0, checkpoint_every=2,
              minibatches=2)
  c.eval.update(n_samples=4, batch_rollouts=16)
  if method == "prorl":
    c.intervention.reset_every = 1
  if method == "one_shot":
    c.intervention.update(one_shot_pool=8, one_shot_history_steps=2)
  if method == "drgrpo":
    c.loss.norm_constant = 24.0
  if method == "dapo":
    c.intervention.overlong_buffer = 4
  return from_config_dict(c)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
  """A tiny base model trained once; each method's run reuses it like a second demo run."""
  d = str(tmp_path_factory.mktemp("base"))
  experiment.run(tiny("grpo", steps=0), d)
  return d


@pytest.mark.parametrize("method", sorted(icfg.METHODS))
def test_method_runs(method, base_dir, tmp_path):
  for name in ("tokenizer.model", "base_eval.json"):
    shutil.copy(os.path.join(base_dir, name), tmp_path / name)
  shutil.copytree(os.path.join(base_dir, "base"), tmp_path / "base")
  summary = experiment.run(tiny(method), str(tmp_path))
  rows = read_rows(os.path.join(tmp_path, "metrics.jsonl"))
  assert [r["step"] for r in rows] == [1, 2] and summary["steps"] == 2
  for r in rows:
    assert np.isfinite(r["loss"]) and r["skipped"] == 0.0
    assert r.get(OWN_METRIC.get(method, "pg_loss")) is not None
  if method == "prorl":
    assert [r["reference_reset"] for r in rows] == [1.0, 1.0]
