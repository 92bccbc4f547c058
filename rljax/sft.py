"""Supervised pretraining: next-token cross-entropy on completions (prompt tokens masked).

Used to build the testbed's base model from noisy traces, and as the cold-start
step for real models. The update step is a module-level function jitted once
with the state's shardings and donated state.
"""

from __future__ import annotations

import functools
import time

import jax
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from rljax import sharding
from rljax.logprobs import completion_logp_entropy
from rljax.train_state import TrainState, isfinite_tree


def sft_update(graphdef, optimizer, state: TrainState, batch: dict):
  """One AdamW step on the token-mean negative log-likelihood of `batch["tokens"]`."""
  def loss_fn(params):
    model = nnx.merge(graphdef, params)
    logp_BxT, _ = completion_logp_entropy(model, batch["prompt"], batch["prompt_mask"],
                                          batch["tokens"])
    mask = batch["mask"]
    return -(logp_BxT * mask).sum() / jax.numpy.maximum(mask.sum(), 1.0)

  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  ok = jax.numpy.isfinite(loss) & isfinite_tree(grads)
  new = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                      opt_state=opt_state)
  # A non-finite loss or gradient skips the update instead of poisoning the params.
  new = jax.tree.map(lambda a, b: jax.numpy.where(ok, a, b), new, state)
  return new, {"loss": loss, "grad_norm": optax.global_norm(grads), "skipped": ~ok}


def make_sft_step(graphdef, optimizer, state_shardings, mesh):
  batch_sh = {k: sharding.batch_sharding(mesh, 2)
              for k in ("prompt", "prompt_mask", "tokens", "mask")}
  return jax.jit(functools.partial(sft_update, graphdef, optimizer),
                 in_shardings=(state_shardings, batch_sh),
                 out_shardings=(state_shardings, sharding.replicated(mesh)),
                 donate_argnums=(0,))


def pretrain(state: TrainState, step_fn, batches, num_steps: int, writer=None,
             log_every: int = 50, desc: str = "pretrain") -> TrainState:
  """Runs `num_steps` updates from `state.step`; `batches(i)` gives batch i as numpy arrays."""
  start = int(state.step)
  bar = tqdm(range(start, num_steps), desc=desc, initial=start, total=num_steps,
             dynamic_ncols=True)
  t0, losses = time.time(), []
  for i in bar:
    state, m = step_fn(state, batches(i))
    losses.append(m["loss"])
    if (i + 1) % log_every == 0 or i + 1 == num_steps:
      loss = float(np.mean(jax.device_get(losses)))
      losses = []
      bar.set_postfix(loss=f"{loss:.4f}")
      if writer is not None:
        writer.write(i + 1, {"loss": loss, "grad_norm": float(m["grad_norm"]),
                             "elapsed_s": time.time() - t0})
  return state
