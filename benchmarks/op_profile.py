"""Where a decode's time goes: one `sampler.sample` call of the benchmark workload
(`rljax_side.Setup`, on one CPU device) under `jax.profiler`, each XLA op's duration
summed over the call and labelled with its shape and JAX operation from the optimized
HLO. Prints one JSON object (the findings of benchmarks/README.md were read off such
tables).

  .venv/bin/python -m benchmarks.op_profile decode64 [--top 30]

Durations are per op on the thread that ran it: a product that YNNPACK splits over
both threads counts once, so the sum is core time of the ops' own threads, not wall time.
Control flow (`while`, `call`, `conditional`) is left out: its event encloses the ops of
its body, which are counted themselves (whether XLA records it on a worker thread varies
between hosts).
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import sys
import tempfile
import time

_CASES = {"decode64": 64, "decode256": 256}


def hlo_labels(hlo_text: str) -> dict:
  """Instruction name -> (result shape, the JAX operation of its metadata, or '')."""
  labels = {}
  for line in hlo_text.splitlines():
    m = re.match(r"\s*(?:ROOT )?%([\w.\-]+) = (\S+) ", line)
    if m:
      op = re.search(r'op_name="([^"]+)"', line)
      labels[m.group(1)] = (m.group(2), op.group(1).split("/")[-1] if op else "")
  return labels


_CONTROL_FLOW = ("while", "call", "conditional")


def control_flow_ops(hlo_text: str) -> set[str]:
  """Names of the instructions whose opcode is control flow (their events enclose others)."""
  ops = r"|".join(_CONTROL_FLOW)
  return {m.group(1) for m in re.finditer(rf"%([\w.\-]+) = [^\n]*?\s(?:{ops})\(", hlo_text)}


def dump_optimized_hlo(work: str) -> str:
  """Makes XLA write every module's optimized HLO under `work`/hlo (call it before jax
  is imported: XLA reads its flags once); returns that folder."""
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                             + f" --xla_dump_to={work}/hlo --xla_dump_hlo_as_text")
  return f"{work}/hlo"


def optimized_hlo(hlo_dir: str, module: str) -> str:
  """The optimized HLO text of the modules named `module` (e.g. jit_sample)."""
  return "\n".join(open(f).read()
                   for f in glob.glob(f"{hlo_dir}/*{module}.cpu_after_optimizations.txt"))


def op_totals(xplane_path: str, skip: set[str] = frozenset()
              ) -> tuple[collections.Counter, collections.Counter]:
  """(ns, count) per op name over XLA's worker threads (not the runtime's own events),
  leaving out the ops named in `skip`."""
  from jax.profiler import ProfileData
  ns, count = collections.Counter(), collections.Counter()
  for plane in ProfileData.from_file(xplane_path).planes:
    for line in plane.lines:
      if not line.name.startswith("tf_XLAEigen"):
        continue
      for ev in line.events:
        if ev.name in skip or ev.name.startswith(("end:", "Thunk", "Threadpool",
                                                  "SlinkyThreadPool")):
          continue
        ns[ev.name] += ev.duration_ns
        count[ev.name] += 1
  return ns, count


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("case", choices=sorted(_CASES))
  ap.add_argument("--top", type=int, default=30)
  args = ap.parse_args(argv)
  work = tempfile.mkdtemp(prefix="rljax-profile-")
  hlo_dir = dump_optimized_hlo(work)
  import jax
  from benchmarks import rljax_side
  from rljax import cpu_devices
  cpu_devices.use(1)  # one device: one chain of ops (the benchmark splits the rows over cores)

  new_tokens = _CASES[args.case]
  s = rljax_side.Setup(rljax_side.WORKLOAD["model"], new_tokens)
  jax.block_until_ready(s.sample())  # compile
  with jax.profiler.trace(f"{work}/trace"):
    t0 = time.perf_counter()
    jax.block_until_ready(s.sample())
    wall = time.perf_counter() - t0
  hlo = optimized_hlo(hlo_dir, "jit_sample")
  labels = hlo_labels(hlo)
  ns, count = op_totals(glob.glob(f"{work}/trace/**/*.xplane.pb", recursive=True)[0],
                        skip=control_flow_ops(hlo))
  steps = new_tokens
  by_label = collections.Counter()
  for name, t in ns.items():
    by_label[labels.get(name, (name.split(".")[0], ""))] += t
  out = {
      "case": args.case, "wall_s": wall, "decode_steps": steps,
      "op_core_ms": sum(ns.values()) / 1e6,
      "top_ops": [{"op": n, "shape": labels.get(n, ("", ""))[0],
                   "jax_op": labels.get(n, ("", ""))[1], "calls": count[n],
                   "us_per_step": t / 1e3 / steps}
                  for n, t in ns.most_common(args.top)],
      "by_shape_and_op": [{"shape": k[0], "jax_op": k[1], "us_per_step": t / 1e3 / steps}
                          for k, t in by_label.most_common(args.top)],
      "dir": work,
  }
  json.dump(out, sys.stdout, indent=1)
  print()


if __name__ == "__main__":
  main()
