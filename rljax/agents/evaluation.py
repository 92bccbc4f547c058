"""The agent's instruments on seen and unseen layouts, and whole trajectories for the report.

`evaluate` plays `samples` trajectories on each layout of a split with the run's
sampling settings (the same `rljax.rl.multi_turn.rollout` as training) and returns
`rljax.envs.episodes.metrics` (success, repetitive- and invalid-action rates, turns to
success, tag shares, environment faults) under `seen/...` and `unseen/...`.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np

from rljax import prng, sharding
from rljax.agents import demos
from rljax.agents.config import AgentConfig
from rljax.envs import episodes, keys_doors
from rljax.rl import multi_turn


@dataclasses.dataclass(frozen=True)
class Splits:
  """Layout seeds: `train` the RL pool, `seen` its evaluated head, `unseen` held out."""

  train: tuple
  seen: tuple
  unseen: tuple


def splits(cfg: AgentConfig) -> Splits:
  train = tuple(range(cfg.rl.train_layouts))
  unseen = demos.unseen_seeds(cfg.world, cfg.eval.unseen, cfg.eval.unseen_seed,
                              cfg.rl.train_layouts)
  return Splits(train, train[:cfg.eval.seen], tuple(unseen))


def host_params(params):
  """Parameters on one device for the rollout loop (its cache is not sharded over the
  mesh: the agent models are tiny); a copy, so the donated train state stays valid."""
  return jax.device_put(jax.device_get(params), jax.devices()[0])


def play(cfg: AgentConfig, graphdef, params, tok, seeds, group_size: int,
         key) -> multi_turn.MultiTurnBatch:
  """`group_size` trajectories on each layout seed (rows q*G + g), on one device."""
  with jax.set_mesh(sharding.make_mesh(1, 1, 1, devices=jax.devices()[:1])):
    # Host copies enter this one-device mesh (arrays made under the run's mesh carry it).
    params, key = host_params(params), jax.device_put(np.asarray(key), jax.devices()[0])
    return multi_turn.rollout(graphdef, params, functools.partial(keys_doors.KeysDoors, cfg.world),
                              [int(s) for s in seeds], group_size, tok, key,
                              cfg=cfg.multi_turn, sampling=cfg.sampling)


def evaluate(cfg: AgentConfig, graphdef, params, tok, sp: Splits, tag: str) -> tuple[dict, list]:
  """({seen/..., unseen/...} instruments, the unseen split's episodes) of `params`."""
  out, eps = {}, []
  for name, seeds in (("seen", sp.seen), ("unseen", sp.unseen)):
    key = prng.eval_key(cfg.seed, f"{tag}-{name}")
    eps = list(play(cfg, graphdef, params, tok, seeds, cfg.eval.samples, key).episodes)
    out.update({f"{name}/{k}": v for k, v in episodes.metrics(eps).items()})
  return out, eps


def trace(episode: episodes.Episode) -> dict:
  """A whole trajectory as the report's trace viewer shows it: observation, turn, ..."""
  events = [{"observation": episode.observations[0]}]
  for k, text in enumerate(episode.turn_texts):
    info = episode.infos[k]
    events.append({"turn": text, "valid": info.valid, "fault": info.fault})
    if k + 1 < len(episode.observations):
      events.append({"observation": episode.observations[k + 1]})
  return {"seed": episode.seed, "reward": episode.reward, "success": episode.success,
          "truncated": episode.truncated, "reset_fault": episode.reset_fault, "events": events}
