"""The RL loop: rollouts, advantages, jitted GRPO updates, controllers, metrics, checkpoints.

Per step: rollouts from `rljax.rl.rollouts.collect` (prompts at the run's data
position, G completions each, verified and shaped rewards, reference log-probs),
group advantages broadcast over tokens (HICRA reshapes them on planning tokens),
then mu epochs x minibatches of the jitted update (`rljax.rl.update`, sharded on
the mesh, state donated). The old log-probs are the training forward's under the
step's pre-update parameters (with one update per step, stop_gradient of the current
ones: the ratio is exactly 1); the sampler's feed only the mismatch metrics and
the optional rollout correction. Controllers (`rljax.rl.controllers`: entropy
coefficient, reference resets) run on the host between steps and are
checkpointed with the state.

Axis letters: Q prompts, G group size, B = Q*G rollouts, P prompt, T completion.
"""

from __future__ import annotations

import dataclasses
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from rljax import distributed, prng
from rljax.analysis import diagnostics, traces
from rljax.checkpoint import Checkpointer
from rljax.config import ExperimentConfig
from rljax.rewards.sandbox import RewardGuard, resolve
from rljax.rewards.wrong_labels import WrongLabels
from rljax.rl import advantages, controllers, rollout_correction, rollouts
from rljax.rl import interventions as iv
from rljax.rl.losses import kl_penalty, masked_mean
from rljax.rl.train_state import TrainState
from rljax.rl.update import make_step_fns
from rljax.tasks.base import Task
from rljax.tokenizers.base import BatchTokenizer


class NonFiniteError(RuntimeError):
  """Raised when too many consecutive steps had only non-finite updates."""


def scores_before_update(cfg: ExperimentConfig) -> bool:
  """Whether a step scores its rollouts under the pre-update policy before its update.

  When the step makes one update on all its rollouts (on-policy), that update's forward
  is this scoring: the same parameters, batch and shapes (`update.rl_update` returns its
  log-probs and entropies), so the step takes the old log-probs and entropies from it
  and runs one forward fewer. Unless something reads them before the update: the ratio
  over several minibatches or epochs, the rollout correction, forking-token masking, the
  adaptive entropy coefficient (the rollout's entropy), DRO's reward, or KL-in-reward.
  """
  icfg = cfg.intervention
  return (cfg.rl.epochs * cfg.rl.minibatches > 1 or cfg.rl.rollout_correction != "none"
          or icfg.forking_top_frac < 1.0 or icfg.entropy_schedule == "adaptive"
          or icfg.reward_mode == "dro" or bool(icfg.kl_in_reward))


