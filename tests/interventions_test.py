"""Intervention building blocks against hand-derived values (docs/algorithms.md §T11, §T12)."""

import numpy as np
import pytest

from rljax.rewards import controls
from rljax.rl import controllers
from rljax.rl import interventions as iv
from rljax.tasks.base import Restreamed
from rljax.tasks.testbed_task import TestbedTask


@pytest.mark.parametrize("length,expected", [
    (10000, 0.0), (16384, 0.0), (17408, -0.25), (18432, -0.5), (20480, -1.0)])
def test_overlong_t12(length, expected):
  assert controls.overlong_penalty([length], 20480, 4096, 1.0)[0] == pytest.approx(expected)


def test_hicra_t11():
  adv = np.array([[0.8, 0.8], [-0.8, -0.8]])
  plan = np.array([[1.0, 0.0], [1.0, 0.0]])
  np.testing.assert_allclose(iv.hicra_advantages(adv, plan, 0.2), [[0.96, 0.8], [-0.64, -0.8]])


def test_forking_tokens_keep_top_fraction():
  ent = np.array([[0.1, 0.9, 0.5, 0.0], [0.3, 0.7, 2.0, 0.0]])
  mask = np.array([[1, 1, 1, 0], [1, 1, 1, 0]], np.float32)
  keep = iv.forking_token_mask(ent, mask, 0.5)
  # 6 valid tokens, the top 3 by entropy: 2.0, 0.9, 0.7; padding never kept.
  np.testing.assert_array_equal(keep, [[0, 1, 0, 0], [0, 1, 1, 0]])
  np.testing.assert_array_equal(iv.forking_token_mask(ent, mask, 1.0), mask)


def test_adaptive_entropy_controller_moves_towards_target():
  up = controllers.adaptive_entropy_coef(0.01, entropy=0.1, target=0.2, rate=0.005, coef_max=0.1)
  down = controllers.adaptive_entropy_coef(0.01, entropy=0.3, target=0.2, rate=0.005, coef_max=0.1)
  assert up == pytest.approx(0.015) and down == pytest.approx(0.005)
  assert controllers.adaptive_entropy_coef(0.002, 0.3, 0.2, 0.005, 0.1) == 0.0    # clipped at 0
  assert controllers.adaptive_entropy_coef(0.099, 0.0, 0.2, 0.005, 0.1) == 0.1    # clipped at max
  assert controllers.entropy_bonus_active(0.1, 0.2) and not controllers.entropy_bonus_active(0.3, 0.2)


def test_linear_schedule():
  assert controllers.linear(0.01, 0.0, 0, 100) == 0.01
  assert controllers.linear(0.01, 0.0, 50, 100) == pytest.approx(0.005)
  assert controllers.linear(0.01, 0.0, 500, 100) == 0.0


def test_phrase_token_mask_maps_character_spans():
  pieces = ["Let", "'s", " try", " a", " different", " approach", ":", " 3", "+", "4"]
  m = iv.phrase_token_mask(pieces, ["try a different approach", "3+4"])
  np.testing.assert_array_equal(m, [0, 0, 1, 1, 1, 1, 0, 1, 1, 1])


def test_testbed_planning_mask():
  pieces = ["3", "7", "+", "8", "=", "4", "5", ";", "4", "5", "-", "5", "=", "4", "0", ";#",
            "4", "0"]
  plan = TestbedTask.planning_mask(pieces)
  # "+8" and "-5" are the plan; operands carried over, results and the answer are execution.
  np.testing.assert_array_equal(np.nonzero(plan)[0], [2, 3, 10, 11])


def test_reward_controls():
  rng = np.random.default_rng(0)
  v, f, w = np.array([1, 0, 0, 1]), np.array([1, 1, 0, 1]), np.array([0, 1, 0, 0])
  signals = controls.RewardSignals(v, f, w)
  np.testing.assert_array_equal(controls.controlled_rewards("verifier", signals, rng, 0.5), v)
  np.testing.assert_array_equal(controls.controlled_rewards("format", signals, rng, 0.5), f)
  np.testing.assert_array_equal(controls.controlled_rewards("wrong_label", signals, rng, 0.5), w)
  z = np.zeros(4000)
  r = controls.controlled_rewards("random", controls.RewardSignals(z, z, z), rng, 0.3)
  assert 0.27 < r.mean() < 0.33
  with pytest.raises(ValueError, match="wrong_label"):
    controls.controlled_rewards("rnadom", signals, rng, 0.5)


def test_bad_intervention_config():
  with pytest.raises(ValueError, match="adaptive"):
    iv.InterventionConfig(entropy_schedule="cyclic")
  with pytest.raises(ValueError, match="wrong_label"):
    iv.InterventionConfig(reward_mode="noise")
  with pytest.raises(ValueError, match="forking_top_frac"):
    iv.InterventionConfig(forking_top_frac=0.0)


