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

from rljax.analysis import traces
from rljax.analysis import runs
from rljax.report.figures import (curves_png, diagnostics_png, law_png, passk_png,
                                  scaling_png)

SECTIONS = ("Comparison", "Training curves", "Entropy law", "Compute scaling", "pass@k",
            "Capability boundary", "Diagnostics", "Traces")


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
    law = runs.fits(run)[0]
    for window in ("full", "early"):
      f = law[window]
      law_rows.append({"run": run["name"], "window": window, "a": f["a"], "b": f["b"],
                       "ceiling b-a": f["ceiling"], "R^2": f["r2"],
                       "rmse on rest": f["rmse_heldout"], "points": f["n_points"],
                       "warning": f["warning"]})
    sc = runs.fits(run)[1]
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


def _ci(row: dict) -> str:
  return f"{row['mean']:.3f} [{row['lo']:.3f}, {row['hi']:.3f}]"


def _instrument_lines(all_runs) -> list[str]:
  """launch.eval's instruments (largest n): pass@k and CoT-pass@k with 95% bootstrap
  intervals, Cover@0.5, the crossover k* with its interval, the solvable-set cells with
  example problems; and the held-out evaluations over training."""
  lines = []
  for run in all_runs:
    if not run["reports"]:
      continue
    n = max(run["reports"])
    rep = run["reports"][n]
    rows = [{"run": run["name"], "model": model, "group": group, "greedy": t.get("greedy"),
             "pass@1": _ci(t["pass@k"]["1"]), f"pass@{n}": _ci(t["pass@k"][str(n)]),
             f"CoT-pass@{n}": _ci(t["cot_pass@k"][str(n)]) if "cot_pass@k" in t else "-",
             f"guessing@{n}": t.get("guess@n"), "Cover@0.5": t["cover"]["0.5"]}
            for model, groups in rep["boundary"].items() for group, t in groups.items()]
    lines += [f"**{run['name']}**, n = {n} samples per held-out problem (95% intervals "
              "over problems):", ""] + markdown_table(rows) + [""]
    cross = [{"group": g, "crossover k*": c["k"],
              "95% interval": "-" if c["lo"] is None else f"[{c['lo']}, {c['hi']}]",
              "resamples with a crossover": c["frac"]}
             for g, c in rep.get("crossover", {}).items()]
    lines += markdown_table(cross) + [""] if cross else []
    cells = [{"group": g, "cell": cell, "problems": v["count"],
              "examples": "; ".join(f"`{e}`" for e in v["examples"])}
             for g, table in rep.get("solvable_sets", {}).items() for cell, v in table.items()]
    lines += markdown_table(cells) + [""] if cells else []
  tracked = []
  for run in all_runs:
    for r in (r for r in run["rows"] if "eval/pass@1" in r):
      n = max(int(k.rsplit("@", 1)[1]) for k in r if k.startswith("eval/pass@"))
      tracked.append({"run": run["name"], "step": r["step"], "pass@1": r["eval/pass@1"],
                      f"pass@{n}": r[f"eval/pass@{n}"],
                      f"CoT-pass@{n}": r.get(f"eval/cot_pass@{n}"),
                      "Cover@0.5": r.get("eval/cover@0.5"),
                      **{f"{k.split('/')[1]} {k.rsplit('/', 1)[1]}": r[k] for k in sorted(r)
                         if k.startswith("eval/regime_")
                         and k.endswith(("/pass@1", "/entropy"))}})
  if tracked:
    lines += ["Held-out evaluations during training (every `rl.eval_every` steps):", ""]
    lines += markdown_table(tracked) + [""]
  if not lines:
    return ["Boundary instruments: run `python -m launch.eval ... --n 1024` to add them.", ""]
  return lines


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


def load_runs(workdirs: list[str], out_dir: str) -> list[dict]:
  """Every workdir's `runs.load`, failing on one that is not a run's; makes `out_dir`."""
  os.makedirs(out_dir, exist_ok=True)
  all_runs = [runs.load(w) for w in workdirs]
  missing = [r["workdir"] for r in all_runs if not r["rows"]]
  if missing:
    raise FileNotFoundError(f"no metrics.jsonl in {missing}: not a run's workdir")
  return all_runs


def write(md: list[str], out_dir: str) -> dict:
  """report.md and the self-contained report.html of `md` in `out_dir`; their paths."""
  md_path = os.path.join(out_dir, "report.md")
  with open(md_path, "w") as f:
    f.write("\n".join(md) + "\n")
  html_path = os.path.join(out_dir, "report.html")
  with open(html_path, "w") as f:
    f.write(to_html(md, out_dir))
  return {"md": md_path, "html": html_path}


def build(workdirs: list[str], out_dir: str) -> dict:
  """Writes report.md, report.html and the PNGs into `out_dir`; returns their paths."""
  all_runs = load_runs(workdirs, out_dir)
  md = ["# rljax report", "", "Runs: " + ", ".join(f"`{w}`" for w in workdirs), ""]
  heads = [runs.headline(r) for r in all_runs]
  md += ["## Comparison", ""] + markdown_table(heads) + [""]
  if len(heads) > 1:
    rank = lambda key: ", ".join(f"{h['run']} ({_fmt(h[key])})" for h in sorted(
        heads, key=lambda h: -(h[key] if h[key] is not None else -np.inf)))
    md += [f"Ranked by entropy-law ceiling b - a: {rank('law_ceiling')}.", "",
           f"Ranked by fitted compute asymptote A: {rank('sigmoid_A')}.", "",
           f"Ranked by compute efficiency B: {rank('sigmoid_B')}.", ""]
  md += ["## Training curves", "", f"![curves]({curves_png(all_runs, out_dir)})", ""]
  law_rows, scale_rows = _fit_rows(all_runs)
  axes = sorted({runs.fits(r)[0]["axis"] for r in all_runs})
  md += ["## Entropy law", "", f"R = -a exp(H) + b, H the rollout entropy and R the "
         f"{' / '.join(axes)}; `early` fits the first half and scores its prediction of the "
         "rest.", "",
         f"![entropy law]({law_png(all_runs, out_dir)})", ""] + markdown_table(law_rows) + [""]
  md += ["## Compute scaling", "", "Sigmoid of held-out pass@1 against training FLOPs, R0 = "
         "base pass@1; `early` fits the first half of the compute and predicts the last "
         "point.", "", f"![scaling]({scaling_png(all_runs, out_dir)})", ""]
  md += markdown_table(scale_rows) + [""]
  md += ["## pass@k", "", f"![pass@k]({passk_png(all_runs, out_dir)})", ""]
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
  md += _instrument_lines(all_runs)
  md += _probe_lines(all_runs)
  md += ["## Diagnostics", "", f"![diagnostics]({diagnostics_png(all_runs, out_dir)})", ""]
  md += ["## Traces", ""]
  for run in all_runs:
    md += _trace_lines(run)
  return write(md, out_dir)


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
