"""Held-out evaluation on the testbed: n samples per problem, correct counts, pass@k.

Problems are batched into fixed-shape sampler calls (the last batch is padded
with repeats and the padding discarded), so evaluation never recompiles.
"""

from __future__ import annotations

import collections
from typing import NamedTuple

import jax
import numpy as np
from tqdm.auto import tqdm

from rljax import distributed, sharding
from rljax.rl import sampler as sampler_lib
from rljax.analysis.intervals import cover_at
from rljax.analysis.passk import pass_at_k_curve


class Samples(NamedTuple):
  """What n samples per held-out problem gave.

  Attributes:
    counts: right answers per problem [T].
    cot_counts: right answers whose steps all verify, per problem [T] (CoT-pass@k's
      counts), or None for a task that cannot check steps.
    entropy: the mean token entropy of the samples.
    entropy_sums: summed token entropy of each problem's samples [T].
    tokens: generated tokens of each problem's samples [T] (with `entropy_sums`, the
      entropy of any group of problems: where a collapse happens, where it does not).
  """

  counts: np.ndarray
  cot_counts: np.ndarray | None
  entropy: float
  entropy_sums: np.ndarray
  tokens: np.ndarray


def sample_counts(graphdef, params, problems, tokenizer, *, n: int, prompt_len: int,
                  sampling: sampler_lib.SamplingConfig, key, batch_rollouts: int, verify,
                  steps_verify=None, observe=None, mesh=None) -> Samples:
  """n samples per problem, verified.

  `verify([(problem, completion), ...]) -> scores` (a score > 0 counts as correct);
  `steps_verify(problem, completion) -> bool` checks a right answer's steps;
  `observe(problem, texts [n], right [n])`, when given, sees every problem's samples.
  `mesh`: the mesh to sample on (a run's rollout mesh); None: the ambient one.
  """
  q = max(1, batch_rollouts // n)
  counts = np.zeros(len(problems), np.int64)
  cot_counts = np.zeros(len(problems), np.int64) if steps_verify else None
  ent_sums, tokens = np.zeros(len(problems)), np.zeros(len(problems))
  starts = range(0, len(problems), q)
  params = sharding.onto(mesh, params)  # once, not per batch
  # Long evaluations (n = 1024: minutes) show their progress; short ones stay quiet.
  for start in tqdm(starts, desc=f"sampling n={n}", leave=False, disable=len(starts) < 8,
                    dynamic_ncols=True):
    chunk = problems[start:start + q]
    padded = chunk + [chunk[-1]] * (q - len(chunk))
    prompts, pmask = tokenizer.encode_prompts([p.prompt for p in padded], prompt_len)
    with sharding.entered(mesh, jax.random.fold_in(key, start)) as batch_key:
      out = sampler_lib.sample(graphdef, params, prompts, pmask, batch_key, cfg=sampling,
                               group_size=n)
    out = distributed.to_host(out)
    texts = tokenizer.decode_completions(out.tokens)
    keep = len(chunk) * n
    rows = slice(start, start + len(chunk))
    ent_sums[rows] = np.asarray(out.entropy[:keep], np.float64).reshape(len(chunk), -1).sum(1)
    tokens[rows] = np.asarray(out.mask[:keep], np.float64).reshape(len(chunk), -1).sum(1)
    # Each process verifies its share of the batch (padding included, so that shares
    # are equal); every process gets all scores.
    calls = [(padded[i // n], texts[i]) for i in range(q * n if distributed.multi() else keep)]
    right = np.asarray(distributed.score_shares(lambda c: (verify(c), {}), calls)[0])[:keep] > 0
    counts[start:start + len(chunk)] = right.reshape(len(chunk), n).sum(1)
    if observe:
      for j, p in enumerate(chunk):
        observe(p, texts[j * n:(j + 1) * n], right[j * n:(j + 1) * n])
    if steps_verify:
      cot = [bool(r) and steps_verify(padded[i // n], texts[i]) for i, r in enumerate(right)]
      cot_counts[start:start + len(chunk)] = np.reshape(cot, (len(chunk), n)).sum(1)
  return Samples(counts, cot_counts, float(ent_sums.sum() / max(tokens.sum(), 1.0)), ent_sums,
                 tokens)


def summarize(problems, counts, n: int, tags, prefix: str = "", cot_counts=None,
              entropy_sums=None, tokens=None) -> dict:
  """pass@k (and CoT-pass@k) curves and Cover@tau overall; pass@1, pass@n (CoT-pass@n),
  Cover@0.5 and, given per-problem `entropy_sums` and `tokens`, the mean token entropy
  per group of `tags(problem) -> [group names]`."""
  counts = np.asarray(counts)
  out = {f"{prefix}pass@{k}": v for k, v in pass_at_k_curve(n, counts).items()}
  if cot_counts is not None:
    out.update({f"{prefix}cot_pass@{k}": v
                for k, v in pass_at_k_curve(n, cot_counts).items()})
  out.update({f"{prefix}cover@{t:g}": v for t, v in cover_at(n, counts).items()})
  groups = collections.defaultdict(list)
  for i, p in enumerate(problems):
    for tag in tags(p):
      groups[tag].append(i)
  for name, idx in sorted(groups.items()):
    curve = pass_at_k_curve(n, counts[idx])
    out[f"{prefix}{name}/pass@1"] = curve[1]
    out[f"{prefix}{name}/pass@{n}"] = curve[n]
    out[f"{prefix}{name}/cover@0.5"] = cover_at(n, counts[idx], (0.5,))[0.5]
    if cot_counts is not None:
      out[f"{prefix}{name}/cot_pass@{n}"] = pass_at_k_curve(n, np.asarray(cot_counts)[idx])[n]
    if entropy_sums is not None:
      out[f"{prefix}{name}/entropy"] = float(
          np.asarray(entropy_sums)[idx].sum() / max(np.asarray(tokens)[idx].sum(), 1.0))
  return out
