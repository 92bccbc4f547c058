"""The RL loop: rollouts, advantages, jitted GRPO updates, controllers, metrics, checkpoints.

Per step: rollouts from `rljax.rl.rollouts.collect` (prompts at the run's data
position, G completions each, verified and shaped rewards, reference log-probs),
group advantages broadcast over tokens (HICRA reshapes them on planning tokens),
then mu epochs x minibatches of the jitted update (sharded on the mesh, state
donated). The old log-probs are the sampler's own (the behaviour policy,
truncation included). Controllers (entropy coefficient, reference resets) run on
the host between steps and are checkpointed with the state.

Axis letters: Q prompts, G group size, B = Q*G rollouts, P prompt, T completion.
"""

from __future__ import annotations

import dataclasses
import functools
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from rljax.rl import advantages, rollouts
from rljax.analysis import diagnostics, traces
from rljax import sharding
from rljax.rl import interventions as iv
from rljax.rl.aggregation import aggregate
from rljax.checkpoint import Checkpointer
from rljax.config import ExperimentConfig
from rljax.rl.logprobs import completion_logp_entropy
from rljax.rewards.sandbox import RewardGuard, resolve
from rljax.rl.losses import LossConfig, grpo_objective, kl_penalty, masked_mean
from rljax.tasks.testbed_task import tier_accuracy
from rljax.rl.train_state import TrainState, apply_if_finite

_BATCH_KEYS = ("prompt", "prompt_mask", "tokens", "mask", "old_logp", "ref_logp", "adv",
               "sft_mask", "offpolicy")


