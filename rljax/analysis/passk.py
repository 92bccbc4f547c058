"""Unbiased pass@k (Chen et al. 2021, arXiv 2107.03374; docs/algorithms.md §13).

pass@k = 1 - C(n - c, k) / C(n, k) per problem, in the numerically stable form
1 - prod_{i=n-c+1}^{n} (1 - k / i) = -expm1(sum log1p(-k / i)), in float64;
1.0 when n - c < k (every k-subset holds a correct sample).
"""

from __future__ import annotations

import numpy as np


def _one(n: int, c: int, k: int) -> float:
  if not 0 <= c <= n:
    raise ValueError(f"pass@k needs 0 <= c <= n, got n={n}, c={c}")
  if not 1 <= k <= n:
    raise ValueError(f"pass@k needs 1 <= k <= n, got n={n}, k={k}")
  if n - c < k:
    return 1.0
  i = np.arange(n - c + 1, n + 1, dtype=np.float64)
  return float(-np.expm1(np.sum(np.log1p(-k / i))))


def pass_at_k(n, c, k):
  """pass@k for one problem (scalars) or per problem (arrays broadcast together)."""
  if np.ndim(n) == 0 and np.ndim(c) == 0 and np.ndim(k) == 0:
    return _one(int(n), int(c), int(k))
  n, c, k = np.broadcast_arrays(np.asarray(n), np.asarray(c), np.asarray(k))
  return np.array([_one(int(a), int(b), int(d)) for a, b, d in zip(n.ravel(), c.ravel(), k.ravel())]
                  ).reshape(n.shape)


def k_grid(n: int) -> list[int]:
  """k = 1, 2, 4, ..., n (n always included)."""
  return sorted({2 ** i for i in range(int(np.log2(n)) + 1)} | {n})


def pass_at_k_curve(n: int, correct_counts) -> dict[int, float]:
  """Mean pass@k over problems for k = 1, 2, 4, ..., n (n always included)."""
  counts = np.asarray(correct_counts)
  return {k: float(np.mean(pass_at_k(n, counts, k))) for k in k_grid(n)}
