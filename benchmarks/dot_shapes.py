"""The training case's matrix products, each timed alone: XLA's, with the shapes and
operand layouts of rljax's compiled update and reference scoring, against torch's on
the same shapes and layouts (torch in the peers' environment, `benchmarks.run` sets it
up). What the matmul kernels alone make of `train_speedup_vs_torch`.

  .venv/bin/python -m benchmarks.dot_shapes [--case train] [--repeats 7]

Prints one JSON object: each distinct product (operand shapes and dimension numbers as
XLA's optimized HLO has them, how many times a run executes it, the median ms of XLA
and torch alone), the sums over a run, and their ratio. A product whose operands are
transposed views is handed to torch as such views (`torch.matmul` on a permuted
tensor), as torch's own code would pass them.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

from benchmarks import op_profile

def hlo_dots(hlo_text: str) -> list[dict]:
  """Every dot of an optimized HLO module: operand shapes and dimension numbers. The
  operands' shapes come from the instructions (or fusion parameters) defining them."""
  def dims_of(shape: str) -> list[int]:  # "f32[6144,256]{1,0}" -> [6144, 256]
    return [int(x) for x in re.match(r"\w+\[([\d,]*)\]", shape)[1].split(",") if x]

  shapes = {name: shape for name, (shape, _) in op_profile.hlo_labels(hlo_text).items()}
  dots = []
  for line in hlo_text.splitlines():
    ops = re.search(r" dot\(%([\w.\-]+), %([\w.\-]+)\)", line)
    if ops:
      dims = dict(re.findall(r"(\w+_dims)=\{([\d,]*)\}", line))
      dots.append({"lhs": dims_of(shapes[ops.group(1)]), "rhs": dims_of(shapes[ops.group(2)]),
                   **{k: [int(x) for x in dims.get(k, "").split(",") if x]
                      for k in ("lhs_contracting_dims", "rhs_contracting_dims",
                                "lhs_batch_dims", "rhs_batch_dims")}})
  return dots


def dot_flops(d: dict) -> int:
  """2 x batch x m x n x k of a dot_general."""
  size = lambda shape, axes: int(np.prod([shape[i] for i in axes]))
  lhs, rhs = d["lhs"], d["rhs"]
  return 2 * int(np.prod(lhs)) * int(np.prod(rhs)) // (
      size(lhs, d["lhs_contracting_dims"]) * size(rhs, d["rhs_batch_dims"]))


def xla_ms(d: dict, repeats: int) -> float:
  """The product alone, jitted: median ms of `repeats` after a warm-up."""
  import jax
  import jax.numpy as jnp
  from benchmarks.rljax_side import timed
  dn = ((d["lhs_contracting_dims"], d["rhs_contracting_dims"]),
        (d["lhs_batch_dims"], d["rhs_batch_dims"]))
  f = jax.jit(lambda x, y: jax.lax.dot_general(x, y, dn))
  x, y = jnp.ones(d["lhs"]), jnp.ones(d["rhs"])
  return 1e3 * timed(lambda: f(x, y), repeats)["median_s"]


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--case", default="train", choices=["train", "large"])
  ap.add_argument("--repeats", type=int, default=7)
  args = ap.parse_args(argv)
  hlo_dir = op_profile.dump_optimized_hlo(tempfile.mkdtemp(prefix="rljax-dots-"))
  from benchmarks import rljax_side
  from benchmarks.run import peers_python

  # As `rljax_side`'s `train` (update + the reference's scoring) and `large` (update only).
  with_reference = args.case == "train"
  if with_reference:
    spec = (rljax_side.WORKLOAD["model"], rljax_side.G["batch_sequences"],
            rljax_side.G["max_new_tokens"])
  else:
    spec = (rljax_side.LARGE_MODEL, rljax_side.LARGE_BATCH["sequences"],
            rljax_side.LARGE_BATCH["completion_length"])
  run, model_flops = rljax_side.train_run(*spec, with_reference)
  run()  # compiles (and dumps) the update and the scoring as the timed case runs them
  modules = ("jit_rl_update", "jit_token_logp") if with_reference else ("jit_rl_update",)
  dots = [d for m in modules for d in hlo_dots(op_profile.optimized_hlo(hlo_dir, m))]
  counts = collections.Counter(json.dumps(d, sort_keys=True) for d in dots)
  distinct = [json.loads(k) for k in counts]
  print(f"{len(dots)} products, {len(distinct)} distinct; timing them in XLA and torch",
        file=sys.stderr, flush=True)
  for d in distinct:
    d["count"] = counts[json.dumps(d, sort_keys=True)]
    d["gflop"] = dot_flops(d) / 1e9
    d["xla_ms"] = xla_ms(d, args.repeats)
  peer = subprocess.run([str(peers_python()), os.path.join(os.path.dirname(__file__), "peers",
                                                           "torch_dots.py"),
                         "--repeats", str(args.repeats)],
                        input=json.dumps(distinct), capture_output=True, text=True, check=True)
  for d, ms in zip(distinct, json.loads(peer.stdout)["torch_ms"]):
    d["torch_ms"] = ms
  total = lambda key: sum(d[key] * d["count"] for d in distinct)
  out = {"case": args.case, "model_flops": model_flops, "products": len(dots),
         "products_gflop": total("gflop"), "xla_ms": total("xla_ms"),
         "torch_ms": total("torch_ms")}
  out["torch_over_xla"] = out["torch_ms"] / out["xla_ms"]
  out["distinct"] = sorted(distinct, key=lambda d: -d["count"] * d["xla_ms"])
  print(json.dumps(out, indent=1))


if __name__ == "__main__":
  main()
