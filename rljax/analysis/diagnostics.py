"""Entropy-mechanism diagnostics logged every step from the rollouts (no extra forward pass).

* Token covariance between log-prob and advantage (Cui et al. 2025, docs/algorithms.md §4.1): its
  positive mean drives entropy collapse; upper quantiles show the few tokens
  Clip-Cov / KL-Cov act on.
* Entropy of planning vs execution tokens (HICRA's two-phase analysis).
* Semantic entropy over strategic phrases (HICRA, Wang et al. 2025, arXiv 2509.03646):
  the entropy of the distribution of distinct plans (the sequence of a rollout's
  planning tokens) within a group, averaged over groups. Token entropy can fall
  while plans stay diverse; this tells the two apart.
* Per-group diversity (distinct final answers among the G samples) and the
  batch's pass@G - pass@1 gap (what sampling more could still find).
* Accuracy and token entropy per held-out group (the testbed's tiers, cells, regimes).
* Model FLOPs of the step (2 N per generated or scored token, 6 N per trained
  token), accumulated for compute-scaling fits.
"""

from __future__ import annotations

import numpy as np


def token_covariance(logp_BxT, adv_BxT, mask_BxT) -> dict:
  """Cov_i = (logp_i - mean logp)(A_i - mean A) over valid tokens: mean, p90, p99."""
  m = np.asarray(mask_BxT) > 0
  if not m.any():
    return {"cov_mean": 0.0, "cov_p90": 0.0, "cov_p99": 0.0}
  lp, a = np.asarray(logp_BxT)[m], np.asarray(adv_BxT)[m]
  cov = (lp - lp.mean()) * (a - a.mean())
  return {"cov_mean": float(cov.mean()), "cov_p90": float(np.quantile(cov, 0.9)),
          "cov_p99": float(np.quantile(cov, 0.99))}


def phase_entropy(entropy_BxT, planning_BxT, mask_BxT) -> dict:
  """Mean token entropy on planning tokens and on execution tokens."""
  m = np.asarray(mask_BxT) > 0
  plan = m & (np.asarray(planning_BxT) > 0)
  exe = m & ~plan
  ent = np.asarray(entropy_BxT)
  return {"entropy_planning": float(ent[plan].mean()) if plan.any() else None,
          "entropy_execution": float(ent[exe].mean()) if exe.any() else None}


def group_diversity(answers: list, correct_B, group_size: int) -> dict:
  """Distinct final answers per group and pass@G - pass@1 of the batch."""
  c = np.asarray(correct_B, bool).reshape(-1, group_size)
  distinct = [len({a for a in answers[i:i + group_size]}) for i in range(0, len(answers),
                                                                         group_size)]
  return {"distinct_answers": float(np.mean(distinct)),
          "passG_minus_pass1": float(c.any(1).mean() - c.mean())}


def semantic_entropy(plans: list, group_size: int) -> dict:
  """Mean over groups of -sum_p f_p log f_p, f_p the frequency of distinct plan p (nats)."""
  out = []
  for i in range(0, len(plans), group_size):
    _, counts = np.unique(np.asarray(plans[i:i + group_size], dtype=object).astype(str),
                          return_counts=True)
    f = counts / counts.sum()
    out.append(float(-(f * np.log(f)).sum()))
  return {"semantic_entropy": float(np.mean(out)) if out else 0.0}


def shortcut_fraction(problems: list, texts: list, correct_B, group_size: int,
                      steps_verify) -> dict:
  """Fraction of correct rollouts whose steps do not verify (right answer, wrong work)."""
  c = np.asarray(correct_B, bool)
  if steps_verify is None or not c.any():
    return {"shortcut_frac": 0.0}
  bad = [not steps_verify(problems[i // group_size], t) for i, t in enumerate(texts) if c[i]]
  return {"shortcut_frac": float(np.mean(bad))}


def tag_stats(problems, correct_B, entropy_BxT, mask_BxT, group_size: int, tags_fn) -> dict:
  """Per group of `tags_fn(problem) -> [group names]` (the testbed's tiers, cells and
  regimes), the step's rollout accuracy and mean token entropy: accuracy/<g>, entropy/<g>.
  Entropy per group shows where a collapse happens: groups whose rollouts all score the
  same get no gradient and keep their entropy."""
  ent_B = (np.asarray(entropy_BxT) * np.asarray(mask_BxT)).sum(1)
  tok_B = np.asarray(mask_BxT, np.float64).sum(1)
  right: dict[str, list] = {}
  ent: dict[str, list] = {}
  for i, p in enumerate(problems):
    rows = slice(i * group_size, (i + 1) * group_size)
    for tag in tags_fn(p):
      right.setdefault(tag, []).extend(correct_B[rows])
      ent.setdefault(tag, []).append((ent_B[rows].sum(), tok_B[rows].sum()))
  out = {f"accuracy/{k}": float(np.mean(v)) for k, v in sorted(right.items())}
  for k, v in sorted(ent.items()):
    e, t = np.sum(v, 0)
    out[f"entropy/{k}"] = float(e / max(t, 1.0))
  return out


def step_flops(num_params: int, generated_tokens: float, prompt_tokens: float,
               scored_tokens: float, trained_tokens: float) -> float:
  """Approximate model FLOPs: 2N per sampled / prefilled / scored token, 6N per trained one."""
  return float(num_params * (2 * (generated_tokens + prompt_tokens + scored_tokens)
                             + 6 * trained_tokens))
