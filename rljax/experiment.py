"""A run end to end: base model -> held-out base eval -> GRPO -> held-out final eval -> summary.

The base model is the testbed's, pretrained in the workdir, or a real checkpoint
on a real dataset (`rljax.workdir.prepare`). Each stage leaves its result in the
workdir and is skipped when it is already there, so a second run reuses the base
model and its evaluation, and a stopped run resumes RL from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import jax
from tqdm.auto import tqdm

from rljax import prng
from rljax.checkpoint import Checkpointer
from rljax.config import ExperimentConfig
from rljax.metrics import MetricsWriter, read_rows
from rljax.rewards.sandbox import FAILURE_KINDS
from rljax.rl import one_shot, train_state
from rljax.rl.trainer import RLTrainer
from rljax.tasks.base import Restreamed, global_batch
from rljax.workdir import Setup, prepare, read_json, write_json


def _listed(counts):
  return None if counts is None else counts.tolist()


def _base_eval(setup: Setup, workdir: str) -> dict:
  """The base model's held-out pass@k, entropy and counts (cached in base_eval.json)."""
  path = os.path.join(workdir, "base_eval.json")
  base = read_json(path) if os.path.exists(path) else None
  if base is None:
    n = setup.cfg.eval.n_samples
    samples = setup.evaluate(setup.base_params, n, "base")
    base = dict(setup.summarize(samples, n), entropy=samples.entropy,
                counts=samples.counts.tolist(), cot_counts=_listed(samples.cot_counts))
  if "greedy_pass@1" not in base:  # also for base evaluations cached before it existed
    base["greedy_pass@1"] = setup.greedy_accuracy(setup.base_params, "base")
    write_json(base, path)
  return base


def _one_shot_task(setup: Setup, optimizer, sh, workdir: str) -> Restreamed:
  """One-shot RLVR: the selected pool example (cached in `workdir/one_shot.json`)."""
  cfg, task = setup.cfg, setup.task
  pool = global_batch(task, prng.ONE_SHOT_POOL_POSITION, cfg.intervention.one_shot_pool)
  path = os.path.join(workdir, "one_shot.json")
  if os.path.exists(path):
    chosen = read_json(path)["index"]
  elif cfg.intervention.one_shot_index >= 0:
    chosen = cfg.intervention.one_shot_index
    write_json({"index": chosen, "prompt": pool[chosen].prompt, "history": None}, path)
  else:
    hist_dir = os.path.join(workdir, "one_shot_history")
    writer = MetricsWriter(hist_dir, "metrics")
    trainer = RLTrainer(cfg, setup.graphdef, optimizer, sh, setup.mesh,
                        Restreamed(task, tuple(pool)), setup.tok, hist_dir, writer,
                        base_params=setup.base_params, rollout_mesh=setup.rollout_mesh)
    fresh = train_state.new_state(setup.base_params, optimizer, sh, cfg.seed, True)
    history = one_shot.collect_history(trainer, fresh, pool,
                                       cfg.intervention.one_shot_history_steps)
    writer.close()
    chosen = one_shot.rank_by_historical_variance(history)[0]
    write_json({"index": chosen, "prompt": pool[chosen].prompt,
                "history": {str(k): v for k, v in history.items()}}, path)
  tqdm.write(f"one-shot RLVR on pool example {chosen}: {pool[chosen].prompt}")
  return Restreamed(task, (pool[chosen],))


