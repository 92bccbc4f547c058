"""One-shot RLVR (Wang et al. 2025, arXiv 2504.20571): RL on a single example, duplicated.

The example is chosen by historical variance: train briefly on a pool, record each
example's accuracy every time it is seen, rank by the standard deviation of that
history (the paper's `data/data_selection.py`, method "std"), and keep the top one.
The one-shot run then starts again from the base model, on a task whose stream is
that one example (`rljax.tasks.base.Restreamed`).
"""

from __future__ import annotations

import numpy as np


def rank_by_historical_variance(history: dict[int, list[float]]) -> list[int]:
  """Pool indices sorted by std of their accuracy history, largest first (ties: lower index)."""
  return sorted(history, key=lambda i: (-float(np.std(history[i])), i))


def collect_history(trainer, state, pool: list, steps: int) -> dict[int, list[float]]:
  """Trains `steps` steps on the pool and records each problem's per-visit accuracy.

  `trainer` is an `RLTrainer` whose task streams the pool (`tasks.base.Restreamed`).
  """
  index = {id(p): i for i, p in enumerate(pool)}
  history: dict[int, list[float]] = {i: [] for i in range(len(pool))}
  g = trainer.cfg.rl.group_size
  position = 0
  for step in range(steps):
    state, _, ro = trainer.train_step(state, step, position)
    position = ro.data_position
    for q, problem in enumerate(ro.problems):
      history[index[id(problem)]].append(float(ro.verified[q * g:(q + 1) * g].mean()))
  return history
