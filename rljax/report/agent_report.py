"""The agent runs' report: instruments before and after, curves, and a trace viewer.

`build(workdirs, out_dir)` (launch.report picks it for workdirs of the agent pipeline)
writes report.md and a self-contained report.html (`builder.to_html`): per run,
success, repetitive- and invalid-action rates, turns to success and tag shares on
seen and unseen layouts, base -> final; curves of the training trajectories'
success and repetition over steps with the periodic evaluations; and whole
trajectories of the last traced step, each turn beside the environment's answer.
"""

from __future__ import annotations

import glob
import os

from rljax.analysis import runs
from rljax.envs import turns
from rljax.report import figures
from rljax.report import builder
from rljax.report.builder import markdown_table
from rljax.workdir import read_json

INSTRUMENTS = ("success_rate", "repetitive_action_rate", "invalid_action_rate",
               "turns_to_success") + tuple(f"tag_share/{t}" for t in turns.TAGS)
CURVES = ("train/success_rate", "train/repetitive_action_rate", "eval/unseen/success_rate",
          "eval/unseen/repetitive_action_rate")


def is_agent_run(workdir: str) -> bool:
  path = os.path.join(workdir, "config.json")
  return os.path.exists(path) and read_json(path).get("pipeline") == "agent"


def _traces(workdir: str) -> tuple[int, list] | None:
  paths = glob.glob(os.path.join(workdir, "traces", "step_*.json"))
  if not paths:
    return None
  step = max(int(os.path.basename(p)[5:-5]) for p in paths)
  return step, read_json(os.path.join(workdir, "traces", f"step_{step}.json"))


def trace_lines(name: str, step: int, trajectories: list, limit: int = 4) -> list[str]:
  """Whole trajectories: the start, then each turn with the environment's answer."""
  lines = []
  for t in trajectories[:limit]:
    lines += [f"**{name}, step {step}, layout {t['seed']}**: reward {t['reward']}, "
              f"{'success' if t['success'] else 'truncated' if t['truncated'] else 'failed'}"
              + (f", reset fault: {t['reset_fault']}" if t["reset_fault"] else ""), ""]
    rows, events = [], t["events"]
    rows.append({"turn": 0, "agent": "", "valid": "", "environment": events[0]["observation"]})
    k = 0
    for i, e in enumerate(events[1:], start=1):
      if "turn" not in e:
        continue
      k += 1
      answer = events[i + 1]["observation"] if i + 1 < len(events) else ""
      rows.append({"turn": k, "agent": f"`{e['turn']}`",
                   "valid": "yes" if e["valid"] else "**no**" + (f" ({e['fault']})" if e["fault"] else ""),
                   "environment": answer.replace("\n", " ")})
    lines += markdown_table(rows) + [""]
  return lines


def build(workdirs: list[str], out_dir: str) -> dict:
  """Writes report.md, report.html and the curves PNG into `out_dir`; returns their paths."""
  all_runs = builder.load_runs(workdirs, out_dir)
  md = ["# rljax agent report", "", "Runs: " + ", ".join(f"`{w}`" for w in workdirs), ""]
  rows = []
  for run in all_runs:
    s = run["summary"] or {}
    for split in ("seen", "unseen"):
      rows.append({"run": run["name"], "seed": s.get("seed"), "method": s.get("method"),
                   "layouts": split,
                   **{k: f"{_fmt(s.get(f'base_{split}/{k}'))} -> {_fmt(s.get(f'final_{split}/{k}'))}"
                      for k in INSTRUMENTS}})
  md += ["## Instruments, base -> final", "", "Repetitive action: the same action in the "
         "same state as earlier in the episode, per turn; invalid: the environment rejected "
         "it (or the turn had no action); tag shares: turns opening each RLVMR tag.", ""]
  md += markdown_table(rows) + [""]
  md += ["## Curves", "", f"![agent curves]({_curves_png(all_runs, out_dir)})", ""]
  md += ["## Trajectories", ""]
  for run in all_runs:
    dumped = _traces(run["workdir"])
    md += (trace_lines(run["name"], *dumped) if dumped
           else [f"{run['name']}: no trajectories saved (rl.trace_every = 0?).", ""])
  return builder.write(md, out_dir)


def _fmt(v):
  return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def _curves_png(all_runs, out_dir: str) -> str:
  plt = figures._plt()  # pylint: disable=protected-access
  fig, axes = plt.subplots(1, len(CURVES), figsize=(4 * len(CURVES), 3.2))
  for run in all_runs:
    for ax, key in zip(axes, CURVES):
      steps, v = runs.series(run["rows"], key)
      ax.plot(steps, v, marker="o" if key.startswith("eval") else None, label=run["name"])
      ax.set_title(key, fontsize=9)
      ax.set_xlabel("step")
  axes[0].legend(fontsize=7)
  return figures._save(fig, out_dir, "agent_curves.png")  # pylint: disable=protected-access
