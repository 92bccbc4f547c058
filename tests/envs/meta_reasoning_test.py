"""RLVMR's step rewards and advantage against hand-derived values (docs §16)."""

import numpy as np
import pytest

from rljax.envs import turns
from rljax.rewards import meta_reasoning as mr


def t(tag, action):
  return turns.format_turn(tag, "x", action)


TRAJ = [t("planning", "go n"), t("explore", "go s"), t("explore", "go n"), t("monitor", "dance"),
        t("reflection", "go e"), t("reflection", "look"), t("explore", "dance")]
VALID = [True, True, True, False, True, True, False]


def test_step_rewards_follow_the_released_rules():
  # planning: 1 if the episode succeeds; explore: "go s" is new (1), "go n" was taken at
  # turn 0 (0); turn 3 is invalid (0, "none"); reflection after the invalid "dance" with
  # a different action (1); reflection after a valid turn (0); an invalid explore (0).
  cfg = mr.MetaRewardConfig(planning_reward=1.0, exploration_reward=0.5, reflection_reward=2.0)
  rewards, tags = mr.step_rewards(TRAJ, VALID, success=True, cfg=cfg)
  assert rewards == [1.0, 0.5, 0.0, 0.0, 2.0, 0.0, 0.0]
  assert tags == ["planning", "explore", "explore", "none", "reflection", "reflection", "none"]
  rewards, _ = mr.step_rewards(TRAJ, VALID, success=False, cfg=cfg)
  assert rewards[0] == 0.0 and rewards[1:] == [0.5, 0.0, 0.0, 2.0, 0.0, 0.0]


def test_tag_precedence_a_first_reflection_and_a_repeat_of_an_invalid_action():
  cfg = mr.MetaRewardConfig()
  assert mr.tag_type("<explore>a</explore><planning>b</planning>") == "planning"
  assert mr.tag_type(t("monitor", "go n")) == "none"
  # A reflection on the first turn has no valid previous turn: paid. Exploring an action
  # that was only ever taken invalidly before is still new.
  rewards, _ = mr.step_rewards([t("reflection", "go n"), t("explore", "open e"),
                                t("explore", "open e")], [True, False, True], True, cfg)
  assert rewards == [1.0, 0.0, 1.0]


def test_advantages_match_hand_derived_values():
  # Task q1 has 3 turn rows, q2 one. Outcome with the invalid penalty: q1 [1, 0.9, 0].
  episode = [1.0, 1.0, 0.0, 1.0]
  step = [1.0, 0.0, 1.0, 0.5]
  valid = [True, False, True, True]
  task = ["q1", "q1", "q1", "q2"]
  tags = ["explore", "none", "explore", "planning"]
  # mean_norm, w = 1: q1 mean 0.63333 -> [0.36667, 0.26667, -0.63333]; the explore group
  # [1, 1] -> 0; singletons keep their value (mean 0): q2 1 + 0.5.
  cfg = mr.MetaRewardConfig(mode="mean_norm", step_advantage_w=1.0)
  np.testing.assert_allclose(mr.advantages(episode, step, valid, task, tags, cfg),
                             [0.366667, 0.266667, -0.633333, 1.5], atol=1e-5)
  # mean_std_norm, w = 0.5: q1 std (ddof 1) sqrt(0.60667 / 2) = 0.55076 ->
  # [0.66576, 0.48419, -1.14995]; the explore group's std is 0 -> 0; q2 (1 + 0.5 * 0.5).
  cfg = mr.MetaRewardConfig(mode="mean_std_norm", step_advantage_w=0.5)
  np.testing.assert_allclose(mr.advantages(episode, step, valid, task, tags, cfg),
                             [0.66576, 0.48419, -1.14995, 1.25], atol=1e-4)


def test_an_unknown_mode_lists_the_valid_ones():
  with pytest.raises(ValueError, match="mean_std_norm"):
    mr.MetaRewardConfig(mode="whiten")
