"""Layout splits and the cold start's data: the oracle's tagged trajectories as token rows.

Seen layouts are the training pool (seeds 0 .. n-1); unseen layouts come from a
disjoint seed range and are kept only when their canonical layout is not in the
pool (two seeds can grow the same tree). A demonstration is one `Explorer` episode
(RLVMR's tagged expert trajectories, with the oracle's noise), laid out exactly as
`rljax.rl.multi_turn.rollout` lays out the agent's own trajectories: the first
observation as the left-padded prompt, then turn tokens (trained) and observation
tokens (masked), cut by the same budgets.

Axis letters: D demonstrations, P prompt, N trajectory tokens after the prompt.
"""

from __future__ import annotations

import random
from typing import Sequence

import numpy as np

from rljax.envs import episodes, keys_doors, turns
from rljax.rl.multi_turn import MultiTurnConfig
from rljax.tokenizers.base import BatchTokenizer


def unseen_seeds(world: keys_doors.WorldConfig, n: int, start: int,
                 train_layouts: int) -> list[int]:
  """n layout seeds from `start` on whose layouts are none of the training pool's."""
  pool = {keys_doors.generate(s, world).canonical() for s in range(train_layouts)}
  out = []
  for s in range(start, start + 100 * n):
    if keys_doors.generate(s, world).canonical() not in pool:
      out.append(s)
      if len(out) == n:
        return out
  raise ValueError(f"only {len(out)} of {100 * n} layouts from seed {start} are outside the "
                   f"{train_layouts} training layouts of {world}: too few distinct layouts "
                   "for an unseen split (more rooms, or fewer rl.train_layouts)")


def demonstrations(world: keys_doors.WorldConfig, n: int, train_layouts: int, noise: float,
                   seed: int, max_turns: int) -> list[episodes.Episode]:
  """n oracle episodes on training layouts (layout i % train_layouts, the oracle's own rng)."""
  out = []
  for i in range(n):
    env = keys_doors.KeysDoors(world)
    agent = keys_doors.Explorer(env, random.Random(seed * 1_000_003 + i), noise)
    out.append(episodes.play(env, agent, i % train_layouts, max_turns))
  return out


def corpus(eps: Sequence[episodes.Episode]) -> list[str]:
  """Every text the agent reads or writes (the tokenizer's training texts)."""
  return [turns.observation_text(o) for e in eps for o in e.observations] + [
      t for e in eps for t in e.turn_texts]


def encode(eps: Sequence[episodes.Episode], tok: BatchTokenizer,
           cfg: MultiTurnConfig) -> dict[str, np.ndarray]:
  """Token rows of the supervised batch (`rljax.rl.sft.sft_update`): prompt [D, P] and its
  mask, tokens [D, N], mask [D, N] (1.0 on the oracle's turn tokens only),
  position_offset [D] (zeros: trajectories start at position 0, as in rollouts)."""
  prompt_DxP, prompt_mask_DxP = tok.encode_prompts(
      [turns.observation_text(e.observations[0]) for e in eps], cfg.prompt_tokens)
  d, n = len(eps), cfg.max_tokens
  tokens_DxN = np.full((d, n), tok.pad_id, np.int32)
  mask_DxN = np.zeros((d, n), np.float32)
  for i, e in enumerate(eps):
    ids, model = [], []
    for k, text in enumerate(e.turn_texts):
      turn = tok.encode_texts([text])[0]
      if len(turn) > cfg.turn_tokens:
        raise ValueError(f"oracle turn {text!r} has {len(turn)} tokens; "
                         f"multi_turn.turn_tokens is {cfg.turn_tokens}")
      ids += turn
      model += [1.0] * len(turn)
      last = k == len(e.turn_texts) - 1
      if len(ids) >= n or last:
        break
      obs = tok.encode_texts([turns.observation_text(e.observations[k + 1])])[0]
      obs = obs[:min(cfg.obs_tokens, n - len(ids))]
      ids += obs
      model += [0.0] * len(obs)
    ids, model = ids[:n], model[:n]
    tokens_DxN[i, :len(ids)] = ids
    mask_DxN[i, :len(ids)] = model
  return {"prompt": prompt_DxP, "prompt_mask": prompt_mask_DxP, "tokens": tokens_DxN,
          "mask": mask_DxN, "position_offset": np.zeros((d,), np.int32)}
