"""rljax against TRL and Hugging Face on one GRPO workload, side by side: one JSON object.

  .venv/bin/python -m benchmarks.run [--rounds 3] [--out benchmarks/results/DATE.json]

It sets up the peers' environment on first use (`benchmarks/.venv-peers`: torch CPU,
transformers, TRL, pinned in `peers/requirements.txt`; rljax never imports them), then
runs every case of rljax (`rljax_side.py`) and of the peers (`peers/torch_side.py`)
interleaved, one process per case: round r runs each case once on both sides before
round r + 1, so a slow stretch of this shared machine lands on both. Each process times
`repeats` runs after a warm-up; a figure is the median over rounds x repeats, with its
spread (min, max). Ratios are rljax's speed over the peer's, measured in the same run.

rljax runs as `make demo` runs the testbed (`HEADLINE`): one CPU device per core
(`--cpu_devices -1`, `rljax.cpu_devices`), the sampling's rollouts split over them and
the update on one of them (`mesh.train_devices = 1`), the update's and scorings' rows in
`FORWARD_CHAINS` independent chains (`model.forward_chains` of configs/testbed.py; the
94M model's update keeps the default, one). The cases of `VARIANT_CASES` run
again in each of `VARIANTS`, each right after its headline case: on the one CPU device
JAX makes of a host (the launch commands' default), and on one device per core for
everything (the update data-parallel over the cores): the JSON's `one_device` and
`per_core` objects.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS_VENV = HERE / ".venv-peers"
REQUIREMENTS = HERE / "peers" / "requirements.txt"

# (rljax case, peers case) per row of the comparison; None: that side has no such case.
PAIRS = [("decode64", "decode64"), ("decode256", "decode256"), ("step", "trl_step"),
         ("train", "train"), ("matmul", "matmul"), ("large", None),
         # The extra bfloat16 row (the targets are on float32): both sides' bfloat16
         # compute with float32 weights and optimizer, and their bfloat16 matmul peaks.
         ("train_bf16", "train_bf16"), ("matmul_bf16", "matmul_bf16"),
         # rljax with its layers scanned (`model.scan_layers`), against the same peers.
         ("decode64_scan", None), ("step_scan", None), ("train_scan", None)]
# rljax_side's (--cpu_devices, --train_devices) of the headline and of each variant.
HEADLINE = (-1, 1)
# rljax_side's --forward_chains for the workload's cases: `make demo`'s (configs/testbed.py,
# testbed v2; tests/benchmarks_test.py checks they agree). The "large" case: the default.
FORWARD_CHAINS = 2
VARIANTS = {"one_device": (0, -1), "per_core": (-1, -1)}
VARIANT_CASES = ("decode64", "decode256", "step", "train", "large")


def peers_python() -> pathlib.Path:
  """The peers' interpreter, creating its environment if it is missing."""
  py = PEERS_VENV / "bin" / "python"
  stamp = PEERS_VENV / ".installed"
  if not stamp.exists() or stamp.read_text() != REQUIREMENTS.read_text():
    print(f"setting up {PEERS_VENV} ({REQUIREMENTS.name})", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)],
                   check=True)
    stamp.write_text(REQUIREMENTS.read_text())
  return py


