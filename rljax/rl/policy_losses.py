"""Policy-gradient surrogates: PPO and the exploration-oriented variants.

Each function maps a `LossInputs` (current log-probs carrying the gradient,
behaviour log-probs, token advantages, the 0/1 loss mask, the off-policy mask and
a PRNG key) and its hyperparameters to (scalar loss, metrics). The
hyperparameters have no defaults here: they come from `LossConfig`, their one
source. Formulas follow docs/algorithms.md §1, §5-§7, §11 and §17 (verl 0.9.1
semantics, called without global batch info: statistics are over the arrays
passed in, i.e. the whole minibatch).

Axis letters: B rollouts, T completion tokens.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from rljax.rl.aggregation import aggregate, masked_mean

sg = jax.lax.stop_gradient


@flax.struct.dataclass
class LossInputs:
  """What every policy loss reads: [B, T] arrays, plus a key for losses that draw.

  Attributes:
    logp_BxT: log pi_theta(y_t) of the completion tokens (carries the gradient).
    old_logp_BxT: log pi_old(y_t), the behaviour policy's.
    adv_BxT: token advantages (a rollout's advantage broadcast over its tokens).
    mask_BxT: 0/1 loss mask (generated tokens up to EOS; interventions may drop some).
    offpolicy_BxT: 1 on demonstration tokens (RL-PLUS), else 0.
    rng: PRNG key for Clip-Cov's random token selection (None where no loss draws).
    weight_BxT: per-token weights of the policy term (the rollout correction's truncated
      importance weights, `rljax.rl.rollout_correction`); None = 1.
  """

  logp_BxT: jax.Array
  old_logp_BxT: jax.Array
  adv_BxT: jax.Array
  mask_BxT: jax.Array
  offpolicy_BxT: jax.Array | None = None
  rng: jax.Array | None = None
  weight_BxT: jax.Array | None = None


def _agg(x: LossInputs, loss_BxT, agg, norm_constant):
  """`aggregate` of the per-token loss, each token weighted by `x.weight_BxT` when set
  (verl's rollout importance weights multiply the per-token policy loss)."""
  if x.weight_BxT is not None:
    loss_BxT = loss_BxT * x.weight_BxT
  return aggregate(loss_BxT, x.mask_BxT, agg, norm_constant)


def abs0(x):
  """|x| whose derivative at x = 0 is 0 (jnp.abs has +1 there, torch 0): x * sign(x).

  An inert penalty (KL-Cov's |log r| on an unchanged token, the `abs` KL estimator at
  pi = pi_ref) then pushes nothing; elsewhere the gradient is sign(x), as for |x|.
  """
  return x * jnp.sign(x)


def _frac(x_BxT, mask_BxT):
  return masked_mean(x_BxT.astype(jnp.float32), mask_BxT)


def _dual_clip(loss_BxT, adv_BxT, mask_BxT, c, metrics):
  """Dual clip (Ye et al. 2020): for A < 0, loss = min(loss, -A c); c = None is off."""
  if c is None:
    return loss_BxT
  if c <= 1.0:
    raise ValueError(f"dual_clip_c must be > 1, got {c}")
  dual_BxT = -adv_BxT * c
  lower_BxT = (adv_BxT < 0) & (loss_BxT > dual_BxT)
  metrics["clipfrac_dual"] = _frac(lower_BxT, mask_BxT)
  return jnp.where(lower_BxT, dual_BxT, loss_BxT)


def ppo(x: LossInputs, *, agg, norm_constant, eps_low, eps_high, dual_clip_c):
  """PPO clipped surrogate with decoupled bounds and optional dual clip (verl `vanilla`).

  r = exp(clamp(logp - old_logp, -20, 20)); L1 = -A r; L2 = -A clip(r, 1-eps_low, 1+eps_high);
  L = max(L1, L2); for A < 0, L = min(L, -A c) (dual clip, Ye et al. 2020).
  Clip-higher (DAPO, arXiv 2503.14476) is eps_high > eps_low.
  """
  adv, mask = x.adv_BxT, x.mask_BxT
  log_ratio_BxT = jnp.clip(x.logp_BxT - x.old_logp_BxT, -20.0, 20.0)
  ratio_BxT = jnp.exp(log_ratio_BxT)
  l1_BxT = -adv * ratio_BxT
  l2_BxT = -adv * jnp.clip(ratio_BxT, 1.0 - eps_low, 1.0 + eps_high)
  # where(L2 > L1) rather than maximum: torch semantics at ties (docs/algorithms.md §1).
  clipped_BxT = l2_BxT > l1_BxT
  loss_BxT = jnp.where(clipped_BxT, l2_BxT, l1_BxT)
  metrics = {"clipfrac": _frac(clipped_BxT, mask),
             "clipfrac_high": _frac(clipped_BxT & (adv > 0), mask),
             "clipfrac_low": _frac(clipped_BxT & (adv < 0), mask),
             "ppo_kl": masked_mean(-log_ratio_BxT, mask)}
  loss_BxT = _dual_clip(loss_BxT, adv, mask, dual_clip_c, metrics)
  return _agg(x, loss_BxT, agg, norm_constant), metrics


def _select_by_rank(priority_BxT, n_select):
  """Mask of the `n_select` largest entries of `priority` (static shapes, traced count)."""
  flat = priority_BxT.reshape(-1)
  rank = jnp.argsort(jnp.argsort(-flat))
  return (rank < n_select).reshape(priority_BxT.shape)


def _token_cov(logp_BxT, adv_BxT, mask_BxT, eps):
  """Cov_i = (logp_i - mean logp)(A_i - mean A), token means over the mask (§4.1)."""
  n = mask_BxT.sum() + eps
  lp_BxT = sg(logp_BxT)
  return (lp_BxT - (lp_BxT * mask_BxT).sum() / n) * (adv_BxT - (adv_BxT * mask_BxT).sum() / n)


def clip_cov(x: LossInputs, *, agg, norm_constant, eps_low, eps_high, clip_cov_ratio,
             clip_cov_lb, clip_cov_ub):
  """Clip-Cov (Cui et al. 2025, arXiv 2505.22617; verl `compute_policy_loss_clip_cov`).

  PPO clipped loss (no ratio clamp, no dual clip); among valid tokens not already
  clipped with lb < Cov_i < ub, max(floor(ratio * N), 1) are drawn uniformly at
  random (from `x.rng`) and lose value and gradient; they stay in the denominator.
  The paper's recipe sets eps_low = eps_high = 1. clipfrac = fraction zeroed.
  """
  if x.rng is None:
    raise ValueError("policy loss 'clip_cov' needs a PRNG key: LossInputs(rng=...)")
  adv, mask = x.adv_BxT, x.mask_BxT
  log_ratio_BxT = x.logp_BxT - x.old_logp_BxT
  ratio_BxT = jnp.exp(log_ratio_BxT)
  l1_BxT = -adv * ratio_BxT
  l2_BxT = -adv * jnp.clip(ratio_BxT, 1.0 - eps_low, 1.0 + eps_high)
  valid_BxT = mask > 0
  clipped_BxT = (l2_BxT > l1_BxT) & valid_BxT
  cov_BxT = _token_cov(x.logp_BxT, adv, mask, 1e-8)
  eligible_BxT = valid_BxT & ~clipped_BxT & (cov_BxT > clip_cov_lb) & (cov_BxT < clip_cov_ub)
  clip_num = jnp.maximum(jnp.floor(clip_cov_ratio * mask.sum()), 1.0)
  n_select = jnp.minimum(clip_num, eligible_BxT.sum())
  u_BxT = jax.random.uniform(x.rng, x.logp_BxT.shape)
  selected_BxT = _select_by_rank(jnp.where(eligible_BxT, u_BxT, -1.0), n_select) & eligible_BxT
  loss_BxT = jnp.where(l2_BxT > l1_BxT, l2_BxT, l1_BxT) * (1.0 - selected_BxT)
  return _agg(x, loss_BxT, agg, norm_constant), {
      "clipfrac": _frac(selected_BxT, mask), "ppo_kl": masked_mean(-log_ratio_BxT, mask)}


def kl_cov(x: LossInputs, *, agg, norm_constant, kl_cov_ratio, kl_cov_coef):
  """KL-Cov (Cui et al. 2025; verl `compute_policy_loss_kl_cov`).

  Unclipped -A r for every token; the top max(1, floor(N * ratio)) valid tokens by
  Cov_i get + coef * |log r| (an L1 pull towards the behaviour policy). `kl_cov_ratio`
  is a fraction (the original fork's k_percent is in percent); coef 1 as in every
  published script (verl's config default is 0.1).
  """
  adv, mask = x.adv_BxT, x.mask_BxT
  log_ratio_BxT = x.logp_BxT - x.old_logp_BxT
  ratio_BxT = jnp.exp(log_ratio_BxT)
  valid_BxT = mask > 0
  cov_BxT = _token_cov(x.logp_BxT, adv, mask, 0.0)
  k = jnp.maximum(jnp.floor(mask.sum() * kl_cov_ratio), 1.0)
  selected_BxT = _select_by_rank(jnp.where(valid_BxT, cov_BxT, -jnp.inf), k) & valid_BxT
  loss_BxT = -adv * ratio_BxT + jnp.where(selected_BxT, kl_cov_coef * abs0(log_ratio_BxT), 0.0)
  return _agg(x, loss_BxT, agg, norm_constant), {
      "ppo_kl": masked_mean(jnp.abs(log_ratio_BxT), mask),
      "clipfrac": _frac(selected_BxT, mask)}


def gppo(x: LossInputs, *, agg, norm_constant, eps_low, eps_high, dual_clip_c, gppo_beta1,
         gppo_beta2, gppo_only_high):
  """GPPO (Klear-Reasoner, arXiv 2508.07629): clip-higher PPO that keeps clipped gradients.

  Tokens PPO would clip, low = (r < 1-eps_low) & (A < 0) and high = (r > 1+eps_high) & (A > 0),
  take -beta1 (1-eps_low) (r / sg(r)) A and -beta2 (1+eps_high) (r / sg(r)) A: the PPO value
  (times beta) with a bounded, non-zero gradient. `gppo_only_high` keeps the ordinary
  constant clip on the low side. Dual clip (A < 0) as in PPO. Written from the math with
  explicit masks (the reference code's `only_higher` path has a NameError). The paper
  uses eps_high = 0.28 (configs/interventions.py:method=gppo).
  """
  adv, mask = x.adv_BxT, x.mask_BxT
  log_ratio_BxT = jnp.clip(x.logp_BxT - x.old_logp_BxT, -20.0, 20.0)
  ratio_BxT = jnp.exp(log_ratio_BxT)
  one_BxT = jnp.exp(log_ratio_BxT - sg(log_ratio_BxT))  # value 1, gradient d log pi
  low_BxT = (ratio_BxT < 1.0 - eps_low) & (adv < 0)
  high_BxT = (ratio_BxT > 1.0 + eps_high) & (adv > 0)
  low_factor_BxT = sg(one_BxT) if gppo_only_high else gppo_beta1 * one_BxT
  loss_BxT = jnp.where(low_BxT, -(1.0 - eps_low) * low_factor_BxT * adv,
                       jnp.where(high_BxT, -gppo_beta2 * (1.0 + eps_high) * one_BxT * adv,
                                 -adv * ratio_BxT))
  metrics = {"clipfrac": _frac(low_BxT | high_BxT, mask), "clipfrac_high": _frac(high_BxT, mask),
             "clipfrac_low": _frac(low_BxT, mask), "ppo_kl": masked_mean(-log_ratio_BxT, mask)}
  loss_BxT = _dual_clip(loss_BxT, adv, mask, dual_clip_c, metrics)
  return _agg(x, loss_BxT, agg, norm_constant), metrics


def gspo(x: LossInputs, *, agg, norm_constant, eps_low, eps_high):
  """GSPO (Zheng et al. 2025, arXiv 2507.18071; verl `gspo`): clip the sequence ratio.

  s_i = exp(mean_t log r); per token log s_it = sg(log s_i) + logp - sg(logp), clamped <= 10
  (value s_i, gradient per token); PPO clip on s. The paper's eps are 3e-4 / 4e-4
  (configs/interventions.py:method=gspo).
  """
  adv, mask, logp = x.adv_BxT, x.mask_BxT, x.logp_BxT
  log_ratio_BxT = logp - x.old_logp_BxT
  n_Bx1 = jnp.maximum(mask.sum(-1, keepdims=True), 1.0)
  log_s_Bx1 = (log_ratio_BxT * mask).sum(-1, keepdims=True) / n_Bx1
  s_BxT = jnp.exp(jnp.minimum(sg(log_s_Bx1) + logp - sg(logp), 10.0))
  l1_BxT = -adv * s_BxT
  l2_BxT = -adv * jnp.clip(s_BxT, 1.0 - eps_low, 1.0 + eps_high)
  clipped_BxT = l2_BxT > l1_BxT
  return _agg(x, jnp.where(clipped_BxT, l2_BxT, l1_BxT), agg, norm_constant), {
      "clipfrac": _frac(clipped_BxT, mask), "ppo_kl": masked_mean(-log_ratio_BxT, mask)}


def cispo(x: LossInputs, *, agg, norm_constant, eps_low, eps_high):
  """CISPO (MiniMax-M1, arXiv 2506.13585): -sg(clip(r, 1-eps_low, 1+eps_high)) A logp.

  Truncated importance weights; no token's gradient is dropped (ScaleRL's loss).
  """
  log_ratio_BxT = jnp.clip(x.logp_BxT - x.old_logp_BxT, -20.0, 20.0)
  ratio_BxT = jnp.exp(log_ratio_BxT)
  weight_BxT = sg(jnp.clip(ratio_BxT, 1.0 - eps_low, 1.0 + eps_high))
  outside_BxT = (ratio_BxT < 1.0 - eps_low) | (ratio_BxT > 1.0 + eps_high)
  loss_BxT = -weight_BxT * x.adv_BxT * x.logp_BxT
  return _agg(x, loss_BxT, agg, norm_constant), {
      "clipfrac": _frac(outside_BxT, x.mask_BxT),
      "ppo_kl": masked_mean(-log_ratio_BxT, x.mask_BxT)}


def gmpo(x: LossInputs, *, agg, norm_constant, eps_low, eps_high):
  """GMPO (Zhao et al. 2025, arXiv 2507.20673; verl `geo_mean`): geometric-mean ratio.

  l' = sgn(A) min(sgn(A) l, sgn(A) clip(l, -eps_low, eps_high)) per token; per sequence
  ratio_b = exp(sum M l' / n_b), A_b = sum M A / n_b; loss = mean over all B rows of
  -A_b ratio_b (`agg` is ignored, as in verl). The paper's eps are 0.4 / 0.4.
  """
  del agg, norm_constant
  adv, mask = x.adv_BxT, x.mask_BxT
  log_ratio_BxT = x.logp_BxT - x.old_logp_BxT
  sign_BxT = jnp.sign(adv)
  clipped_BxT = jnp.clip(log_ratio_BxT, -eps_low, eps_high)
  l_prime_BxT = sign_BxT * jnp.minimum(sign_BxT * log_ratio_BxT, sign_BxT * clipped_BxT)
  n_B = mask.sum(-1) + 1e-8
  ratio_B = jnp.exp((l_prime_BxT * mask).sum(-1) / n_B)
  weighted_adv = adv if x.weight_BxT is None else adv * x.weight_BxT
  adv_B = (weighted_adv * mask).sum(-1) / n_B
  outside_BxT = (log_ratio_BxT < -eps_low) | (log_ratio_BxT > eps_high)
  return jnp.mean(-adv_B * ratio_B), {
      "clipfrac": _frac(outside_BxT & (adv > 0), mask),
      "clipfrac_lower": _frac(outside_BxT & (adv < 0), mask),
      "ppo_kl": masked_mean(-log_ratio_BxT, mask)}


def sapo(x: LossInputs, *, agg, norm_constant, tau_pos, tau_neg):
  """SAPO (soft adaptive policy optimisation; verl `sapo`): a sigmoid gate instead of a clip.

  f(r) = sigmoid(tau (r - 1)) 4 / tau with tau = tau_pos if A > 0 else tau_neg; loss -f(r) A.
  At r = 1 the gradient w.r.t. logp is -A. Always seq-mean-token-mean (verl).
  """
  del agg
  adv = x.adv_BxT
  log_ratio_BxT = jnp.clip(x.logp_BxT - x.old_logp_BxT, -20.0, 20.0)
  ratio_BxT = jnp.exp(log_ratio_BxT)
  tau_BxT = jnp.where(adv > 0, tau_pos, tau_neg)
  loss_BxT = -jax.nn.sigmoid(tau_BxT * (ratio_BxT - 1.0)) * 4.0 / tau_BxT * adv
  return _agg(x, loss_BxT, "seq-mean-token-mean", norm_constant), {
      "ppo_kl": masked_mean(-log_ratio_BxT, x.mask_BxT)}


def gpg(x: LossInputs, *, agg, norm_constant):
  """GPG (Chu et al. 2025, arXiv 2504.02546): plain policy gradient -A logp, no ratio."""
  return _agg(x, -x.adv_BxT * x.logp_BxT, agg, norm_constant), {}


def rlplus(x: LossInputs, *, agg, norm_constant, eps_low, eps_high, rlplus_gamma,
           rlplus_clip, rlplus_seq_sum):
  """RL-PLUS (Dong et al. 2025, arXiv 2508.00222; `rlplus_core_alg.py`).

  On-policy tokens: -A r (clipped to [1-eps_low, max(1+eps_high)] only when
  `rlplus_clip`; the published script removes the clip). Off-policy (demonstration)
  tokens, `x.offpolicy_BxT` = 1: multiple importance sampling with the unknown
  demonstrator approximated as pi_w = (pi_old + 1) / 2, so
  r_MIS = pi_theta / (0.75 pi_old + 0.25), and the exploration-based advantage
  A_c = A (1 - sg(pi_theta))^gamma; loss -r_MIS A_c. With `rlplus_seq_sum` (the
  reference script's aggregation) each sequence's token losses are summed and divided
  by T, then averaged over sequences (seq-mean-token-sum-norm); else `agg`.
  """
  if x.offpolicy_BxT is None:
    raise ValueError("policy loss 'rlplus' needs LossInputs(offpolicy_BxT=...) "
                     "(1 on demonstration tokens)")
  adv, mask, offpolicy = x.adv_BxT, x.mask_BxT, x.offpolicy_BxT
  log_ratio_BxT = jnp.clip(x.logp_BxT - x.old_logp_BxT, -20.0, 20.0)
  ratio_BxT = jnp.exp(log_ratio_BxT)
  on_BxT = -adv * ratio_BxT
  if rlplus_clip:
    on_BxT = jnp.maximum(on_BxT, -adv * jnp.clip(ratio_BxT, 1.0 - eps_low, 1.0 + eps_high))
  p_theta_BxT = jnp.exp(x.logp_BxT)
  r_mis_BxT = p_theta_BxT / (0.75 * jnp.exp(x.old_logp_BxT) + 0.25)
  off_BxT = -r_mis_BxT * adv * (1.0 - sg(p_theta_BxT)) ** rlplus_gamma
  off_mask_BxT = offpolicy * mask
  loss_BxT = jnp.where(off_mask_BxT > 0, off_BxT, on_BxT)
  agg = "seq-mean-token-sum-norm" if rlplus_seq_sum else agg
  return _agg(x, loss_BxT, agg, norm_constant), {
      "ppo_kl": masked_mean(-log_ratio_BxT, mask * (1.0 - offpolicy)),
      "offpolicy_frac": masked_mean(offpolicy, mask)}
