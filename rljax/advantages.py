"""Group-relative advantage estimators (algorithms.md §0.3, §2).

Rewards arrive as a flat vector whose groups are contiguous blocks of
`group_size` (row q*G + g is sample g of prompt q). Each estimator returns one
scalar advantage per rollout; the trainer broadcasts it over tokens.
"""

from __future__ import annotations

import inspect

import jax.numpy as jnp

# A group's std below this counts as zero variance: its advantages are set to
# exactly 0 so float32 residues of r - mean are not blown up by 1/(std + eps).
_ZERO_STD = 1e-6


def _groups(rewards_B, group_size: int):
  rewards_B = jnp.asarray(rewards_B, jnp.float32)
  if rewards_B.ndim != 1 or rewards_B.shape[0] % group_size:
    raise ValueError(
        f"rewards must be a flat vector whose length is a multiple of "
        f"group_size={group_size}; got shape {rewards_B.shape}")
  return rewards_B.reshape(-1, group_size)


def grpo(rewards_B, group_size: int, eps: float = 1e-6):
  """GRPO: A_i = (r_i - mean_g) / (std_g + eps), std with Bessel's correction (ddof=1).

  DeepSeekMath (arXiv 2402.03300) eq. 3, as verl `compute_grpo_outcome_advantage`.
  A singleton group has mean 0 and std 1 (verl), so A = r / (1 + eps).
  """
  r_QxG = _groups(rewards_B, group_size)
  if group_size == 1:
    return (r_QxG / (1.0 + eps)).reshape(-1)
  mean = r_QxG.mean(axis=1, keepdims=True)
  std = r_QxG.std(axis=1, ddof=1, keepdims=True)
  adv = (r_QxG - mean) / (std + eps)
  return jnp.where(std < _ZERO_STD, 0.0, adv).reshape(-1)


def drgrpo(rewards_B, group_size: int):
  """Dr. GRPO (arXiv 2503.20783): A_i = r_i - mean_g, no std normalisation."""
  r_QxG = _groups(rewards_B, group_size)
  if group_size == 1:
    return r_QxG.reshape(-1)
  return (r_QxG - r_QxG.mean(axis=1, keepdims=True)).reshape(-1)


def rloo(rewards_B, group_size: int):
  """RLOO leave-one-out baseline: A_i = (G r_i - sum_j r_j) / (G - 1); G=1 keeps r."""
  r_QxG = _groups(rewards_B, group_size)
  if group_size == 1:
    return r_QxG.reshape(-1)
  g = group_size
  return (r_QxG * g / (g - 1) - r_QxG.mean(axis=1, keepdims=True) * g / (g - 1)).reshape(-1)


ESTIMATORS = {"grpo": grpo, "drgrpo": drgrpo, "rloo": rloo}


def compute(name: str, rewards_B, group_size: int, **hparams):
  """Advantages [B] from the estimator `name` (see `ESTIMATORS`)."""
  if name not in ESTIMATORS:
    raise ValueError(f"Unknown advantage estimator {name!r}; valid: {sorted(ESTIMATORS)}")
  fn = ESTIMATORS[name]
  valid = [p for p in inspect.signature(fn).parameters if p not in ("rewards_B", "group_size")]
  unknown = sorted(set(hparams) - set(valid))
  if unknown:
    raise ValueError(f"Unknown hyperparameters {unknown} for advantage estimator "
                     f"{name!r}; valid: {valid}")
  return fn(rewards_B, group_size, **hparams)