def run_case(side: str, case: str, peers_py: pathlib.Path, repeats: int,
             devices: tuple[int, int] = HEADLINE) -> dict:
  """One process of `case`; rljax's on `devices` (--cpu_devices, --train_devices)."""
  if side == "rljax":
    cmd = [sys.executable, "-m", "benchmarks.rljax_side", case, "--repeats", str(repeats),
           "--cpu_devices", str(devices[0]), "--train_devices", str(devices[1]),
           "--forward_chains", str(1 if case == "large" else FORWARD_CHAINS)]
  else:
    cmd = [str(peers_py), str(HERE / "peers" / "torch_side.py"), case,
           "--repeats", str(repeats)]
  print(f"  {side}: {case}" + (f" (cpu_devices, train_devices = {devices})"
                               if side == "rljax" else ""), file=sys.stderr, flush=True)
  out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
  lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
  if out.returncode or not lines:
    raise RuntimeError(f"{side} {case} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
  return json.loads(lines[-1])


def pooled(runs: list[dict], key: str = "times_s") -> dict:
  """Median and spread of a figure over all rounds' repeats."""
  xs = [x for r in runs for x in r[key]]
  return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def step_split_of(runs: list[dict]) -> dict:
  """The median over runs of each part of the step (sampling, scorings, update, host)."""
  return {k: statistics.median([run["split_median_s"][k] for run in runs])
          for k in runs[0]["split_median_s"]}


def summarize(results: dict) -> dict:
  """The JSON of the issue: rljax's figures, the peers', the peaks, the ratios."""
  r, p = results["rljax"], results["peers"]

  def tok_s(runs):
    return pooled(runs, "tokens_per_s_all")

  def flop_s(runs):
    f = runs[0]["model_flops"]
    t = pooled(runs)
    return {"median": f / t["median"], "min": f / t["max"], "max": f / t["min"]}

  peak_xla = pooled(r["matmul"])
  peak_torch = pooled(p["matmul"])
  peak = lambda t: 2 * 2048 ** 3 / t["median"]
  rl = {
      "decode_tokens_per_s_64": tok_s(r["decode64"]),
      "decode_tokens_per_s_256": tok_s(r["decode256"]),
      "grpo_step_s": pooled(r["step"]), "grpo_step_split_s": step_split_of(r["step"]),
      "first_step_s": [run["first_s"] for run in r["step"]],
      "compiles_after_first_step": max(run["compiles_after_first_step"] for run in r["step"]),
      "train_fwd_bwd_ref_s": pooled(r["train"]),
      "train_model_flops": r["train"][0]["model_flops"],
      "train_flops_per_s": flop_s(r["train"]),
      "large_update_s": pooled(r["large"]), "large_model_flops": r["large"][0]["model_flops"],
      "large_flops_per_s": flop_s(r["large"]),
      "peak_rss_mb": {c: max(run["peak_rss_mb"] for run in r[c]) for c in r},
  }
  peers = {
      "hf_generate_tokens_per_s_64": tok_s(p["decode64"]),
      "hf_generate_tokens_per_s_256": tok_s(p["decode256"]),
      "trl_grpo_step_s": pooled(p["trl_step"]),
      "trl_generate_s": statistics.median([run["generate_median_s"] for run in p["trl_step"]]),
      "torch_train_fwd_bwd_ref_s": pooled(p["train"]),
      "torch_train_flops_per_s": flop_s(p["train"]),
      "peak_rss_mb": {c: max(run["peak_rss_mb"] for run in p[c]) for c in p},
      "versions": p["matmul"][0]["versions"],
  }

  def vs_hf(figures: dict, new_tokens: int) -> float:
    return (figures[f"decode_tokens_per_s_{new_tokens}"]["median"]
            / peers[f"hf_generate_tokens_per_s_{new_tokens}"]["median"])

  d64, d256 = vs_hf(rl, 64), vs_hf(rl, 256)

  def vs_peers(step_s, train_s) -> dict:
    return {"step_speedup_vs_trl": peers["trl_grpo_step_s"]["median"] / step_s["median"],
            "train_speedup_vs_torch": (peers["torch_train_fwd_bwd_ref_s"]["median"]
                                       / train_s["median"])}

  ratios = {
      "decode_speedup_vs_hf": min(d64, d256), "decode_speedup_vs_hf_64": d64,
      "decode_speedup_vs_hf_256": d256,
      **vs_peers(rl["grpo_step_s"], rl["train_fwd_bwd_ref_s"]),
      "mfu_large": rl["large_flops_per_s"]["median"] / peak(peak_xla),
      "train_fraction_of_xla_peak": rl["train_flops_per_s"]["median"] / peak(peak_xla),
      "torch_train_fraction_of_torch_peak": (peers["torch_train_flops_per_s"]["median"]
                                             / peak(peak_torch)),
  }
  bf16 = {"rljax_train_fwd_bwd_ref_s": pooled(r["train_bf16"]),
          "torch_train_fwd_bwd_ref_s": pooled(p["train_bf16"]),
          "peak_matmul_flops_per_s": {"xla": peak(pooled(r["matmul_bf16"])),
                                      "torch": peak(pooled(p["matmul_bf16"]))}}
  bf16["train_speedup_vs_torch"] = (bf16["torch_train_fwd_bwd_ref_s"]["median"]
                                    / bf16["rljax_train_fwd_bwd_ref_s"]["median"])
  scan = {"decode_tokens_per_s_64": tok_s(r["decode64_scan"]),
          "grpo_step_s": pooled(r["step_scan"]),
          "first_step_s": [run["first_s"] for run in r["step_scan"]],
          "train_fwd_bwd_ref_s": pooled(r["train_scan"])}
  scan["ratios"] = {
      "decode_speedup_vs_hf_64": vs_hf(scan, 64),
      **vs_peers(scan["grpo_step_s"], scan["train_fwd_bwd_ref_s"])}

  def variant(name: str) -> dict:
    """The `VARIANT_CASES` figures and ratios of one of `VARIANTS`."""
    runs = {c: r[f"{c}_{name}"] for c in VARIANT_CASES}
    v = {"cpu_devices": runs["decode64"][0]["cpu_devices"],
         "train_devices": VARIANTS[name][1],
         "decode_tokens_per_s_64": tok_s(runs["decode64"]),
         "decode_tokens_per_s_256": tok_s(runs["decode256"]),
         "grpo_step_s": pooled(runs["step"]), "grpo_step_split_s": step_split_of(runs["step"]),
         "train_fwd_bwd_ref_s": pooled(runs["train"]),
         "large_flops_per_s": flop_s(runs["large"])}
    v["ratios"] = {
        "decode_speedup_vs_hf_64": vs_hf(v, 64), "decode_speedup_vs_hf_256": vs_hf(v, 256),
        **vs_peers(v["grpo_step_s"], v["train_fwd_bwd_ref_s"]),
        "mfu_large": v["large_flops_per_s"]["median"] / peak(peak_xla)}
    return v

  return {"rljax": {"cpu_devices": r["decode64"][0]["cpu_devices"],
                    "train_devices": HEADLINE[1], "forward_chains": FORWARD_CHAINS, **rl},
          "peers": peers,
          "peak_matmul_flops_per_s": {"xla": peak(peak_xla), "torch": peak(peak_torch)},
          "ratios": ratios, "bfloat16": bf16, "scan_layers": scan,
          **{name: variant(name) for name in VARIANTS}}


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--rounds", type=int, default=3)
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--out", type=pathlib.Path, default=None,
                  help="also write the JSON (with every raw run) here")
  args = ap.parse_args(argv)
  py = peers_python()
  results = {"rljax": {}, "peers": {}}
  for rnd in range(args.rounds):
    print(f"round {rnd + 1}/{args.rounds}", file=sys.stderr, flush=True)
    for mine, theirs in PAIRS:
      results["rljax"].setdefault(mine, []).append(run_case("rljax", mine, py, args.repeats))
      if mine in VARIANT_CASES:
        for name, devices in VARIANTS.items():
          results["rljax"].setdefault(f"{mine}_{name}", []).append(
              run_case("rljax", mine, py, args.repeats, devices))
      if theirs:
        results["peers"].setdefault(theirs, []).append(run_case("peers", theirs, py,
                                                                args.repeats))
  import jax  # only for the versions line; the cases ran in their own processes
  out = {"date": datetime.date.today().isoformat(), "machine": _machine(),
         "jax": jax.__version__, "rounds": args.rounds, "repeats": args.repeats,
         **summarize(results)}
  if args.out:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**out, "raw": results}, indent=1))
  print(json.dumps(out, indent=1))


def _machine() -> str:
  cpu = platform.processor() or platform.machine()
  try:
    for line in open("/proc/cpuinfo"):
      if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
  except OSError:
    pass
  return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


if __name__ == "__main__":
  main()
