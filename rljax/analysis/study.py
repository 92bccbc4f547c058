"""`launch.study`: one run per method on a shared base model, then a side-by-side report.

The study config is an experiment config plus a `study` section: `methods` (comma
separated names) and `overrides` ({method: {section: {field: value}}}; section
"top" holds top-level fields such as completion_len). Every run
gets the same settings except its method's overrides. The first run pretrains
the base model; the others start from a copy of it (tokenizer, base checkpoint,
base evaluation), so the comparison is between methods, not base models. A run
whose summary.json is already there is reused; a stopped one resumes from its
last checkpoint.
"""

from __future__ import annotations

import copy
import os
import shutil

from tqdm.auto import tqdm

from rljax import experiment
from rljax.workdir import write_json
from rljax.report import builder
from rljax.analysis import runs
from rljax.config import ExperimentConfig, from_config_dict

_SHARED = ("tokenizer.model", "base", "base_eval.json", "pretrain_metrics.jsonl")


def plan(config_dict) -> dict[str, ExperimentConfig]:
  """{method: validated config} for every method of the study (all checked up front)."""
  values = config_dict.to_dict() if hasattr(config_dict, "to_dict") else copy.deepcopy(
      dict(config_dict))
  study = values.pop("study")
  methods = [m.strip() for m in study["methods"].split(",") if m.strip()]
  unknown = [m for m in methods if m not in study["overrides"]]
  if unknown or not methods:
    raise ValueError(f"study.methods {unknown or methods} unknown or empty; "
                     f"valid: {sorted(study['overrides'])}")
  out = {}
  for method in methods:
    v = copy.deepcopy(values)
    for section, fields in study["overrides"][method].items():
      (v if section == "top" else v[section]).update(fields)  # "top": top-level fields
    try:
      out[method] = from_config_dict(v)
    except ValueError as e:
      raise ValueError(f"study method {method!r}: {e}") from e
  return out


def _finished(workdir: str, cfg: ExperimentConfig) -> bool:
  summary = runs.load(workdir)["summary"] if os.path.exists(workdir) else None
  return summary is not None and summary.get("steps") == cfg.rl.steps


def seed_base(src: str, dst: str, names=_SHARED) -> None:
  """Copies the first run's tokenizer and base model (`names`) into a new run's workdir."""
  os.makedirs(dst, exist_ok=True)
  for name in names:
    s, d = os.path.join(src, name), os.path.join(dst, name)
    if not os.path.exists(s) or os.path.exists(d):
      continue
    if os.path.isdir(s):
      shutil.copytree(s, d + ".tmp", dirs_exist_ok=True)
      os.replace(d + ".tmp", d)
    else:
      shutil.copyfile(s, d + ".tmp")
      os.replace(d + ".tmp", d)


def run(config_dict, workdir: str) -> dict:
  """Runs (or reuses) every method's run, then reports; returns the headline rows."""
  configs = plan(config_dict)
  os.makedirs(workdir, exist_ok=True)
  dirs = {m: os.path.join(workdir, m) for m in configs}
  first = dirs[next(iter(configs))]
  for i, (method, cfg) in enumerate(configs.items()):
    if _finished(dirs[method], cfg):
      tqdm.write(f"study: {method} already finished in {dirs[method]}; reusing it")
      continue
    tqdm.write(f"study: run {i + 1}/{len(configs)}: {method}")
    if dirs[method] != first:
      seed_base(first, dirs[method])
    experiment.run(cfg, dirs[method])
  paths = builder.build(list(dirs.values()), os.path.join(workdir, "report"))
  rows = [runs.headline(runs.load(d)) for d in dirs.values()]
  write_json({"methods": list(configs), "headline": rows, "report": paths},
                      os.path.join(workdir, "study.json"))
  return {"headline": rows, "report": paths}
