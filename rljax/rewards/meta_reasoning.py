"""RLVMR's verifiable meta-reasoning rewards and advantage (arXiv 2507.22844;
docs/algorithms.md §16).

Rows are agent turns (one row per turn of every trajectory in the batch), as in the
released code (`rlvmr/core_rlvmr.py`, verl-agent's multi-turn batches). A turn's tag
decides its step reward, which is paid only when its action was valid:

  <planning>   planning_reward if the episode succeeds
  <explore>    exploration_reward if no earlier valid turn of the trajectory took the
               same action
  <reflection> reflection_reward if the previous turn's action was invalid (or there is
               no previous turn) and this action differs from it
  otherwise    0 (`<monitor>` has no reward of its own; its tag type is "none")

The tag is the first of planning, explore, reflection the turn contains (the code's
elif chain). The advantage of turn i in task group q, tag type t:

  A_i = norm_q(R_episode - c_invalid * invalid_i) + w * norm_(q,t)(r_step_i)

where norm subtracts the group mean (mode "mean_norm") or also divides by the group's
std + eps, ddof 1 ("mean_std_norm"); a singleton group has mean 0 and std 1. Groups
are over turn rows, so a longer trajectory weighs more in its task's mean, as in the
released code. Defaults: rewards 1.0, c_invalid 0.1, w 1.0 (the ALFWorld script).
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Hashable, Sequence

import numpy as np

from rljax.envs import turns

MODES = ("mean_norm", "mean_std_norm")


@dataclasses.dataclass(frozen=True)
class MetaRewardConfig:
  planning_reward: float = 1.0
  exploration_reward: float = 1.0
  reflection_reward: float = 1.0
  invalid_penalty: float = 0.1
  step_advantage_w: float = 1.0
  mode: str = "mean_std_norm"

  def __post_init__(self):
    if self.mode not in MODES:
      raise ValueError(f"Unknown RLVMR mode {self.mode!r}; valid: {list(MODES)}")


def tag_type(text: str) -> str:
  """The turn's RLVMR tag type: the first of planning, explore, reflection present."""
  for tag in ("planning", "explore", "reflection"):
    if f"<{tag}>" in text:
      return tag
  return "none"


def step_rewards(turn_texts: Sequence[str], valid: Sequence[bool], success: bool,
                 cfg: MetaRewardConfig) -> tuple[list[float], list[str]]:
  """One trajectory's step rewards and tag types (an invalid turn: 0 and "none")."""
  actions = [turns.action_of(t) for t in turn_texts]
  rewards, tags = [], []
  for i, text in enumerate(turn_texts):
    if not valid[i]:
      rewards.append(0.0)
      tags.append("none")
      continue
    tag = tag_type(text)
    r = 0.0
    if tag == "planning":
      r = cfg.planning_reward if success else 0.0
    elif tag == "explore":
      repeated = any(valid[j] and actions[j] == actions[i] for j in range(i))
      r = 0.0 if repeated else cfg.exploration_reward
    elif tag == "reflection":
      prev_valid = i > 0 and valid[i - 1]
      prev_action = actions[i - 1] if i > 0 else None
      r = cfg.reflection_reward if not prev_valid and prev_action != actions[i] else 0.0
    rewards.append(r)
    tags.append(tag)
  return rewards, tags


def _group_norm(x_R: np.ndarray, keys: Sequence[Hashable], remove_std: bool,
                eps: float) -> np.ndarray:
  groups = collections.defaultdict(list)
  for i, k in enumerate(keys):
    groups[k].append(i)
  out_R = np.empty_like(x_R)
  for rows in groups.values():
    x = x_R[rows]
    mean, std = (0.0, 1.0) if len(rows) == 1 else (x.mean(), x.std(ddof=1))
    out_R[rows] = x - mean if remove_std else (x - mean) / (std + eps)
  return out_R


def advantages(episode_reward_R, step_reward_R, valid_R, task_R: Sequence[Hashable],
               tag_R: Sequence[str], cfg: MetaRewardConfig, eps: float = 1e-6) -> np.ndarray:
  """RLVMR's per-turn advantage (module docstring) over R turn rows.

  episode_reward_R: the outcome reward of the turn's trajectory; step_reward_R and
  tag_R: from `step_rewards`; valid_R: the turn's action was valid; task_R: the
  group key (the environment seed the trajectory's group shares).
  """
  remove_std = cfg.mode == "mean_norm"
  outcome_R = (np.asarray(episode_reward_R, np.float64)
               - cfg.invalid_penalty * (1.0 - np.asarray(valid_R, np.float64)))
  episode_adv_R = _group_norm(outcome_R, list(task_R), remove_std, eps)
  step_adv_R = _group_norm(np.asarray(step_reward_R, np.float64),
                           list(zip(task_R, tag_R)), remove_std, eps)
  return episode_adv_R + cfg.step_advantage_w * step_adv_R
