"""Optional correction for the sampler / trainer mismatch (`rl.rollout_correction`).

The old log-probs of the importance ratio are the training forward's under the
pre-update parameters (verl, TRL), so the ratio compares like with like. The
sampler draws from another distribution: its truncated, renormalised one (top-k /
top-p) through the KV-cache decode path, in the model's dtype. Its log-probs are
kept for the mismatch metric and for these corrections (verl's rollout correction,
TRL's `vllm_importance_sampling_*`), with rho_t = pi_train(y_t) / pi_sampler(y_t):

* none: no correction.
* token_tis: truncated importance sampling, each token's policy loss times
  min(rho_t, cap) (Yao et al. 2025, "Your efficient RL framework secretly brings you
  off-policy RL training").
* seq_mask: drop a sequence from the loss when its geometric-mean ratio
  exp(mean_t log rho_t) is outside [1/cap, cap].

Axis letters: B rollouts, T completion tokens.
"""

from __future__ import annotations

import numpy as np


def _none(log_rho_BxT, mask_BxT, cap):
  del cap
  return np.ones_like(log_rho_BxT, np.float32), np.ones(len(mask_BxT), np.float32)


def _token_tis(log_rho_BxT, mask_BxT, cap):
  weight_BxT = np.minimum(np.exp(log_rho_BxT), cap) * mask_BxT
  return weight_BxT.astype(np.float32), np.ones(len(mask_BxT), np.float32)


def _seq_mask(log_rho_BxT, mask_BxT, cap):
  n_B = np.maximum(mask_BxT.sum(1), 1.0)
  mean_log_rho_B = (log_rho_BxT * mask_BxT).sum(1) / n_B
  keep_B = np.abs(mean_log_rho_B) <= np.log(cap)
  return np.ones_like(log_rho_BxT, np.float32), keep_B.astype(np.float32)


# rl.rollout_correction -> (log rho [B, T], mask, cap) -> (token weights, rows kept [B]).
CORRECTIONS = {"none": _none, "token_tis": _token_tis, "seq_mask": _seq_mask}


def correct(mode: str, sampler_logp_BxT, trainer_logp_BxT, mask_BxT, cap: float):
  """(token weights [B, T], rows kept [B], metrics) of correction `mode`."""
  if mode not in CORRECTIONS:
    raise ValueError(f"Unknown rollout correction {mode!r}; valid: {sorted(CORRECTIONS)}")
  mask_BxT = np.asarray(mask_BxT, np.float32)
  log_rho_BxT = (np.asarray(trainer_logp_BxT) - np.asarray(sampler_logp_BxT)) * mask_BxT
  weight_BxT, keep_B = CORRECTIONS[mode](log_rho_BxT, mask_BxT, cap)
  n = max(float(mask_BxT.sum()), 1.0)
  return weight_BxT, keep_B, {
      "rollout_correction/weight_mean": float((weight_BxT * mask_BxT).sum() / n),
      "rollout_correction/masked_frac": float(1.0 - keep_B.mean())}


def mismatch(sampler_logp_BxT, trainer_logp_BxT, mask_BxT) -> dict:
  """|sampler log-prob - trainer log-prob| on the sampled tokens: mean and max."""
  m = np.asarray(mask_BxT) > 0
  if not m.any():
    return {"mismatch/logp_abs_mean": 0.0, "mismatch/logp_abs_max": 0.0}
  diff = np.abs(np.asarray(sampler_logp_BxT) - np.asarray(trainer_logp_BxT))[m]
  return {"mismatch/logp_abs_mean": float(diff.mean()),
          "mismatch/logp_abs_max": float(diff.max())}
