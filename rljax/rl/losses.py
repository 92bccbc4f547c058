"""The public loss API: policy-loss registry, KL estimators and the composed GRPO objective.

All functions take [B, T] float arrays (B rollouts, T completion tokens) and a
0/1 `mask` (generated tokens up to and including EOS). Formulas follow
docs/algorithms.md §0.2 (aggregation), §0.4 (KL), §0.5 (entropy) and §1 (PPO/GRPO);
the surrogates themselves live in `rljax.rl.policy_losses`.
"""

from __future__ import annotations

import dataclasses
import inspect

import jax
import jax.numpy as jnp

from rljax.rl import policy_losses
from rljax.rl.policy_losses import LossInputs, abs0
from rljax.rl.aggregation import AGG_MODES, aggregate, masked_mean

sg = jax.lax.stop_gradient

__all__ = ["AGG_MODES", "aggregate", "masked_mean", "kl_penalty", "policy_loss",
           "POLICY_LOSSES", "LossConfig", "LossInputs", "grpo_objective"]

def _k3(delta):
  """k3 = exp(-delta) + delta - 1, as verl's low_var_kl: -delta clamped to [-20, 20]
  before exp, the result to [-10, 10]."""
  neg = jnp.clip(-delta, -20.0, 20.0)
  return jnp.clip(jnp.exp(neg) - 1.0 - neg, -10.0, 10.0)


# Schulman's estimators of KL(pi || pi_ref) from delta = logp - ref_logp. `abs` has
# derivative 0 at delta = 0 (torch's convention; jnp.abs's is +1 there).
KL_ESTIMATORS = {"k1": lambda delta: delta, "abs": abs0,
                 "k2": lambda delta: 0.5 * jnp.square(delta), "k3": _k3}
# A trailing "+" is straight-through: the base estimator's value, k2's gradient.
KL_KINDS = tuple(KL_ESTIMATORS) + tuple(f"{k}+" for k in KL_ESTIMATORS)


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
    k2 = KL_ESTIMATORS["k2"](delta)
    return k2 - sg(k2) + sg(KL_ESTIMATORS[kind[:-1]](delta))
  return KL_ESTIMATORS[kind](delta)


POLICY_LOSSES = {
    "ppo": policy_losses.ppo,
    "clip_cov": policy_losses.clip_cov,
    "kl_cov": policy_losses.kl_cov,
    "gppo": policy_losses.gppo,
    "gspo": policy_losses.gspo,
    "cispo": policy_losses.cispo,
    "gmpo": policy_losses.gmpo,
    "sapo": policy_losses.sapo,
    "gpg": policy_losses.gpg,
    "rlplus": policy_losses.rlplus,
}


def _hparam_names(name: str) -> list[str]:
  """The keyword-only hyperparameters of policy loss `name` (all LossConfig fields)."""
  params = inspect.signature(POLICY_LOSSES[name]).parameters
  return [p for p, v in params.items() if v.kind == v.KEYWORD_ONLY]


