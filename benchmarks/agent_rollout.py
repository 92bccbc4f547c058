"""The agent's multi-turn rollouts, timed: `evaluation.play` (`rl/multi_turn.py`) of a
cold-started keys-and-doors agent, as the agent pipeline plays a step. Prints one JSON
line.

  .venv/bin/python -m benchmarks.agent_rollout [--workdir DIR] [--layouts 8] [--group 8]
      [--repeats 5] [--cold_start_steps N]

The base agent is the pipeline's cold start (`pipeline.base_agent`) with
`configs/agent.py:runlocal`'s settings (120 supervised steps on 256 oracle
demonstrations, about a minute), trained into `--workdir` (or a temporary folder) and
reused from there. Each repeat plays the same layouts with another key, after one
that compiles; `split_s` is the device calls' own time (turns decoded, observations
prefilled), the rest of a rollout is the host's (environment steps, tokenizing,
bookkeeping).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time

import jax
import numpy as np

import configs.agent
from rljax import sharding
from rljax.agents import config as agent_config, evaluation, pipeline
from rljax.rl import multi_turn


def base_agent(workdir: str, cold_start_steps: int | None = None) -> pipeline.BaseAgent:
  """The runlocal config's cold-started agent, trained into `workdir` (or read from it;
  `cold_start_steps`: fewer supervised steps than runlocal's, for a quick check)."""
  cfg = agent_config.from_config_dict(configs.agent.get_config("runlocal"))
  if cold_start_steps:
    cfg = dataclasses.replace(cfg, cold_start=dataclasses.replace(
        cfg.cold_start, steps=cold_start_steps))
  mesh, _ = sharding.train_and_rollout_meshes(cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.model,
                                              cfg.mesh.train_devices)
  return pipeline.base_agent(cfg, workdir, mesh)


def _timing(calls: dict):
  """Wraps multi_turn's two jitted calls so that each call's wall time adds to `calls`."""
  for name in ("decode_turn", "prefill_chunk"):
    fn = getattr(multi_turn, name)

    def timed(*a, _fn=fn, _name=name, **k):
      t = time.perf_counter()
      out = jax.block_until_ready(_fn(*a, **k))
      calls[_name] += time.perf_counter() - t
      return out

    setattr(multi_turn, name, timed)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--workdir", default="")
  ap.add_argument("--layouts", type=int, default=8)
  ap.add_argument("--group", type=int, default=8)
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--cold_start_steps", type=int, default=0, help="0: runlocal's (120)")
  args = ap.parse_args(argv)
  cfg, tok, _, graphdef, params = base_agent(
      args.workdir or tempfile.mkdtemp(prefix="rljax-agent-"), args.cold_start_steps)
  calls = {"decode_turn": 0.0, "prefill_chunk": 0.0}
  _timing(calls)
  seeds = np.arange(args.layouts)
  times, splits, tokens = [], [], []
  for r in range(args.repeats + 1):
    calls.update(decode_turn=0.0, prefill_chunk=0.0)
    t = time.perf_counter()
    batch = evaluation.play(cfg, graphdef, params, tok, seeds, args.group,
                            jax.random.PRNGKey(r))
    jax.block_until_ready(batch.tokens_BxN)
    times.append(time.perf_counter() - t)
    splits.append(dict(calls))
    tokens.append(float(np.asarray(batch.model_mask_BxN).sum()))
  median = float(np.median(times[1:]))
  print(json.dumps({
      "case": "agent_rollout", "rows": args.layouts * args.group,
      "cache_slots": cfg.multi_turn.cache_slots,
      "first_s": times[0], "times_s": times[1:], "median_s": median,
      "model_tokens_per_rollout": tokens[1:],
      "model_tok_per_s": float(np.median(tokens[1:])) / median,
      "split_s": {k: float(np.median([s[k] for s in splits[1:]])) for k in calls},
      "turns": float(np.mean([len(e.turn_texts) for e in batch.episodes])),
      "logp_sum_last": float(np.asarray(batch.logp_BxN).sum())}))


if __name__ == "__main__":
  main()
