"""The RL loop: sample, score, advantages, jitted GRPO updates, metrics, checkpoints.

Per step: Q prompts from the task stream (position = step), G completions each
from the on-device sampler, rewards from the task's verifier, group advantages,
reference log-probs in one forward pass, then mu epochs x minibatches of the
jitted update step (sharded on the mesh, state donated). The old log-probs are
the sampler's own (the behaviour policy, truncation included).

Axis letters: Q prompts, G group size, B = Q*G rollouts, P prompt, T completion.
"""

from __future__ import annotations

import functools
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from rljax import advantages, sharding
from rljax import sampler as sampler_lib
from rljax.checkpoint import Checkpointer
from rljax.config import ExperimentConfig
from rljax.logprobs import completion_logp_entropy
from rljax.losses import LossConfig, grpo_objective, kl_penalty, masked_mean
from rljax.tasks.testbed_data import tier_accuracy
from rljax.train_state import TrainState, isfinite_tree

_BATCH_KEYS = ("prompt", "prompt_mask", "tokens", "mask", "old_logp", "ref_logp", "adv")


def rl_update(graphdef, optimizer, loss_cfg: LossConfig, temperature: float,
              state: TrainState, mb: dict, key):
  """One optimizer step of the GRPO objective on minibatch `mb`; skips non-finite steps.

  `key` feeds the losses that draw random numbers (Clip-Cov's token selection).
  """
  def loss_fn(params):
    model = nnx.merge(graphdef, params)
    logp, ent = completion_logp_entropy(model, mb["prompt"], mb["prompt_mask"], mb["tokens"],
                                        temperature=temperature)
    return grpo_objective(loss_cfg, logp, mb["old_logp"], mb["ref_logp"], ent, mb["adv"],
                          mb["mask"], rng=key)

  (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  ok = jnp.isfinite(loss) & isfinite_tree(grads)
  new = state.replace(params=optax.apply_updates(state.params, updates), opt_state=opt_state)
  new = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, state)
  return new, dict(metrics, loss=loss, grad_norm=optax.tree.norm(grads),
                   skipped=(~ok).astype(jnp.float32))


def reference_logp(graphdef, temperature: float, ref_params, batch: dict):
  """log pi_ref of the rollout tokens (no gradient), [B, T]."""
  model = nnx.merge(graphdef, ref_params)
  logp, _ = completion_logp_entropy(model, batch["prompt"], batch["prompt_mask"],
                                    batch["tokens"], temperature=temperature)
  return logp * batch["mask"]


