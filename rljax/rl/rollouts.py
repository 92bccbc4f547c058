"""One RL step's rollouts: sample, verify, shape rewards, filter groups (host side).

A round takes the next prompt batch of the task stream (its index is the run's
data position), samples G completions each on device, scores them with the
training forward under the policy (old log-probs, entropies) and the reference,
and verifies them. With DAPO dynamic sampling, rounds repeat until
enough groups have non-identical correctness (docs/algorithms.md §3).

Everything a round needs comes in a `RolloutContext`; nothing else of the
trainer is visible here.

Axis letters: Q prompts, G group size, B = Q*G rollouts, P prompt, T completion.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from rljax import distributed, prng, sharding
from rljax.config import ExperimentConfig
from rljax.rewards import controls
from rljax.rewards.sandbox import RewardGuard
from rljax.rewards.wrong_labels import WrongLabels
from rljax.rl import interventions as iv
from rljax.rl import sampler as sampler_lib
from rljax.rl.losses import kl_penalty
from rljax.rl.update import SEQUENCE_KEYS
from rljax.tasks.base import Task
from rljax.tokenizers.base import BatchTokenizer


@dataclasses.dataclass(frozen=True)
class RolloutContext:
  """What collecting a step's rollouts reads.

  Attributes:
    cfg: the run's config (its sampling section has the tokenizer's EOS / pad ids).
    task: prompts, verifier and the text operations of the interventions.
    tok: encodes prompts and completions, decodes samples.
    graphdef: the model's structure (the sampler merges it with the params).
    score: the jitted training forward (params, sequences) -> (log-probs, entropies) [B, T].
    reward_guard: runs the reward function in its sandboxed worker.
    wrong_labels: the per-problem wrong labels (reward_mode "wrong_label" only).
    score_policy: score the rollouts under the pre-update policy here; when False the
      step's update is that scoring (`trainer.scores_before_update`) and the batch's
      "old_logp" / "entropy" stay zeros until the trainer fills them from it.
    rollout_mesh: the mesh to sample on (`sharding.train_and_rollout_meshes`); None: the
      ambient one.
  """

  cfg: ExperimentConfig
  task: Task
  tok: BatchTokenizer
  graphdef: object
  score: Callable
  reward_guard: RewardGuard
  wrong_labels: WrongLabels | None = None
  score_policy: bool = True
  rollout_mesh: object = None


@dataclasses.dataclass
class StepRollouts:
  """A step's rollouts as numpy arrays [B, ...] plus what the metrics need."""

  problems: list
  batch: dict
  texts: list
  verified: np.ndarray
  rewards: np.ndarray
  gen_rounds: int
  filled_groups: int
  data_position: int
  dro_filtered: int = 0
  reward_failures: dict = dataclasses.field(default_factory=dict)
  forward_tokens: dict = dataclasses.field(default_factory=dict)
  first_round_accuracy: float = 0.0
  wrong_label_metrics: dict = dataclasses.field(default_factory=dict)


def _forward_tokens(batch: dict, q: int, scorings: int) -> dict:
  """Tokens the prefill and the scoring forwards of a round ran on (padded shapes)."""
  b, p = batch["prompt"].shape
  t = batch["tokens"].shape[1]
  return {"prefilled": q * p, "scored": scorings * b * (p + t)}


def _prompts(ctx: RolloutContext, index: int):
  """(problems, prompt ids [Q, P], prompt mask [Q, P]) of batch `index`: each process
  draws and encodes its own share, then all shares are gathered, in process order (the
  rows `distributed.to_global` then places on this process's devices)."""
  local = ctx.task.train_batch(index, distributed.local_count(ctx.cfg.rl.prompts_per_step))
  prompt, pmask = ctx.tok.encode_prompts([p.prompt for p in local], ctx.cfg.prompt_len)
  return (distributed.gather_objects(local), distributed.gather_shares(prompt),
          distributed.gather_shares(pmask))