def rl_update(graphdef, optimizer, loss_cfg: LossConfig, temperature: float,
              state: TrainState, mb: dict, key, coefs: dict):
  """One optimizer step of the GRPO objective on minibatch `mb`; skips non-finite steps.

  `mb["mask"]` is the loss mask (forking tokens / truncation already applied),
  `mb["adv"]` token advantages [B, T], `mb["sft_mask"]` the rows of GPPO's NLL
  term. `coefs` (entropy, kl, sft) are traced, so schedules never recompile.
  `key` feeds losses that draw random numbers (Clip-Cov).
  """
  def loss_fn(params):
    model = nnx.merge(graphdef, params)
    logp, ent = completion_logp_entropy(model, mb["prompt"], mb["prompt_mask"], mb["tokens"],
                                        temperature=temperature)
    loss, metrics = grpo_objective(loss_cfg, logp, mb["old_logp"], mb["ref_logp"], ent,
                                   mb["adv"], mb["mask"], rng=key,
                                   entropy_coef=coefs["entropy"], kl_coef=coefs["kl"],
                                   offpolicy_mask=mb["offpolicy"][:, None] * mb["mask"])
    sft = aggregate(-logp, mb["mask"] * mb["sft_mask"][:, None], loss_cfg.agg,
                    loss_cfg.norm_constant)
    return loss + coefs["sft"] * sft, dict(metrics, sft_loss=sft)

  (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  new, ok = apply_if_finite(optimizer, state, grads, loss)
  return new, dict(metrics, loss=loss, grad_norm=optax.tree.norm(grads),
                   skipped=(~ok).astype(jnp.float32))


def token_logp(graphdef, temperature: float, params, batch: dict):
  """log pi(token) of a batch's completion tokens under `params` (no gradient), [B, T].

  Used with the reference params (KL), and with the policy's (RL-PLUS behaviour
  log-probs of demonstrations, DRO's teacher-forced reference certainty).
  """
  model = nnx.merge(graphdef, params)
  logp, _ = completion_logp_entropy(model, batch["prompt"], batch["prompt_mask"],
                                    batch["tokens"], temperature=temperature)
  return logp * batch["mask"]


def reset_reference(optimizer, reinit_optimizer: bool, state: TrainState) -> TrainState:
  """ProRL: the reference becomes the current policy; optionally a fresh optimizer."""
  opt_state = optimizer.init(state.params) if reinit_optimizer else state.opt_state
  return state.replace(ref_params=jax.tree.map(jnp.copy, state.params), opt_state=opt_state)


class NonFiniteError(RuntimeError):
  """Raised when too many consecutive steps had only non-finite updates."""


class RLTrainer:
  """Owns the compiled functions and controllers of one run; `run()` trains to `cfg.rl.steps`."""

  def __init__(self, cfg: ExperimentConfig, graphdef, optimizer, state_shardings, mesh,
               task, tokenizer, workdir: str, writer, evaluate=None):
    self.cfg, self.graphdef, self.mesh = cfg, graphdef, mesh
    self.task, self.tok, self.writer, self.evaluate = task, tokenizer, writer, evaluate
    self.workdir = workdir
    self.sampling = cfg.sampling
    rep = sharding.replicated(mesh)
    batch_sh = {k: sharding.batch_sharding(mesh, 1 if k in ("sft_mask", "offpolicy") else 2)
                for k in _BATCH_KEYS}
    temp = cfg.sampling.temperature
    self.update = jax.jit(functools.partial(rl_update, graphdef, optimizer, cfg.loss, temp),
                          in_shardings=(state_shardings, batch_sh, rep, rep),
                          out_shardings=(state_shardings, rep), donate_argnums=(0,))
    ref_keys = ("prompt", "prompt_mask", "tokens", "mask")
    self.score_logp = jax.jit(functools.partial(token_logp, graphdef, temp),
                            in_shardings=(state_shardings.params,
                                          {k: batch_sh[k] for k in ref_keys}),
                            out_shardings=batch_sh["tokens"])
    self.reset = jax.jit(
        functools.partial(reset_reference, optimizer, cfg.intervention.reset_optimizer),
        in_shardings=(state_shardings,), out_shardings=state_shardings, donate_argnums=(0,))
    self.ckpt = Checkpointer(f"{workdir}/checkpoints", cfg.rl.max_to_keep)
    reward_fn = resolve(cfg.rl.reward_fn) if cfg.rl.reward_fn else task.reward
    self.reward_guard = RewardGuard(reward_fn, cfg.rl.reward_timeout_s,
                                    cfg.rl.reward_failure_score)
    self.control = iv.ControlState(entropy_coef=cfg.loss.entropy_coef)
    self._pieces = [tokenizer.piece(i) for i in range(tokenizer.vocab_size)]
    self.data_position = 0
    self.stopped = False  # set by SIGTERM / SIGINT: checkpoint saved, run not finished

  def restore_or(self, state: TrainState) -> TrainState:
    """The latest checkpoint of this workdir (with controllers and data position), else `state`."""
    if self.ckpt.latest_step() is None:
      return state
    restored, meta = self.ckpt.restore(state)
    self.data_position = int(meta["data_position"])
    self.control = iv.ControlState(**meta["control"])
    return restored

  def _on_signal(self, signum, frame):
    del frame
    tqdm.write(f"signal {signum}: saving a checkpoint after this step, then stopping")
    self.stopped = True

  def _coefs(self, step: int, rollout_entropy: float) -> dict:
    cfg, icfg, ctrl = self.cfg, self.cfg.intervention, self.control
    ent = cfg.loss.entropy_coef
    if icfg.entropy_schedule == "linear":
      ent = iv.linear(cfg.loss.entropy_coef, icfg.entropy_coef_end, step, cfg.rl.steps)
    elif icfg.entropy_schedule == "adaptive":
      if ctrl.entropy_target is None:  # calibrated on the first step's rollouts
        ctrl.entropy_target = (icfg.entropy_target if icfg.entropy_target is not None
                               else icfg.entropy_target_frac * rollout_entropy)
      active = iv.entropy_bonus_active(rollout_entropy, ctrl.entropy_target)
      ent = ctrl.entropy_coef if active else 0.0
    kl = cfg.loss.kl_coef if icfg.kl_coef_end is None else iv.linear(
        cfg.loss.kl_coef, icfg.kl_coef_end, step, cfg.rl.steps)
    return {"entropy": np.float32(ent), "kl": np.float32(kl), "sft": np.float32(icfg.sft_coef)}

  def _train_batch(self, ro: rollouts.StepRollouts, planning) -> dict:
    """Token advantages, loss mask and SFT rows for the update."""
    cfg, icfg, b = self.cfg, self.cfg.intervention, ro.batch
    adv_B = np.asarray(advantages.compute(cfg.rl.advantage, ro.rewards, cfg.rl.group_size,
                                          **cfg.rl.advantage_hparams(b["mask"].sum(1),
                                                                     b["offpolicy"])))
    adv = adv_B[:, None] * b["mask"]
    if icfg.hicra_alpha:
      adv = iv.hicra_advantages(adv, planning, icfg.hicra_alpha)
    loss_mask = iv.forking_token_mask(b["entropy"], b["mask"], icfg.forking_top_frac)
    if icfg.mask_truncated:  # no EOS within the budget: the completion was cut off
      truncated = ~(b["tokens"] == self.sampling.eos_id).any(axis=1)
      loss_mask = loss_mask * (~truncated)[:, None]
    return {"prompt": b["prompt"], "prompt_mask": b["prompt_mask"], "tokens": b["tokens"],
            "mask": loss_mask.astype(np.float32), "old_logp": b["old_logp"],
            "ref_logp": b["ref_logp"], "adv": adv.astype(np.float32),
            "sft_mask": (ro.verified > 0).astype(np.float32), "offpolicy": b["offpolicy"]}

  def _planning_mask(self, tokens_BxT, mask_BxT):
    """(planning-token mask [B, T], each rollout's plan: its planning tokens joined)."""
    out, plans = np.zeros(tokens_BxT.shape, np.float32), []
    phrases = self.cfg.intervention.planning_phrases
    for i, row in enumerate(np.asarray(tokens_BxT)):
      n = int(mask_BxT[i].sum())
      # Ids past the tokenizer's vocabulary (padded model vocabularies) have no text.
      pieces = [self._pieces[t] if t < len(self._pieces) else "" for t in row[:n]]
      plan = np.asarray(self.task.planning_mask(pieces), np.float32)
      if phrases:
        plan = np.maximum(plan, iv.phrase_token_mask(pieces, phrases))
      out[i, :n] = plan
      plans.append(" ".join(p for p, m in zip(pieces, plan) if m))
    return out, plans

  def train_step(self, state: TrainState, step: int):
    cfg, t0 = self.cfg, time.time()
    ro = rollouts.collect(self, state.params, state.ref_params, state.rng,
                          self.data_position, step)
    self.data_position = ro.data_position
    self.last_rollouts = ro
    planning, plans = self._planning_mask(ro.batch["tokens"], ro.batch["mask"])
    batch = self._train_batch(ro, planning)
    mask = ro.batch["mask"]
    rollout_entropy = float((ro.batch["entropy"] * mask).sum() / mask.sum())
    coefs = self._coefs(step, rollout_entropy)
    b = ro.rewards.shape[0]
    mb_size = b // cfg.rl.minibatches
    order = np.random.default_rng((cfg.seed, step))
    step_key = jax.random.fold_in(state.rng, 1_000_003 + step)
    per_mb = []
    for epoch in range(cfg.rl.epochs):
      perm = order.permutation(b)
      for j in range(cfg.rl.minibatches):
        idx = perm[j * mb_size:(j + 1) * mb_size]
        state, m = self.update(state, {k: v[idx] for k, v in batch.items()},
                               jax.random.fold_in(step_key, epoch * cfg.rl.minibatches + j),
                               coefs)
        per_mb.append(m)
    state = state.replace(step=jnp.asarray(step + 1, jnp.int32))
    per_mb = jax.device_get(per_mb)
    g = cfg.rl.group_size
    elapsed = time.time() - t0
    n_params = sum(x.size for x in jax.tree.leaves(state.params))
    gen, prompt = float(mask.sum()), float(ro.batch["prompt_mask"].sum())
    self.control.compute_flops += diagnostics.step_flops(
        n_params, gen * ro.gen_rounds, prompt / g * ro.gen_rounds, (gen + prompt) * ro.gen_rounds,
        (gen + prompt) * cfg.rl.epochs)
    metrics = {
        "reward_mean": float(ro.rewards.mean()), "reward_std": float(ro.rewards.std()),
        # On-policy rollouts only: RL-PLUS demonstrations are correct by construction.
        "accuracy": float(ro.verified[ro.batch["offpolicy"] == 0].mean()),
        "entropy": rollout_entropy,
        "kl": float(masked_mean(kl_penalty(ro.batch["old_logp"], ro.batch["ref_logp"], "k3"),
                                mask)),
        "response_length": float(mask.sum(1).mean()),
        "zero_var_frac": float((ro.verified.reshape(-1, g).std(1) == 0).mean()),
        "gen_rounds": ro.gen_rounds, "filled_groups": ro.filled_groups,
        "dro_filtered_groups": ro.dro_filtered,
        **{f"reward_failures/{k}": v for k, v in ro.reward_failures.items()},
        "entropy_coef": float(coefs["entropy"]), "kl_coef": float(coefs["kl"]),
        "step_time_s": elapsed, "tokens_per_s": float(mask.sum() / elapsed),
        **{k: float(np.mean([m[k] for m in per_mb])) for k in per_mb[0]},
        "compute_flops": self.control.compute_flops,
        **diagnostics.token_covariance(ro.batch["old_logp"], batch["adv"], mask),
        **diagnostics.phase_entropy(ro.batch["entropy"], planning, mask),
        **diagnostics.group_diversity([self.task.final_answer(t) for t in ro.texts],
                                      ro.verified > 0, g),
        **diagnostics.semantic_entropy(plans, g),
        **diagnostics.shortcut_fraction(ro.problems, ro.texts, ro.verified > 0, g,
                                        getattr(self.task, "steps_verify", None)),
        **tier_accuracy(ro.problems, ro.verified > 0, g, self.task.tag)}
    return state, metrics

  def _control(self, state: TrainState, step: int, metrics: dict) -> TrainState:
    """Host controllers after step `step`: adaptive entropy and reference resets."""
    icfg, ctrl = self.cfg.intervention, self.control
    if icfg.entropy_schedule == "adaptive":
      ctrl.entropy_coef = iv.adaptive_entropy_coef(
          ctrl.entropy_coef, metrics["entropy"], ctrl.entropy_target,
          icfg.entropy_adapt_rate, icfg.entropy_coef_max)
    reason = iv.reset_reason(icfg, ctrl, step, metrics)
    metrics["reference_reset"] = float(reason is not None)
    if reason is not None:
      ctrl.resets.append({"step": step, "reason": reason, "kl": metrics["kl"]})
      ctrl.evals_since_best = 0
      tqdm.write(f"step {step}: reference policy reset ({reason}; kl {metrics['kl']:.4f})")
      state = self.reset(state)
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
        state, metrics = self.train_step(state, step)
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
        if cfg.rl.trace_every and done % cfg.rl.trace_every == 0:
          traces.write(self.workdir, done, self.last_rollouts, self.task, cfg.rl.trace_rollouts)
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
