"""Fits that predict where a recipe saturates (docs/algorithms.md §4.2, §14).

* Entropy-performance law (Cui et al. 2025, arXiv 2505.22617): R = -a exp(H) + b,
  linear in x = exp(H), so ordinary least squares; the ceiling at H = 0 is b - a.
* Sigmoidal compute curve (ScaleRL, Khatri et al. 2025, arXiv 2510.13786):
  R_C = R0 + (A - R0) / (1 + (C_mid / C)^B), R0 fixed; A is the asymptote, B the
  efficiency. Robust initialisation: a grid over A with the linearisation
  log((A - R0)/(R_C - R0) - 1) = B log C_mid - B log C solved by OLS, then a
  bounded non-linear least-squares refinement; a bootstrap interval for A.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize


def _mask(n, fit_mask):
  m = np.ones(n, bool) if fit_mask is None else np.asarray(fit_mask, bool)
  if m.shape != (n,):
    raise ValueError(f"fit_mask must have shape ({n},), got {m.shape}")
  return m


def fit_entropy_law(entropy, accuracy, fit_mask=None) -> dict:
  """OLS fit of R = -a exp(H) + b on the points selected by `fit_mask`.

  Returns a, b, ceiling (b - a), r2 on the fitted points, and rmse on the points
  outside the mask (None when there are none): the error of predicting the rest
  of a run from an early window. Degenerate input (fewer than 2 points, constant
  entropy, non-finite values) still gives finite numbers (a = 0, b = mean
  accuracy) with `ok` False and the reason in `warning`.
  """
  h = np.asarray(entropy, np.float64)
  r = np.asarray(accuracy, np.float64)
  if h.shape != r.shape or h.ndim != 1:
    raise ValueError("entropy and accuracy must be 1-D arrays of equal length")
  m = _mask(len(h), fit_mask) & np.isfinite(h) & np.isfinite(r)
  warning = None
  if m.sum() < 2:
    warning = f"only {int(m.sum())} finite point(s) in the fit window; need 2"
  elif np.ptp(np.exp(h[m])) < 1e-9:
    warning = "entropy is constant in the fit window: the slope a is not identifiable"
  if warning is None:
    slope, intercept = np.polyfit(np.exp(h[m]), r[m], 1)
    a, b = -slope, intercept
  else:
    a, b = 0.0, float(r[m].mean()) if m.any() else 0.0
  pred = b - a * np.exp(np.nan_to_num(h))
  ss_res = np.sum((r[m] - pred[m]) ** 2)
  ss_tot = np.sum((r[m] - r[m].mean()) ** 2)
  held = ~m & np.isfinite(h) & np.isfinite(r)
  if warning is None and ss_tot == 0:
    warning = "accuracy is constant in the fit window (all-correct or all-wrong?)"
  return {"a": float(a), "b": float(b), "ceiling": float(b - a),
          "r2": float(1 - ss_res / ss_tot) if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0),
          "ok": warning is None, "warning": warning,
          "n_points": int(m.sum()),
          "rmse_heldout": float(np.sqrt(np.mean((r[held] - pred[held]) ** 2)))
          if held.any() else None}


class _Degenerate(ValueError):
  """Input a sigmoid cannot be fitted to; reported as a flagged result, not raised."""


def sigmoid_curve(c, r0, a, b, c_mid):
  """R_C = R0 + (A - R0) / (1 + (C_mid / C)^B)."""
  return r0 + (a - r0) / (1.0 + (c_mid / np.asarray(c, np.float64)) ** b)


def _fit_once(c, r, r0):
  best = None
  hi = 1.0
  for a in np.linspace(max(r.max(), r0) + 1e-4, hi, 200):
    with np.errstate(divide="ignore", invalid="ignore"):  # r == r0 is masked out below
      frac = (a - r0) / (r - r0) - 1.0
    ok = (r > r0) & (frac > 0)
    if ok.sum() < 2:
      continue
    y = np.log(frac[ok])
    slope, icpt = np.polyfit(np.log(c[ok]), y, 1)
    b = -slope
    if b <= 0:
      continue
    c_mid = np.exp(icpt / b)
    sse = np.sum((sigmoid_curve(c, r0, a, b, c_mid) - r) ** 2)
    if best is None or sse < best[0]:
      best = (sse, a, b, c_mid)
  if best is None:
    raise _Degenerate("no point lies above r0 (no gain over the start)")
  _, a, b, c_mid = best
  res = optimize.least_squares(
      lambda p: sigmoid_curve(c, r0, p[0], p[1], np.exp(p[2])) - r,
      x0=[a, min(b, 10.0), np.log(c_mid)],
      bounds=([r0 + 1e-9, 1e-6, -np.inf], [hi, 10.0, np.inf]))
  return res.x[0], res.x[1], float(np.exp(res.x[2]))


def fit_sigmoid(compute, accuracy, r0, fit_mask=None, n_bootstrap: int = 200,
                seed: int = 0) -> dict:
  """Fits A, B, C_mid with R0 fixed; `A_interval` is a 95% bootstrap interval of A.

  Degenerate input (fewer than 3 points, no point above R0, accuracy saturated at
  1) gives finite numbers (A = the best accuracy seen, B = 0) with `ok` False and
  the reason in `warning`.
  """
  c = np.asarray(compute, np.float64)
  r = np.asarray(accuracy, np.float64)
  if c.shape != r.shape or c.ndim != 1:
    raise ValueError("compute and accuracy must be 1-D arrays of equal length")
  if np.any(c <= 0):
    raise ValueError("compute must be positive")
  m = _mask(len(c), fit_mask) & np.isfinite(c) & np.isfinite(r)
  cm, rm = c[m], r[m]
  try:
    if m.sum() < 3:
      raise _Degenerate(f"only {int(m.sum())} finite point(s) in the fit window; need 3")
    if rm.min() >= 1.0 - 1e-9:
      raise _Degenerate("accuracy is 1 everywhere (saturated): no curve to fit")
    a, b, c_mid = _fit_once(cm, rm, r0)
  except _Degenerate as e:
    best = float(max(rm.max(), r0)) if m.any() else float(r0)
    mid = float(np.median(cm)) if m.any() else 1.0
    return {"A": best, "B": 0.0, "C_mid": mid, "R0": float(r0), "A_interval": (best, best),
            "ok": False, "warning": str(e), "n_points": int(m.sum())}
  rng = np.random.default_rng(seed)
  resid = rm - sigmoid_curve(cm, r0, a, b, c_mid)
  boot = []
  for _ in range(n_bootstrap):
    r_star = sigmoid_curve(cm, r0, a, b, c_mid) + rng.choice(resid, size=len(rm))
    try:
      boot.append(_fit_once(cm, r_star, r0)[0])
    except (ValueError, _Degenerate):
      continue
  lo, hi = (np.percentile(boot, [2.5, 97.5]) if boot else (a, a))
  return {"A": float(a), "B": float(b), "C_mid": float(c_mid), "R0": float(r0),
          "A_interval": (float(lo), float(hi)), "ok": True, "warning": None,
          "n_points": int(m.sum())}
