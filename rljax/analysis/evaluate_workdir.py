"""`launch.eval`: n samples per held-out problem from a checkpoint (or the base), pass@k.

Writes WORKDIR/eval/<name>_n<n>.json (per-problem correct counts, the pass@k curve
for k = 1, 2, 4, ..., n, per-tier figures) and, with a comparison model, the
capability-boundary comparison and a pass@k plot.
"""

from __future__ import annotations

import os

import jax
from tqdm.auto import tqdm

from rljax.analysis import probes
from rljax.analysis.boundary import compare_boundaries, plot_curves
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


def evaluate(cfg, workdir: str, checkpoint: str = "latest", n: int = 128,
             compare_to: str | None = "base", probe_n: int = 0) -> dict:
  """pass@k of `checkpoint` (and `compare_to`); with probe_n > 0 and the base as the
  comparison, the elicitation probes of `rljax.analysis.probes` on probe_n samples per problem."""
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
        continue
      tqdm.write(f"sampling {n} completions for each of {len(setup.task.eval_problems)} "
                 f"held-out problems from {name}")
      counts, ent = setup.evaluate(params, n, f"eval-{name}")
      results[name] = dict(setup.summarize(counts, n), n=n, entropy=ent,
                           counts=counts.tolist(),
                           **{"greedy_pass@1": setup.greedy_accuracy(params, f"eval-{name}")})
      write_json(results[name], path)
  names = list(results)
  report = {"models": {k: {m: v for m, v in r.items() if m != "counts"}
                       for k, r in results.items()}}
  if len(names) == 2:
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
  write_json(report, os.path.join(out_dir, f"report_n{n}.json"))
  return report
