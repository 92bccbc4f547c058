"""Reward controls and shaping: spurious rewards, DRO's R3, DAPO's overlong penalty.

The controls (Shao et al. 2025, arXiv 2506.10947) replace the verifier's score
to test what RL learns from: a random reward, a format-only reward, a reward for
a deliberately wrong label. DRO (arXiv 2506.13351) replaces it with the model's
own certainty of the reference answer after its chain of thought. Each reward
mode is one entry of `REWARD_MODES`; `intervention.reward_mode` names it.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class RewardSignals:
  """What a step's rollouts offer a reward mode, each [B].

  Attributes:
    verified_B: the verifier's scores.
    format_ok_B: the task's format property holds (`Task.format_ok`).
    wrong_label_B: the answer is the problem's wrong label (`rljax.rewards.wrong_labels`).
    dro_B: DRO's R3 (None unless the mode is "dro").
  """

  verified_B: np.ndarray
  format_ok_B: np.ndarray
  wrong_label_B: np.ndarray
  dro_B: np.ndarray | None = None


def _random(s: RewardSignals, rng: np.random.Generator, p: float) -> np.ndarray:
  return (rng.random(len(s.verified_B)) < p).astype(np.float32)


# reward_mode -> (signals, rng, random_reward_p) -> rewards [B].
REWARD_MODES = {
    "verifier": lambda s, rng, p: np.asarray(s.verified_B, np.float32),
    "random": _random,                   # 1 with probability random_reward_p
    "format": lambda s, rng, p: np.asarray(s.format_ok_B, np.float32),
    "wrong_label": lambda s, rng, p: np.asarray(s.wrong_label_B, np.float32),
    "dro": lambda s, rng, p: s.dro_B,    # R3 from the reference answer, no verifier
}


def controlled_rewards(mode: str, signals: RewardSignals, rng: np.random.Generator,
                       p: float) -> np.ndarray:
  """The rewards of reward mode `mode` (see `REWARD_MODES`)."""
  if mode not in REWARD_MODES:
    raise ValueError(f"Unknown reward mode {mode!r}; valid: {sorted(REWARD_MODES)}")
  return REWARD_MODES[mode](signals, rng, p)


def overlong_penalty(lengths_B, max_len: int, buffer: int, factor: float):
  """DAPO soft overlong punishment (docs/algorithms.md §3, T12), lengths in tokens.

  0 up to max_len - buffer, then linearly down to -factor at max_len.
  """
  exceed_B = np.asarray(lengths_B, np.float64) - (max_len - buffer)
  return np.minimum(-exceed_B / buffer * factor, 0.0)


def dro_reward(logp_GxL, temperature: float, certainty: str):
  """DRO's reasoning-reflection reward R3 for one group (arXiv 2506.13351, docs §10).

  logp_GxL: log pi(y*_j | q, cot_i, y*_<j) of the L reference tokens teacher-forced
  after each of the G chains of thought. s = exp(logp) ("prob", the paper's
  self-certainty) or logp ("logprob"); sigma_j = std over the group;
  w = softmax(sigma / tau) emphasises reasoning-reflective tokens (whose certainty
  depends on the reasoning); R3_i = sum_j w_j s_ij. Returns (R3 [G], max sigma).
  [paper-only: no public code; the weighting function is the paper's reading.]
  """
  s_GxL = np.exp(logp_GxL) if certainty == "prob" else np.asarray(logp_GxL)
  sigma_L = s_GxL.std(axis=0)
  z_L = sigma_L / temperature
  w_L = np.exp(z_L - z_L.max())
  w_L /= w_L.sum()
  return s_GxL @ w_L, float(sigma_L.max())