def policy_loss(name: str, x: LossInputs, **overrides):
  """`POLICY_LOSSES[name]` on `x`; returns (scalar loss, metrics dict).

  Hyperparameters are `LossConfig`'s defaults, with `overrides` (e.g. `eps_high=0.28`,
  `agg="seq-mean-token-mean"`) in their place; a name the loss does not read is an error.
  """
  if name not in POLICY_LOSSES:
    raise ValueError(f"Unknown policy loss {name!r}; valid: {sorted(POLICY_LOSSES)}")
  unknown = sorted(set(overrides) - set(_hparam_names(name)))
  if unknown:
    raise ValueError(f"Unknown hyperparameters {unknown} for policy loss {name!r}; "
                     f"valid: {_hparam_names(name)}")
  cfg = dataclasses.replace(LossConfig(), policy_loss=name, **overrides)
  return POLICY_LOSSES[name](x, **cfg.hparams())


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """The GRPO objective: loss = pg - entropy_coef * H_agg + kl_coef * KL_agg.

  Attributes:
    policy_loss: name in `POLICY_LOSSES`; it reads the hyperparameter fields it accepts.
    agg: aggregation mode (one of `AGG_MODES`), shared by all three terms (verl).
    norm_constant: the constant of seq-mean-token-sum-norm (None: padded T).
    eps_low, eps_high, dual_clip_c: clip range and dual clip (None = off).
    clip_cov_ratio, clip_cov_lb, clip_cov_ub: Clip-Cov (§5).
    kl_cov_ratio, kl_cov_coef: KL-Cov (§6).
    gppo_beta1, gppo_beta2, gppo_only_high: GPPO (§7).
    tau_pos, tau_neg: SAPO (§17).
    rlplus_gamma, rlplus_clip, rlplus_seq_sum: RL-PLUS (§11); needs
      intervention.rlplus_demos > 0. rlplus_seq_sum: the reference script's per-sequence
      sum over T (default) instead of `agg`.
    entropy_coef: entropy bonus; positive raises entropy (verl subtracts it).
    kl_coef: weight of KL(pi || pi_ref) in the loss.
    kl_estimator: one of `KL_KINDS`.
  """

  policy_loss: str = "ppo"
  agg: str = "token-mean"
  norm_constant: float | None = None
  eps_low: float = 0.2
  eps_high: float = 0.2
  dual_clip_c: float | None = None
  clip_cov_ratio: float = 2e-4
  clip_cov_lb: float = 1.0
  clip_cov_ub: float = 5.0
  kl_cov_ratio: float = 2e-4
  kl_cov_coef: float = 1.0
  gppo_beta1: float = 1.0
  gppo_beta2: float = 1.0
  gppo_only_high: bool = False
  tau_pos: float = 1.0
  tau_neg: float = 1.05
  rlplus_gamma: float = 0.5
  rlplus_clip: bool = False
  rlplus_seq_sum: bool = True
  entropy_coef: float = 0.0
  kl_coef: float = 0.0
  kl_estimator: str = "k3"

  def __post_init__(self):
    if self.policy_loss not in POLICY_LOSSES:
      raise ValueError(f"loss.policy_loss {self.policy_loss!r} is unknown; "
                       f"valid: {sorted(POLICY_LOSSES)}")
    if self.agg not in AGG_MODES:
      raise ValueError(f"loss.agg {self.agg!r} is unknown; valid: {list(AGG_MODES)}")
    if self.kl_estimator not in KL_KINDS:
      raise ValueError(f"loss.kl_estimator {self.kl_estimator!r} is unknown; "
                       f"valid: {list(KL_KINDS)}")

  def hparams(self) -> dict:
    """The fields the chosen policy loss reads, by name (`agg` and `norm_constant` included)."""
    return {k: getattr(self, k) for k in _hparam_names(self.policy_loss)}


def grpo_objective(cfg: LossConfig, x: LossInputs, ref_logp_BxT, entropy_BxT,
                   entropy_coef, kl_coef):
  """Entropy-regularised GRPO loss and its metrics (docs/algorithms.md §1).

  loss = pg - entropy_coef * agg(H) + kl_coef * agg(KL(pi || pi_ref)), every term
  aggregated with `cfg.agg` over `x.mask_BxT`. The coefficients are arguments (traced
  in the update step), so schedules and controllers change them without recompiling.
  """
  pg, metrics = POLICY_LOSSES[cfg.policy_loss](x, **cfg.hparams())
  ent = aggregate(entropy_BxT, x.mask_BxT, cfg.agg, cfg.norm_constant)
  kl = aggregate(kl_penalty(x.logp_BxT, ref_logp_BxT, cfg.kl_estimator), x.mask_BxT, cfg.agg,
                 cfg.norm_constant)
  loss = pg - entropy_coef * ent + kl_coef * kl
  return loss, dict(metrics, pg_loss=pg, entropy_loss=ent, kl_loss=kl)
