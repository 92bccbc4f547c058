"""Capability boundary: does RL expand what a model can solve or only sharpen it?

Yue et al. 2025 (arXiv 2504.13837; docs/algorithms.md §13): sample n completions per
held-out problem from both models, compare their pass@k curves over k = 1..n
(RL usually wins at small k; the base may catch up or overtake at large k: the
crossover), their coverage (pass@n), and which problems each can solve at all.
"""

from __future__ import annotations

import numpy as np

from rljax.analysis.intervals import crossover
from rljax.analysis.passk import pass_at_k_curve


def compare_boundaries(counts_a, counts_b, n: int, names=("rl", "base")) -> dict:
  """Curves, crossover k, coverage and solvable-set comparison of two models' counts."""
  a, b = np.asarray(counts_a), np.asarray(counts_b)
  if a.shape != b.shape:
    raise ValueError(f"counts must cover the same problems: {a.shape} vs {b.shape}")
  ca, cb = pass_at_k_curve(n, a), pass_at_k_curve(n, b)
  ks = sorted(ca)
  sa, sb = a > 0, b > 0
  na, nb = names
  return {
      f"{na}_curve": ca, f"{nb}_curve": cb,
      "crossover_k": crossover([ca[k] for k in ks], [cb[k] for k in ks], ks),
      f"{na}_coverage": float(sa.mean()), f"{nb}_coverage": float(sb.mean()),
      f"only_{na}": int((sa & ~sb).sum()), f"only_{nb}": int((~sa & sb).sum()),
      "both": int((sa & sb).sum()), "neither": int((~sa & ~sb).sum()),
  }


def solvable_sets(counts_a, counts_b, labels, names=("rl", "base"), examples: int = 3) -> dict:
  """The solvable-set table (only a, only b, both, neither: solved = at least one of the
  n samples right) with the counts and up to `examples` problem labels per cell."""
  sa, sb = np.asarray(counts_a) > 0, np.asarray(counts_b) > 0
  na, nb = names
  cells = {f"only_{na}": sa & ~sb, f"only_{nb}": ~sa & sb, "both": sa & sb,
           "neither": ~sa & ~sb}
  return {cell: {"count": int(m.sum()),
                 "examples": [labels[i] for i in np.flatnonzero(m)[:examples]]}
          for cell, m in cells.items()}


def plot_curves(curves: dict, path: str, title: str = "pass@k") -> None:
  """pass@k against log2 k for each named curve, saved as a PNG."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(5, 3.5))
  for name, curve in curves.items():
    ks = sorted(int(k) for k in curve)
    ax.plot(ks, [curve[k] if k in curve else curve[str(k)] for k in ks], marker="o", label=name)
  ax.set_xscale("log", base=2)
  ax.set_xlabel("k")
  ax.set_ylabel("pass@k")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
