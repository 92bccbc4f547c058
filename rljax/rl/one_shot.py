"""One-shot RLVR (Wang et al. 2025, arXiv 2504.20571): RL on a single example, duplicated.

The example is chosen by historical variance: train briefly on a pool, record each
example's accuracy every time it is seen, rank by the standard deviation of that
history (`data/data_selection.py`, method "std"), and keep the top one. The
one-shot run then starts again from the base model.
"""

from __future__ import annotations

import numpy as np


def rank_by_historical_variance(history: dict[int, list[float]]) -> list[int]:
  """Pool indices sorted by std of their accuracy history, largest first (ties: lower index)."""
  return sorted(history, key=lambda i: (-float(np.std(history[i])), i))


class PoolTask:
  """A task whose training stream cycles through a fixed pool of problems."""

  def __init__(self, task, pool: list):
    self.task, self.pool = task, pool

  def train_batch(self, index: int, size: int) -> list:
    return [self.pool[(index * size + k) % len(self.pool)] for k in range(size)]

  def __getattr__(self, name):
    return getattr(self.task, name)


class OneShotTask:
  """A task whose every training prompt is the same problem."""

  def __init__(self, task, problem):
    self.task, self.problem = task, problem

  def train_batch(self, index: int, size: int) -> list:
    del index
    return [self.problem] * size

  def __getattr__(self, name):
    return getattr(self.task, name)


def collect_history(trainer, state, pool: list, steps: int) -> dict[int, list[float]]:
  """Trains `steps` steps on the pool and records each problem's per-visit accuracy."""
  index = {id(p): i for i, p in enumerate(pool)}
  history: dict[int, list[float]] = {i: [] for i in range(len(pool))}
  g = trainer.cfg.rl.group_size
  for step in range(steps):
    state, _ = trainer.train_step(state, step)
    ro = trainer.last_rollouts
    for q, problem in enumerate(ro.problems):
      history[index[id(problem)]].append(float(ro.verified[q * g:(q + 1) * g].mean()))
  return history
