"""`launch.eval`: n samples per held-out problem from a checkpoint (or the base), pass@k.

Writes WORKDIR/eval/<name>_n<n>.json (per-problem correct counts, and right answers
with verified steps; the pass@k curve for k = 1, 2, 4, ..., n; greedy accuracy) and
WORKDIR/eval/report_n<n>.json: per model, overall and per tag (tier or regime),
pass@k and CoT-pass@k with bootstrap intervals over problems and Cover@tau
(`rljax.analysis.intervals`); with a comparison model, the crossover k* with its
interval, the solvable-set table per tag with example problems, and a pass@k plot.
"""

from __future__ import annotations

import collections
import os

import jax
import numpy as np
from tqdm.auto import tqdm

from rljax.analysis import intervals, probes, regimes
from rljax.analysis.boundary import compare_boundaries, plot_curves, solvable_sets
from rljax.checkpoint import CheckpointError, Checkpointer
from rljax.workdir import prepare, read_json, write_json


def _params(setup, workdir: str, which: str):
  if which == "base":
    return setup.base_params, "base"
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
  step = ckpt.latest_step() if which == "latest" else int(which)
  if step is None:
    raise CheckpointError(f"no RL checkpoint in {workdir}/checkpoints; "
                          "use --checkpoint=base or train first")
  _, _, template = setup.rl_state()
  state, _ = ckpt.restore(template, step)
  return state.params, f"step{step}"


def _groups(task) -> dict[str, np.ndarray]:
  """Held-out problem indices: "all", then each tag (tier, regime) in name order."""
  tags = collections.defaultdict(list)
  for i, p in enumerate(task.eval_problems):
    for t in task.eval_tags(p):
      tags[t].append(i)
  return {"all": np.arange(len(task.eval_problems)),
          **{t: np.asarray(v) for t, v in sorted(tags.items())}}


def _guessing(task, n: int) -> np.ndarray | None:
  """Per held-out problem, pass@n of uniform guessing over its answers (None: unknown)."""
  spaces = [task.answer_space(p) for p in task.eval_problems]
  if any(a is None for a in spaces):
    return None
  return intervals.guess_rate(spaces, n)


def _tables(result: dict, n: int, groups: dict, guess_T, seed: int) -> dict:
  """Per group of problems: pass@k / CoT-pass@k with intervals, Cover@tau, greedy
  accuracy, and pass@n of uniform guessing."""
  counts, cot = np.asarray(result["counts"]), result.get("cot_counts")
  greedy = result.get("greedy_counts")
  out = {}
  for g, idx in groups.items():
    t = intervals.boundary_table(n, counts[idx], None if cot is None else np.asarray(cot)[idx],
                                 seed=seed)
    t["greedy"] = None if greedy is None else float(np.asarray(greedy)[idx].mean())
    t["guess@n"] = None if guess_T is None else float(guess_T[idx].mean())
    out[g] = t
  return out


