"""Policy losses, KL estimators, aggregation modes and the composed GRPO objective.

All functions take [B, T] float arrays (B rollouts, T completion tokens) and a
0/1 `mask` (generated tokens up to and including EOS). Formulas follow
algorithms.md §0.2 (aggregation), §0.4 (KL), §0.5 (entropy) and §1 (PPO/GRPO).
"""

from __future__ import annotations

import dataclasses
import inspect

import jax
import jax.numpy as jnp

sg = jax.lax.stop_gradient

AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum",
             "seq-mean-token-sum-norm")


def aggregate(loss_BxT, mask_BxT, mode: str, norm_constant: float | None = None):
  """Reduces per-token values to a scalar (verl 0.9.1 `agg_loss`, called locally).

  token-mean:              sum(M L) / sum(M)
  seq-mean-token-mean:     mean over non-empty rows of sum_t(M L) / n_b
  seq-mean-token-sum:      mean over non-empty rows of sum_t(M L)
  seq-mean-token-sum-norm: mean over non-empty rows of sum_t(M L), / norm_constant
                           (default the padded length T; Dr. GRPO wants a constant).
  Empty denominators are floored at 1 so an all-masked batch gives 0, not NaN.
  """
  mask = mask_BxT.astype(jnp.float32)
  masked = loss_BxT * mask
  n_tokens_B = mask.sum(axis=-1)
  n_seqs = jnp.maximum((n_tokens_B > 0).sum(), 1)
  if mode == "token-mean":
    return masked.sum() / jnp.maximum(mask.sum(), 1.0)
  if mode == "seq-mean-token-mean":
    return (masked.sum(-1) / (n_tokens_B + 1e-8)).sum() / n_seqs
  if mode == "seq-mean-token-sum":
    return masked.sum() / n_seqs
  if mode == "seq-mean-token-sum-norm":
    norm = loss_BxT.shape[-1] if norm_constant is None else norm_constant
    return masked.sum() / n_seqs / norm
  raise ValueError(f"Unknown aggregation mode {mode!r}; valid: {list(AGG_MODES)}")


def masked_mean(x_BxT, mask_BxT):
  """Token mean over the mask, as verl's metrics compute it (sum M + 1e-8)."""
  return (x_BxT * mask_BxT).sum() / (mask_BxT.sum() + 1e-8)


def _kl_base(delta, kind):
  if kind == "k1":
    return delta
  if kind == "abs":
    return jnp.abs(delta)
  if kind == "k2":
    return 0.5 * jnp.square(delta)
  if kind == "k3":
    # verl low_var_kl: clamp -delta to [-20, 20] before exp, the result to [-10, 10].
    neg = jnp.clip(-delta, -20.0, 20.0)
    return jnp.clip(jnp.exp(neg) - 1.0 - neg, -10.0, 10.0)
  raise ValueError(f"Unknown KL estimator {kind!r}; valid: {list(KL_KINDS)}")


KL_KINDS = ("k1", "abs", "k2", "k3", "k1+", "k3+")


def kl_penalty(logp, ref_logp, kind: str):
  """Per-token KL(pi || pi_ref) estimate with delta = logp - ref_logp (Schulman's k1/k2/k3).

  k1 = delta; abs = |delta|; k2 = delta^2 / 2; k3 = exp(-delta) + delta - 1.
  A trailing "+" is straight-through: the value of the base estimator with the
  gradient of k2 (whose gradient is exactly that of KL(pi || pi_ref)).
  """
  if kind not in KL_KINDS:
    raise ValueError(f"Unknown KL estimator {kind!r}; valid: {list(KL_KINDS)}")
  delta = logp - ref_logp
  if kind.endswith("+"):
    k2 = _kl_base(delta, "k2")
    return k2 - sg(k2) + sg(_kl_base(delta, kind[:-1]))
  return _kl_base(delta, kind)


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
  metrics = {"clipfrac": masked_mean(clipped.astype(jnp.float32), mask),
             "clipfrac_high": masked_mean((clipped & (advantages > 0)).astype(jnp.float32), mask),
             "clipfrac_low": masked_mean((clipped & (advantages < 0)).astype(jnp.float32), mask),
             "ppo_kl": masked_mean(-log_ratio, mask)}
  if dual_clip_c is not None:
    if dual_clip_c <= 1.0:
      raise ValueError(f"dual_clip_c must be > 1, got {dual_clip_c}")
    dual = -advantages * dual_clip_c
    lower = (advantages < 0) & (loss > dual)
    loss = jnp.where(lower, dual, loss)
    metrics["clipfrac_dual"] = masked_mean(lower.astype(jnp.float32), mask)
  return aggregate(loss, mask, agg, norm_constant), metrics


