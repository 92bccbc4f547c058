"""Supervised pretraining: next-token cross-entropy on completions (prompt tokens masked).

Used to build the testbed's base model (correct traces, then noisy ones; see
`pretrain`). The update step is a module-level function jitted once with the
state's shardings and donated state.
"""

from __future__ import annotations

import functools
import time

import jax
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from rljax import distributed, sharding
from rljax.rl.logprobs import completion_logp_entropy
from rljax.rl.train_state import TrainState, apply_if_finite


def sft_update(graphdef, optimizer, state: TrainState, batch: dict, lr_scale):
  """One AdamW step on the token-mean NLL of `batch["tokens"]`, its update times `lr_scale`.

  `lr_scale` lets the host drive a schedule whose length is only known at run
  time (the two-phase pretraining below) without recompiling.
  """
  def loss_fn(params):
    model = nnx.merge(graphdef, params)
    logp_BxT, _ = completion_logp_entropy(model, batch["prompt"], batch["prompt_mask"],
                                          batch["tokens"],
                                          position_offset_B=batch["position_offset"])
    mask = batch["mask"]
    return -(logp_BxT * mask).sum() / jax.numpy.maximum(mask.sum(), 1.0)

  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  new, ok = apply_if_finite(optimizer, state, grads, loss, lr_scale)
  new = new.replace(step=state.step + 1)
  return new, {"loss": loss, "grad_norm": optax.tree.norm(grads), "skipped": ~ok}


def make_sft_step(graphdef, optimizer, state_shardings, mesh):
  batch_sh = {k: sharding.batch_sharding(mesh, 2)
              for k in ("prompt", "prompt_mask", "tokens", "mask")}
  batch_sh["position_offset"] = sharding.batch_sharding(mesh, 1)
  rep = sharding.replicated(mesh)
  step = jax.jit(functools.partial(sft_update, graphdef, optimizer),
                 in_shardings=(state_shardings, batch_sh, rep),
                 out_shardings=(state_shardings, rep), donate_argnums=(0,))
  # Host batches become global arrays, each process placing its rows (`rljax.distributed`).
  return lambda state, batch, lr_scale: step(state, distributed.to_global(batch, batch_sh),
                                             distributed.to_global(lr_scale, rep))


def pretrain(state: TrainState, step_fn, batches, cfg, writer=None, desc: str = "pretrain",
             switch: int | None = None, save=None) -> tuple[TrainState, int]:
  """Two-phase pretraining from `state.step`; returns (state, step at which the phase switched).

  Phase 1 trains on correct traces (`batches(i, clean=True)`) until the mean loss of
  a `cfg.log_every` window drops below `cfg.clean_target_loss` (the skill has been
  learned) or `cfg.clean_max_steps` pass. Phase 2 trains `cfg.noisy_steps` on noisy
  traces with a cosine decay of the learning rate to 10%. Adapting the switch to
  the loss makes the recipe robust to seeds whose arithmetic plateau lasts longer.

  Resuming: pass a restored `state` and its `switch` (None while still clean).
  `save(state, step, switch)` is called every `cfg.checkpoint_every` steps except
  the last (the caller saves the result).
  """
  i = int(state.step)
  total = cfg.clean_max_steps + cfg.noisy_steps if switch is None else switch + cfg.noisy_steps
  bar = tqdm(total=total, initial=i, desc=desc, dynamic_ncols=True)
  t0, losses = time.time(), []
  while switch is None or i < switch + cfg.noisy_steps:
    if switch is None:
      scale = 1.0
    else:
      frac = (i - switch) / max(cfg.noisy_steps, 1)
      scale = 0.1 + 0.45 * (1 + np.cos(np.pi * frac))
    state, m = step_fn(state, batches(i, switch is None), np.float32(scale))
    losses.append(m["loss"])
    i += 1
    bar.update(1)
    if i % cfg.log_every == 0:
      loss = float(np.mean(distributed.to_host(losses)))
      losses = []
      phase = "clean" if switch is None else "noisy"
      bar.set_postfix(loss=f"{loss:.4f}", phase=phase)
      if writer is not None:
        writer.write(i, {"loss": loss, "phase_clean": float(switch is None),
                         "lr_scale": scale, "grad_norm": float(m["grad_norm"]),
                         "elapsed_s": time.time() - t0})
      if switch is None and (loss < cfg.clean_target_loss or i >= cfg.clean_max_steps):
        switch = i
        bar.total = switch + cfg.noisy_steps
        tqdm.write(f"pretrain: clean phase ended at step {i} (loss {loss:.4f}); "
                   f"{cfg.noisy_steps} noisy steps follow")
      if (save is not None and i % cfg.checkpoint_every == 0
          and (switch is None or i < switch + cfg.noisy_steps)):
        save(state, i, switch)
  bar.close()
  return state, switch
