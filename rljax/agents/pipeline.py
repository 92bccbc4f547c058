"""An agent run end to end: tokenizer -> cold start -> base eval -> multi-turn RL -> final eval.

Each stage leaves its result in the workdir and is skipped when it is there
(tokenizer.model, base/, base_eval.json), so the two methods of a study can share
one cold-started base (copy those three), and a stopped run resumes RL from its
last checkpoint. Per RL step: `envs_per_step` training layouts x `group_size`
trajectories (`rljax.rl.multi_turn.rollout`), token advantages (`credit`), one
on-policy update of the GRPO objective (`rljax.rl.update`) whose loss mask is the
model-token mask, then the agent instruments of the step's trajectories.

Workdir: tokenizer.model, base/, cold_start_metrics.jsonl, base_eval.json,
checkpoints/, metrics.jsonl, traces/step_K.json, summary.json.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from rljax import prng, sharding
from rljax.agents import credit, demos, evaluation
from rljax.agents.config import AgentConfig
from rljax.checkpoint import Checkpointer
from rljax.envs import episodes, turns
from rljax.metrics import MetricsWriter
from rljax.model.config import ModelConfig, get_preset
from rljax.rl import train_state
from rljax.rl.sft import make_sft_step
from rljax.rl.update import make_step_fns
from rljax.tokenizers.sentencepiece import Tokenizer, train_sentencepiece
from rljax.workdir import read_json, write_json


def _demonstrations(cfg: AgentConfig):
  return demos.demonstrations(cfg.world, cfg.cold_start.demos, cfg.rl.train_layouts,
                              cfg.cold_start.noise, cfg.seed, cfg.multi_turn.max_turns)


def _tokenizer(cfg: AgentConfig, workdir: str, demo_eps) -> Tokenizer:
  path = os.path.join(workdir, "tokenizer.model")
  if not os.path.exists(path):
    Tokenizer(train_sentencepiece(demos.corpus(demo_eps), cfg.tokenizer_vocab,
                                  turns.delimiters())).save(path)
  return Tokenizer.load(path)


def _cold_start(cfg: AgentConfig, model_cfg, tok, mesh, workdir: str, demo_eps):
  """The base agent: supervised on the oracle's trajectories (cached in `workdir/base`;
  a cold start stopped midway starts over: it takes minutes)."""
  cs = cfg.cold_start
  graphdef, abs_state = train_state.abstract_model(model_cfg)
  optimizer = train_state.make_optimizer(cs.optim, cs.steps)
  sh = train_state.state_shardings(graphdef, abs_state, optimizer, mesh, with_reference=False)
  state = train_state.new_state(train_state.init_params(model_cfg, cfg.seed, sh.params),
                                optimizer, sh, cfg.seed, with_reference=False)
  ckpt = Checkpointer(os.path.join(workdir, "base"), max_to_keep=1)
  if ckpt.latest_step() is not None:
    state, _ = ckpt.restore(state)
    ckpt.close()
    return graphdef, state.params
  data = demos.encode(demo_eps, tok, cfg.multi_turn)
  step_fn = make_sft_step(graphdef, optimizer, sh, mesh)
  rng = np.random.default_rng((cfg.seed, 7))
  writer = MetricsWriter(workdir, "cold_start_metrics")
  losses, t0 = [], time.time()
  for i in tqdm(range(cs.steps), desc="cold start", dynamic_ncols=True):
    rows = rng.choice(len(demo_eps), cs.batch_size, replace=False)
    state, m = step_fn(state, {k: v[rows] for k, v in data.items()}, np.float32(1.0))
    losses.append(m["loss"])
    if (i + 1) % cs.log_every == 0 or i + 1 == cs.steps:
      writer.write(i + 1, {"loss": float(np.mean(jax.device_get(losses))),
                           "elapsed_s": time.time() - t0})
      losses = []
  writer.close()
  ckpt.save(cs.steps, state, {"done": True})
  ckpt.close()
  return graphdef, state.params


def _cached_eval(cfg, graphdef, params, tok, sp, workdir: str) -> dict:
  path = os.path.join(workdir, "base_eval.json")
  if os.path.exists(path):
    return read_json(path)
  out, _ = evaluation.evaluate(cfg, graphdef, params, tok, sp, "base")
  write_json(out, path)
  return out


def _write_traces(workdir: str, step: int, eps, n: int = 8) -> None:
  os.makedirs(os.path.join(workdir, "traces"), exist_ok=True)
  spread = eps[::max(1, len(eps) // n)][:n]  # across the layouts, not one group
  write_json([evaluation.trace(e) for e in spread],
             os.path.join(workdir, "traces", f"step_{step}.json"))


def _step_metrics(batch, adv_BxN, extra: dict, m: dict, t: float) -> dict:
  mask = np.asarray(batch.model_mask_BxN)
  ent = float((np.asarray(batch.entropy_BxN) * mask).sum() / max(mask.sum(), 1.0))
  out = {f"train/{k}": v for k, v in episodes.metrics(batch.episodes).items()}
  out.update(extra, entropy=ent, reward=float(np.mean([e.reward for e in batch.episodes])),
             model_tokens=float(mask.sum(1).mean()), adv_abs=float(np.abs(adv_BxN).mean()),
             step_time_s=time.time() - t)
  out.update({k: float(v) for k, v in jax.device_get(m).items()})
  return out


def _sequences(batch) -> dict:
  return {"prompt": np.asarray(batch.prompt_BxP), "prompt_mask": np.asarray(batch.prompt_mask_BxP),
          "tokens": np.asarray(batch.tokens_BxN), "mask": np.asarray(batch.model_mask_BxN)}


def minibatch(batch, adv_BxN, ref_logp_BxN) -> dict:
  """The update's batch (`rljax.rl.update.BATCH_KEYS`) of a step's trajectories: the loss
  mask is the model-token mask, so observation tokens carry no loss and no gradient;
  one on-policy update (old log-probs unused), no demonstrations, unit weights."""
  seqs = _sequences(batch)
  b = seqs["mask"].shape[0]
  return dict(seqs, old_logp=np.zeros_like(seqs["mask"]), ref_logp=np.asarray(ref_logp_BxN),
              adv=np.asarray(adv_BxN, np.float32), sft_mask=np.zeros((b,), np.float32),
              offpolicy=np.zeros((b,), np.float32), is_weight=np.ones_like(seqs["mask"]))


def run(cfg: AgentConfig, workdir: str) -> dict:
  """The whole agent pipeline (module docstring); returns (and writes) summary.json."""
  t0 = time.time()
  os.makedirs(workdir, exist_ok=True)
  write_json(json.loads(json.dumps(dataclasses.asdict(cfg), default=str)),
             os.path.join(workdir, "config.json"))
  # Agents play on one device (`evaluation.play`); they train on the update's mesh.
  mesh, _ = sharding.train_and_rollout_meshes(cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.model,
                                              cfg.mesh.train_devices)
  rollouts = cfg.rl.envs_per_step * cfg.rl.group_size
  if rollouts % sharding.batch_devices(mesh) or cfg.cold_start.batch_size % sharding.batch_devices(mesh):
    raise ValueError(f"rl.envs_per_step * rl.group_size ({rollouts}) and "
                     f"cold_start.batch_size ({cfg.cold_start.batch_size}) must divide by "
                     f"the mesh's {sharding.batch_devices(mesh)} batch devices (config.mesh)")
  cfg, tok, model_cfg, graphdef, base_params = base_agent(cfg, workdir, mesh)
  sp = evaluation.splits(cfg)
  with jax.set_mesh(mesh):
    base = _cached_eval(cfg, graphdef, base_params, tok, sp, workdir)
    tqdm.write(f"base agent: success seen {base['seen/success_rate']:.3f} unseen "
               f"{base['unseen/success_rate']:.3f}, repetitive "
               f"{base['unseen/repetitive_action_rate']:.3f}")
    state = _train(cfg, graphdef, base_params, model_cfg, tok, mesh, sp, workdir)
    final, final_eps = evaluation.evaluate(cfg, graphdef, state.params, tok, sp, "final")
  _write_traces(workdir, int(state.step), final_eps)
  summary = {"method": cfg.rl.method, "seed": cfg.seed, "steps": int(state.step),
             "wall_time_s": time.time() - t0,
             **{f"base_{k}": v for k, v in base.items()},
             **{f"final_{k}": v for k, v in final.items()}}
  write_json(summary, os.path.join(workdir, "summary.json"))
  return summary


class BaseAgent(NamedTuple):
  """The cold-started agent of a config, and what playing it needs."""

  cfg: AgentConfig      # with the tokenizer's EOS and pad ids in `sampling`
  tokenizer: Tokenizer
  model_cfg: ModelConfig
  graphdef: object
  params: dict


def base_agent(cfg: AgentConfig, workdir: str, mesh) -> BaseAgent:
  """The tokenizer and the cold-started base agent of `cfg` (trained on `mesh`), each
  made once and kept in `workdir` (module docstring)."""
  demo_eps = _demonstrations(cfg)
  tok = _tokenizer(cfg, workdir, demo_eps)
  cfg = dataclasses.replace(cfg, sampling=dataclasses.replace(
      cfg.sampling, eos_id=tok.eos_id, pad_id=tok.pad_id))
  model_cfg = get_preset(cfg.model.preset, vocab_size=tok.vocab_size, dtype=cfg.model.dtype,
                         max_seq_len=cfg.multi_turn.prompt_tokens + cfg.multi_turn.max_tokens,
                         **cfg.model.layout())
  with jax.set_mesh(mesh):
    graphdef, params = _cold_start(cfg, model_cfg, tok, mesh, workdir, demo_eps)
  return BaseAgent(cfg, tok, model_cfg, graphdef, params)


def _train(cfg: AgentConfig, graphdef, base_params, model_cfg, tok, mesh, sp, workdir: str):
  """The RL loop from the last checkpoint (or the base) to `cfg.rl.steps`."""
  rl = cfg.rl
  optimizer = train_state.make_optimizer(rl.optim, rl.steps)
  _, abs_state = train_state.abstract_model(model_cfg)
  sh = train_state.state_shardings(graphdef, abs_state, optimizer, mesh, with_reference=True)
  state = train_state.new_state(base_params, optimizer, sh, cfg.seed, with_reference=True)
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), max_to_keep=2)
  if ckpt.latest_step() is not None:
    state, _ = ckpt.restore(state)
  fns = make_step_fns(graphdef, optimizer, sh, mesh, cfg.loss, cfg.sampling.temperature,
                      False, on_policy=True, weighted=False, group_size=rl.group_size)
  writer = MetricsWriter(workdir, "metrics", resume_step=int(state.step))
  coefs = {"entropy": np.float32(rl.entropy_coef), "kl": np.float32(rl.kl_coef),
           "sft": np.float32(0.0)}
  for step in tqdm(range(int(state.step), rl.steps), desc=f"rl ({rl.method})",
                   initial=int(state.step), total=rl.steps, dynamic_ncols=True):
    t = time.time()
    layouts = np.random.default_rng((cfg.seed, step, 11)).choice(
        sp.train, rl.envs_per_step, replace=False)
    batch = evaluation.play(cfg, graphdef, state.params, tok, layouts,
                            rl.group_size, prng.rollout_key(prng.run_key(cfg.seed), step))
    adv_BxN, extra = credit.METHODS[rl.method](batch, rl.group_size, cfg.meta)
    # The reference forward only when the KL term is on; otherwise the k3 term (times a
    # zero coefficient) reads the sampler's log-probs, which are finite where it looks.
    ref = (fns.score(state.ref_params, _sequences(batch))[0] if rl.kl_coef
           else batch.logp_BxN)
    mb = minibatch(batch, adv_BxN, ref)
    state, m = fns.update(state, mb, prng.update_key(state.rng, step), coefs)
    state = state.replace(step=jnp.asarray(step + 1, jnp.int32))
    row = _step_metrics(batch, adv_BxN, extra, m, t)
    if not rl.kl_coef:
      row.pop("kl_loss", None)  # against the sampler, not a reference: not a KL of the run
    done = step + 1
    if rl.eval_every and done % rl.eval_every == 0 and done < rl.steps:
      ev, _ = evaluation.evaluate(cfg, graphdef, state.params, tok, sp, f"rl{done}")
      row.update({f"eval/{k}": v for k, v in ev.items()})
    writer.write(done, row)
    if rl.trace_every and done % rl.trace_every == 0:
      _write_traces(workdir, done, batch.episodes)
    if done % rl.checkpoint_every == 0 or done == rl.steps:
      ckpt.save(done, state, {"method": rl.method})
  writer.close()
  ckpt.close()
  return state
