"""Diagnostics against hand-computed values."""

import numpy as np
import pytest

from rljax.analysis import diagnostics


def test_token_covariance():
  lp = np.array([[-1.0, -3.0, 9.0]])
  adv = np.array([[1.0, -1.0, 5.0]])
  mask = np.array([[1, 1, 0]])
  # valid: lp [-1, -3] mean -2; A [1, -1] mean 0: cov = [1*1, -1*-1] = [1, 1]
  out = diagnostics.token_covariance(lp, adv, mask)
  assert out["cov_mean"] == pytest.approx(1.0) and out["cov_p99"] == pytest.approx(1.0)


def test_phase_entropy_and_diversity():
  ent = np.array([[0.5, 0.1, 0.2, 0.0]])
  plan = np.array([[1, 0, 0, 1]])
  mask = np.array([[1, 1, 1, 0]])
  out = diagnostics.phase_entropy(ent, plan, mask)
  assert out["entropy_planning"] == pytest.approx(0.5)
  assert out["entropy_execution"] == pytest.approx(0.15)
  d = diagnostics.group_diversity([1, 1, 2, None, 5, 5, 5, 5], [1, 0, 0, 0, 0, 0, 0, 0], 4)
  assert d["distinct_answers"] == pytest.approx((3 + 1) / 2)
  assert d["passG_minus_pass1"] == pytest.approx(0.5 - 1 / 8)


def test_step_flops():
  assert diagnostics.step_flops(10, 3, 2, 5, 4) == 10 * (2 * 10 + 6 * 4)


def test_semantic_entropy_hand_values():
  # Group 1: plans a,a,b,b -> ln 2; group 2: all the same -> 0.
  out = diagnostics.semantic_entropy(["a", "a", "b", "b", "c", "c", "c", "c"], 4)
  np.testing.assert_allclose(out["semantic_entropy"], np.log(2) / 2)


def test_shortcut_fraction():
  verify = lambda problem, text: text.startswith("ok")
  out = diagnostics.shortcut_fraction(["p"], ["ok1", "bad", "ok2", "bad"], [1, 1, 0, 0], 4,
                                      verify)
  assert out["shortcut_frac"] == 0.5
  assert diagnostics.shortcut_fraction(["p"], ["x"], [1], 1, None)["shortcut_frac"] == 0.0


def test_tag_stats_accuracy_and_entropy_per_group():
  """Two problems x 2 samples; problem "a" is in groups {x, y}, "b" in {y}. A group's
  entropy is its tokens' mean (padding excluded), not a mean of per-row means."""
  ent = np.array([[0.4, 0.2, 9.0], [0.0, 0.0, 0.0], [1.0, 9.0, 9.0], [0.5, 0.5, 0.5]])
  mask = np.array([[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 1]])
  tags = {"a": ["x", "y"], "b": ["y"]}
  out = diagnostics.tag_stats(["a", "b"], [1, 0, 1, 1], ent, mask, 2, tags.__getitem__)
  assert out["accuracy/x"] == pytest.approx(0.5) and out["accuracy/y"] == pytest.approx(0.75)
  assert out["entropy/x"] == pytest.approx(0.6 / 5)
  assert out["entropy/y"] == pytest.approx((0.6 + 1.0 + 1.5) / 9)
