"""Entropy-law and sigmoid fits against docs/algorithms.md §T13 and §T14."""

import numpy as np
import pytest

from rljax.analysis import fit_entropy_law, fit_sigmoid, sigmoid_curve


def test_entropy_law_t13():
  h = np.array([1.0, 0.8, 0.6, 0.4, 0.3, 0.2, 0.1])
  r = np.array([0.206344, 0.304892, 0.385576, 0.451635, 0.480028, 0.505719, 0.528966])
  fit = fit_entropy_law(h, r)
  assert fit["a"] == pytest.approx(0.2, abs=1e-5)
  assert fit["b"] == pytest.approx(0.75, abs=1e-5)
  assert fit["ceiling"] == pytest.approx(0.55, abs=1e-5)
  assert fit["r2"] == pytest.approx(1.0, abs=1e-8)
  early = fit_entropy_law(h, r, fit_mask=[1, 1, 1, 1, 0, 0, 0])
  assert early["rmse_heldout"] < 1e-5 and early["ceiling"] == pytest.approx(0.55, abs=1e-4)


def test_sigmoid_t14_exact_recovery():
  c = np.array([1500, 2000, 3000, 4000, 6000, 8000.])
  r = np.array([0.448441, 0.475000, 0.511882, 0.534699, 0.559652, 0.572222])
  np.testing.assert_allclose(sigmoid_curve(c, 0.35, 0.6, 1.5, 2000), r, atol=1e-6)
  fit = fit_sigmoid(c, r, r0=0.35, n_bootstrap=50)
  assert fit["A"] == pytest.approx(0.6, abs=1e-3)
  assert fit["B"] == pytest.approx(1.5, abs=2e-2)
  assert fit["C_mid"] == pytest.approx(2000, rel=2e-2)
  lo, hi = fit["A_interval"]
  assert lo <= fit["A"] <= hi


def test_sigmoid_noisy_and_extrapolation():
  rng = np.random.default_rng(0)
  c = np.geomspace(200, 20000, 30)
  r = sigmoid_curve(c, 0.2, 0.7, 1.2, 3000) + rng.normal(0, 0.005, c.size)
  fit = fit_sigmoid(c, r, r0=0.2, fit_mask=c < 8000, n_bootstrap=100)
  assert fit["A"] == pytest.approx(0.7, abs=0.03)
  lo, hi = fit["A_interval"]
  assert lo < 0.7 + 0.03 and hi > 0.7 - 0.03


def _finite(out):
  return all(np.isfinite(v).all() for v in out.values() if isinstance(v, (float, tuple)))


@pytest.mark.parametrize("entropy,accuracy,reason", [
    ([0.1], [0.2], "only 1"),                                   # too few points
    ([0.3, 0.3, 0.3], [0.1, 0.5, 0.9], "entropy is constant"),
    ([0.5, 0.3, 0.1], [1.0, 1.0, 1.0], "accuracy is constant"),  # all correct
    ([0.5, 0.3, 0.1], [0.0, 0.0, 0.0], "accuracy is constant"),  # all wrong
    ([0.5, np.nan, 0.1], [0.2, 0.3, np.nan], "only 1"),
])
def test_entropy_law_degenerate_inputs_are_flagged(entropy, accuracy, reason):
  out = fit_entropy_law(entropy, accuracy)
  assert not out["ok"] and reason in out["warning"] and _finite(out)


@pytest.mark.parametrize("compute,accuracy,reason", [
    ([1, 2], [0.6, 0.7], "only 2"),
    ([1, 2, 3], [0.1, 0.1, 0.1], "no point lies above r0"),     # all wrong
    ([1, 2, 3], [1.0, 1.0, 1.0], "saturated"),                  # all correct
])
def test_sigmoid_degenerate_inputs_are_flagged(compute, accuracy, reason):
  out = fit_sigmoid(compute, accuracy, r0=0.5)
  assert not out["ok"] and reason in out["warning"] and _finite(out)


def test_bad_inputs():
  with pytest.raises(ValueError, match="positive"):
    fit_sigmoid([0, 2, 3], [0.6, 0.7, 0.8], r0=0.5)
  with pytest.raises(ValueError, match="equal length"):
    fit_entropy_law([0.1, 0.2], [0.2])


def test_run_entropy_law_is_fitted_on_held_out_pass1():
  """docs/algorithms.md T13's points as held-out evaluations; the training accuracy is
  noise that a fit on it would follow instead."""
  from rljax.analysis import runs  # pylint: disable=import-outside-toplevel
  h = [1.0, 0.8, 0.6, 0.4, 0.3, 0.2, 0.1]
  r = [-0.2 * np.exp(x) + 0.75 for x in h]
  rng = np.random.default_rng(0)
  rows = [{"step": 10 * i, "entropy": x, "accuracy": float(rng.random()),
           "accuracy_first_round": float(rng.random())} for i, x in enumerate(h)]
  for row, value in zip(rows[1:], r[1:]):
    row["eval/pass@1"] = value
  law = runs.entropy_law(rows, base_pass1=r[0])   # the base at step 0 is the first point
  assert law["on"] == "heldout" and law["full"]["n_points"] == 7
  np.testing.assert_allclose([law["full"]["a"], law["full"]["b"]], [0.2, 0.75], atol=1e-6)
  other = runs.entropy_law(rows, on="rollouts")
  assert other["accuracy"] == [row["accuracy_first_round"] for row in rows]
  assert abs(other["full"]["b"] - 0.75) > 1e-3
  with pytest.raises(ValueError, match="heldout"):
    runs.entropy_law(rows, on="train")
