"""`launch.report`: one or more run workdirs -> report.md + self-contained report.html.

Sections, each with its figures: training curves (reward, accuracy, entropy),
the entropy-law fit, the compute-scaling fit, pass@k curves (base vs final, and
launch.eval's curves when present), the capability-boundary table, the
entropy-mechanism diagnostics, and sampled traces with shortcut flags. Several
runs add a comparison table and overlaid curves. PNGs are written next to the
report; the HTML embeds them (base64), so it can be mailed or opened anywhere.
"""

from __future__ import annotations

import base64
import html
import os

import numpy as np

from rljax import traces
from rljax.analysis import runs
from rljax.analysis.fits import sigmoid_curve

SECTIONS = ("Comparison", "Training curves", "Entropy law", "Compute scaling", "pass@k",
            "Capability boundary", "Diagnostics", "Traces")
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


def _curves_png(all_runs, out_dir):
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


def _law_png(all_runs, out_dir):
  plt = _plt()
  fig, ax = plt.subplots(figsize=(5.5, 3.8))
  for run in all_runs:
    law = runs.entropy_law(run["rows"])
    h = np.asarray(law["entropy"])
    if not len(h):
      continue
    pts = ax.scatter(h, law["accuracy"], s=8, alpha=0.5)
    grid = np.linspace(0, h.max() * 1.05, 50)
    f = law["full"]
    ax.plot(grid, f["b"] - f["a"] * np.exp(grid), color=pts.get_facecolor()[0],
            label=f"{run['name']}: a={f['a']:.3f} b={f['b']:.3f} ceiling={f['ceiling']:.3f}")
  ax.set_xlabel("rollout entropy H (nats/token)")
  ax.set_ylabel("training accuracy R")
  ax.set_title("R = -a exp(H) + b")
  ax.legend(fontsize=7)
  return _save(fig, out_dir, "entropy_law.png")


def _scaling_png(all_runs, out_dir):
  plt = _plt()
  fig, ax = plt.subplots(figsize=(5.5, 3.8))
  for run in all_runs:
    r0 = (run["summary"] or {}).get("base_pass@1", 0.0)
    sc = runs.scaling(run["rows"], r0)
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


def _passk_png(all_runs, out_dir):
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


def _diagnostics_png(all_runs, out_dir):
  plt = _plt()
  fig, axes = plt.subplots(2, 4, figsize=(14, 5.5))
  for ax, key in zip(axes.flat, DIAGNOSTICS):
    for run in all_runs:
      steps, v = runs.series(run["rows"], key)
      ax.plot(steps, v, label=run["name"])
    ax.set_title(key, fontsize=9)
  axes.flat[0].legend(fontsize=7)
  return _save(fig, out_dir, "diagnostics.png")


def _fmt(v):
  if v is None:
    return "-"
  if isinstance(v, float):
    return f"{v + 0.0:.4g}"  # + 0.0: no "-0"
  if isinstance(v, (tuple, list)):
    return "[" + ", ".join(_fmt(x) for x in v) + "]"
  return str(v)


def markdown_table(rows: list[dict]) -> list[str]:
  """A markdown table of dict rows (columns: the first row's keys)."""
  if not rows:
    return ["(no data)"]
  cols = list(rows[0])
  out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
  out += ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in rows]
  return out


def _fit_rows(all_runs) -> tuple[list[dict], list[dict]]:
  law_rows, scale_rows = [], []
  for run in all_runs:
    law = runs.entropy_law(run["rows"])
    for window in ("full", "early"):
      f = law[window]
      law_rows.append({"run": run["name"], "window": window, "a": f["a"], "b": f["b"],
                       "ceiling b-a": f["ceiling"], "R^2": f["r2"],
                       "rmse on rest": f["rmse_heldout"], "points": f["n_points"],
                       "warning": f["warning"]})
    sc = runs.scaling(run["rows"], (run["summary"] or {}).get("base_pass@1", 0.0))
    for window in ("full", "early"):
      if window not in sc:
        continue
      f = sc[window]
      scale_rows.append({"run": run["name"], "window": window, "A": f["A"],
                         "A 95% interval": f["A_interval"], "B": f["B"], "C_mid": f["C_mid"],
                         "predicted final": f.get("predicted_final"),
                         "actual final": f.get("actual_final"), "points": f["n_points"],
                         "warning": f["warning"]})
  return law_rows, scale_rows


