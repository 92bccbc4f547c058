"""The GPU check of the performance issue: a Qwen2.5-0.5B-shaped model in bfloat16.

  python -m benchmarks.gpu_qwen05b [--tiny] [--scan_layers] [--attention rljax,cudnn]
      [--profile DIR]

Prints one JSON object: the GRPO update step's achieved FLOP/s over the measured bf16
matmul peak and over the chip's datasheet peak (MFU), once per attention kernel named
(`model.attention`: rljax's own, cuDNN's flash attention), and decode tokens/s over the
memory-bandwidth roofline (the bytes a decode step must read: the weights as the
sampler holds them plus the filled KV cache, at the measured copy bandwidth), with the
first kernel. Random weights (no checkpoint needed). `--tiny --attention rljax,xla`
checks the script on a CPU (cuDNN needs the GPU); the project never depends on a GPU.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import rljax_side
from benchmarks.workload import grpo_update_flops

QWEN25_05B = dict(vocab_size=151936, hidden_size=896, num_hidden_layers=24,
                  num_attention_heads=14, num_key_value_heads=2, head_dim=64,
                  intermediate_size=4864, rope_theta=1e6)
TINY = dict(QWEN25_05B, vocab_size=1024, hidden_size=128, num_hidden_layers=2,
            intermediate_size=256)
# Dense bf16 datasheet peaks (FLOP/s) and HBM bandwidths (B/s) by device kind.
DATASHEET = {"NVIDIA H200": (989e12, 4.8e12), "NVIDIA H100 80GB HBM3": (989e12, 3.35e12)}


def _median(fn, repeats=5, first: list | None = None):
  """Median seconds of `repeats` calls after a warm-up call (whose time, compile
  included, is appended to `first` when given)."""
  t0 = time.perf_counter()
  jax.block_until_ready(fn())
  if first is not None:
    first.append(time.perf_counter() - t0)
  ts = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    ts.append(time.perf_counter() - t0)
  return float(np.median(ts))


def matmul_peak(n: int) -> float:
  x = jnp.ones((n, n), jnp.bfloat16)
  f = jax.jit(lambda a: a @ a)
  return 2 * n ** 3 / _median(lambda: f(x))


def copy_bandwidth(n_bytes: int) -> float:
  x = jnp.ones((n_bytes // 4,), jnp.float32)
  f = jax.jit(lambda a: a * 1.0001)
  return 2 * n_bytes / _median(lambda: f(x))  # read + write


def update_mfu(m: dict, sequences: int, completion: int, scan: bool, attention: str,
               profile: str | None = None) -> dict:
  s = rljax_side.Setup(m, completion, dtype="bfloat16", scan_layers=scan, attention=attention)
  rng = np.random.default_rng(0)
  p = rljax_side.G["prompt_length"]
  tokens = rng.integers(2, m["vocab_size"], (sequences, completion)).astype(np.int32)
  prompt = rng.integers(2, m["vocab_size"], (sequences, p)).astype(np.int32)
  mask = np.ones_like(tokens, np.float32)
  b = {"prompt": prompt, "prompt_mask": np.ones_like(prompt), "tokens": tokens, "mask": mask,
       "adv": rng.standard_normal((sequences, 1)).astype(np.float32) * mask,
       "sft_mask": np.zeros(sequences, np.float32),
       "offpolicy": np.zeros(sequences, np.float32), "is_weight": np.ones_like(mask)}
  b["ref_logp"], _ = s.score(s.state.params, b)
  b["old_logp"] = b["ref_logp"]
  first = []
  t = _median(lambda: s.update(b), repeats=3, first=first)
  if profile:  # one more update under the profiler, after the timed ones
    with jax.profiler.trace(profile):
      s.update(b)
  flops = grpo_update_flops(m, sequences, p, completion)["policy_fwd_bwd"]
  return {"sequences": sequences, "tokens_per_sequence": p + completion, "update_s": t,
          "first_call_s": first[0], "model_flops": flops, "flops_per_s": flops / t}


def decode(m: dict, prompts: int, new_tokens: int, scan: bool, attention: str,
           profile: str | None = None) -> dict:
  s = rljax_side.Setup(m, new_tokens, dtype="bfloat16", scan_layers=scan, prompts=prompts,
                       attention=attention)
  first = []
  t = _median(s.sample, repeats=3, first=first)
  if profile:
    with jax.profiler.trace(profile):
      jax.block_until_ready(s.sample())
  rows = prompts * rljax_side.G["num_generations"]
  d, v, layers = m["hidden_size"], m["vocab_size"], m["num_hidden_layers"]
  n_block = sum(x.size for x in jax.tree.leaves(s.state.params)) - v * d
  # The sampler reads block weights in bf16, the tied embedding / head in f32 and, per
  # step, the filled cache (bf16 K and V of every layer), on average half the new tokens.
  cache_per_slot = 2 * layers * m["num_key_value_heads"] * m["head_dim"] * 2 * rows
  avg_slots = rljax_side.G["prompt_length"] + new_tokens / 2
  step_bytes = 2 * n_block + 4 * v * d + cache_per_slot * avg_slots
  return {"rows": rows, "new_tokens": new_tokens, "decode_s": t, "first_call_s": first[0],
          "tokens_per_s": rows * new_tokens / t, "bytes_per_step": step_bytes}


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--tiny", action="store_true")
  ap.add_argument("--scan_layers", action="store_true")
  ap.add_argument("--attention", default="rljax,cudnn",
                  help="comma-separated `model.attention` kernels; the update is timed with each")
  ap.add_argument("--profile", help="write jax.profiler traces of one update per kernel "
                  "(DIR/update-KERNEL) and one decode (DIR/decode) here")
  ap.add_argument("--sequences", type=int, default=32)
  ap.add_argument("--completion", type=int, default=480)
  ap.add_argument("--prompts", type=int, default=16)
  ap.add_argument("--new_tokens", type=int, default=256)
  args = ap.parse_args(argv)
  m = TINY if args.tiny else QWEN25_05B
  if args.tiny:
    args.sequences, args.completion, args.prompts, args.new_tokens = 4, 32, 2, 16
  kind = jax.devices()[0].device_kind
  peak = matmul_peak(512 if args.tiny else 8192)
  bw = copy_bandwidth(2 ** 24 if args.tiny else 2 ** 32)
  sheet_peak, sheet_bw = DATASHEET.get(kind, (None, None))
  kernels = args.attention.split(",")
  out = {"device": kind, "jax": jax.__version__, "scan_layers": args.scan_layers,
         "bf16_matmul_peak_flops_per_s": peak, "copy_bandwidth_bytes_per_s": bw,
         "update": {}, "mfu_vs_measured_peak": {}, "mfu_vs_datasheet": {}}
  # Each part runs alone: a failure in one (reported with its error) leaves the others'
  # figures, since a device lease is too short to rerun everything.
  for kernel in kernels:
    try:
      up = update_mfu(m, args.sequences, args.completion, args.scan_layers, kernel,
                      args.profile and f"{args.profile}/update-{kernel}")
      out["update"][kernel] = up
      out["mfu_vs_measured_peak"][kernel] = up["flops_per_s"] / peak
      out["mfu_vs_datasheet"][kernel] = up["flops_per_s"] / sheet_peak if sheet_peak else None
    except Exception as e:  # noqa: BLE001 -- reported, not hidden
      out[f"update_error_{kernel}"] = f"{type(e).__name__}: {e}"[:2000]
  try:
    dec = decode(m, args.prompts, args.new_tokens, args.scan_layers, kernels[0],
                 args.profile and f"{args.profile}/decode")
    roofline = dec["rows"] / (dec["bytes_per_step"] / bw)
    out.update(decode=dec, decode_roofline_tokens_per_s=roofline,
               decode_fraction_of_roofline=dec["tokens_per_s"] / roofline,
               decode_fraction_of_datasheet_roofline=(
                   dec["tokens_per_s"] / (dec["rows"] / (dec["bytes_per_step"] / sheet_bw))
                   if sheet_bw else None))
  except Exception as e:  # noqa: BLE001
    out["decode_error"] = f"{type(e).__name__}: {e}"[:2000]
  stats = jax.devices()[0].memory_stats() or {}
  out["peak_device_bytes"] = stats.get("peak_bytes_in_use")
  print(json.dumps(out, indent=1))
  return 1 if any("_error" in k for k in out) else 0


if __name__ == "__main__":
  raise SystemExit(main())
