"""Loss aggregation modes (docs/algorithms.md §0.2) and the masked mean used by metrics."""

from __future__ import annotations

import jax.numpy as jnp

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


