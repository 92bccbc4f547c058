"""Unbiased pass@k against docs/algorithms.md §T1."""

import numpy as np
import pytest

from rljax.analysis import pass_at_k, pass_at_k_curve


@pytest.mark.parametrize("n,c,k,expected", [
    (10, 3, 5, 0.9166667),   # 1 - C(7,5)/C(10,5) = 1 - 21/252
    (10, 3, 1, 0.3), (10, 0, 5, 0.0), (10, 6, 5, 1.0),
    (1024, 1, 256, 0.25), (1024, 5, 1, 0.0048828125),
    (2048, 2, 1024, 0.7501221299), (16, 4, 8, 0.9615384615),
    (4096, 3, 1, 3 / 4096)])
def test_t1(n, c, k, expected):
  assert pass_at_k(n, c, k) == pytest.approx(expected, rel=1e-7, abs=1e-12)


def test_vectorised_and_curve():
  np.testing.assert_allclose(pass_at_k(10, np.array([3, 0, 6]), 5), [0.9166667, 0.0, 1.0],
                             rtol=1e-6)
  curve = pass_at_k_curve(4, [0, 4, 1])
  assert sorted(curve) == [1, 2, 4]
  np.testing.assert_allclose(curve[1], (0 + 1 + 0.25) / 3)
  np.testing.assert_allclose(curve[4], 2 / 3)


def test_bad_input():
  with pytest.raises(ValueError):
    pass_at_k(4, 5, 1)
  with pytest.raises(ValueError):
    pass_at_k(4, 1, 8)


def test_summarize_groups_pass_cover_and_entropy():
  """Per group: pass@1, pass@n, Cover@0.5 and the group's token entropy (its summed entropy
  over its tokens, not a mean of per-problem means), by hand."""
  from rljax.analysis.evaluation import summarize
  problems = ["a1", "a2", "b1"]
  out = summarize(problems, [4, 0, 2], 4, lambda p: [p[0]],
                  entropy_sums=np.array([1.0, 3.0, 0.5]), tokens=np.array([10, 10, 5]))
  assert out["a/pass@1"] == pytest.approx(0.5) and out["b/pass@1"] == pytest.approx(0.5)
  assert out["a/pass@4"] == pytest.approx(0.5) and out["b/pass@4"] == pytest.approx(1.0)
  # Cover@0.5 counts rates of at least 0.5: a1 (4/4) of a, b1 (2/4) of b.
  assert out["a/cover@0.5"] == pytest.approx(0.5) and out["b/cover@0.5"] == pytest.approx(1.0)
  assert out["a/entropy"] == pytest.approx(4.0 / 20) and out["b/entropy"] == pytest.approx(0.1)
  assert "a/entropy" not in summarize(problems, [4, 0, 2], 4, lambda p: [p[0]])
