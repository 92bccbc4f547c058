"""A finished run's workdir turned into the instruments' numbers: fits, boundary, headline.

Reads what the trainer left (`metrics.jsonl`, `summary.json`, `base_eval.json`,
`eval/*.json`) and applies the entropy law (docs/algorithms.md §4.2) to (rollout entropy,
held-out pass@1) points, as Cui et al. fit it on validation accuracy, and the compute
sigmoid (§14) to the same held-out pass@1 against the trainer's FLOP count, both
measured every `rl.eval_every` steps.
Each fit is also made on the first half of the run only, and its prediction of
the second half is scored: how far an early window sees.
"""

from __future__ import annotations

import glob
import json
import os

import numpy as np

from rljax.analysis.boundary import compare_boundaries
from rljax.analysis.fits import fit_entropy_law, fit_sigmoid, sigmoid_curve
from rljax.metrics import read_rows


def _json(path):
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def load(workdir: str) -> dict:
  """Everything a report needs from one workdir (missing pieces are None or empty)."""
  metrics = os.path.join(workdir, "metrics.jsonl")
  evals, probes, reports = {}, {}, {}
  for path in sorted(glob.glob(os.path.join(workdir, "eval", "*_n*.json"))):
    name = os.path.basename(path)[:-5]
    if name.startswith("probes_"):
      probes[name[len("probes_"):]] = _json(path)
    elif name.startswith("report_n"):  # launch.eval's boundary instruments, by n
      reports[int(name[len("report_n"):])] = _json(path)
    else:  # one model's launch.eval counts and curve
      evals[name] = _json(path)
  return {"name": os.path.basename(os.path.normpath(workdir)), "workdir": workdir,
          "rows": read_rows(metrics) if os.path.exists(metrics) else [],
          "summary": _json(os.path.join(workdir, "summary.json")),
          "base": _json(os.path.join(workdir, "base_eval.json")), "evals": evals,
          "probes": probes, "reports": reports}


def series(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
  """(steps, values) of the rows that have `key` with a finite value."""
  pts = [(r["step"], r[key]) for r in rows
         if r.get(key) is not None and np.isfinite(r[key])]
  if not pts:
    return np.zeros(0), np.zeros(0)
  s, v = zip(*pts)
  return np.asarray(s, float), np.asarray(v, float)


# What the entropy law's R is: held-out pass@1 (Cui et al. fit validation accuracy), or
# the first sampling round's training accuracy (unfiltered by dynamic sampling).
LAW_AXES = {"heldout": "held-out pass@1 (every rl.eval_every steps, and the base at step 0)",
            "rollouts": "training accuracy of each step's first, unfiltered sampling round"}


def _law_points(rows: list[dict], base_pass1, on: str):
  """(steps, rollout entropy, R) of the entropy law's points."""
  if on == "rollouts":
    pts = [(r["step"], r["entropy"], r["accuracy_first_round"]) for r in rows
           if r.get("accuracy_first_round") is not None]
  else:
    # The base model's held-out pass@1 sits at the entropy of its own first rollouts.
    pts = ([(0, rows[0]["entropy"], base_pass1)] if rows and base_pass1 is not None else [])
    pts += [(r["step"], r["entropy"], r["eval/pass@1"]) for r in rows
            if r.get("eval/pass@1") is not None]
  pts = [p for p in pts if np.isfinite(p[1]) and np.isfinite(p[2])]
  return tuple(np.asarray([p[i] for p in pts], float) for i in range(3))


def entropy_law(rows: list[dict], base_pass1=None, on: str = "heldout") -> dict:
  """R = -a exp(H) + b with R from `LAW_AXES[on]`: fitted on all points, and on the first
  half of the run predicting the rest (rmse_heldout)."""
  if on not in LAW_AXES:
    raise ValueError(f"Unknown entropy-law axis {on!r}; valid: {sorted(LAW_AXES)}")
  steps, ent, acc = _law_points(rows, base_pass1, on)
  full = fit_entropy_law(ent, acc)
  early = fit_entropy_law(ent, acc, fit_mask=steps <= steps.max() / 2 if len(steps) else None)
  return {"full": full, "early": early, "entropy": ent.tolist(), "accuracy": acc.tolist(),
          "on": on, "axis": LAW_AXES[on]}


def scaling(rows: list[dict], r0: float) -> dict:
  """Sigmoid of held-out pass@1 against training FLOPs; early half extrapolated to the end."""
  pts = [(r["compute_flops"], r["eval/pass@1"]) for r in rows
         if r.get("eval/pass@1") is not None and r.get("compute_flops")]
  c = np.asarray([p[0] for p in pts], float)
  acc = np.asarray([p[1] for p in pts], float)
  full = fit_sigmoid(c, acc, r0)
  out = {"full": full, "compute": c.tolist(), "accuracy": acc.tolist(), "r0": r0}
  if len(c) >= 4:
    early = fit_sigmoid(c, acc, r0, fit_mask=c <= c.max() / 2)
    predicted = float(sigmoid_curve(c[-1], r0, early["A"], early["B"], early["C_mid"]))
    out["early"] = dict(early, predicted_final=predicted, actual_final=float(acc[-1]),
                        error_final=float(predicted - acc[-1]))
  return out


def fits(run: dict) -> tuple[dict, dict]:
  """(entropy_law, scaling) of a loaded run, computed once and kept in the run dict
  (the sigmoid's bootstrap refits it 200 times; the report needs it in three places)."""
  if "_fits" not in run:
    r0 = (run["summary"] or {}).get("base_pass@1", 0.0)
    run["_fits"] = (entropy_law(run["rows"], r0), scaling(run["rows"], r0))
  return run["_fits"]


def boundary(run: dict) -> dict | None:
  """Base vs final solvable sets from the summary's counts (or launch.eval's files)."""
  s, base = run["summary"], run["base"]
  if s is None or base is None or "final_counts" not in s or "counts" not in base:
    return None
  return compare_boundaries(s["final_counts"], base["counts"], samples(s),
                            names=("final", "base"))


def samples(summary: dict) -> int | None:
  """n of the final evaluation (the largest k of its pass@k curve)."""
  return max((int(k.split("@")[1]) for k in summary.get("final_curve", {})), default=None)


def headline(run: dict) -> dict:
  """One row of the comparison table."""
  s, rows = run["summary"] or {}, run["rows"]
  n = samples(s)
  law, sc = (f["full"] for f in fits(run)) if rows else (None, None)
  return {"run": run["name"], "steps": s.get("steps"),
          "base_pass@1": s.get("base_pass@1"), "final_pass@1": s.get("final_pass@1"),
          f"final_pass@{n}": s.get(f"final_pass@{n}") if n else None,
          "initial_entropy": s.get("initial_entropy"), "final_entropy": s.get("final_entropy"),
          "law_a": law and law["a"], "law_b": law and law["b"],
          "law_ceiling": law and law["ceiling"], "law_r2": law and law["r2"],
          "sigmoid_A": sc and sc["A"], "sigmoid_B": sc and sc["B"],
          "sigmoid_A_interval": sc and sc["A_interval"], "sigmoid_ok": sc and sc["ok"]}