def _summary(cfg: ExperimentConfig, base: dict, final: dict, final_entropy: float, counts,
             steps: int, wall_time_s: float, workdir: str) -> dict:
  metrics_path = os.path.join(workdir, "metrics.jsonl")
  rows = read_rows(metrics_path) if os.path.exists(metrics_path) else []
  n = cfg.eval.n_samples
  return {
      "base_pass@1": base["pass@1"], f"base_pass@{n}": base[f"pass@{n}"],
      "final_pass@1": final["pass@1"], f"final_pass@{n}": final[f"pass@{n}"],
      "base_greedy_pass@1": base["greedy_pass@1"],
      "final_greedy_pass@1": final["greedy_pass@1"],
      "initial_entropy": rows[0]["entropy"] if rows else None,
      "final_entropy": rows[-1]["entropy"] if rows else None,
      "base_eval_entropy": base["entropy"], "final_eval_entropy": final_entropy,
      # Per held-out group (e.g. regime): where the rollouts' entropy fell, where it did not.
      "rollout_entropy": {k.split("/", 1)[1]: {"initial": rows[0][k], "final": rows[-1].get(k)}
                          for k in sorted(rows[0]) if k.startswith("entropy/")} if rows else {},
      "steps": steps, "wall_time_s": wall_time_s,
      # .get: a base evaluation cached by an older version may lack newer instruments.
      "tiers": {k: {"base": base.get(k), "final": final[k]} for k in sorted(final) if "/" in k},
      **{f"{name}_{kind}": {k: v for k, v in ev.items() if k.startswith(prefix)}
         for name, ev in (("base", base), ("final", final))
         for kind, prefix in (("curve", "pass@"), ("cot_curve", "cot_pass@"),
                              ("cover", "cover@"))},
      "final_counts": counts.tolist(),
      "reward_failures": {k: int(sum(r.get(f"reward_failures/{k}", 0) for r in rows))
                          for k in FAILURE_KINDS},
  }


def run(cfg: ExperimentConfig, workdir: str) -> dict:
  """Runs the whole pipeline; returns (and writes) `workdir/summary.json`."""
  t0 = time.time()
  os.makedirs(workdir, exist_ok=True)
  write_json(json.loads(json.dumps(dataclasses.asdict(cfg), default=str)),
             os.path.join(workdir, "config.json"))
  setup = prepare(cfg, workdir)
  cfg, n = setup.cfg, setup.cfg.eval.n_samples

  with jax.set_mesh(setup.mesh):
    base = _base_eval(setup, workdir)
    tqdm.write(f"base model: pass@1 {base['pass@1']:.3f}  pass@{n} {base[f'pass@{n}']:.3f}  "
               f"greedy {base['greedy_pass@1']:.3f}")
    optimizer, sh, state = setup.rl_state()

    def periodic_eval(params, n_eval, step):
      summary = setup.summarize(setup.evaluate(params, n_eval, f"rl{step}"), n_eval)
      # Overall and per regime (the testbed's `regime_*` groups): the boundary over steps.
      return {f"eval/{k}": v for k, v in summary.items()
              if "/" not in k or k.startswith("regime_")}

    train_task = setup.task
    if cfg.intervention.one_shot_pool:
      train_task = _one_shot_task(setup, optimizer, sh, workdir)
    ckpt_step = Checkpointer(os.path.join(workdir, "checkpoints")).latest_step() or 0
    writer = MetricsWriter(workdir, "metrics", resume_step=ckpt_step)
    trainer = RLTrainer(cfg, setup.graphdef, optimizer, sh, setup.mesh, train_task, setup.tok,
                        workdir, writer, evaluate=periodic_eval,
                        base_params=setup.base_params, rollout_mesh=setup.rollout_mesh)
    state = trainer.restore_or(state)
    state = trainer.run(state)
    writer.close()
    if trainer.stopped:  # preempted: the checkpoint is saved; rerun the command to resume
      tqdm.write(f"stopped at step {int(state.step)} by a signal; checkpoint saved in "
                 f"{workdir}/checkpoints; run the same command again to resume")
      return {"steps": int(state.step), "stopped": True}
    samples = setup.evaluate(state.params, n, "final")
    ent, counts = samples.entropy, samples.counts
    final = setup.summarize(samples, n)
    final["greedy_pass@1"] = setup.greedy_accuracy(state.params, "final")

  summary = _summary(cfg, base, final, ent, counts, int(state.step), time.time() - t0, workdir)
  write_json(summary, os.path.join(workdir, "summary.json"))
  return summary
