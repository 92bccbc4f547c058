"""Advantage estimators against docs/algorithms.md §T2."""

import numpy as np
import pytest

from rljax.rl import advantages

R = np.array([1, 0, 0, 1, 0, 0, 0, 0], np.float32)  # mean 0.25, unbiased std 0.46291005


def test_grpo_t2():
  a = advantages.compute("grpo", R, 8)
  np.testing.assert_allclose(a[R == 1], 1.620182, rtol=1e-5)   # 0.75 / (0.46291005 + 1e-6)
  np.testing.assert_allclose(a[R == 0], -0.540061, rtol=1e-5)  # -0.25 / (0.46291005 + 1e-6)


def test_drgrpo_and_rloo_t2():
  np.testing.assert_allclose(np.asarray(advantages.compute("drgrpo", R, 8))[:2], [0.75, -0.25])
  np.testing.assert_allclose(np.asarray(advantages.compute("rloo", R, 8))[:2], [0.857143, -0.285714],
                             rtol=1e-5)


def test_groups_are_contiguous_and_zero_variance_is_exactly_zero():
  r = np.array([0.3, 0.3, 0.3, 0.3, 1, 0, 1, 0], np.float32)
  a = advantages.compute("grpo", r, 4)
  assert np.all(a[:4] == 0.0)
  np.testing.assert_allclose(a[4:], [0.866025, -0.866025, 0.866025, -0.866025], rtol=1e-5)


def test_singleton_group():
  np.testing.assert_allclose(advantages.compute("grpo", np.array([0.7]), 1), 0.6999993, rtol=1e-6)
  np.testing.assert_allclose(advantages.compute("drgrpo", np.array([0.7]), 1), 0.7)
  np.testing.assert_allclose(advantages.compute("rloo", np.array([0.7]), 1), 0.7)


def test_errors():
  with pytest.raises(ValueError, match="drgrpo"):
    advantages.compute("ppo", R, 8)
  with pytest.raises(ValueError, match="eps"):
    advantages.compute("grpo", R, 8, epsilon=1.0)
  with pytest.raises(ValueError, match="multiple"):
    advantages.compute("grpo", R, 3)


@pytest.mark.parametrize("n_pos,k,a_pos,a_neg", [
    (3, 4, 0.277349, -0.166409),   # §T9: R = 0.928571, sigma = 0.257539
    (1, 4, 0.999998, -0.142857),   # R = 0.5
    (5, 4, 0.0, 0.0),              # N_neg = 3 < k: every 4-subset has a success
])
def test_passk_t9(n_pos, k, a_pos, a_neg):
  r = np.array([1.0] * n_pos + [0.0] * (8 - n_pos), np.float32)
  a = np.asarray(advantages.compute("passk", r, 8, k=k))
  np.testing.assert_allclose(a[:n_pos], a_pos, atol=2e-6)
  np.testing.assert_allclose(a[n_pos:], a_neg, atol=2e-6)
  np.testing.assert_allclose(a.sum(), 0.0, atol=1e-5)


def test_passk_t9_n16():
  r = np.array([1.0, 1.0] + [0.0] * 14, np.float32)
  a = np.asarray(advantages.compute("passk", r, 16, k=4))
  np.testing.assert_allclose(a[[0, 2]], [1.105539, -0.157934], atol=2e-6)


def test_grpo_passk_t9():
  a = advantages.compute("grpo_passk", np.array([0, 1, 0.5, 0.2], np.float32), 4)
  np.testing.assert_allclose(a, [0, 0.5, 0, 0], atol=1e-7)
  a = advantages.compute("grpo_passk", np.array([0, 1, 0.5, 0.2], np.float32), 4,
                         norm_by_std=True)
  np.testing.assert_allclose(a, [0, 1.149600, 0, 0], atol=1e-5)
  tie = advantages.compute("grpo_passk", np.array([0, 1, 0.5, 1, 0.2, 0], np.float32), 6)
  np.testing.assert_allclose(tie, 0.0)


def test_gpg_t15():
  r = np.array([1, 0, 0, 1, 0, 0, 0, 0], np.float32)
  np.testing.assert_allclose(advantages.compute("gpg", r, 4), [2, -2, -2, 2, 0, 0, 0, 0])


def test_reinforce_pp_baseline_is_whitened():
  r = np.array([1, 0, 0, 1, 1, 1, 0, 1], np.float32)
  a = np.asarray(advantages.compute("reinforce_pp_baseline", r, 4))
  # x = r - group mean = [.5,-.5,-.5,.5,.25,.25,-.75,.25]; mean 0; sum x^2 = 1.75,
  # unbiased var = 1.75 / 7 = 0.25, so A = x / 0.5.
  np.testing.assert_allclose(a, [1, -1, -1, 1, .5, .5, -1.5, .5], rtol=1e-6)
  # Token weighting: a long rollout counts more in the mean and variance.
  w = np.asarray(advantages.compute("reinforce_pp_baseline", r, 4,
                                    lengths_B=np.array([1, 1, 1, 1, 1, 1, 1, 9.])))
  x = np.array([.5, -.5, -.5, .5, .25, .25, -.75, .25])
  wts = np.array([1, 1, 1, 1, 1, 1, 1, 9.])
  m = (wts * x).sum() / wts.sum()
  np.testing.assert_allclose(w, (x - m) / np.sqrt((wts * (x - m) ** 2).sum() / 15), rtol=1e-5)


def test_rlplus_split_uses_on_policy_mean():
  r = np.array([1, 0, 0, 1], np.float32)          # last member is the demonstration
  off = np.array([0, 0, 0, 1], np.float32)
  a = advantages.compute("rlplus", r, 4, offpolicy_B=off)
  np.testing.assert_allclose(a, np.array([1, 0, 0, 1]) - 1 / 3, rtol=1e-6)
  a = advantages.compute("rlplus", np.ones(4, np.float32), 4, offpolicy_B=off, use_std=True)
  np.testing.assert_allclose(a, 0.0)              # std 0 -> 1, no NaN


def test_passk_reads_the_verifier_verdict_not_the_shaped_reward():
  # A correct answer with an overlong penalty (reward 0.125) is still correct: with the
  # verdict the group is (N=8, N_pos=3, k=4) of docs/algorithms.md T9.
  rewards = np.array([0.125, 0.125, 1.0, 0, 0, 0, 0, 0], np.float32)
  correct = rewards > 0
  adv = np.asarray(advantages.compute("passk", rewards, 8, k=4, correct_B=correct))
  np.testing.assert_allclose(adv[:3], 0.277349, atol=1e-5)
  np.testing.assert_allclose(adv[3:], -0.166409, atol=1e-5)
  shaped = np.asarray(advantages.compute("passk", rewards, 8, k=4))   # reward > 0.5 only
  assert not np.allclose(shaped, adv)
