"""Policy-gradient surrogates: PPO and the exploration-oriented variants.

Each function maps [B, T] `logp` (current policy, carries the gradient),
`old_logp` (behaviour policy), `advantages` (broadcast over tokens) and 0/1
`mask` to (scalar loss, metrics). Formulas and defaults follow algorithms.md
§1, §5-§7 and §17 (verl 0.9.1 semantics, called without global batch info:
statistics are over the arrays passed in, i.e. the whole minibatch).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rljax.rl.aggregation import aggregate, masked_mean

sg = jax.lax.stop_gradient


def _frac(x, mask):
  return masked_mean(x.astype(jnp.float32), mask)


def _dual_clip(loss, advantages, mask, c, metrics):
  """Dual clip (Ye et al. 2020): for A < 0, loss = min(loss, -A c); c = None is off."""
  if c is None:
    return loss
  if c <= 1.0:
    raise ValueError(f"dual_clip_c must be > 1, got {c}")
  dual = -advantages * c
  lower = (advantages < 0) & (loss > dual)
  metrics["clipfrac_dual"] = _frac(lower, mask)
  return jnp.where(lower, dual, loss)


def ppo(logp, old_logp, advantages, mask, *, agg="token-mean", norm_constant=None,
        eps_low: float = 0.2, eps_high: float = 0.2, dual_clip_c: float | None = None):
  """PPO clipped surrogate with decoupled bounds and optional dual clip (verl `vanilla`).

  r = exp(clamp(logp - old_logp, -20, 20)); L1 = -A r; L2 = -A clip(r, 1-eps_low, 1+eps_high);
  L = max(L1, L2); for A < 0, L = min(L, -A c) (dual clip, Ye et al. 2020).
  Clip-higher (DAPO, arXiv 2503.14476) is eps_high > eps_low.
  """
  log_ratio = jnp.clip(logp - old_logp, -20.0, 20.0)
  ratio = jnp.exp(log_ratio)
  l1 = -advantages * ratio
  l2 = -advantages * jnp.clip(ratio, 1.0 - eps_low, 1.0 + eps_high)
  # where(L2 > L1) rather than maximum: torch semantics at ties (algorithms.md §1).
  clipped = l2 > l1
  loss = jnp.where(clipped, l2, l1)
  metrics = {"clipfrac": _frac(clipped, mask),
             "clipfrac_high": _frac(clipped & (advantages > 0), mask),
             "clipfrac_low": _frac(clipped & (advantages < 0), mask),
             "ppo_kl": masked_mean(-log_ratio, mask)}
  loss = _dual_clip(loss, advantages, mask, dual_clip_c, metrics)
  return aggregate(loss, mask, agg, norm_constant), metrics


def _select_by_rank(priority, n_select):
  """Mask of the `n_select` largest entries of `priority` (static shapes, traced count)."""
  flat = priority.reshape(-1)
  rank = jnp.argsort(jnp.argsort(-flat))
  return (rank < n_select).reshape(priority.shape)


def _token_cov(logp, advantages, mask, eps):
  """Cov_i = (logp_i - mean logp)(A_i - mean A), token means over the mask (§4.1)."""
  n = mask.sum() + eps
  lp = sg(logp)
  return (lp - (lp * mask).sum() / n) * (advantages - (advantages * mask).sum() / n)


def clip_cov(logp, old_logp, advantages, mask, *, agg="token-mean", norm_constant=None,
             rng=None, eps_low: float = 0.2, eps_high: float = 0.2,
             clip_cov_ratio: float = 2e-4, clip_cov_lb: float = 1.0, clip_cov_ub: float = 5.0):
  """Clip-Cov (Cui et al. 2025, arXiv 2505.22617; verl `compute_policy_loss_clip_cov`).

  PPO clipped loss (no ratio clamp, no dual clip); among valid tokens not already
  clipped with lb < Cov_i < ub, max(floor(ratio * N), 1) are drawn uniformly at
  random (from `rng`) and lose value and gradient; they stay in the denominator.
  The paper's recipe sets eps_low = eps_high = 1. clipfrac = fraction zeroed.
  """
  if rng is None:
    raise ValueError("policy loss 'clip_cov' needs a PRNG key: pass rng=")
  log_ratio = logp - old_logp
  ratio = jnp.exp(log_ratio)
  l1 = -advantages * ratio
  l2 = -advantages * jnp.clip(ratio, 1.0 - eps_low, 1.0 + eps_high)
  valid = mask > 0
  clipped = (l2 > l1) & valid
  cov = _token_cov(logp, advantages, mask, 1e-8)
  eligible = valid & ~clipped & (cov > clip_cov_lb) & (cov < clip_cov_ub)
  clip_num = jnp.maximum(jnp.floor(clip_cov_ratio * mask.sum()), 1.0)
  n_select = jnp.minimum(clip_num, eligible.sum())
  u = jax.random.uniform(rng, logp.shape)
  selected = _select_by_rank(jnp.where(eligible, u, -1.0), n_select) & eligible
  loss = jnp.where(l2 > l1, l2, l1) * (1.0 - selected)
  return aggregate(loss, mask, agg, norm_constant), {
      "clipfrac": _frac(selected, mask), "ppo_kl": masked_mean(-log_ratio, mask)}


def kl_cov(logp, old_logp, advantages, mask, *, agg="token-mean", norm_constant=None,
           kl_cov_ratio: float = 2e-4, kl_cov_coef: float = 1.0):
  """KL-Cov (Cui et al. 2025; verl `compute_policy_loss_kl_cov`).

  Unclipped -A r for every token; the top max(1, floor(N * ratio)) valid tokens by
  Cov_i get + coef * |log r| (an L1 pull towards the behaviour policy). `kl_cov_ratio`
  is a fraction (the original fork's k_percent is in percent); coef 1 as in every
  published script (verl's config default is 0.1).
  """
  log_ratio = logp - old_logp
  ratio = jnp.exp(log_ratio)
  valid = mask > 0
  cov = _token_cov(logp, advantages, mask, 0.0)
  k = jnp.maximum(jnp.floor(mask.sum() * kl_cov_ratio), 1.0)
  selected = _select_by_rank(jnp.where(valid, cov, -jnp.inf), k) & valid
  loss = -advantages * ratio + jnp.where(selected, kl_cov_coef * jnp.abs(log_ratio), 0.0)
  return aggregate(loss, mask, agg, norm_constant), {
      "ppo_kl": masked_mean(jnp.abs(log_ratio), mask), "clipfrac": _frac(selected, mask)}


def gppo(logp, old_logp, advantages, mask, *, agg="token-mean", norm_constant=None,
         eps_low: float = 0.2, eps_high: float = 0.28, dual_clip_c: float | None = None,
         gppo_beta1: float = 1.0, gppo_beta2: float = 1.0, gppo_only_high: bool = False):
  """GPPO (Klear-Reasoner, arXiv 2508.07629): clip-higher PPO that keeps clipped gradients.

  Tokens PPO would clip, low = (r < 1-eps_low) & (A < 0) and high = (r > 1+eps_high) & (A > 0),
  take -beta1 (1-eps_low) (r / sg(r)) A and -beta2 (1+eps_high) (r / sg(r)) A: the PPO value
  (times beta) with a bounded, non-zero gradient. `gppo_only_high` keeps the ordinary
  constant clip on the low side. Dual clip (A < 0) as in PPO. Written from the math with
  explicit masks (the reference code's `only_higher` path has a NameError).
  """
  log_ratio = jnp.clip(logp - old_logp, -20.0, 20.0)
  ratio = jnp.exp(log_ratio)
  one = jnp.exp(log_ratio - sg(log_ratio))  # value 1, gradient d log pi
  low = (ratio < 1.0 - eps_low) & (advantages < 0)
  high = (ratio > 1.0 + eps_high) & (advantages > 0)
  low_factor = sg(one) if gppo_only_high else gppo_beta1 * one
  loss = jnp.where(low, -(1.0 - eps_low) * low_factor * advantages,
                   jnp.where(high, -gppo_beta2 * (1.0 + eps_high) * one * advantages,
                             -advantages * ratio))
  metrics = {"clipfrac": _frac(low | high, mask), "clipfrac_high": _frac(high, mask),
             "clipfrac_low": _frac(low, mask), "ppo_kl": masked_mean(-log_ratio, mask)}
  loss = _dual_clip(loss, advantages, mask, dual_clip_c, metrics)
  return aggregate(loss, mask, agg, norm_constant), metrics


def gspo(logp, old_logp, advantages, mask, *, agg="token-mean", norm_constant=None,
         eps_low: float = 3e-4, eps_high: float = 4e-4):
  """GSPO (Zheng et al. 2025, arXiv 2507.18071; verl `gspo`): clip the sequence ratio.

  s_i = exp(mean_t log r); per token log s_it = sg(log s_i) + logp - sg(logp), clamped <= 10
  (value s_i, gradient per token); PPO clip on s with the paper's eps 3e-4 / 4e-4.
  """
  log_ratio = logp - old_logp
  n = jnp.maximum(mask.sum(-1, keepdims=True), 1.0)
  log_s = (log_ratio * mask).sum(-1, keepdims=True) / n
  s = jnp.exp(jnp.minimum(sg(log_s) + logp - sg(logp), 10.0))
  l1 = -advantages * s
  l2 = -advantages * jnp.clip(s, 1.0 - eps_low, 1.0 + eps_high)
  clipped = l2 > l1
  return aggregate(jnp.where(clipped, l2, l1), mask, agg, norm_constant), {
      "clipfrac": _frac(clipped, mask), "ppo_kl": masked_mean(-log_ratio, mask)}


def cispo(logp, old_logp, advantages, mask, *, agg="token-mean", norm_constant=None,
          eps_low: float = 0.2, eps_high: float = 0.2):
  """CISPO (MiniMax-M1, arXiv 2506.13585): -sg(clip(r, 1-eps_low, 1+eps_high)) A logp.

  Truncated importance weights; no token's gradient is dropped (ScaleRL's loss).
  """
  log_ratio = jnp.clip(logp - old_logp, -20.0, 20.0)
  ratio = jnp.exp(log_ratio)
  weight = sg(jnp.clip(ratio, 1.0 - eps_low, 1.0 + eps_high))
  outside = (ratio < 1.0 - eps_low) | (ratio > 1.0 + eps_high)
  return aggregate(-weight * advantages * logp, mask, agg, norm_constant), {
      "clipfrac": _frac(outside, mask), "ppo_kl": masked_mean(-log_ratio, mask)}


def gmpo(logp, old_logp, advantages, mask, *, agg="token-mean", norm_constant=None,
         eps_low: float = 0.4, eps_high: float = 0.4):
  """GMPO (Zhao et al. 2025, arXiv 2507.20673; verl `geo_mean`): geometric-mean ratio.

  l' = sgn(A) min(sgn(A) l, sgn(A) clip(l, -eps_low, eps_high)) per token; per sequence
  ratio_b = exp(sum M l' / n_b), A_b = sum M A / n_b; loss = mean over all B rows of
  -A_b ratio_b (`agg` is ignored, as in verl).
  """
  del agg, norm_constant
  log_ratio = logp - old_logp
  sign = jnp.sign(advantages)
  clipped = jnp.clip(log_ratio, -eps_low, eps_high)
  l_prime = sign * jnp.minimum(sign * log_ratio, sign * clipped)
  n = mask.sum(-1) + 1e-8
  ratio_b = jnp.exp((l_prime * mask).sum(-1) / n)
  adv_b = (advantages * mask).sum(-1) / n
  outside = (log_ratio < -eps_low) | (log_ratio > eps_high)
  return jnp.mean(-adv_b * ratio_b), {
      "clipfrac": _frac(outside & (advantages > 0), mask),
      "clipfrac_lower": _frac(outside & (advantages < 0), mask),
      "ppo_kl": masked_mean(-log_ratio, mask)}


def sapo(logp, old_logp, advantages, mask, *, agg="token-mean", norm_constant=None,
         tau_pos: float = 1.0, tau_neg: float = 1.05):
  """SAPO (soft adaptive policy optimisation; verl `sapo`): a sigmoid gate instead of a clip.

  f(r) = sigmoid(tau (r - 1)) 4 / tau with tau = tau_pos if A > 0 else tau_neg; loss -f(r) A.
  At r = 1 the gradient w.r.t. logp is -A. Always seq-mean-token-mean (verl).
  """
  del agg
  log_ratio = jnp.clip(logp - old_logp, -20.0, 20.0)
  ratio = jnp.exp(log_ratio)
  tau = jnp.where(advantages > 0, tau_pos, tau_neg)
  loss = -jax.nn.sigmoid(tau * (ratio - 1.0)) * 4.0 / tau * advantages
  return aggregate(loss, mask, "seq-mean-token-mean", norm_constant), {
      "ppo_kl": masked_mean(-log_ratio, mask)}


def gpg(logp, old_logp, advantages, mask, *, agg="token-mean", norm_constant=None):
  """GPG (Chu et al. 2025, arXiv 2504.02546): plain policy gradient -A logp, no ratio."""
  del old_logp
  return aggregate(-advantages * logp, mask, agg, norm_constant), {}


def rlplus(logp, old_logp, advantages, mask, *, agg="token-mean", norm_constant=None,
           offpolicy_mask=None, eps_low: float = 0.2, eps_high: float = 0.2,
           rlplus_gamma: float = 0.5, rlplus_clip: bool = False):
  """RL-PLUS (Dong et al. 2025, arXiv 2508.00222; `rlplus_core_alg.py`).

  On-policy tokens: -A r (clipped to [1-eps_low, max(1+eps_high)] only when
  `rlplus_clip`; the published script removes the clip). Off-policy (demonstration)
  tokens, `offpolicy_mask` = 1: multiple importance sampling with the unknown
  demonstrator approximated as pi_w = (pi_old + 1) / 2, so
  r_MIS = pi_theta / (0.75 pi_old + 0.25), and the exploration-based advantage
  A_c = A (1 - sg(pi_theta))^gamma; loss -r_MIS A_c.
  """
  if offpolicy_mask is None:
    raise ValueError("policy loss 'rlplus' needs offpolicy_mask= (1 on demonstration tokens)")
  log_ratio = jnp.clip(logp - old_logp, -20.0, 20.0)
  ratio = jnp.exp(log_ratio)
  on = -advantages * ratio
  if rlplus_clip:
    on = jnp.maximum(on, -advantages * jnp.clip(ratio, 1.0 - eps_low, 1.0 + eps_high))
  p_theta = jnp.exp(logp)
  r_mis = p_theta / (0.75 * jnp.exp(old_logp) + 0.25)
  off = -r_mis * advantages * (1.0 - sg(p_theta)) ** rlplus_gamma
  off_mask = offpolicy_mask * mask
  loss = jnp.where(off_mask > 0, off, on)
  return aggregate(loss, mask, agg, norm_constant), {
      "ppo_kl": masked_mean(-log_ratio, mask * (1.0 - offpolicy_mask)),
      "offpolicy_frac": masked_mean(offpolicy_mask, mask)}
