"""Trajectory and turn credit as token advantages, against hand-derived values."""

import numpy as np
import pytest

from rljax.agents import credit
from rljax.envs import base, episodes, turns
from rljax.rewards.meta_reasoning import MetaRewardConfig
from rljax.rl.multi_turn import MultiTurnBatch

PLAN = turns.format_turn("planning", "p", "go n")
EXPLORE = turns.format_turn("explore", "e", "go e")  # new: the plan went n


def _batch():
  """Two trajectories of one layout, two turns each, 9 tokens after the prompt:
  turn 0 (2 tokens), observation (2), turn 1 (2), padding. A succeeds, B's second
  action is invalid."""
  ok, bad = base.StepInfo(valid=True), base.StepInfo(valid=False)
  a = episodes.Episode(0, (PLAN, EXPLORE), (ok, ok), ("o",) * 3, 1.0, True, False)
  b = episodes.Episode(0, (PLAN, EXPLORE), (ok, bad), ("o",) * 3, 0.0, False, True)
  turn = np.array([[0, 0, -1, -1, 1, 1, -1, -1, -1]] * 2)
  model = (turn >= 0).astype(np.float32)
  zeros = np.zeros_like(model)
  return MultiTurnBatch(prompt_BxP=np.ones((2, 3), np.int32), prompt_mask_BxP=np.ones((2, 3)),
                        tokens_BxN=np.ones((2, 9), np.int32), model_mask_BxN=model,
                        logp_BxN=zeros, entropy_BxN=zeros, turn_BxN=turn, episodes=(a, b))


def test_outcome_advantage_is_the_groups_on_model_tokens_only():
  adv, extra = credit.outcome(_batch(), 2, MetaRewardConfig())
  # rewards (1, 0): mean 0.5, std (ddof 1) 0.7071 -> +-0.7071 on every model token
  np.testing.assert_allclose(adv[0], 0.70710571 * _batch().model_mask_BxN[0], rtol=1e-5)
  np.testing.assert_allclose(adv[1], -0.70710571 * _batch().model_mask_BxN[1], rtol=1e-5)
  assert extra == {}


def test_rlvmr_turn_advantages_hand_derived():
  # Step rewards: A planning 1 (success), A explore 1 (new action); B planning 0 (failed),
  # B's invalid turn 0 with tag "none". Episode outcome per turn: 1, 1, 0, 0 - 0.1;
  # over the layout: mean 0.475, std 0.607591 -> 0.864067, 0.864067, -0.781775, -0.946360.
  # Step advantage per (layout, tag): planning (1, 0) -> +-0.707107; explore and none
  # have one row each -> x / (1 + eps): 1 and 0.
  adv, extra = credit.rlvmr(_batch(), 2, MetaRewardConfig())
  want = {(0, 0): 1.571174, (0, 1): 1.864067, (1, 0): -1.488882, (1, 1): -0.946360}
  turn = _batch().turn_BxN
  for (b, k), v in want.items():
    np.testing.assert_allclose(adv[b][turn[b] == k], v, rtol=1e-5)
  assert np.all(adv[turn < 0] == 0.0)
  assert extra == pytest.approx({"step_reward/planning": 0.5, "step_reward/explore": 1.0,
                                 "step_reward/none": 0.0})


def test_the_methods_registry_is_the_configs_choice():
  from rljax.agents.config import METHODS
  assert sorted(credit.METHODS) == sorted(METHODS)
