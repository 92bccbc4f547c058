"""Credit for multi-turn trajectories: advantages per trajectory or per turn, as token rows.

Outcome-only GRPO (`method="grpo"`): the trajectory's environment reward, normalised in
its group (the G trajectories of one layout), on every model token of it. RLVMR
(`method="rlvmr"`, arXiv 2507.22844, docs/algorithms.md §16): each turn gets the
episode advantage (outcome minus the invalid-action penalty, normalised per layout)
plus w times its step advantage (the meta-reasoning reward, normalised per layout and
tag), on that turn's tokens (`turn_BxN`). Observation tokens get 0 either way; the
loss mask (`model_mask_BxN`) excludes them too.

Axis letters: B = Q*G trajectories, N trajectory tokens after the prompt.
"""

from __future__ import annotations

import numpy as np

from rljax.rewards import meta_reasoning
from rljax.rl import advantages
from rljax.rl.multi_turn import MultiTurnBatch


def outcome(batch: MultiTurnBatch, group_size: int,
            cfg: meta_reasoning.MetaRewardConfig) -> tuple[np.ndarray, dict]:
  """GRPO's group advantage of each trajectory's reward, on its model tokens [B, N]."""
  del cfg  # outcome-only: no meta-rewards
  rewards_B = np.array([e.reward for e in batch.episodes], np.float32)
  adv_B = np.asarray(advantages.grpo(rewards_B, group_size))
  return adv_B[:, None] * np.asarray(batch.model_mask_BxN), {}


def rlvmr(batch: MultiTurnBatch, group_size: int,
          cfg: meta_reasoning.MetaRewardConfig) -> tuple[np.ndarray, dict]:
  """RLVMR's turn advantages on each turn's tokens [B, N], and the mean step reward per tag."""
  rows = []  # (trajectory, turn, episode reward, step reward, valid, layout group, tag)
  for b, e in enumerate(batch.episodes):
    valid = [i.valid for i in e.infos]
    rewards, tags = meta_reasoning.step_rewards(e.turn_texts, valid, e.success, cfg)
    rows += [(b, k, e.reward, rewards[k], valid[k], b // group_size, tags[k])
             for k in range(len(e.turn_texts))]
  turn_BxN = np.asarray(batch.turn_BxN)
  adv_BxN = np.zeros(turn_BxN.shape, np.float32)
  if not rows:
    return adv_BxN, {}
  b_R, k_R, ep_R, step_R, valid_R, task_R, tag_R = zip(*rows)
  adv_R = meta_reasoning.advantages(ep_R, step_R, valid_R, task_R, tag_R, cfg)
  for b, k, a in zip(b_R, k_R, adv_R):
    adv_BxN[b][turn_BxN[b] == k] = a
  tags = sorted(set(tag_R))
  step_R = np.asarray(step_R)
  means = {f"step_reward/{t}": float(step_R[np.asarray(tag_R) == t].mean()) for t in tags}
  return adv_BxN * np.asarray(batch.model_mask_BxN), means


# rl.method -> (batch, group_size, meta config) -> (token advantages [B, N], metrics).
METHODS = {"grpo": outcome, "rlvmr": rlvmr}