class RLTrainer:
  """Owns the compiled functions and controllers of one run; `run()` trains to `cfg.rl.steps`."""

  def __init__(self, cfg: ExperimentConfig, graphdef, optimizer, state_shardings, mesh,
               task: Task, tokenizer: BatchTokenizer, workdir: str, writer, evaluate=None,
               base_params=None, rollout_mesh=None):
    """`mesh`: the update's; `rollout_mesh`: the sampler's (None: the ambient mesh);
    `base_params`: the base model's, needed by the wrong-label control."""
    self.cfg, self.task, self.tok = cfg, task, tokenizer
    if cfg.rl.prompts_per_step % distributed.process_count():
      raise distributed.DistributedError(
          f"rl.prompts_per_step ({cfg.rl.prompts_per_step}) must be a multiple of the "
          f"process count ({distributed.process_count()}): each process draws and encodes "
          f"its own share of a step's prompts")
    self.writer, self.evaluate, self.workdir = writer, evaluate, workdir
    self.score_first = scores_before_update(cfg)
    self.fns = make_step_fns(graphdef, optimizer, state_shardings, mesh, cfg.loss,
                             cfg.sampling.temperature, cfg.intervention.reset_optimizer,
                             on_policy=cfg.rl.epochs * cfg.rl.minibatches == 1,
                             weighted=cfg.rl.rollout_correction == "token_tis",
                             with_scores=not self.score_first,
                             # Each prompt once per group where the update's minibatch
                             # holds whole groups, so that the ratio's two forwards (the
                             # scoring and the update's) are the same computation.
                             group_size=cfg.rl.group_size if cfg.rl.minibatches == 1 else 1)
    self.ckpt = Checkpointer(f"{workdir}/checkpoints", cfg.rl.max_to_keep)
    reward_fn = resolve(cfg.rl.reward_fn) if cfg.rl.reward_fn else task.reward
    self.reward_guard = RewardGuard(reward_fn, cfg.rl.reward_timeout_s,
                                    cfg.rl.reward_failure_score)
    self.wrong_labels = None
    if cfg.intervention.reward_mode == "wrong_label":
      if base_params is None:
        raise ValueError("reward_mode 'wrong_label' needs the base model's parameters")
      self.wrong_labels = WrongLabels(
          task, tokenizer, graphdef, base_params, cfg.sampling, cfg.prompt_len,
          cfg.intervention.wrong_label_samples, cfg.rl.prompts_per_step, cfg.seed,
          verify=lambda calls: distributed.score_shares(self.reward_guard.score, calls)[0],
          mesh=rollout_mesh)
    self.rollout_ctx = rollouts.RolloutContext(
        cfg=cfg, task=task, tok=tokenizer, graphdef=graphdef,
        score=self.fns.score, reward_guard=self.reward_guard, wrong_labels=self.wrong_labels,
        score_policy=self.score_first, rollout_mesh=rollout_mesh)
    self.control = controllers.ControlState(entropy_coef=cfg.loss.entropy_coef)
    if self.wrong_labels is not None:  # one dict: checkpoints store the labels
      self.wrong_labels.cache = self.control.wrong_labels
    self._pieces = [tokenizer.piece(i) for i in range(tokenizer.vocab_size)]
    self.data_position = 0
    self.stopped = False  # set by SIGTERM / SIGINT: checkpoint saved, run not finished

  def restore_or(self, state: TrainState) -> TrainState:
    """The latest checkpoint of this workdir (with controllers and data position), else `state`."""
    if self.ckpt.latest_step() is None:
      return state
    restored, meta = self.ckpt.restore(state)
    self.data_position = int(meta["data_position"])
    self.control = controllers.ControlState(**meta["control"])
    if self.wrong_labels is not None:
      self.wrong_labels.cache = self.control.wrong_labels
    return restored

  def _on_signal(self, signum, frame):
    del frame
    tqdm.write(f"signal {signum}: saving a checkpoint after this step, then stopping")
    self.stopped = True

  def _train_batch(self, ro: rollouts.StepRollouts, planning_BxT) -> tuple[dict, dict]:
    """(the update's batch: token advantages, loss mask, SFT rows, correction weights;
    the correction metrics)."""
    cfg, icfg, b = self.cfg, self.cfg.intervention, ro.batch
    adv_B = np.asarray(advantages.compute(
        cfg.rl.advantage, ro.rewards, cfg.rl.group_size,
        **advantages.estimator_inputs(cfg.rl.advantage, cfg.rl, advantages.StepInputs(
            b["mask"].sum(1), b["offpolicy"], ro.verified > 0))))
    adv_BxT = adv_B[:, None] * b["mask"]
    if icfg.hicra_alpha:
      adv_BxT = iv.hicra_advantages(adv_BxT, planning_BxT, icfg.hicra_alpha)
    loss_mask_BxT = iv.forking_token_mask(b["entropy"], b["mask"], icfg.forking_top_frac)
    if icfg.mask_truncated:  # no EOS within the budget: the completion was cut off
      truncated_B = ~(b["tokens"] == cfg.sampling.eos_id).any(axis=1)
      loss_mask_BxT = loss_mask_BxT * (~truncated_B)[:, None]
    # Demonstrations have no sampler: the correction applies to sampled rows only.
    onpolicy_BxT = b["mask"] * (1.0 - b["offpolicy"])[:, None]
    weight_BxT, keep_B, correction = rollout_correction.correct(
        cfg.rl.rollout_correction, b["sampler_logp"], b["old_logp"], onpolicy_BxT,
        cfg.rl.rollout_correction_cap)
    weight_BxT = np.where(onpolicy_BxT > 0, weight_BxT, 1.0)
    keep_B = np.maximum(keep_B, b["offpolicy"])
    batch = {"prompt": b["prompt"], "prompt_mask": b["prompt_mask"], "tokens": b["tokens"],
             "mask": (loss_mask_BxT * keep_B[:, None]).astype(np.float32),
             "old_logp": b["old_logp"], "ref_logp": b["ref_logp"],
             "adv": adv_BxT.astype(np.float32),
             "sft_mask": (ro.verified > 0).astype(np.float32), "offpolicy": b["offpolicy"],
             "is_weight": weight_BxT.astype(np.float32)}
    return batch, correction

  def _planning_mask(self, tokens_BxT, mask_BxT):
    """(planning-token mask [B, T], each rollout's plan: its planning tokens joined)."""
    out_BxT, plans = np.zeros(tokens_BxT.shape, np.float32), []
    phrases = self.cfg.intervention.planning_phrases
    for i, row_T in enumerate(np.asarray(tokens_BxT)):
      n = int(mask_BxT[i].sum())
      # Ids past the tokenizer's vocabulary (padded model vocabularies) have no text.
      pieces = [self._pieces[t] if t < len(self._pieces) else "" for t in row_T[:n]]
      plan = np.asarray(self.task.planning_mask(pieces), np.float32)
      if phrases:
        plan = np.maximum(plan, iv.phrase_token_mask(pieces, phrases))
      out_BxT[i, :n] = plan
      plans.append(" ".join(p for p, m in zip(pieces, plan) if m))
    return out_BxT, plans

  def train_step(self, state: TrainState, step: int, data_position: int):
    """One RL step from `data_position` of the prompt stream.

    Returns (state, metrics, rollouts); `rollouts.data_position` is where the next
    step starts.
    """
    cfg, t0 = self.cfg, time.time()
    ro = rollouts.collect(self.rollout_ctx, state.params, state.ref_params, state.rng,
                          data_position, step)
    mask_BxT = ro.batch["mask"]
    planning_BxT, plans = self._planning_mask(ro.batch["tokens"], mask_BxT)
    batch, correction = self._train_batch(ro, planning_BxT)
    # Without a scoring before the update no coefficient reads the entropy (NaN if one did).
    rollout_entropy = (float((ro.batch["entropy"] * mask_BxT).sum() / mask_BxT.sum())
                       if self.score_first else float("nan"))
    coefs = controllers.loss_coefs(cfg.loss, cfg.intervention, self.control, step,
                                   cfg.rl.steps, rollout_entropy)
    b = ro.rewards.shape[0]
    mb_size = b // cfg.rl.minibatches
    order = prng.minibatch_order(cfg.seed, step)
    step_key = prng.update_key(state.rng, step)
    per_mb = []
    for epoch in range(cfg.rl.epochs):
      # One minibatch holds every row, and its loss does not depend on their order
      # (only Clip-Cov's random draw does): keep the rollouts' order, whose groups
      # share their prompt (the update then runs each prompt once).
      perm_B = np.arange(b) if cfg.rl.minibatches == 1 else order.permutation(b)
      for j in range(cfg.rl.minibatches):
        idx = perm_B[j * mb_size:(j + 1) * mb_size]
        out = self.fns.update(state, {k: v[idx] for k, v in batch.items()},
                              jax.random.fold_in(step_key, epoch * cfg.rl.minibatches + j),
                              coefs)
        state, m = out[:2]
        if not self.score_first:  # one update on all rows: its forward scored them
          logp_BxT, ent_BxT = (np.asarray(x) * mask_BxT[idx] for x in distributed.to_host(out[2]))
          ro.batch["old_logp"][idx], ro.batch["entropy"][idx] = logp_BxT, ent_BxT
        per_mb.append(m)
    if not self.score_first:
      rollout_entropy = float((ro.batch["entropy"] * mask_BxT).sum() / mask_BxT.sum())
    onpolicy_BxT = mask_BxT * (1.0 - ro.batch["offpolicy"])[:, None]
    mismatch = {**rollout_correction.mismatch(ro.batch["sampler_logp"], ro.batch["old_logp"],
                                              onpolicy_BxT), **correction}
    state = state.replace(step=jnp.asarray(step + 1, jnp.int32))
    per_mb = distributed.to_host(per_mb)
    elapsed = time.time() - t0
    metrics = {
        **self._rollout_metrics(ro, state, rollout_entropy),
        "entropy_coef": float(coefs["entropy"]), "kl_coef": float(coefs["kl"]),
        "step_time_s": elapsed, "tokens_per_s": float(mask_BxT.sum() / elapsed),
        # Minibatch means, except |log r|, whose worst minibatch is what the check reads.
        **{k: float(np.mean([m[k] for m in per_mb])) for k in per_mb[0]
           if k != "log_ratio_abs_max"},
        "log_ratio_abs_max": float(max(m["log_ratio_abs_max"] for m in per_mb)),
        **mismatch,
        "compute_flops": self.control.compute_flops,
        **self._diagnostics(ro, batch["adv"], planning_BxT, plans)}
    return state, metrics, ro

  def _rollout_metrics(self, ro: rollouts.StepRollouts, state: TrainState,
                       rollout_entropy: float) -> dict:
    """Rewards, accuracy, entropy, KL and lengths of the step; adds its FLOPs to the count."""
    cfg, g, mask_BxT = self.cfg, self.cfg.rl.group_size, ro.batch["mask"]
    n_params = sum(x.size for x in jax.tree.leaves(state.params))
    # Every forward actually run: all rounds' decode steps, prefills and scorings (the
    # groups dynamic sampling dropped included), and the updates on padded sequences.
    f = ro.forward_tokens
    self.control.compute_flops += diagnostics.step_flops(
        n_params, f["decoded"], f["prefilled"], f["scored"],
        cfg.rl.epochs * mask_BxT.shape[0] * (mask_BxT.shape[1] + ro.batch["prompt"].shape[1]))
    kl_BxT = kl_penalty(ro.batch["old_logp"], ro.batch["ref_logp"], "k3")
    return {
        "reward_mean": float(ro.rewards.mean()), "reward_std": float(ro.rewards.std()),
        # On-policy rollouts only: RL-PLUS demonstrations are correct by construction.
        "accuracy": float(ro.verified[ro.batch["offpolicy"] == 0].mean()),
        "accuracy_first_round": ro.first_round_accuracy,
        "entropy": rollout_entropy,
        "kl": float(masked_mean(kl_BxT, mask_BxT)),
        "response_length": float(mask_BxT.sum(1).mean()),
        "zero_var_frac": float((ro.verified.reshape(-1, g).std(1) == 0).mean()),
        "gen_rounds": ro.gen_rounds, "filled_groups": ro.filled_groups,
        "dro_filtered_groups": ro.dro_filtered,
        **{f"reward_failures/{k}": v for k, v in ro.reward_failures.items()},
        **ro.wrong_label_metrics,
        "zero_reward_var_frac": float((ro.rewards.reshape(-1, g).std(1) == 0).mean())}

  def _diagnostics(self, ro: rollouts.StepRollouts, adv_BxT, planning_BxT, plans) -> dict:
    """The entropy-mechanism diagnostics of `rljax.analysis.diagnostics` on the step."""
    g, mask_BxT, correct_B = self.cfg.rl.group_size, ro.batch["mask"], ro.verified > 0
    return {
        **diagnostics.token_covariance(ro.batch["old_logp"], adv_BxT, mask_BxT),
        **diagnostics.phase_entropy(ro.batch["entropy"], planning_BxT, mask_BxT),
        **diagnostics.group_diversity([self.task.final_answer(t) for t in ro.texts],
                                      correct_B, g),
        **diagnostics.semantic_entropy(plans, g),
        **diagnostics.shortcut_fraction(ro.problems, ro.texts, correct_B, g,
                                        self.task.steps_verify),
        **diagnostics.tag_stats(ro.problems, correct_B, ro.batch["entropy"], mask_BxT, g,
                                self.task.eval_tags)}

  def _control(self, state: TrainState, step: int, metrics: dict) -> TrainState:
    """Host controllers after step `step`: adaptive entropy and reference resets."""
    reason = controllers.after_step(self.cfg.intervention, self.control, step, metrics)
    metrics["reference_reset"] = float(reason is not None)
    if reason is not None:
      self.control.resets.append({"step": step, "reason": reason, "kl": metrics["kl"]})
      self.control.evals_since_best = 0
      tqdm.write(f"step {step}: reference policy reset ({reason}; kl {metrics['kl']:.4f})")
      state = self.fns.reset(state)
    return state

  def run(self, state: TrainState) -> TrainState:
    """Trains to cfg.rl.steps; SIGTERM / SIGINT save a checkpoint after the current step."""
    cfg = self.cfg
    start = int(state.step)
    old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    skipped_in_a_row = 0
    bar = tqdm(range(start, cfg.rl.steps), desc="grpo", initial=start, total=cfg.rl.steps,
               dynamic_ncols=True)
    try:
      for step in bar:
        state, metrics, ro = self.train_step(state, step, self.data_position)
        self.data_position = ro.data_position
        done = step + 1
        if self.evaluate and cfg.rl.eval_every and done % cfg.rl.eval_every == 0:
          metrics.update(self.evaluate(state.params, cfg.rl.eval_samples, done))
        skipped_in_a_row = skipped_in_a_row + 1 if metrics["skipped"] == 1.0 else 0
        if skipped_in_a_row >= cfg.rl.max_skipped_steps:
          raise NonFiniteError(
              f"step {done}: {skipped_in_a_row} consecutive steps had non-finite losses or "
              f"gradients; stopping. The last good checkpoint (step "
              f"{self.ckpt.latest_step()}) is untouched.")
        state = self._control(state, done, metrics)
        self.writer.write(done, metrics)
        if cfg.rl.trace_every and done % cfg.rl.trace_every == 0 and distributed.is_main():
          traces.write(self.workdir, done, ro, self.task, cfg.rl.trace_rollouts)
        bar.set_postfix(acc=f"{metrics['accuracy']:.3f}", ent=f"{metrics['entropy']:.3f}")
        if done % cfg.rl.checkpoint_every == 0 or done == cfg.rl.steps or self.stopped:
          self.ckpt.save(done, state, {"step": done, "data_position": self.data_position,
                                       "control": dataclasses.asdict(self.control)})
        if self.stopped:
          break
    finally:
      for s, handler in old.items():
        signal.signal(s, handler)
      self.reward_guard.close()
    return state
