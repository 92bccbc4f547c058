"""torch's side of `benchmarks.dot_shapes` (peers' environment): the products read from
stdin (operand shapes and XLA's dimension numbers), each timed alone with
`torch.matmul` on views laid out as [batch..., m, k] x [batch..., k, n]; prints
{"torch_ms": [...]} in the same order."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch


def view(x: torch.Tensor, batch: list, contracting: list, lhs: bool):
  """x's axes permuted (a view, no copy) to [batch..., m, k] (lhs) or [batch..., k, n].
  XLA's optimized dots have one contracting and at most one free axis per operand."""
  free = [i for i in range(x.dim()) if i not in batch + contracting]
  if len(contracting) != 1 or len(free) > 1:
    raise ValueError(f"not a canonical dot operand: {list(x.shape)}, batch {batch}, "
                     f"contracting {contracting}")
  return x.permute(batch + (free + contracting if lhs else contracting + free))


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--repeats", type=int, default=7)
  args = ap.parse_args()
  out = []
  for d in json.load(sys.stdin):
    x, y = torch.ones(d["lhs"]), torch.ones(d["rhs"])
    xv = view(x, d["lhs_batch_dims"], d["lhs_contracting_dims"], lhs=True)
    yv = view(y, d["rhs_batch_dims"], d["rhs_contracting_dims"], lhs=False)
    torch.matmul(xv, yv)
    times = []
    for _ in range(args.repeats):
      t0 = time.perf_counter()
      torch.matmul(xv, yv)
      times.append(time.perf_counter() - t0)
    out.append(1e3 * statistics.median(times))
  print(json.dumps({"torch_ms": out}))


if __name__ == "__main__":
  main()