def _round(ctx: RolloutContext, params, ref_params, rng, index: int) -> dict:
  """Samples, verifies and (for DRO) scores prompt batch `index` of the stream."""
  cfg, g = ctx.cfg, ctx.cfg.rl.group_size
  problems, prompt, pmask = _prompts(ctx, index)
  # The parameters and key enter the rollout mesh (`mesh.train_devices`).
  key = prng.rollout_key(rng, index)
  with sharding.entered(ctx.rollout_mesh, (params, key)) as (on_mesh, key):
    out = distributed.to_host(sampler_lib.sample(ctx.graphdef, on_mesh, prompt, pmask, key,
                                                 cfg=cfg.sampling, group_size=g))
  # Copies: device_get may hand back read-only views, and demonstrations write rows.
  batch = {"prompt": np.repeat(prompt, g, 0), "prompt_mask": np.repeat(pmask, g, 0),
           "tokens": np.array(out.tokens), "mask": np.array(out.mask),
           "sampler_logp": np.array(out.logp),
           "offpolicy": np.zeros(len(out.mask), np.float32)}
  decoded = len(out.mask) * int(np.asarray(out.mask).sum(1).max())
  if cfg.intervention.rlplus_demos:
    _insert_demonstrations(ctx, problems, batch)
  # The ratio's old log-probs, the entropies and the reference's log-probs all come from
  # the training forward (the pre-update parameters), never from the sampler.
  if ctx.score_policy:
    batch["old_logp"], batch["entropy"] = _score(ctx, params, batch)
  else:
    batch["old_logp"] = np.zeros_like(batch["sampler_logp"])
    batch["entropy"] = np.zeros_like(batch["sampler_logp"])
  batch["ref_logp"], _ = _score(ctx, ref_params, batch)
  texts = ctx.tok.decode_completions(batch["tokens"])
  owner = [problems[i // g] for i in range(len(texts))]
  # Each process verifies its own share of the rollouts; all get every score.
  verified, failures = distributed.score_shares(ctx.reward_guard.score, list(zip(owner, texts)))
  out = {"problems": problems, "batch": batch, "texts": texts,
          "verified": np.array(verified, np.float32), "reward_failures": failures,
          "format_ok": np.array([ctx.task.format_ok(t) for t in texts]),
          "dro_keep": np.ones(len(problems), bool), "wrong_label_metrics": {}}
  if cfg.intervention.reward_mode == "wrong_label":
    labels, out["wrong_label_metrics"] = ctx.wrong_labels.labels(problems)
    out["wrong_label"] = np.array([
        labels[i // g] is not None and ctx.task.final_answer(t) == labels[i // g]
        for i, t in enumerate(texts)])
  else:
    out["wrong_label"] = np.zeros(len(texts), bool)
  if cfg.intervention.reward_mode == "dro":
    out["dro_reward"], out["dro_keep"] = _dro_rewards(ctx, params, out)
  # The policy and reference scorings, and DRO's teacher-forced one.
  out["forward_tokens"] = dict(
      _forward_tokens(batch, len(problems),
                      1 + ctx.score_policy + (cfg.intervention.reward_mode == "dro")),
      decoded=decoded)
  return out


def _score(ctx: RolloutContext, params, batch: dict):
  """(log-probs, entropies) [B, T] of the batch under `params`, scored in chunks of the
  update's minibatch size: the same shapes as the update's forward, so that without
  learning the ratio is 1 to within float32 rounding (<= 1e-6)."""
  b, chunk = len(batch["tokens"]), len(batch["tokens"]) // ctx.cfg.rl.minibatches
  parts = [distributed.to_host(ctx.score(params, {k: batch[k][i:i + chunk]
                                                  for k in SEQUENCE_KEYS}))
           for i in range(0, b, chunk)]
  return tuple(np.concatenate([np.asarray(p[j]) for p in parts]) for j in range(2))


def _insert_demonstrations(ctx: RolloutContext, problems, batch: dict) -> None:
  """RL-PLUS: the last `rlplus_demos` rollouts of each group become demonstrations.

  They are scored by the training forward like every row; they have no sampler
  log-probs, so theirs are set to 0 and the mismatch metric skips off-policy rows.
  """
  g, n = ctx.cfg.rl.group_size, ctx.cfg.intervention.rlplus_demos
  rows = np.array([q * g + j for q in range(len(problems)) for j in range(g - n, g)])
  demos = [ctx.task.demonstration(problems[r // g]) for r in rows]
  tokens_BxT, mask_BxT = ctx.tok.encode_completions(demos, batch["tokens"].shape[1])
  batch["tokens"][rows], batch["mask"][rows] = tokens_BxT, mask_BxT
  batch["sampler_logp"][rows], batch["offpolicy"][rows] = 0.0, 1.0


def _dro_rewards(ctx: RolloutContext, params, r: dict):
  """R3 per rollout and, per group, whether it passes DRO's variance filter."""
  cfg, icfg, batch = ctx.cfg, ctx.cfg.intervention, r["batch"]
  g = cfg.rl.group_size
  owner = [r["problems"][i // g] for i in range(len(r["texts"]))]
  tokens_BxT, mask_BxT, ref_mask_BxT = ctx.tok.encode_with_reference(
      [ctx.task.chain_of_thought(t) for t in r["texts"]],
      [ctx.task.reference_answer(p) for p in owner], batch["tokens"].shape[1])
  logp_BxT = distributed.to_host(ctx.score(params, {"prompt": batch["prompt"],
                                                    "prompt_mask": batch["prompt_mask"],
                                                    "tokens": tokens_BxT, "mask": mask_BxT})[0])
  rewards_B, keep = np.zeros(len(owner), np.float32), []
  for q in range(len(r["problems"])):
    rows = slice(q * g, (q + 1) * g)
    n_ref = int(ref_mask_BxT[q * g].sum())
    # The reference has the same length in every row of a group: gather it as G x L.
    logp_GxL = np.stack([logp_BxT[i][ref_mask_BxT[i] > 0][:n_ref]
                         for i in range(q * g, (q + 1) * g)])
    rewards_B[rows], sigma = controls.dro_reward(logp_GxL, icfg.dro_temperature,
                                                 icfg.dro_certainty)
    keep.append(sigma >= icfg.dro_filter_threshold)
  return rewards_B, np.array(keep)


def _rewards(ctx: RolloutContext, r: dict, rng: np.random.Generator) -> np.ndarray:
  """The reward mode's rewards [B], then DAPO's overlong shaping and KL-in-reward."""
  icfg, batch = ctx.cfg.intervention, r["batch"]
  signals = controls.RewardSignals(r["verified"], r["format_ok"], r["wrong_label"],
                                   r.get("dro_reward"))
  rewards_B = controls.controlled_rewards(icfg.reward_mode, signals, rng, icfg.random_reward_p)
  if icfg.overlong_buffer:
    rewards_B = rewards_B + controls.overlong_penalty(
        batch["mask"].sum(1), ctx.cfg.completion_len, icfg.overlong_buffer,
        icfg.overlong_factor)
  if icfg.kl_in_reward:
    kl_BxT = np.asarray(kl_penalty(batch["old_logp"], batch["ref_logp"],
                                   icfg.kl_reward_estimator))
    rewards_B = rewards_B - icfg.kl_reward_coef * (kl_BxT * batch["mask"]).sum(1)
  return rewards_B.astype(np.float32)


def _take_groups(rounds: list[tuple[dict, np.ndarray]], picks: list[tuple[int, int]], g: int):
  """Concatenates the chosen (round, group) pairs into one step's arrays."""
  def rows(k):
    return np.concatenate([rounds[i][0][k][j * g:(j + 1) * g] for i, j in picks])
  first = rounds[0][0]
  batch = {k: np.concatenate([rounds[i][0]["batch"][k][j * g:(j + 1) * g] for i, j in picks])
           for k in first["batch"]}
  texts = [t for i, j in picks for t in rounds[i][0]["texts"][j * g:(j + 1) * g]]
  problems = [rounds[i][0]["problems"][j] for i, j in picks]
  rewards = np.concatenate([rounds[i][1][j * g:(j + 1) * g] for i, j in picks])
  return problems, batch, texts, rows("verified"), rewards


def collect(ctx: RolloutContext, params, ref_params, rng, data_position: int, step: int) -> StepRollouts:
  """Rollouts for one step starting at `data_position` of the prompt stream."""
  cfg, icfg = ctx.cfg, ctx.cfg.intervention
  q, g = cfg.rl.prompts_per_step, cfg.rl.group_size
  reward_rng = prng.reward_rng(cfg.seed, step)
  rounds, kept, dropped, dro_filtered, failures, forward = [], [], [], 0, {}, {}
  label_metrics = {}
  on_reward = iv.filters_on_reward(icfg)
  max_rounds = icfg.max_gen_rounds if icfg.dynamic_sampling else 1
  while len(rounds) < max_rounds and len(kept) < q:
    r = _round(ctx, params, ref_params, rng, data_position)
    data_position += 1
    rewards = _rewards(ctx, r, reward_rng)
    rounds.append((r, rewards))
    for kind, count in r["reward_failures"].items():
      failures[kind] = failures.get(kind, 0) + count
    for kind, count in r["forward_tokens"].items():
      forward[kind] = forward.get(kind, 0) + count
    for kind, value in r["wrong_label_metrics"].items():
      label_metrics[kind] = label_metrics.get(kind, 0.0) + value
    signal = rewards if on_reward else r["verified"]
    for j in range(q):
      if not r["dro_keep"][j]:
        rewards[j * g:(j + 1) * g] = 0.0  # DRO filter: no comparative signal in this group
        dro_filtered += 1
      # DRO has no verifier: its own variance filter decides; otherwise a group must vary
      # in correctness (DAPO's "acc") or, under a reward control, in its rewards.
      informative = r["dro_keep"][j] and (icfg.reward_mode == "dro" or g == 1
                                          or signal[j * g:(j + 1) * g].std() > 0)
      (kept if informative or not icfg.dynamic_sampling else dropped).append(
          (len(rounds) - 1, j))
  if "wrong_label/unlabelled_frac" in label_metrics:  # a mean over the rounds
    label_metrics["wrong_label/unlabelled_frac"] /= len(rounds)
  filled = max(q - len(kept), 0)
  picks = kept[:q] + dropped[:filled]
  problems, batch, texts, verified, rewards = _take_groups(rounds, picks, g)
  return StepRollouts(problems=problems, batch=batch, texts=texts, verified=verified,
                      rewards=rewards, gen_rounds=len(rounds), filled_groups=filled,
                      data_position=data_position, dro_filtered=dro_filtered,
                      forward_tokens=forward,
                      # Unfiltered by dynamic sampling; on-policy rows only (not RL-PLUS's).
                      first_round_accuracy=float(rounds[0][0]["verified"][
                          rounds[0][0]["batch"]["offpolicy"] == 0].mean()),
                      reward_failures=failures, wrong_label_metrics=label_metrics)
