"""Advantage estimators against algorithms.md §T2."""

import numpy as np
import pytest

from rljax import advantages

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
