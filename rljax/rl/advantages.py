"""Group-relative advantage estimators (docs/algorithms.md §0.3, §2).

Rewards arrive as a flat vector whose groups are contiguous blocks of
`group_size` (row q*G + g is sample g of prompt q). Each estimator returns one
scalar advantage per rollout; the trainer broadcasts it over tokens.
"""

from __future__ import annotations

import inspect
from typing import NamedTuple

import jax
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


def reinforce_pp_baseline(rewards_B, group_size: int, lengths_B=None, eps: float = 1e-8):
  """REINFORCE++-baseline (verl): subtract the group mean, then whiten over the batch.

  Whitening is over all valid tokens (each rollout weighted by its token count
  `lengths_B`; equal weights when None) with the unbiased variance:
  A = (x - mean) / sqrt(var + eps), x = r - mean_g.
  """
  r_QxG = _groups(rewards_B, group_size)
  x_B = (r_QxG - r_QxG.mean(axis=1, keepdims=True)).reshape(-1)
  w_B = jnp.ones_like(x_B) if lengths_B is None else jnp.asarray(lengths_B, jnp.float32)
  n = w_B.sum()
  mean = (w_B * x_B).sum() / n
  var = (w_B * jnp.square(x_B - mean)).sum() / jnp.maximum(n - 1.0, 1.0)
  return (x_B - mean) * jax.lax.rsqrt(var + eps)


def _comb_ratio(m, n, k: int):
  """C(m, k) / C(n, k) = prod_{i<k} (m - i) / (n - i); 0 when m < k (exact in float32)."""
  i = jnp.arange(k, dtype=jnp.float32)
  m = jnp.asarray(m, jnp.float32)[..., None]
  return jnp.prod(jnp.maximum(m - i, 0.0) / (n - i), axis=-1)


def passk(rewards_B, group_size: int, k: int, correct_B=None):
  """Pass@k training, analytic advantages (Chen et al. 2025, arXiv 2508.10751).

  Binary rewards, N = G rollouts, N_neg wrong: R = 1 - C(N_neg, k) / C(N, k),
  sigma = sqrt(R (1 - R)); A_pos = (1 - R) / (sigma + 1e-6),
  A_neg = (1 - R - C(N_neg - 1, k - 1) / C(N - 1, k - 1)) / (sigma + 1e-6).
  N_neg < k gives R = 1 and all-zero advantages. Written with explicit masks
  (the reference's chained np.where can overwrite A_pos when it is 0). Correctness is
  the verifier's verdict `correct_B` when given (a shaped reward, e.g. a correct answer
  with an overlong penalty, is still correct), else reward > 0.5.
  """
  if not 1 <= k <= group_size:
    raise ValueError(f"passk needs 1 <= k <= group_size, got k={k}, group_size={group_size}")
  r_QxG = _groups(rewards_B, group_size)
  pos_QxG = r_QxG > 0.5 if correct_B is None else _groups(correct_B, group_size) > 0
  n = group_size
  n_neg = (~pos_QxG).sum(axis=1, keepdims=True)
  mean = 1.0 - _comb_ratio(n_neg, n, k)
  std = jnp.sqrt(jnp.maximum(mean * (1.0 - mean), 0.0))
  a_pos = (1.0 - mean) / (std + 1e-6)
  a_neg = (1.0 - mean - _comb_ratio(n_neg - 1, n - 1, k - 1)) / (std + 1e-6)
  return jnp.where(pos_QxG, a_pos, a_neg).reshape(-1)


def grpo_passk(rewards_B, group_size: int, norm_by_std: bool = False, eps: float = 1e-6):
  """Best-of-group advantage (Tang et al. 2025, arXiv 2503.19595; verl `grpo_passk`).

  Only the best rollout of a group gets r_max - r_second (divided by std_g + eps,
  ddof=1, when `norm_by_std`); ties at the top give every rollout 0.
  """
  if group_size < 2:
    raise ValueError("grpo_passk needs group_size >= 2")
  r_QxG = _groups(rewards_B, group_size)
  top2 = jax.lax.top_k(r_QxG, 2)[0]
  gap = top2[:, 0] - top2[:, 1]
  if norm_by_std:
    gap = gap / (r_QxG.std(axis=1, ddof=1) + eps)
  best = jnp.argmax(r_QxG, axis=1)
  onehot = jax.nn.one_hot(best, group_size, dtype=jnp.float32)
  return (onehot * gap[:, None]).reshape(-1)


def gpg(rewards_B, group_size: int):
  """GPG (arXiv 2504.02546; verl `gpg`): alpha (r - mean_g), alpha = B / max(#nonzero r, 1)."""
  r_QxG = _groups(rewards_B, group_size)
  alpha = r_QxG.size / jnp.maximum(jnp.count_nonzero(r_QxG), 1)
  return (alpha * (r_QxG - r_QxG.mean(axis=1, keepdims=True))).reshape(-1)


def rlplus(rewards_B, group_size: int, offpolicy_B=None, use_std: bool = False,
           eps: float = 1e-6):
  """RL-PLUS split advantage (`compute_grpo_outcome_advantage_split`).

  The group mean (and std, when `use_std`; set to 1 when 0) is taken over the
  on-policy rollouts only and applied to every member, demonstrations included.
  The published script uses no std: A = r - mean_on-policy.
  """
  r_QxG = _groups(rewards_B, group_size)
  off = jnp.zeros_like(r_QxG) if offpolicy_B is None else jnp.asarray(
      offpolicy_B, jnp.float32).reshape(r_QxG.shape)
  on = 1.0 - off
  n_on = jnp.maximum(on.sum(1, keepdims=True), 1.0)
  mean = (r_QxG * on).sum(1, keepdims=True) / n_on
  adv = r_QxG - mean
  if use_std:
    var = (jnp.square(r_QxG - mean) * on).sum(1, keepdims=True) / jnp.maximum(n_on - 1.0, 1.0)
    std = jnp.sqrt(var)
    adv = adv / (jnp.where(std == 0, 1.0, std) + eps)
  return adv.reshape(-1)


ESTIMATORS = {"grpo": grpo, "drgrpo": drgrpo, "rloo": rloo,
              "reinforce_pp_baseline": reinforce_pp_baseline, "passk": passk,
              "grpo_passk": grpo_passk, "gpg": gpg, "rlplus": rlplus}


# What each estimator reads besides the rewards and the group size, from the RL config
# (`passk_k`, `grpo_passk_norm`) and the step's `StepInputs`; estimators not listed
# read nothing.
ESTIMATOR_INPUTS = {
    "passk": lambda cfg, s: {"k": cfg.passk_k, "correct_B": s.correct_B},
    "grpo_passk": lambda cfg, s: {"norm_by_std": cfg.grpo_passk_norm},
    "reinforce_pp_baseline": lambda cfg, s: {"lengths_B": s.lengths_B},
    "rlplus": lambda cfg, s: {"offpolicy_B": s.offpolicy_B},
}


class StepInputs(NamedTuple):
  """Per-rollout facts an estimator may read: lengths, demonstration rows, the verdict."""

  lengths_B: object
  offpolicy_B: object
  correct_B: object


def estimator_inputs(name: str, rl_cfg, step: StepInputs) -> dict:
  """Keyword arguments of `compute(name, ...)` for a step."""
  if name not in ESTIMATORS:
    raise ValueError(f"Unknown advantage estimator {name!r}; valid: {sorted(ESTIMATORS)}")
  inputs = ESTIMATOR_INPUTS.get(name)
  return inputs(rl_cfg, step) if inputs else {}


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
