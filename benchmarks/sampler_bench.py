"""Sampler throughput: rljax's cached while-loop decoder vs. a no-cache peer, same run.

The peer recomputes the full forward pass over the whole sequence for every new
token (what a sampler without a KV cache does), inside the same jitted loop shape.
Prints one JSON object; the ratio is what to compare across machines.

  .venv/bin/python benchmarks/sampler_bench.py [--preset testbed] [--prompts 32] [--group 8]
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rljax.rl import sampler
from rljax.model.config import get_preset
from rljax.model.transformer import init_model


def nocache_sample(graphdef, params, prompt_QxP, key, max_new: int, group: int):
  model = nnx.merge(graphdef, params)
  tokens = jnp.repeat(prompt_QxP, group, 0)
  b, p = tokens.shape
  seq = jnp.concatenate([tokens, jnp.zeros((b, max_new), jnp.int32)], 1)

  def body(t, seq):
    logits = model(seq)  # full causal forward over the padded sequence
    nxt = jax.random.categorical(jax.random.fold_in(key, t), logits[:, p - 1 + t])
    return seq.at[:, p + t].set(nxt)

  return jax.lax.fori_loop(0, max_new, body, seq)


def timeit(fn, repeats):
  jax.block_until_ready(fn(0))
  t0 = time.perf_counter()
  for i in range(repeats):
    jax.block_until_ready(fn(i + 1))
  return (time.perf_counter() - t0) / repeats


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--preset", default="testbed")
  ap.add_argument("--prompts", type=int, default=32)
  ap.add_argument("--group", type=int, default=8)
  ap.add_argument("--prompt_len", type=int, default=16)
  ap.add_argument("--new_tokens", type=int, default=48)
  ap.add_argument("--repeats", type=int, default=3)
  args = ap.parse_args()
  cfg = get_preset(args.preset, vocab_size=64)
  graphdef, state = nnx.split(init_model(cfg, 0), nnx.Param)
  params = nnx.to_pure_dict(state)
  prompts = jnp.asarray(np.random.default_rng(0).integers(4, 64, (args.prompts, args.prompt_len)),
                        jnp.int32)
  mask = jnp.ones_like(prompts)
  # eos_id outside the vocab: every row decodes the full budget, like the peer.
  scfg = sampler.SamplingConfig(max_new_tokens=args.new_tokens, eos_id=10_000)
  ours = timeit(lambda i: sampler.sample(graphdef, params, prompts, mask, jax.random.key(i),
                                         cfg=scfg, group_size=args.group).tokens, args.repeats)
  peer_fn = jax.jit(nocache_sample, static_argnums=(0, 4, 5))
  peer = timeit(lambda i: peer_fn(graphdef, params, prompts, jax.random.key(i),
                                  args.new_tokens, args.group), args.repeats)
  tokens = args.prompts * args.group * args.new_tokens
  print(json.dumps({
      "benchmark": "sampler", "preset": args.preset, "device": jax.devices()[0].device_kind,
      "rollouts": args.prompts * args.group, "new_tokens": args.new_tokens,
      "rljax_s": ours, "nocache_peer_s": peer, "rljax_tokens_per_s": tokens / ours,
      "speedup_vs_peer": peer / ours}))


if __name__ == "__main__":
  main()
