"""Compile time of the GRPO update step against depth, layers unrolled vs scanned.

For each depth (default 4 and 28 layers) and layout (`model.scan_layers` False/True)
it compiles the update step of `rljax.rl.update` (policy forward + backward,
reference-free clipped loss, AdamW) for a small Qwen2-shaped model and times the
compilation, then one step after it. Prints one JSON object.

  .venv/bin/python -m benchmarks.scan_layers [--depths 4 28] [--width 256]
"""

import argparse
import json
import time

import jax
import numpy as np

from rljax import sharding
from rljax.config import OptimConfig
from rljax.model.config import ModelConfig
from rljax.rl import train_state
from rljax.rl.losses import LossConfig
from rljax.rl.update import make_step_fns


def measure(n_layers: int, scan: bool, width: int, batch: int, seq: int) -> dict:
  cfg = ModelConfig(vocab_size=1024, d_model=width, n_layers=n_layers, n_heads=4,
                    n_kv_heads=2, head_dim=width // 4, mlp_dim=3 * width, qkv_bias=True,
                    tie_embeddings=True, max_seq_len=2 * seq, scan_layers=scan)
  mesh = sharding.make_mesh(1, 1, 1, devices=jax.devices()[:1])
  with jax.set_mesh(mesh):
    graphdef, abs_state = train_state.abstract_model(cfg)
    opt = train_state.make_optimizer(OptimConfig(lr=1e-5), 10)
    sh = train_state.state_shardings(graphdef, abs_state, opt, mesh, with_reference=True)
    state = train_state.new_state(train_state.init_params(cfg, 0, sh.params), opt, sh, 0,
                                  with_reference=True)
    fns = make_step_fns(graphdef, opt, sh, mesh, LossConfig(), 1.0, False, on_policy=False,
                        weighted=False)
    rng = np.random.default_rng(0)
    mb = {"prompt": rng.integers(0, 1024, (batch, seq)).astype(np.int32),
          "prompt_mask": np.ones((batch, seq), np.int32),
          "tokens": rng.integers(0, 1024, (batch, seq)).astype(np.int32),
          "mask": np.ones((batch, seq), np.float32),
          "old_logp": np.full((batch, seq), -7.0, np.float32),
          "ref_logp": np.full((batch, seq), -7.0, np.float32),
          "adv": rng.normal(size=(batch, seq)).astype(np.float32),
          "sft_mask": np.zeros(batch, np.float32), "offpolicy": np.zeros(batch, np.float32),
          "is_weight": np.ones((batch, seq), np.float32)}
    coefs = {"entropy": np.float32(0), "kl": np.float32(0), "sft": np.float32(0)}
    t0 = time.perf_counter()
    state, m = fns.update(state, mb, jax.random.key(0), coefs)
    jax.block_until_ready(m["loss"])
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    state, m = fns.update(state, mb, jax.random.key(1), coefs)
    jax.block_until_ready(m["loss"])
    step = time.perf_counter() - t0
  return {"layers": n_layers, "scan_layers": scan, "params": cfg.num_params(),
          "compile_s": first - step, "step_s": step}


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--depths", type=int, nargs="+", default=[4, 28])
  ap.add_argument("--width", type=int, default=256)
  ap.add_argument("--batch", type=int, default=8)
  ap.add_argument("--seq", type=int, default=64)
  args = ap.parse_args()
  rows = [measure(n, scan, args.width, args.batch, args.seq)
          for n in args.depths for scan in (False, True)]
  by = {(r["layers"], r["scan_layers"]): r["compile_s"] for r in rows}
  lo, hi = min(args.depths), max(args.depths)
  print(json.dumps({
      "rows": rows,
      f"compile_growth_{lo}_to_{hi}_unrolled": by[(hi, False)] / by[(lo, False)],
      f"compile_growth_{lo}_to_{hi}_scanned": by[(hi, True)] / by[(lo, True)],
  }, indent=1))


if __name__ == "__main__":
  main()