class RLTrainer:
  """Owns the compiled functions of one run; `run()` trains to `cfg.rl.steps`."""

  def __init__(self, cfg: ExperimentConfig, graphdef, optimizer, state_shardings, mesh,
               task, tokenizer, workdir: str, writer, evaluate=None):
    self.cfg, self.graphdef, self.mesh = cfg, graphdef, mesh
    self.task, self.tok, self.writer, self.evaluate = task, tokenizer, writer, evaluate
    self.state_sh = state_shardings
    self.sampling = cfg.sampling
    batch_sh = {k: sharding.batch_sharding(mesh, 1 if k == "adv" else 2) for k in _BATCH_KEYS}
    temp = cfg.sampling.temperature
    self.update = jax.jit(functools.partial(rl_update, graphdef, optimizer, cfg.loss, temp),
                          in_shardings=(state_shardings, batch_sh, sharding.replicated(mesh)),
                          out_shardings=(state_shardings, sharding.replicated(mesh)),
                          donate_argnums=(0,))
    ref_keys = ("prompt", "prompt_mask", "tokens", "mask")
    self.ref_logp = jax.jit(functools.partial(reference_logp, graphdef, temp),
                            in_shardings=(state_shardings.params,
                                          {k: batch_sh[k] for k in ref_keys}),
                            out_shardings=batch_sh["tokens"])
    self.ckpt = Checkpointer(f"{workdir}/checkpoints", cfg.rl.max_to_keep)
    self._stop = False

  def restore_or(self, state: TrainState) -> TrainState:
    """The latest checkpoint of this workdir if any, else `state`."""
    if self.ckpt.latest_step() is None:
      return state
    restored, _ = self.ckpt.restore(state)
    return restored

  def _on_signal(self, signum, frame):
    del frame
    tqdm.write(f"signal {signum}: saving a checkpoint after this step, then stopping")
    self._stop = True

  def rollout_batch(self, state: TrainState, step: int):
    """Samples and scores step `step`'s rollouts; returns (problems, batch, host stats)."""
    cfg = self.cfg
    q, g = cfg.rl.prompts_per_step, cfg.rl.group_size
    problems = self.task.train_batch(step, q)
    prompt, pmask = self.tok.encode_prompts([p.prompt for p in problems], cfg.prompt_len)
    key = jax.random.fold_in(state.rng, step)
    out = jax.device_get(sampler_lib.sample(self.graphdef, state.params, prompt, pmask, key,
                                            cfg=self.sampling, group_size=g))
    texts = self.tok.decode_completions(out.tokens)
    rewards = np.array([self.task.reward(problems[i // g], t) for i, t in enumerate(texts)],
                       np.float32)
    adv = np.asarray(advantages.compute(cfg.rl.advantage, rewards, g,
                                        **cfg.rl.advantage_hparams(out.mask.sum(1))),
                     np.float32)
    batch = {"prompt": np.repeat(prompt, g, 0), "prompt_mask": np.repeat(pmask, g, 0),
             "tokens": out.tokens, "mask": out.mask, "old_logp": out.logp, "adv": adv}
    batch["ref_logp"] = self.ref_logp(
        state.ref_params, {k: batch[k] for k in ("prompt", "prompt_mask", "tokens", "mask")})
    return problems, batch, rewards, out

  def train_step(self, state: TrainState, step: int):
    cfg, t0 = self.cfg, time.time()
    problems, batch, rewards, out = self.rollout_batch(state, step)
    b = rewards.shape[0]
    mb_size = b // cfg.rl.minibatches
    key = np.random.default_rng((int(jax.device_get(state.rng)[1]), step))
    per_mb = []
    step_key = jax.random.fold_in(state.rng, step)
    for epoch in range(cfg.rl.epochs):
      perm = key.permutation(b)
      for j in range(cfg.rl.minibatches):
        idx = perm[j * mb_size:(j + 1) * mb_size]
        loss_key = jax.random.fold_in(step_key, 1 + epoch * cfg.rl.minibatches + j)
        state, m = self.update(state, {k: np.asarray(v)[idx] for k, v in batch.items()},
                               loss_key)
        per_mb.append(m)
    state = state.replace(step=jnp.asarray(step + 1, jnp.int32))
    per_mb = jax.device_get(per_mb)
    mask = out.mask
    g = cfg.rl.group_size
    r_qg = rewards.reshape(-1, g)
    ref = np.asarray(batch["ref_logp"])
    elapsed = time.time() - t0
    metrics = {
        "reward_mean": float(rewards.mean()), "reward_std": float(rewards.std()),
        "accuracy": float((rewards > 0).mean()),
        "entropy": float((out.entropy * mask).sum() / mask.sum()),
        "kl": float(masked_mean(kl_penalty(out.logp, ref, "k3"), mask)),
        "response_length": float(mask.sum(1).mean()),
        "zero_var_frac": float((r_qg.std(1) == 0).mean()),
        "step_time_s": elapsed, "tokens_per_s": float(mask.sum() / elapsed),
        **{k: float(np.mean([m[k] for m in per_mb])) for k in per_mb[0]},
        **tier_accuracy(problems, rewards > 0, g, self.task.tag)}
    return state, metrics

  def run(self, state: TrainState) -> TrainState:
    cfg = self.cfg
    start = int(state.step)
    old = signal.signal(signal.SIGTERM, self._on_signal)
    bar = tqdm(range(start, cfg.rl.steps), desc="grpo", initial=start, total=cfg.rl.steps,
               dynamic_ncols=True)
    try:
      for step in bar:
        state, metrics = self.train_step(state, step)
        done = step + 1
        if self.evaluate and cfg.rl.eval_every and done % cfg.rl.eval_every == 0:
          metrics.update(self.evaluate(state.params, cfg.rl.eval_samples, done))
        self.writer.write(done, metrics)
        bar.set_postfix(acc=f"{metrics['accuracy']:.3f}", ent=f"{metrics['entropy']:.3f}")
        if done % cfg.rl.checkpoint_every == 0 or done == cfg.rl.steps or self._stop:
          self.ckpt.save(done, state, {"step": done, "data_position": done})
        if self._stop:
          break
    finally:
      signal.signal(signal.SIGTERM, old)
    return state
