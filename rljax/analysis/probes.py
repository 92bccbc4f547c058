"""Elicitation probes: does RL create new reasoning, or select what the base already had?

On the RL model's own held-out samples (docs/algorithms.md §13):
* the rank of each sampled token under the base model: the fraction outside the
  base's top-1 and top-5 (small: RL picks paths the base already ranked high);
* the perplexity of the RL model's correct completions under the base model
  (close to 1: the base found those solutions likely too), and under the RL model;
* hybrid decoding: the base model decodes, and positions where its entropy exceeds
  a threshold are handed to the RL model. The share of the RL gain recovered, at
  the share of tokens routed, says how localised RL's change is.

Axis letters: B rollouts, P prompt, T completion, V vocabulary.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rljax import distributed, sharding
from rljax.rl import sampler as sampler_lib
from rljax.rl.logprobs import sequence_inputs, token_logp_entropy


@functools.partial(jax.jit, static_argnames=("graphdef",))
def token_logp_rank(graphdef, params, prompt_BxP, prompt_mask_BxP, tokens_BxT, temperature):
  """(log-prob [B, T], rank [B, T]) of each completion token under `params`.

  Rank 0 is the model's top-1 token. Rows are mapped one at a time so the
  [T, V] logits of only one row are alive (real vocabularies are large).
  """
  model = nnx.merge(graphdef, params)
  p, t = prompt_BxP.shape[1], tokens_BxT.shape[1]

  def one_row(row):
    prompt, pmask, tokens = row
    seq, positions, kv_mask = sequence_inputs(prompt[None], pmask[None], tokens[None])
    h_1xLxD, _ = model.hidden(seq, positions_BxT=positions, kv_mask_BxS=kv_mask)
    z_TxV = model.logits(h_1xLxD[0, p - 1:p + t - 1]).astype(jnp.float32) / temperature
    chosen_T = jnp.take_along_axis(z_TxV, tokens[:, None], axis=-1)
    logp_T, _ = token_logp_entropy(z_TxV, tokens)
    rank_T = jnp.sum(z_TxV > chosen_T, axis=-1)
    return logp_T, rank_T

  return jax.lax.map(one_row, (prompt_BxP, prompt_mask_BxP, tokens_BxT))


def _batches(problems, n: int, batch_rollouts: int):
  q = max(1, batch_rollouts // n)
  for start in range(0, len(problems), q):
    chunk = problems[start:start + q]
    yield start, chunk, chunk + [chunk[-1]] * (q - len(chunk))


def _perplexity(logp_sum: float, tokens: float) -> float | None:
  return float(np.exp(-logp_sum / tokens)) if tokens else None


def rank_and_perplexity(setup, rl_params, n: int, key) -> dict:
  """Token ranks of the RL model's samples under the base; perplexities of its correct ones."""
  cfg, tok, task = setup.cfg, setup.tok, setup.task
  temp = cfg.sampling.temperature
  acc = dict(tokens=0.0, top1=0.0, top5=0.0, correct_tokens=0.0, base_logp=0.0, rl_logp=0.0,
             samples=0, correct=0)
  for start, chunk, padded in _batches(task.eval_problems, n, cfg.eval.batch_rollouts):
    prompt, pmask = tok.encode_prompts([p.prompt for p in padded], cfg.prompt_len)
    batch_key = jax.random.fold_in(key, start)
    with sharding.entered(setup.rollout_mesh, (rl_params, batch_key)) as (params, batch_key):
      out = distributed.to_host(sampler_lib.sample(setup.graphdef, params, prompt, pmask,
                                                   batch_key, cfg=cfg.sampling, group_size=n))
    prompt_B, pmask_B = np.repeat(prompt, n, 0), np.repeat(pmask, n, 0)
    base_logp, rank = jax.device_get(token_logp_rank(
        setup.graphdef, setup.base_params, prompt_B, pmask_B, out.tokens, temp))
    rl_logp, _ = jax.device_get(token_logp_rank(
        setup.graphdef, rl_params, prompt_B, pmask_B, out.tokens, temp))
    mask = np.asarray(out.mask)
    texts = tok.decode_completions(np.asarray(out.tokens))
    keep = len(chunk) * n
    correct = np.array([task.reward(chunk[i // n], texts[i]) > 0 for i in range(keep)])
    m = mask[:keep]
    acc["tokens"] += m.sum()
    acc["top1"] += (m * (rank[:keep] >= 1)).sum()
    acc["top5"] += (m * (rank[:keep] >= 5)).sum()
    mc = m * correct[:, None]
    acc["correct_tokens"] += mc.sum()
    acc["base_logp"] += (mc * base_logp[:keep]).sum()
    acc["rl_logp"] += (mc * rl_logp[:keep]).sum()
    acc["samples"] += keep
    acc["correct"] += int(correct.sum())
  return {"tokens": int(acc["tokens"]), "samples": acc["samples"],
          "rl_accuracy": acc["correct"] / max(acc["samples"], 1),
          "frac_outside_base_top1": float(acc["top1"] / max(acc["tokens"], 1)),
          "frac_outside_base_top5": float(acc["top5"] / max(acc["tokens"], 1)),
          "ppl_correct_under_base": _perplexity(acc["base_logp"], acc["correct_tokens"]),
          "ppl_correct_under_rl": _perplexity(acc["rl_logp"], acc["correct_tokens"])}


def hybrid_accuracy(setup, base_params, expert_params, n: int, threshold: float, key) -> dict:
  """Held-out accuracy of hybrid decoding and the fraction of tokens routed to the expert."""
  cfg, tok, task = setup.cfg, setup.tok, setup.task
  correct = samples = 0
  routed = tokens = 0.0
  for start, chunk, padded in _batches(task.eval_problems, n, cfg.eval.batch_rollouts):
    prompt, pmask = tok.encode_prompts([p.prompt for p in padded], cfg.prompt_len)
    moved = (base_params, expert_params, jax.random.fold_in(key, start))
    with sharding.entered(setup.rollout_mesh, moved) as (base, expert, batch_key):
      out, routed_BxT = distributed.to_host(sampler_lib.hybrid_sample(
          setup.graphdef, base, expert, prompt, pmask, batch_key, np.float32(threshold),
          cfg=cfg.sampling, group_size=n))
    keep = len(chunk) * n
    texts = tok.decode_completions(np.asarray(out.tokens))
    correct += sum(task.reward(chunk[i // n], texts[i]) > 0 for i in range(keep))
    samples += keep
    routed += float(np.asarray(routed_BxT)[:keep].sum())
    tokens += float(np.asarray(out.mask)[:keep].sum())
  return {"threshold": threshold, "accuracy": correct / max(samples, 1),
          "routed_frac": routed / max(tokens, 1.0)}


def elicitation(setup, rl_params, n: int = 8, thresholds=(0.1, 0.3, 0.6, 1.0), seed: int = 0):
  """All probes of the module doc; `gain_recovered` = (hybrid - base) / (RL - base)."""
  key = jax.random.PRNGKey(seed)
  out = rank_and_perplexity(setup, rl_params, n, jax.random.fold_in(key, 0))
  # Every hybrid run uses the same key, so they differ only in where they route.
  hk, base = jax.random.fold_in(key, 1), setup.base_params
  base_acc = hybrid_accuracy(setup, base, rl_params, n, np.inf, hk)["accuracy"]  # never routes
  rl_acc = hybrid_accuracy(setup, base, rl_params, n, -1.0, hk)["accuracy"]  # always routes
  gain, rows = rl_acc - base_acc, []
  for th in thresholds:
    r = hybrid_accuracy(setup, base, rl_params, n, th, hk)
    r["gain_recovered"] = (r["accuracy"] - base_acc) / gain if abs(gain) > 1e-9 else None
    rows.append(r)
  return dict(out, base_accuracy=base_acc, rl_accuracy_same_key=rl_acc, hybrid=rows)
