"""Held-out evaluation on the testbed: n samples per problem, correct counts, pass@k.

Problems are batched into fixed-shape sampler calls (the last batch is padded
with repeats and the padding discarded), so evaluation never recompiles.
"""

from __future__ import annotations

import collections

import jax
import numpy as np

from rljax import distributed
from rljax.rl import sampler as sampler_lib
from rljax.analysis.passk import pass_at_k_curve


def sample_counts(graphdef, params, problems, tokenizer, *, n: int, prompt_len: int,
                  sampling: sampler_lib.SamplingConfig, key, batch_rollouts: int, verify):
  """Correct-sample counts [num_problems] and mean token entropy of the samples.

  `verify([(problem, completion), ...]) -> scores` (a score > 0 counts as correct).
  """
  q = max(1, batch_rollouts // n)
  counts = np.zeros(len(problems), np.int64)
  ent_sum, tok_sum = 0.0, 0.0
  for start in range(0, len(problems), q):
    chunk = problems[start:start + q]
    padded = chunk + [chunk[-1]] * (q - len(chunk))
    prompts, pmask = tokenizer.encode_prompts([p.prompt for p in padded], prompt_len)
    out = sampler_lib.sample(graphdef, params, prompts, pmask,
                             jax.random.fold_in(key, start), cfg=sampling, group_size=n)
    out = distributed.to_host(out)
    texts = tokenizer.decode_completions(out.tokens)
    keep = len(chunk) * n
    ent_sum += float(out.entropy[:keep].sum())
    tok_sum += float(out.mask[:keep].sum())
    # Each process verifies its share of the batch (padding included, so that shares
    # are equal); every process gets all scores.
    calls = [(padded[i // n], texts[i]) for i in range(q * n if distributed.multi() else keep)]
    scores = np.asarray(distributed.score_shares(lambda c: (verify(c), {}), calls)[0])[:keep]
    counts[start:start + len(chunk)] = (scores > 0).reshape(len(chunk), n).sum(1)
  return counts, ent_sum / max(tok_sum, 1.0)


def summarize(problems, counts, n: int, tags, prefix: str = "") -> dict:
  """pass@k curve overall and per group of `tags(problem) -> [group names]`."""
  out = {f"{prefix}pass@{k}": v for k, v in pass_at_k_curve(n, counts).items()}
  groups = collections.defaultdict(list)
  for p, c in zip(problems, counts):
    for tag in tags(p):
      groups[tag].append(c)
  for name, cs in sorted(groups.items()):
    curve = pass_at_k_curve(n, cs)
    out[f"{prefix}{name}/pass@1"] = curve[1]
    out[f"{prefix}{name}/pass@{n}"] = curve[n]
  return out
