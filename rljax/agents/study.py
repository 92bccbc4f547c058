"""The agent study: RLVMR against outcome-only GRPO, same budget, several seeds.

`configs/agent_study.py` is an agent config plus a `study` section: `methods` and
`seeds` (comma separated). Per seed the first method's run cold-starts the base
agent; the other methods start from a copy of it (tokenizer, base checkpoint, base
evaluation), so each comparison is between methods on one base. A run whose
summary.json is there is reused; a stopped one resumes.

The result (`study.json`): per method and split, each instrument's mean over seeds
with a 95% t-interval, and the paired RLVMR - GRPO difference of the unseen layouts'
repetitive-action rate with its t-interval, which decides the verdict against the
paper's claim (arXiv 2507.22844: fewer repetitive actions than outcome-only RL):
reproduced (interval below 0), refuted (above 0) or mixed (it contains 0).
"""

from __future__ import annotations

import copy
import os

import numpy as np
from scipy import stats
from tqdm.auto import tqdm

from rljax.agents import pipeline
from rljax.agents.config import AgentConfig, from_config_dict
from rljax.analysis.study import seed_base
from rljax.report import agent_report
from rljax.workdir import read_json, write_json

SHARED = ("tokenizer.model", "base", "base_eval.json", "cold_start_metrics.jsonl")
INSTRUMENTS = ("success_rate", "repetitive_action_rate", "invalid_action_rate",
               "turns_to_success")
VERDICT_KEY = "final_unseen/repetitive_action_rate"


def plan(config_dict) -> dict[tuple[str, int], AgentConfig]:
  """{(method, seed): validated config}, all checked before anything runs."""
  values = config_dict.to_dict() if hasattr(config_dict, "to_dict") else copy.deepcopy(
      dict(config_dict))
  study = values.pop("study")
  methods = [m.strip() for m in study["methods"].split(",") if m.strip()]
  seeds = [int(s) for s in str(study["seeds"]).split(",") if s.strip()]
  if not methods or not seeds:
    raise ValueError(f"study.methods ({study['methods']!r}) and study.seeds "
                     f"({study['seeds']!r}) must each name at least one")
  out = {}
  for seed in seeds:
    for method in methods:
      v = copy.deepcopy(values)
      v["seed"], v["rl"]["method"] = seed, method
      out[(method, seed)] = from_config_dict(v)
  return out


def t_interval(x, level: float = 0.95) -> dict:
  """Mean and Student-t interval of `x` over seeds (None bounds with one seed)."""
  x = np.asarray([v for v in x if v is not None and np.isfinite(v)], np.float64)
  if len(x) == 0:
    return {"mean": None, "lo": None, "hi": None, "n": 0}
  mean = float(x.mean())
  if len(x) < 2:
    return {"mean": mean, "lo": None, "hi": None, "n": 1}
  half = stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
  return {"mean": mean, "lo": mean - half, "hi": mean + half, "n": len(x)}


def verdict(lo, hi) -> str:
  if lo is None or hi is None:
    return "undecided (one seed)"
  return "reproduced" if hi < 0 else "refuted" if lo > 0 else "mixed"


def summarize(summaries: dict[tuple[str, int], dict]) -> dict:
  """The study's table from {(method, seed): summary.json} (module docstring)."""
  methods = sorted({m for m, _ in summaries}, key=lambda m: (m != "grpo", m))
  table = {}
  for m in methods:
    rows = [s for (mm, _), s in sorted(summaries.items()) if mm == m]
    table[m] = {f"{when}_{split}/{k}": t_interval([r.get(f"{when}_{split}/{k}") for r in rows])
                for when in ("base", "final") for split in ("seen", "unseen")
                for k in INSTRUMENTS}
  out = {"methods": methods, "seeds": sorted({s for _, s in summaries}), "table": table}
  if {"grpo", "rlvmr"} <= set(methods):
    seeds = sorted(s for m, s in summaries if m == "rlvmr" and ("grpo", s) in summaries)
    diff = [summaries[("rlvmr", s)][VERDICT_KEY] - summaries[("grpo", s)][VERDICT_KEY]
            for s in seeds]
    iv = t_interval(diff)
    grpo = np.mean([summaries[("grpo", s)][VERDICT_KEY] for s in seeds])
    out["repetition"] = {"key": VERDICT_KEY, "rlvmr_minus_grpo": iv, "per_seed": diff,
                         "relative_change": iv["mean"] / grpo if grpo else None,
                         "verdict": verdict(iv["lo"], iv["hi"])}
  return out


def run(config_dict, workdir: str) -> dict:
  """Runs (or reuses) every (method, seed) run, then writes `workdir/study.json`."""
  configs = plan(config_dict)
  summaries = {}
  firsts = {}
  for i, ((method, seed), cfg) in enumerate(configs.items()):
    d = os.path.join(workdir, f"seed{seed}", method)
    path = os.path.join(d, "summary.json")
    if os.path.exists(path) and read_json(path).get("steps") == cfg.rl.steps:
      tqdm.write(f"agent study: {method} seed {seed} already finished in {d}; reusing it")
    else:
      tqdm.write(f"agent study: run {i + 1}/{len(configs)}: {method}, seed {seed}")
      if seed in firsts:
        seed_base(firsts[seed], d, SHARED)
      pipeline.run(cfg, d)
    firsts.setdefault(seed, d)
    summaries[(method, seed)] = read_json(path)
    out = summarize(summaries)
    write_json(out, os.path.join(workdir, "study.json"))  # after every run: partial results
  dirs = [os.path.join(workdir, f"seed{s}", m) for m, s in configs]
  out["report"] = agent_report.build(dirs, os.path.join(workdir, "report"))
  write_json(out, os.path.join(workdir, "study.json"))
  return out
