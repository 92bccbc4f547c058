"""Boundary instruments with uncertainty: pass@k, CoT-pass@k and Cover@tau with
bootstrap intervals over problems, and the crossover k* of two models with its interval.

* pass@k: the unbiased estimator of `rljax.analysis.passk` per problem, averaged.
* CoT-pass@k (Wen et al. 2025, arXiv 2506.14245): the same estimator on the count
  of completions whose answer is right *and* whose steps all verify, so a right
  answer reached by wrong steps (or by a guess) does not count.
* Cover@tau (Dragoi et al. 2025, arXiv 2510.08325): G(tau) = (1/T) sum_i 1{p_i >= tau},
  with p_i = c_i / n the problem's success rate: the fraction of problems solved
  *reliably*. Guessing on a small answer space drives pass@k at large k to 1 but
  leaves Cover@tau at moderate tau near 0.
* Intervals: the percentile bootstrap over problems (Efron & Tibshirani 1993, ch. 13):
  resample the T problems with replacement R times, recompute the statistic, and
  take its (1-level)/2 and (1+level)/2 quantiles. Two models are resampled with the
  same problems (paired), so the crossover's interval reflects which problems are
  in the set, not two independent draws.

Shapes: T problems, K values of k, R resamples.
"""

from __future__ import annotations

import numpy as np

from rljax.analysis.passk import k_grid, pass_at_k

COVER_TAUS = (0.1, 0.25, 0.5, 0.75, 0.9)


def pass_at_k_matrix(n: int, counts_T, ks) -> np.ndarray:
  """Per-problem pass@k [T, K] from correct counts [T] out of n samples each."""
  counts_T = np.asarray(counts_T)
  return np.stack([np.asarray(pass_at_k(n, counts_T, k), np.float64).reshape(-1)
                   for k in ks], axis=1)


def cover_at(n: int, counts_T, taus=COVER_TAUS) -> dict[float, float]:
  """Cover@tau: the fraction of problems whose success rate c/n is at least tau."""
  rate_T = np.asarray(counts_T, np.float64) / n
  return {float(t): float((rate_T >= t).mean()) for t in taus}


def guess_rate(answer_space, k: int):
  """pass@k of uniform guessing among `answer_space` answers: 1 - (1 - 1/A)^k (float64)."""
  return -np.expm1(k * np.log1p(-1.0 / np.asarray(answer_space, np.float64)))


def resample_indices(num_problems: int, resamples: int, seed: int) -> np.ndarray:
  """[R, T] problem indices drawn with replacement (fixed by `seed`)."""
  return np.random.default_rng(seed).integers(0, num_problems, (resamples, num_problems))


def _quantiles(values_R, level: float) -> tuple[float, float]:
  return (float(np.quantile(values_R, (1 - level) / 2)),
          float(np.quantile(values_R, (1 + level) / 2)))


def curve_with_intervals(n: int, counts_T, *, level: float = 0.95, resamples: int = 2000,
                         seed: int = 0, idx_RxT=None) -> dict[int, dict]:
  """{k: {"mean", "lo", "hi"}}: the pass@k curve with percentile bootstrap intervals."""
  ks = k_grid(n)
  per_TxK = pass_at_k_matrix(n, counts_T, ks)
  if idx_RxT is None:
    idx_RxT = resample_indices(len(per_TxK), resamples, seed)
  boot_RxK = per_TxK[idx_RxT].mean(axis=1)
  out = {}
  for j, k in enumerate(ks):
    lo, hi = _quantiles(boot_RxK[:, j], level)
    out[k] = {"mean": float(per_TxK[:, j].mean()), "lo": lo, "hi": hi}
  return out


def crossover(curve_a_K, curve_b_K, ks) -> int | None:
  """The first k at which the leader changes, counted from the first strict lead (curves
  tied at k = 1 have no leader to lose the lead yet); None if it never changes."""
  gap = np.asarray(curve_a_K, np.float64) - np.asarray(curve_b_K, np.float64)
  # Equal pass@k reached by different float sums (0.5 / 4 vs 0.25 * 2 / 4) is a tie.
  lead = np.sign(np.where(np.abs(gap) <= 1e-12, 0.0, gap))
  first = next((s for s in lead if s != 0), 0)
  return next((int(k) for k, s in zip(ks, lead) if first and s == -first), None)


def crossover_with_interval(n: int, counts_a_T, counts_b_T, *, level: float = 0.95,
                            resamples: int = 2000, seed: int = 0) -> dict:
  """The crossover k* of two models on the same problems, and its bootstrap interval.

  Returns {"k": k* on all problems (None: no crossover), "frac": the fraction of
  resamples with a crossover, "lo", "hi": the interval's bounds over those resamples
  (k is on the grid 1, 2, 4, ..., so the bounds are grid values; None without any)}.
  """
  ks = k_grid(n)
  a_TxK, b_TxK = pass_at_k_matrix(n, counts_a_T, ks), pass_at_k_matrix(n, counts_b_T, ks)
  if a_TxK.shape != b_TxK.shape:
    raise ValueError(f"counts must cover the same problems: {a_TxK.shape} vs {b_TxK.shape}")
  idx_RxT = resample_indices(len(a_TxK), resamples, seed)
  a_RxK, b_RxK = a_TxK[idx_RxT].mean(1), b_TxK[idx_RxT].mean(1)
  boots = [crossover(a_RxK[r], b_RxK[r], ks) for r in range(resamples)]
  found = np.array([k for k in boots if k is not None], np.float64)
  lo = hi = None
  if found.size:
    lo = int(np.quantile(found, (1 - level) / 2, method="lower"))
    hi = int(np.quantile(found, (1 + level) / 2, method="higher"))
  return {"k": crossover(a_TxK.mean(0), b_TxK.mean(0), ks),
          "frac": float(found.size / resamples), "lo": lo, "hi": hi}


def boundary_table(n: int, counts_T, cot_counts_T=None, *, level: float = 0.95,
                   resamples: int = 2000, seed: int = 0) -> dict:
  """pass@k (and CoT-pass@k) curves with intervals, and Cover@tau, for one model."""
  idx_RxT = resample_indices(len(np.asarray(counts_T)), resamples, seed)
  out = {"pass@k": curve_with_intervals(n, counts_T, level=level, idx_RxT=idx_RxT),
         "cover": cover_at(n, counts_T)}
  if cot_counts_T is not None:
    out["cot_pass@k"] = curve_with_intervals(n, cot_counts_T, level=level, idx_RxT=idx_RxT)
  return out
