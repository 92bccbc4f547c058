"""An episode's record, the text-level play loop, and the agent instruments.

`play` runs an agent given as a function of the last observation against an `Env`,
turn by turn, up to a turn budget: the oracle's demonstrations and the instruments'
tests use it; the model's token-level rollout (KV cache, masks) records the same
`Episode`. The instruments (RLVMR, arXiv 2507.22844, and what outcome-only rewards
miss) read only the record:

  success rate, repetitive-action rate (a turn whose action was already taken in the
  same state earlier in the episode, over all turns), invalid-action rate, turns to
  success (mean over successful episodes), the share of turns opening each tag, and
  environment faults.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

from rljax.envs import base, turns

NO_ACTION = "no action given."


@dataclasses.dataclass(frozen=True)
class Episode:
  """seed: the layout; turn_texts: the agent's turns; infos[i]: turn i's StepInfo;
  observations[i]: the answer to turn i (observations[0] is the reset's, so it has one
  more entry than turns); truncated: cut by the turn budget before it ended;
  reset_fault: why the reset failed (then there are no turns)."""

  seed: int
  turn_texts: tuple
  infos: tuple
  observations: tuple
  reward: float
  success: bool
  truncated: bool
  reset_fault: str = ""


def play(env: base.Env, agent: Callable[[str, base.Step | None], str], seed: int,
         max_turns: int, timeout_s: float | None = None) -> Episode:
  """One episode of `agent(observation, last_step) -> turn text` on layout `seed`."""
  first, fault = base.guarded_reset(env, seed, timeout_s)
  if fault:
    return Episode(seed, (), (), ("",), 0.0, False, truncated=False, reset_fault=fault)
  observations = [first]
  texts, infos, reward, last = [], [], 0.0, None
  for _ in range(max_turns):
    text = agent(observations[-1], last)
    action = turns.action_of(text)
    if action is None:
      last = base.Step(NO_ACTION, 0.0, False, base.StepInfo(valid=False))
    else:
      last = base.guarded_step(env, action, timeout_s=timeout_s)
    texts.append(text)
    infos.append(last.info)
    observations.append(last.observation)
    reward += last.reward
    if last.done:
      break
  done = last is not None and last.done
  return Episode(seed, tuple(texts), tuple(infos), tuple(observations), reward,
                 any(i.success for i in infos), truncated=not done)


def _repeated(episode: Episode) -> int:
  seen, count = set(), 0
  for text, info in zip(episode.turn_texts, episode.infos):
    key = (info.state, turns.action_of(text))
    if key[1] is not None and info.state is not None:
      count += key in seen
      seen.add(key)
  return count


def metrics(episodes: Sequence[Episode]) -> dict:
  """The agent instruments over `episodes` (module docstring)."""
  if not episodes:
    raise ValueError("metrics needs at least one episode")
  n_turns = sum(len(e.turn_texts) for e in episodes)
  wins = [len(e.turn_texts) for e in episodes if e.success]
  out = {
      "success_rate": sum(e.success for e in episodes) / len(episodes),
      "repetitive_action_rate": sum(_repeated(e) for e in episodes) / max(n_turns, 1),
      "invalid_action_rate": sum(not i.valid for e in episodes for i in e.infos) / max(n_turns, 1),
      "turns_to_success": sum(wins) / len(wins) if wins else math.nan,
      "turns": n_turns / len(episodes),
      "env_faults": sum(bool(i.fault) for e in episodes for i in e.infos)
                    + sum(bool(e.reset_fault) for e in episodes),
  }
  for tag in turns.TAGS:
    out[f"tag_share/{tag}"] = sum(
        tag in turns.tags_of(t) for e in episodes for t in e.turn_texts) / max(n_turns, 1)
  return out
