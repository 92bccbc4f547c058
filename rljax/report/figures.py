"""The report's figures: one PNG each, written next to the report (see `rljax.report.builder`)."""

from __future__ import annotations

import os

import numpy as np

from rljax.analysis import runs
from rljax.analysis.fits import sigmoid_curve

DIAGNOSTICS = ("cov_mean", "cov_p99", "entropy_planning", "entropy_execution",
               "semantic_entropy", "distinct_answers", "passG_minus_pass1", "shortcut_frac")


def _plt():
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  return plt


def _save(fig, out_dir: str, name: str) -> str:
  path = os.path.join(out_dir, name)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  _plt().close(fig)
  return name


def curves_png(all_runs, out_dir):
  plt = _plt()
  fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
  for run in all_runs:
    for ax, key in zip(axes, ("reward_mean", "accuracy", "entropy")):
      steps, v = runs.series(run["rows"], key)
      ax.plot(steps, v, label=run["name"])
      ax.set_title(key)
      ax.set_xlabel("step")
    steps, v = runs.series(run["rows"], "eval/pass@1")
    if len(v):
      axes[1].plot(steps, v, "o--", ms=3, label=f"{run['name']} held-out pass@1")
  axes[1].legend(fontsize=7)
  return _save(fig, out_dir, "curves.png")


def law_png(all_runs, out_dir):
  plt = _plt()
  fig, ax = plt.subplots(figsize=(5.5, 3.8))
  for run in all_runs:
    law = runs.fits(run)[0]
    h = np.asarray(law["entropy"])
    if not len(h):
      continue
    pts = ax.scatter(h, law["accuracy"], s=8, alpha=0.5)
    grid = np.linspace(0, h.max() * 1.05, 50)
    f = law["full"]
    ax.plot(grid, f["b"] - f["a"] * np.exp(grid), color=pts.get_facecolor()[0],
            label=f"{run['name']}: a={f['a']:.3f} b={f['b']:.3f} ceiling={f['ceiling']:.3f}")
  ax.set_xlabel("rollout entropy H (nats/token)")
  ax.set_ylabel("R (" + runs.fits(all_runs[0])[0]["on"] + ")")
  ax.set_title("R = -a exp(H) + b")
  ax.legend(fontsize=7)
  return _save(fig, out_dir, "entropy_law.png")


def scaling_png(all_runs, out_dir):
  plt = _plt()
  fig, ax = plt.subplots(figsize=(5.5, 3.8))
  for run in all_runs:
    r0 = (run["summary"] or {}).get("base_pass@1", 0.0)
    sc = runs.fits(run)[1]
    c = np.asarray(sc["compute"])
    if not len(c):
      continue
    pts = ax.scatter(c, sc["accuracy"], s=12)
    f = sc["full"]
    grid = np.geomspace(c.min() / 2, c.max() * 4, 60)
    ax.plot(grid, sigmoid_curve(grid, r0, f["A"], f["B"], f["C_mid"]),
            color=pts.get_facecolor()[0], label=f"{run['name']}: A={f['A']:.3f} B={f['B']:.2f}")
  ax.set_xscale("log")
  ax.set_xlabel("training compute (model FLOPs)")
  ax.set_ylabel("held-out pass@1")
  ax.set_title("R_C = R0 + (A - R0) / (1 + (C_mid / C)^B)")
  ax.legend(fontsize=7)
  return _save(fig, out_dir, "scaling.png")


def passk_png(all_runs, out_dir):
  plt = _plt()
  fig, ax = plt.subplots(figsize=(5.5, 3.8))
  base_drawn = False
  for run in all_runs:
    s = run["summary"]
    if s is None:
      continue
    for label, curve in ((f"{run['name']} final", s["final_curve"]), ("base", s["base_curve"])):
      if label == "base" and base_drawn:
        continue
      base_drawn |= label == "base"
      ks = sorted(int(k.split("@")[1]) for k in curve)
      ax.plot(ks, [curve[f"pass@{k}"] for k in ks], marker="o", ms=3, label=label,
              linestyle="--" if label == "base" else "-")
    for name, ev in run["evals"].items():
      ks = sorted(int(k.split("@")[1]) for k in ev if k.startswith("pass@"))
      ax.plot(ks, [ev[f"pass@{k}"] for k in ks], marker=".", label=f"{run['name']} {name}")
  ax.set_xscale("log", base=2)
  ax.set_xlabel("k")
  ax.set_ylabel("pass@k (held-out)")
  ax.legend(fontsize=7)
  return _save(fig, out_dir, "passk.png")


def diagnostics_png(all_runs, out_dir):
  plt = _plt()
  fig, axes = plt.subplots(2, 4, figsize=(14, 5.5))
  for ax, key in zip(axes.flat, DIAGNOSTICS):
    for run in all_runs:
      steps, v = runs.series(run["rows"], key)
      ax.plot(steps, v, label=run["name"])
    ax.set_title(key, fontsize=9)
  axes.flat[0].legend(fontsize=7)
  return _save(fig, out_dir, "diagnostics.png")