def evaluate(cfg, workdir: str, checkpoint: str = "latest", n: int = 128,
             compare_to: str | None = "base", probe_n: int = 0, strategy_n: int = 0) -> dict:
  """pass@k of `checkpoint` (and `compare_to`); with probe_n > 0 and the base as the
  comparison, the elicitation probes of `rljax.analysis.probes` on probe_n samples per
  problem; with strategy_n > 0, each model's procedure mix on the strategy problems
  (`rljax.analysis.regimes.strategy_mix`, strategy_n samples per problem)."""
  setup = prepare(cfg, workdir)
  out_dir = os.path.join(workdir, "eval")
  os.makedirs(out_dir, exist_ok=True)
  results = {}
  with jax.set_mesh(setup.mesh):
    for which in [checkpoint] + ([compare_to] if compare_to else []):
      params, name = _params(setup, workdir, which)
      path = os.path.join(out_dir, f"{name}_n{n}.json")
      if os.path.exists(path):
        results[name] = read_json(path)
        if "greedy_counts" not in results[name]:  # written before per-group greedy existed
          results[name]["greedy_counts"] = setup.greedy_counts(params, f"eval-{name}").tolist()
          write_json(results[name], path)
        continue
      tqdm.write(f"sampling {n} completions for each of {len(setup.task.eval_problems)} "
                 f"held-out problems from {name}")
      samples = setup.evaluate(params, n, f"eval-{name}")
      greedy = setup.greedy_counts(params, f"eval-{name}")
      results[name] = dict(setup.summarize(samples, n), n=n, entropy=samples.entropy,
                           counts=samples.counts.tolist(),
                           cot_counts=(None if samples.cot_counts is None
                                       else samples.cot_counts.tolist()),
                           greedy_counts=greedy.tolist(),
                           **{"greedy_pass@1": float(greedy.mean())})
      write_json(results[name], path)
  names = list(results)
  groups = _groups(setup.task)
  report = {"models": {k: {m: v for m, v in r.items() if not m.endswith("counts")}
                       for k, r in results.items()},
            "boundary": {k: _tables(r, n, groups, _guessing(setup.task, n), cfg.seed)
                         for k, r in results.items()}}
  if len(names) == 2:
    report["crossover"] = {
        g: intervals.crossover_with_interval(
            n, np.asarray(results[names[0]]["counts"])[idx],
            np.asarray(results[names[1]]["counts"])[idx], seed=cfg.seed)
        for g, idx in groups.items()}
    labels = [p.prompt for p in setup.task.eval_problems]
    report["solvable_sets"] = {
        g: solvable_sets(np.asarray(results[names[0]]["counts"])[idx],
                         np.asarray(results[names[1]]["counts"])[idx],
                         [labels[i] for i in idx], names=tuple(names))
        for g, idx in groups.items()}
    cmp = compare_boundaries(results[names[0]]["counts"], results[names[1]]["counts"], n,
                             names=tuple(names))
    report["comparison"] = cmp
    plot_curves({k: cmp[f"{k}_curve"] for k in names},
                os.path.join(out_dir, f"passk_{names[0]}_vs_{names[1]}_n{n}.png"),
                title=f"held-out pass@k (n={n})")
    if probe_n and compare_to == "base" and checkpoint != "base":
      with jax.set_mesh(setup.mesh):
        params, name = _params(setup, workdir, checkpoint)
        tqdm.write(f"elicitation probes of {name} against the base ({probe_n} samples each)")
        report["probes"] = probes.elicitation(setup, params, n=probe_n, seed=cfg.seed)
      write_json(report["probes"], os.path.join(out_dir, f"probes_{name}_n{probe_n}.json"))
  if strategy_n:
    with jax.set_mesh(setup.mesh):
      report["strategy_mix"] = {
          name: regimes.strategy_mix(setup, _params(setup, workdir, which)[0], strategy_n,
                                     f"regimes-{name}")
          for which, name in zip([checkpoint] + ([compare_to] if compare_to else []), names)}
  write_json(report, os.path.join(out_dir, f"report_n{n}.json"))
  return report


def _ci(row: dict) -> str:
  return f"{row['mean']:.3f} [{row['lo']:.3f}, {row['hi']:.3f}]"


def format_report(report: dict, n: int) -> str:
  """The report as text: per model and group, greedy accuracy, pass@1 and pass@n with
  95% intervals, CoT-pass@n, Cover@0.5, the samples' mean token entropy; then the
  crossover k* per group."""
  num = lambda v: "-" if v is None else f"{v:.3f}"
  lines = [f"{'model':<10} {'group':<22} {'greedy':>7} {'pass@1':>22} {f'pass@{n}':>22} "
           f"{f'cot_pass@{n}':>22} {f'guess@{n}':>9} {'cover@0.5':>9} {'entropy':>7}"]
  for name, groups in report["boundary"].items():
    model = report["models"][name]
    for g, t in groups.items():
      cot = _ci(t["cot_pass@k"][n]) if "cot_pass@k" in t else "-"
      # .get: evaluations cached before per-group entropy existed lack it.
      ent = model.get("entropy") if g == "all" else model.get(f"{g}/entropy")
      lines.append(f"{name:<10} {g:<22} {num(t['greedy']):>7} "
                   f"{_ci(t['pass@k'][1]):>22} {_ci(t['pass@k'][n]):>22} {cot:>22} "
                   f"{num(t['guess@n']):>9} {t['cover'][0.5]:>9.3f} {num(ent):>7}")
  for g, c in report.get("crossover", {}).items():
    interval = "" if c["lo"] is None else f", 95% interval [{c['lo']}, {c['hi']}]"
    lines.append(f"crossover k* ({g}): {c['k']}{interval} (in {c['frac']:.0%} of resamples)")
  return "\n".join(lines)
