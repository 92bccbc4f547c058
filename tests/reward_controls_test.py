"""Reward controls that control: each gives signal on the base's rollouts, and dynamic
sampling filters on the control's reward, not on the hidden verifier."""

import os
import shutil

import pytest

from configs import testbed as testbed_config
from rljax import experiment
from rljax.config import from_config_dict
from rljax.metrics import read_rows
from tests.trainer_test import tiny_config


@pytest.mark.parametrize("criterion,key", [
    ("reward", "zero_reward_var_frac"),
    pytest.param("acc", "zero_var_frac", marks=pytest.mark.slow)])
def test_dynamic_sampling_keeps_groups_by_its_criterion(tmp_path, criterion, key):
  cfg = tiny_config(2, dict(reward_mode="random", dynamic_sampling=True, max_gen_rounds=3,
                            dynamic_sampling_filter=criterion),
                    reward_fn="tests.faulty_rewards:length_parity")
  experiment.run(cfg, str(tmp_path))
  for r in read_rows(os.path.join(tmp_path, "metrics.jsonl")):
    # Every kept group varies in the chosen signal, unless the rounds ran out.
    assert r[key] == 0.0 or r["gen_rounds"] == 3, r


def test_auto_filter_uses_the_control_reward():
  from rljax.rl import interventions as iv  # pylint: disable=import-outside-toplevel
  assert iv.filters_on_reward(iv.InterventionConfig(reward_mode="random"))
  assert iv.filters_on_reward(iv.InterventionConfig(reward_mode="wrong_label"))
  assert not iv.filters_on_reward(iv.InterventionConfig(reward_mode="verifier"))
  assert iv.filters_on_reward(iv.InterventionConfig(dynamic_sampling_filter="reward"))


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
  """The runlocal testbed base model (pretrained like the demo's, shorter)."""
  d = str(tmp_path_factory.mktemp("base"))
  c = testbed_config.get_config("runlocal")
  c.rl.steps = 0
  experiment.run(from_config_dict(c), d)
  return d


@pytest.mark.slow  # pretrains the runlocal base (~1.5 min)
@pytest.mark.parametrize("mode", ["random", "format", "wrong_label"])
def test_each_control_gives_advantage_variance_on_base_rollouts(base_dir, tmp_path, mode):
  for name in ("tokenizer.model", "base_eval.json"):
    shutil.copy(os.path.join(base_dir, name), tmp_path / name)
  shutil.copytree(os.path.join(base_dir, "base"), tmp_path / "base")
  c = testbed_config.get_config("runlocal")
  c.rl.update(steps=1, eval_every=0)
  c.intervention.reward_mode = mode
  if mode == "wrong_label":  # the base model's samples on every device, the update on one
    c.mesh.train_devices = 1
  experiment.run(from_config_dict(c), str(tmp_path))
  (row,) = read_rows(os.path.join(tmp_path, "metrics.jsonl"))
  # Some group's control rewards differ: its advantages are not all zero.
  assert row["reward_std"] > 0 and row["zero_reward_var_frac"] < 1.0, row
  if mode == "wrong_label":
    assert row["wrong_label/new_problems"] == c.rl.prompts_per_step
    assert row["wrong_label/unlabelled_frac"] < 0.5
