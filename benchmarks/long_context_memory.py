"""Peak memory of the GRPO loss and gradient at long context, with blockwise attention.

The workload of the "Scale" issue: 8 completions x 4,096 tokens (plus a 32-token prompt),
a 151,936-token vocabulary, Qwen2.5-0.5B's attention shape (14 query / 2 KV heads,
head dim 64, width 896, MLP 4,864, QKV bias, tied head) at 2 layers, float32. It
compiles and runs `value_and_grad` of the clipped GRPO objective with an entropy
term and reports XLA's planned memory (arguments + outputs + temporaries of the
compiled program), the process's peak resident memory, and the wall time, beside
what the one-shot attention's float32 scores alone would need.

  .venv/bin/python -m benchmarks.long_context_memory [--batch 8] [--tokens 4096] [--layers 2]
"""

import argparse
import dataclasses
import json
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rljax.model import attention
from rljax.model.config import get_preset
from rljax.model.transformer import init_model
from rljax.rl.logprobs import completion_logp_entropy
from rljax.rl.losses import LossConfig, LossInputs, grpo_objective

_GIB = 1024 ** 3


def loss_and_grad_fn(graphdef, temperature=1.0):
  def loss_fn(params, prompt, pmask, tokens, adv):
    model = nnx.merge(graphdef, params)
    logp, ent = completion_logp_entropy(model, prompt, pmask, tokens, temperature=temperature)
    mask = jnp.ones_like(logp)
    x = LossInputs(logp_BxT=logp, old_logp_BxT=jax.lax.stop_gradient(logp) - 0.01 * adv,
                   adv_BxT=adv, mask_BxT=mask, offpolicy_BxT=jnp.zeros_like(logp),
                   rng=jax.random.key(0))
    loss, _ = grpo_objective(LossConfig(), x, jnp.zeros_like(logp), ent,
                             entropy_coef=1e-3, kl_coef=0.0)
    return loss
  return jax.jit(jax.value_and_grad(loss_fn))


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--batch", type=int, default=8)
  ap.add_argument("--tokens", type=int, default=4096)
  ap.add_argument("--prompt", type=int, default=32)
  ap.add_argument("--layers", type=int, default=2)
  args = ap.parse_args()

  cfg = dataclasses.replace(get_preset("qwen2.5-0.5b"), n_layers=args.layers,
                            max_seq_len=args.prompt + args.tokens)
  model = init_model(cfg, 0)
  graphdef, state = nnx.split(model, nnx.Param)
  params = nnx.to_pure_dict(state)
  rng = np.random.default_rng(0)
  b, p, t = args.batch, args.prompt, args.tokens
  prompt = rng.integers(0, cfg.vocab_size, (b, p)).astype(np.int32)
  tokens = rng.integers(0, cfg.vocab_size, (b, t)).astype(np.int32)
  adv = rng.normal(size=(b, t)).astype(np.float32)
  fn = loss_and_grad_fn(graphdef)

  t0 = time.perf_counter()
  compiled = fn.lower(params, prompt, np.ones_like(prompt), tokens, adv).compile()
  compile_s = time.perf_counter() - t0
  mem = compiled.memory_analysis()
  t0 = time.perf_counter()
  loss, grads = compiled(params, prompt, np.ones_like(prompt), tokens, adv)
  jax.block_until_ready(grads)
  run_s = time.perf_counter() - t0
  grad_norm = float(jnp.sqrt(sum(jnp.sum(g ** 2) for g in jax.tree.leaves(grads))))
  seq = p + t
  scores_per_layer = b * cfg.n_heads * seq * seq * 4
  print(json.dumps({
      "workload": {"batch": b, "prompt": p, "completion_tokens": t, "vocab": cfg.vocab_size,
                   "layers": cfg.n_layers, "heads": cfg.n_heads, "kv_heads": cfg.n_kv_heads,
                   "width": cfg.d_model, "q_block": attention.Q_BLOCK,
                   "params": cfg.num_params()},
      "loss": float(loss), "grad_norm": grad_norm, "finite": bool(np.isfinite(grad_norm)),
      "xla_planned_gib": {
          "arguments": mem.argument_size_in_bytes / _GIB,
          "outputs": mem.output_size_in_bytes / _GIB,
          "temporaries": mem.temp_size_in_bytes / _GIB,
          "total": (mem.argument_size_in_bytes + mem.output_size_in_bytes
                    + mem.temp_size_in_bytes) / _GIB},
      "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / _GIB,
      "one_shot_scores_gib_per_layer": scores_per_layer / _GIB,
      "compile_s": compile_s, "run_s": run_s,
  }, indent=1))


if __name__ == "__main__":
  main()