def _probe_lines(all_runs) -> list[str]:
  """Elicitation probes written by `launch.eval --probe_n` (when it was run)."""
  rows, hybrid = [], []
  for run in all_runs:
    for name, p in run["probes"].items():
      rows.append({"run": run["name"], "model": name,
                   "outside base top-1": p["frac_outside_base_top1"],
                   "outside base top-5": p["frac_outside_base_top5"],
                   "ppl of correct under base": p["ppl_correct_under_base"],
                   "ppl of correct under RL": p["ppl_correct_under_rl"]})
      hybrid += [{"run": run["name"], "model": name, "base acc": p["base_accuracy"],
                  "RL acc": p["rl_accuracy_same_key"], "entropy threshold": h["threshold"],
                  "hybrid acc": h["accuracy"], "tokens routed": h["routed_frac"],
                  "gain recovered": h["gain_recovered"]} for h in p["hybrid"]]
  if not rows:
    return ["Elicitation probes: run `python -m launch.eval ... --probe_n 8` to add them.", ""]
  return (["Elicitation probes: the RL model's samples under the base model, and hybrid "
           "decoding (the base decodes; steps where its entropy exceeds the threshold go "
           "to the RL model).", ""] + markdown_table(rows) + [""] + markdown_table(hybrid)
          + [""])


def _trace_lines(run, limit: int = 24) -> list[str]:
  dumped = traces.read(run["workdir"])
  if not dumped:
    return [f"{run['name']}: no traces saved (rl.trace_every = 0?)."]
  lines = []
  for step in (min(dumped), max(dumped)) if len(dumped) > 1 else tuple(dumped):
    rows = dumped[step]
    flagged = sum(r.get("shortcut", False) for r in rows)
    lines += [f"**{run['name']}, step {step}**: {len(rows)} rollouts, "
              f"{sum(r['verified'] > 0 for r in rows)} correct, {flagged} shortcut "
              "(right answer, steps do not verify).", ""]
    lines += markdown_table([{"prompt": r["prompt"], "completion": f"`{r['completion']}`",
                      "reward": r["reward"], "steps verify": r.get("steps_verify"),
                      "shortcut": "**yes**" if r.get("shortcut") else ""}
                     for r in rows[:limit]])
    lines.append("")
  return lines