POLICY_LOSSES = {"ppo": ppo}


def policy_loss(name: str, logp, old_logp, advantages, mask, *, agg="token-mean",
                rng=None, **hparams):
  """Dispatches to `POLICY_LOSSES[name]`; returns (scalar loss, metrics dict)."""
  if name not in POLICY_LOSSES:
    raise ValueError(f"Unknown policy loss {name!r}; valid: {sorted(POLICY_LOSSES)}")
  if agg not in AGG_MODES:
    raise ValueError(f"Unknown aggregation mode {agg!r}; valid: {list(AGG_MODES)}")
  fn = POLICY_LOSSES[name]
  params = inspect.signature(fn).parameters
  valid = [p for p, v in params.items() if v.kind == v.KEYWORD_ONLY and p not in ("agg", "rng")]
  unknown = sorted(set(hparams) - set(valid))
  if unknown:
    raise ValueError(f"Unknown hyperparameters {unknown} for policy loss {name!r}; "
                     f"valid: {valid}")
  if "rng" in params:
    hparams["rng"] = rng
  return fn(logp, old_logp, advantages, mask, agg=agg, **hparams)


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """The GRPO objective: loss = pg - entropy_coef * H_agg + kl_coef * KL_agg.

  Attributes:
    policy_loss: name in `POLICY_LOSSES`.
    agg: aggregation mode (one of `AGG_MODES`), shared by all three terms (verl).
    norm_constant: the constant of seq-mean-token-sum-norm (None: padded T).
    eps_low, eps_high, dual_clip_c: PPO clip range and dual clip (None = off).
    entropy_coef: entropy bonus; positive raises entropy (verl subtracts it).
    kl_coef: weight of KL(pi || pi_ref) in the loss; 0 skips the reference model.
    kl_estimator: one of `KL_KINDS`.
  """

  policy_loss: str = "ppo"
  agg: str = "token-mean"
  norm_constant: float | None = None
  eps_low: float = 0.2
  eps_high: float = 0.2
  dual_clip_c: float | None = None
  entropy_coef: float = 0.0
  kl_coef: float = 0.0
  kl_estimator: str = "k3"


def grpo_objective(cfg: LossConfig, logp, old_logp, ref_logp, entropy, advantages_B, mask):
  """Entropy-regularised GRPO loss and its metrics (algorithms.md §1)."""
  adv_BxT = advantages_B[:, None] * mask
  pg, metrics = policy_loss(cfg.policy_loss, logp, old_logp, adv_BxT, mask, agg=cfg.agg,
                            norm_constant=cfg.norm_constant, eps_low=cfg.eps_low,
                            eps_high=cfg.eps_high, dual_clip_c=cfg.dual_clip_c)
  ent = aggregate(entropy, mask, cfg.agg, cfg.norm_constant)
  loss = pg - cfg.entropy_coef * ent
  metrics = dict(metrics, pg_loss=pg, entropy=ent)
  if cfg.kl_coef:
    kl = aggregate(kl_penalty(logp, ref_logp, cfg.kl_estimator), mask, cfg.agg,
                   cfg.norm_constant)
    loss = loss + cfg.kl_coef * kl
    metrics["kl"] = kl
  return loss, metrics
