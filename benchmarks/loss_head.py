"""The LM head and the token log-probs / entropies at a real vocabulary: rljax's chunked
head (`logprobs.head_logp_entropy`, its own VJP, which recomputes the logits in the
backward) against autodiff of the plain formulas (`h @ w`, `jax.nn.log_softmax`,
-sum p log p) under `jax.checkpoint` (so it recomputes them too), forward + backward in
the same process, the same chunking either way.

  .venv/bin/python -m benchmarks.loss_head [--vocab 151936] [--width 896] [--tokens 1024]

Prints one JSON object: milliseconds per forward + backward (median of `--repeats`
after a warm-up), the speedup, and the time the head's four products (forward, its
recomputation, two gradients) would take at the measured 2,048^2 product rate.
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp

from benchmarks.rljax_side import case_matmul, timed
from rljax.rl import logprobs

CHUNK = 128  # `completion_logp_entropy`'s default


@jax.checkpoint
def _plain_head(h_xD, w_DxV, y_x):
  logp_xV = jax.nn.log_softmax(h_xD @ w_DxV, axis=-1)
  p_xV = jnp.exp(logp_xV)
  return (jnp.take_along_axis(logp_xV, y_x[..., None], -1)[..., 0],
          -(p_xV * logp_xV).sum(-1))


def _rljax_head(h_xD, w_DxV, y_x):
  return logprobs.head_logp_entropy(h_xD, w_DxV, y_x, 1.0)


KINDS = {"rljax": _rljax_head, "autodiff": _plain_head}


def loss_fn(head, rows: int, tokens: int):
  """Sum of the log-probs and entropies weighted by fixed cotangents, chunked along T
  as `completion_logp_entropy` runs it."""
  t = tokens // rows

  def loss(h_BxTxD, w_DxV, y_BxT, g_BxTx2):
    h_JxBxCxD = h_BxTxD.reshape(rows, t // CHUNK, CHUNK, -1).swapaxes(0, 1)
    y_JxBxC = y_BxT.reshape(rows, t // CHUNK, CHUNK).swapaxes(0, 1)
    logp, ent = jax.lax.map(lambda a: head(a[0], w_DxV, a[1]), (h_JxBxCxD, y_JxBxC))
    scores = jnp.stack([logp, ent], -1).swapaxes(0, 1).reshape(rows, t, 2)
    return (scores * g_BxTx2).sum()

  return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--vocab", type=int, default=151_936)  # Qwen2.5's
  ap.add_argument("--width", type=int, default=896)
  ap.add_argument("--tokens", type=int, default=1024)
  ap.add_argument("--rows", type=int, default=8)
  ap.add_argument("--repeats", type=int, default=3)
  args = ap.parse_args(argv)
  if args.tokens % (args.rows * CHUNK):
    raise SystemExit(f"--tokens must be a multiple of --rows x {CHUNK}")
  k = jax.random.split(jax.random.key(0), 4)
  t = args.tokens // args.rows
  h = jax.random.normal(k[0], (args.rows, t, args.width))
  w = jax.random.normal(k[1], (args.width, args.vocab)) * args.width ** -0.5
  y = jax.random.randint(k[2], (args.rows, t), 0, args.vocab)
  g = jax.random.normal(k[3], (args.rows, t, 2))
  out = {"vocab": args.vocab, "width": args.width, "tokens": args.tokens,
         "device": jax.devices()[0].device_kind, "jax": jax.__version__}
  results = {}
  for name, head in KINDS.items():  # the same inputs; the gradients agree (checked)
    f = loss_fn(head, args.rows, args.tokens)
    results[name] = f(h, w, y, g)
    out[f"{name}_ms"] = 1e3 * timed(lambda: f(h, w, y, g), args.repeats)["median_s"]
  grads = [jnp.concatenate([x.ravel() for x in results[n][1]]) for n in KINDS]
  out["gradient_relative_difference"] = float(jnp.linalg.norm(grads[0] - grads[1])
                                              / jnp.linalg.norm(grads[1]))
  peak = case_matmul()["flops_per_s"]  # the 2,048^2 product of `benchmarks.run`
  out["matmul_flops_per_s"] = peak
  out["products_at_peak_ms"] = 1e3 * 4 * 2 * args.tokens * args.width * args.vocab / peak
  out["speedup"] = out["autodiff_ms"] / out["rljax_ms"]
  print(json.dumps(out, indent=1))


if __name__ == "__main__":
  main()