def build(workdirs: list[str], out_dir: str) -> dict:
  """Writes report.md, report.html and the PNGs into `out_dir`; returns their paths."""
  os.makedirs(out_dir, exist_ok=True)
  all_runs = [runs.load(w) for w in workdirs]
  missing = [r["workdir"] for r in all_runs if not r["rows"]]
  if missing:
    raise FileNotFoundError(f"no metrics.jsonl in {missing}: not a run's workdir")
  md = ["# rljax report", "", "Runs: " + ", ".join(f"`{w}`" for w in workdirs), ""]
  heads = [runs.headline(r) for r in all_runs]
  md += ["## Comparison", ""] + markdown_table(heads) + [""]
  if len(heads) > 1:
    rank = lambda key: ", ".join(f"{h['run']} ({_fmt(h[key])})" for h in sorted(
        heads, key=lambda h: -(h[key] if h[key] is not None else -np.inf)))
    md += [f"Ranked by entropy-law ceiling b - a: {rank('law_ceiling')}.", "",
           f"Ranked by fitted compute asymptote A: {rank('sigmoid_A')}.", "",
           f"Ranked by compute efficiency B: {rank('sigmoid_B')}.", ""]
  md += ["## Training curves", "", f"![curves]({_curves_png(all_runs, out_dir)})", ""]
  law_rows, scale_rows = _fit_rows(all_runs)
  md += ["## Entropy law", "", "R = -a exp(H) + b on (rollout entropy, training accuracy) "
         "per step; `early` fits the first half and scores its prediction of the rest.", "",
         f"![entropy law]({_law_png(all_runs, out_dir)})", ""] + markdown_table(law_rows) + [""]
  md += ["## Compute scaling", "", "Sigmoid of held-out pass@1 against training FLOPs, R0 = "
         "base pass@1; `early` fits the first half of the compute and predicts the last "
         "point.", "", f"![scaling]({_scaling_png(all_runs, out_dir)})", ""]
  md += markdown_table(scale_rows) + [""]
  md += ["## pass@k", "", f"![pass@k]({_passk_png(all_runs, out_dir)})", ""]
  bounds = []
  for run in all_runs:
    b = runs.boundary(run)
    if b is not None:
      bounds.append({"run": run["name"], "crossover k": b["crossover_k"],
                     "coverage final": b["final_coverage"], "coverage base": b["base_coverage"],
                     "only final": b["only_final"], "only base": b["only_base"],
                     "both": b["both"], "neither": b["neither"]})
  md += ["## Capability boundary", "", "Held-out problems solved at least once in n samples."
         "", ""] + markdown_table(bounds) + [""]
  md += _probe_lines(all_runs)
  md += ["## Diagnostics", "", f"![diagnostics]({_diagnostics_png(all_runs, out_dir)})", ""]
  md += ["## Traces", ""]
  for run in all_runs:
    md += _trace_lines(run)
  md_path = os.path.join(out_dir, "report.md")
  with open(md_path, "w") as f:
    f.write("\n".join(md) + "\n")
  html_path = os.path.join(out_dir, "report.html")
  with open(html_path, "w") as f:
    f.write(to_html(md, out_dir))
  return {"md": md_path, "html": html_path}


def to_html(md_lines: list[str], image_dir: str) -> str:
  """The report's markdown subset (headings, tables, images, paragraphs) as one HTML page."""
  body, table = [], []

  def inline(text):
    text = html.escape(text)
    parts = text.split("`")
    text = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    parts = text.split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))

  def flush():
    if table:
      head, rows = table[0], table[2:]
      cells = lambda line: [c.strip() for c in line.strip().strip("|").split("|")]
      body.append("<table><tr>" + "".join(f"<th>{inline(c)}</th>" for c in cells(head))
                  + "</tr>" + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in
                                                        cells(r)) + "</tr>" for r in rows)
                  + "</table>")
      table.clear()

  for line in md_lines:
    if line.startswith("|"):
      table.append(line)
      continue
    flush()
    if line.startswith("## "):
      name = line[3:]
      body.append(f'<h2 id="{name.lower().replace(" ", "-")}">{html.escape(name)}</h2>')
    elif line.startswith("# "):
      body.append(f"<h1>{html.escape(line[2:])}</h1>")
    elif line.startswith("!["):
      alt, src = line[2:].split("](")
      with open(os.path.join(image_dir, src[:-1]), "rb") as f:
        data = base64.b64encode(f.read()).decode()
      body.append(f'<figure><img alt="{html.escape(alt)}" '
                  f'src="data:image/png;base64,{data}"></figure>')
    elif line.strip():
      body.append(f"<p>{inline(line)}</p>")
  flush()
  style = ("body{font-family:sans-serif;max-width:1400px;margin:2em auto;padding:0 1em}"
           "table{border-collapse:collapse;font-size:12px;margin:1em 0}"
           "td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}")
  return ("<!doctype html><html><head><meta charset='utf-8'><title>rljax report</title>"
          f"<style>{style}</style></head><body>" + "\n".join(body) + "</body></html>\n")
