"""The jitted functions of an RL step: the GRPO update, scoring log-probs, reference reset.

Each is a pure function of (state or params, batch); `make_step_fns` compiles
them once per run with in/out shardings on the mesh (the state donated), so a
step never recompiles: the loss coefficients are traced arguments.

Axis letters: B rollouts, P prompt, T completion.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from rljax import distributed, sharding
from rljax.rl.aggregation import aggregate
from rljax.rl.logprobs import completion_logp_entropy, prompt_groups
from rljax.rl.losses import LossConfig, LossInputs, grpo_objective
from rljax.rl.train_state import TrainState, apply_if_finite

# The update's minibatch: [B] keys are per rollout, the rest [B, P] / [B, T].
BATCH_KEYS = ("prompt", "prompt_mask", "tokens", "mask", "old_logp", "ref_logp", "adv",
              "sft_mask", "offpolicy", "is_weight")
_PER_ROLLOUT = ("sft_mask", "offpolicy")
SEQUENCE_KEYS = ("prompt", "prompt_mask", "tokens", "mask")


def rl_update(graphdef, optimizer, loss_cfg: LossConfig, temperature: float,
              on_policy: bool, weighted: bool, with_scores: bool, group: int,
              state: TrainState, mb: dict, key, coefs: dict):
  """One optimizer step of the GRPO objective on minibatch `mb`; skips non-finite steps.

  `mb["mask"]` is the loss mask (forking tokens / truncation already applied),
  `mb["adv"]` token advantages [B, T], `mb["old_logp"]` the training forward's
  log-probs under the step's pre-update parameters, `mb["sft_mask"]` the rows of
  GPPO's NLL term, `mb["offpolicy"]` the demonstration rows (RL-PLUS),
  `mb["is_weight"]` the rollout correction's token weights (read when `weighted`).
  `on_policy` (static: one epoch, one minibatch) takes the old log-probs as
  stop_gradient of the current ones, so the ratio is exactly 1. `coefs` (entropy,
  kl, sft) are traced, so schedules never recompile. `key` feeds losses that draw
  random numbers (Clip-Cov). `with_scores` (static) also returns the forward's
  (log-probs, entropies) [B, T] at the pre-update parameters: on-policy, exactly what
  `token_logp` would have scored before the update, so the step need not run it.
  `group` (static): the rows share their prompt in runs of `group`, each run once
  (`logprobs.completion_logp_entropy`).
  """
  mask_BxT = mb["mask"]

  def loss_fn(params):
    model = nnx.merge(graphdef, params)
    logp_BxT, ent_BxT = completion_logp_entropy(model, mb["prompt"], mb["prompt_mask"],
                                                mb["tokens"], temperature=temperature,
                                                group=group)
    old_logp_BxT = jax.lax.stop_gradient(logp_BxT) if on_policy else mb["old_logp"]
    x = LossInputs(logp_BxT=logp_BxT, old_logp_BxT=old_logp_BxT,
                   adv_BxT=mb["adv"] * mask_BxT, mask_BxT=mask_BxT,
                   offpolicy_BxT=mb["offpolicy"][:, None] * mask_BxT, rng=key,
                   weight_BxT=mb["is_weight"] if weighted else None)
    loss, metrics = grpo_objective(loss_cfg, x, mb["ref_logp"], ent_BxT,
                                   entropy_coef=coefs["entropy"], kl_coef=coefs["kl"])
    sft = aggregate(-logp_BxT, mask_BxT * mb["sft_mask"][:, None], loss_cfg.agg,
                    loss_cfg.norm_constant)
    log_ratio_max = jnp.max(jnp.abs(logp_BxT - old_logp_BxT) * mask_BxT)
    return loss + coefs["sft"] * sft, (dict(metrics, sft_loss=sft,
                                            log_ratio_abs_max=log_ratio_max),
                                       jax.lax.stop_gradient((logp_BxT, ent_BxT)))

  (loss, (metrics, scores)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  new, ok = apply_if_finite(optimizer, state, grads, loss)
  metrics = dict(metrics, loss=loss, grad_norm=optax.tree.norm(grads),
                 skipped=(~ok).astype(jnp.float32))
  return (new, metrics, scores) if with_scores else (new, metrics)


def token_logp(graphdef, temperature: float, group: int, params, batch: dict):
  """(log pi(token), entropy) of a batch's completion tokens under `params`, each [B, T],
  from the training forward (full tempered softmax, float32 head), no gradient.

  The old log-probs and entropies of a step (the policy's pre-update parameters), the
  reference log-probs, RL-PLUS's demonstrations and DRO's teacher-forced certainty
  all come from here, so every ratio and KL compares one forward with itself. `group`
  as in `rl_update`.
  """
  model = nnx.merge(graphdef, params)
  logp_BxT, ent_BxT = completion_logp_entropy(model, batch["prompt"], batch["prompt_mask"],
                                              batch["tokens"], temperature=temperature,
                                              group=group)
  return logp_BxT * batch["mask"], ent_BxT * batch["mask"]


def _is_schedule(node) -> bool:
  return isinstance(node, optax.ScaleByScheduleState)


def reset_reference(optimizer, reinit_optimizer: bool, state: TrainState) -> TrainState:
  """ProRL: the reference becomes the current policy; optionally fresh optimizer moments.

  The learning-rate schedule keeps its count: a reset restarts Adam's moments, not the
  warmup / decay of the run.
  """
  opt_state = state.opt_state
  if reinit_optimizer:
    fresh = optimizer.init(state.params)
    opt_state = jax.tree.map(lambda f, o: o if _is_schedule(f) else f, fresh, opt_state,
                             is_leaf=_is_schedule)
  return state.replace(ref_params=jax.tree.map(jnp.copy, state.params), opt_state=opt_state)


@dataclasses.dataclass(frozen=True)
class StepFns:
  """The compiled functions of a run.

  Attributes:
    update: (state, minibatch, key, coefs) -> (state, metrics), and the pre-update
      (log-probs, entropies) [B, T] of the minibatch when made `with_scores`; the state is
      donated.
    score: (params, {prompt, prompt_mask, tokens, mask}) -> (log-probs, entropies) [B, T].
    Both run each prompt once for its group when the batch's rows come in runs of the
    run's group size with one prompt each (`logprobs.prompt_groups`), else every row
    in full; one compiled function for each of the two, made on first use.
    reset: state -> state with the reference reset (ProRL); the state is donated.
  """

  update: Callable
  score: Callable
  reset: Callable


def make_step_fns(graphdef, optimizer, state_shardings: TrainState, mesh, loss_cfg: LossConfig,
                  temperature: float, reinit_optimizer: bool, on_policy: bool,
                  weighted: bool, with_scores: bool = False, group_size: int = 1) -> StepFns:
  """Compiles the step's functions with shardings on `mesh`.

  `on_policy`: each step makes one update on all its rollouts (the ratio is then 1
  exactly); `weighted`: a rollout correction supplies token weights; `with_scores`: the
  update also returns its forward's log-probs and entropies (see `rl_update`);
  `group_size`: the run's G, the prompt sharing the functions look for.
  """
  rep = sharding.replicated(mesh)
  batch_sh = {k: sharding.batch_sharding(mesh, 1 if k in _PER_ROLLOUT else 2)
              for k in BATCH_KEYS}
  seq_sh = {k: batch_sh[k] for k in SEQUENCE_KEYS}
  scores_sh = (batch_sh["tokens"], batch_sh["tokens"])

  @functools.cache
  def update(group: int):
    return jax.jit(functools.partial(rl_update, graphdef, optimizer, loss_cfg, temperature,
                                     on_policy, weighted, with_scores, group),
                   in_shardings=(state_shardings, batch_sh, rep, rep),
                   out_shardings=(state_shardings, rep) + ((scores_sh,) if with_scores else ()),
                   donate_argnums=(0,))

  @functools.cache
  def score(group: int):
    return jax.jit(functools.partial(token_logp, graphdef, temperature, group),
                   in_shardings=(state_shardings.params, seq_sh),
                   out_shardings=(batch_sh["tokens"], batch_sh["tokens"]))

  # The host batch (the same on every process) says whether its prompts come in groups.
  group_of = lambda b: prompt_groups(b["prompt"], b["prompt_mask"], group_size,
                                     sharding.batch_devices(mesh))
  # Host batches become global arrays, each process placing its own rows
  # (`rljax.distributed`); with one process they pass through unchanged.
  def update_fn(state, mb, key, coefs):
    fn = update(group_of(mb))
    mb = distributed.to_global(mb, {k: batch_sh[k] for k in mb})
    return fn(state, mb, key, distributed.to_global(coefs, {k: rep for k in coefs}))

  def score_fn(params, seqs):
    fn = score(group_of(seqs))
    return fn(params, distributed.to_global(seqs, {k: seq_sh[k] for k in seqs}))

  reset = jax.jit(functools.partial(reset_reference, optimizer, reinit_optimizer),
                  in_shardings=(state_shardings,), out_shardings=state_shardings,
                  donate_argnums=(0,))
  return StepFns(update=update_fn, score=score_fn, reset=reset)