def test_dro_reward_weights_reflective_tokens():
  # Token 0: certainty independent of the reasoning (sigma 0); token 1 separates rollouts.
  s = np.array([[0.9, 0.8], [0.9, 0.2], [0.9, 0.5]])
  r3, sigma_max = controls.dro_reward(np.log(s), temperature=0.1, certainty="prob")
  sigma = s.std(0)
  w = np.exp(sigma / 0.1) / np.exp(sigma / 0.1).sum()
  np.testing.assert_allclose(r3, s @ w, rtol=1e-6)
  assert r3[0] > r3[2] > r3[1]
  assert sigma_max == pytest.approx(sigma[1])
  # A plain average would be dominated by the uninformative token.
  assert np.ptp(r3) > np.ptp(s.mean(1))


def test_encode_with_reference_marks_reference_tokens():
  from rljax.tasks.testbed import TestbedConfig
  from rljax.tasks.testbed_task import build_tokenizer
  task = TestbedTask(TestbedConfig(), seed=0)
  tok = build_tokenizer(task, 24)
  tokens, mask, ref = tok.encode_with_reference(["37+8=45"], [";#45"], 12)
  pieces = [tok.sp.id_to_piece(int(t)) for t in tokens[0][ref[0] > 0]]
  assert "".join(pieces) == ";#45"
  assert tokens[0][int(mask[0].sum()) - 1] == tok.eos_id


def test_one_shot_ranking_and_tasks():
  from rljax.rl import one_shot
  history = {0: [0.0, 0.0, 0.0], 1: [0.0, 1.0, 0.5], 2: [1.0, 1.0, 1.0], 3: [0.0, 1.0, 0.5]}
  assert one_shot.rank_by_historical_variance(history)[:2] == [1, 3]
  task = TestbedTask(__import__("rljax.tasks.testbed", fromlist=["x"]).TestbedConfig(), 0)
  pool = task.train_batch(0, 5)
  pt = Restreamed(task, tuple(pool))
  assert pt.train_batch(0, 3) == pool[:3] and pt.train_batch(1, 3) == pool[3:] + pool[:1]
  ot = Restreamed(task, (pool[2],))
  assert ot.train_batch(9, 4) == [pool[2]] * 4
  # Everything else is the task's own: the reward function itself (picklable by
  # reference for the sandbox), the held-out split, step verification.
  assert ot.reward is task.reward and ot.reward(pool[2], "nonsense") == 0.0
  assert ot.eval_problems is task.eval_problems and ot.steps_verify is task.steps_verify


def test_reset_triggers():
  ctrl = controllers.ControlState()
  plateau = iv.InterventionConfig(reset_patience=2)
  assert controllers.reset_reason(plateau, ctrl, 5, {"kl": 0.0, "eval/pass@1": 0.3}) is None
  assert controllers.reset_reason(plateau, ctrl, 10, {"kl": 0.0, "eval/pass@1": 0.3}) is None
  assert controllers.reset_reason(plateau, ctrl, 15, {"kl": 0.0, "eval/pass@1": 0.29}) == "plateau"
  assert controllers.reset_reason(plateau, ctrl, 16, {"kl": 0.0}) is None   # no evaluation this step
  sched = iv.InterventionConfig(reset_every=4)
  assert [controllers.reset_reason(sched, controllers.ControlState(), s, {"kl": 0.0}) for s in (3, 4, 8)] == \
      [None, "schedule", "schedule"]
  kl = iv.InterventionConfig(reset_kl_threshold=0.1)
  assert controllers.reset_reason(kl, controllers.ControlState(), 1, {"kl": 0.05}) is None
  assert controllers.reset_reason(kl, controllers.ControlState(), 1, {"kl": 0.2}) == "kl"


def test_overlong_buffer_must_start_after_the_longest_solution():
  from configs import interventions, testbed  # pylint: disable=import-outside-toplevel
  from rljax.config import from_config_dict  # pylint: disable=import-outside-toplevel
  from rljax.tasks.testbed_task import build_tokenizer  # pylint: disable=import-outside-toplevel
  from rljax.workdir import check_overlong_buffer  # pylint: disable=import-outside-toplevel
  dapo = from_config_dict(interventions.get_config("method=dapo"))
  task = TestbedTask(dapo.task, 0)
  tok = build_tokenizer(task, dapo.tokenizer_vocab)
  longest = task.longest_solution_tokens(tok)
  assert longest == 51     # 6 steps x 7 tokens + 5 ";" + ";#" + 2 digits + EOS
  check_overlong_buffer(dapo, task, tok)   # the recipe: penalty from token 52 on
  c = testbed.get_config("v1")
  c.intervention.overlong_buffer = 8       # the old recipe: from token 44, inside a solution
  with pytest.raises(ValueError, match="longest correct completion"):
    check_overlong_buffer(from_config_dict(c), task, tok)
