"""Exploration interventions the trainer applies around the loss, as small pure functions.

Each is switched on in `InterventionConfig` (configs/*.py, section `intervention`);
all default to off, so the plain GRPO recipe is unchanged. The controllers that
run between steps (entropy schedules, reference resets) are in
`rljax.rl.controllers`; reward controls and shaping in `rljax.rewards.controls`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rljax.rewards.controls import REWARD_MODES
from rljax.rl.controllers import ENTROPY_SCHEDULES

DYNAMIC_SAMPLING_FILTERS = ("auto", "acc", "reward")
# Reward modes whose rewards ignore the verifier (the spurious-reward controls).
CONTROLS = ("random", "format", "wrong_label")



@dataclasses.dataclass(frozen=True)
class InterventionConfig:
  """Switches for the interventions of docs/algorithms.md §1, §3, §7-§11, §15.

  Attributes:
    entropy_schedule: constant | linear (loss.entropy_coef -> entropy_coef_end over the
      run) | adaptive (steer the coefficient so rollout entropy tracks a target).
    entropy_coef_end: final coefficient of the linear schedule.
    entropy_target: adaptive target in nats; None = entropy_target_frac x the first
      step's rollout entropy (self-calibrating: LLM token entropies are O(0.1-1) nats).
    entropy_target_frac: see entropy_target.
    entropy_adapt_rate: the adaptive coefficient moves by this much each step (Skywork-OR1's
      delta, 0.005), up while entropy is below target, down above it.
    entropy_coef_max: the adaptive coefficient is clipped to [0, entropy_coef_max].
    forking_top_frac: train only on this fraction of highest-entropy tokens (Wang et al.
      2025, "80/20 rule": 0.2); 1.0 = all tokens.
    kl_coef_end: final loss.kl_coef of a linear KL schedule; None keeps it constant.
    kl_in_reward: subtract kl_reward_coef * sum_t KL_t(old || ref) from each reward
      (PPO-RLHF style) instead of, or besides, the KL loss term.
    kl_reward_coef, kl_reward_estimator: its weight and estimator.
    reset_every: ProRL reference reset every N steps (0 = off).
    reset_kl_threshold: reset when the rollout KL to the reference exceeds this (0 = off).
    reset_patience: reset when held-out pass@1 has not improved for this many
      evaluations (0 = off).
    reset_optimizer: re-initialise the optimizer state on a reset (ProRL does).
    dynamic_sampling: DAPO group filtering: drop groups with no signal and sample more
      prompts until the batch is full, at most max_gen_rounds rounds (then the batch is
      completed with dropped groups, which carry zero advantage).
    dynamic_sampling_filter: what a group must vary in to be kept: "acc" (the verifier's
      correctness, DAPO's criterion), "reward" (the rewards used for the advantage), or
      "auto": "reward" under a reward control (random / format / wrong_label, whose
      rewards ignore the verifier: filtering on correctness would leak the ground truth
      into the batch), else "acc".
    max_gen_rounds: cap on sampling rounds per step.
    overlong_buffer: DAPO soft overlong punishment over the last N tokens (0 = off).
    overlong_factor: penalty at the length limit.
    mask_truncated: drop completions that hit the length limit from the loss.
    sft_coef: GPPO's extra NLL term on correct completions (Klear-Reasoner: 0.1).
    rlplus_demos: RL-PLUS: external demonstrations (the task's reference solutions) that
      replace the last rollouts of each group (the script uses 1 of 8); 0 = off.
    hicra_alpha: HICRA advantage amplification on planning tokens (paper: 0.2; 0 = off).
    planning_phrases: strategic phrases whose tokens count as planning (on top of the
      testbed's step structure, where the operation and operand of each step are the plan).
    reward_mode: verifier | random (1 with prob. random_reward_p) | format (1 when the
      task's format property holds, `Task.format_ok`) | wrong_label (1 for the problem's
      wrong label: the base model's most frequent wrong answer) | dro (the
      reasoning-reflection reward R3 from the reference answer, no verifier).
    random_reward_p: probability of the random reward.
    wrong_label_samples: base-model samples per problem that choose its wrong label.
    one_shot_pool: one-shot RLVR: candidate pool size (0 = off); the example whose
      accuracy varied most over one_shot_history_steps of training on the pool is then
      the only training prompt (one_shot_index >= 0 picks a pool index instead).
    dro_temperature: tau of the token weights softmax(sigma / tau) of R3.
    dro_certainty: "prob" (the paper's self-certainty) or "logprob".
    dro_filter_threshold: DRO query filtering: a group whose reference tokens' certainty
      varies by less than this (max_j sigma_j) carries no comparative signal and gets
      zero advantage (or is replaced, with dynamic sampling); 0 = off.
  """

  entropy_schedule: str = "constant"
  entropy_coef_end: float = 0.0
  entropy_target: float | None = None
  entropy_target_frac: float = 0.5
  entropy_adapt_rate: float = 0.005
  entropy_coef_max: float = 0.1
  forking_top_frac: float = 1.0
  kl_coef_end: float | None = None
  kl_in_reward: bool = False
  kl_reward_coef: float = 0.0
  kl_reward_estimator: str = "k1"
  reset_every: int = 0
  reset_kl_threshold: float = 0.0
  reset_patience: int = 0
  reset_optimizer: bool = True
  dynamic_sampling: bool = False
  dynamic_sampling_filter: str = "auto"
  max_gen_rounds: int = 10
  overlong_buffer: int = 0
  overlong_factor: float = 1.0
  mask_truncated: bool = False
  sft_coef: float = 0.0
  rlplus_demos: int = 0
  hicra_alpha: float = 0.0
  planning_phrases: tuple[str, ...] = ()
  reward_mode: str = "verifier"
  random_reward_p: float = 0.5
  wrong_label_samples: int = 8
  one_shot_pool: int = 0
  one_shot_history_steps: int = 20
  one_shot_index: int = -1
  dro_temperature: float = 0.1
  dro_certainty: str = "prob"
  dro_filter_threshold: float = 0.0

  def __post_init__(self):
    if self.entropy_schedule not in ENTROPY_SCHEDULES:
      raise ValueError(f"intervention.entropy_schedule {self.entropy_schedule!r} is unknown; "
                       f"valid: {sorted(ENTROPY_SCHEDULES)}")
    if self.reward_mode not in REWARD_MODES:
      raise ValueError(f"intervention.reward_mode {self.reward_mode!r} is unknown; "
                       f"valid: {sorted(REWARD_MODES)}")
    if not 0.0 < self.forking_top_frac <= 1.0:
      raise ValueError(f"intervention.forking_top_frac must be in (0, 1], "
                       f"got {self.forking_top_frac}")
    if self.dynamic_sampling_filter not in DYNAMIC_SAMPLING_FILTERS:
      raise ValueError(f"intervention.dynamic_sampling_filter {self.dynamic_sampling_filter!r}"
                       f" is unknown; valid: {list(DYNAMIC_SAMPLING_FILTERS)}")
    if self.wrong_label_samples < 1:
      raise ValueError(f"intervention.wrong_label_samples must be >= 1, "
                       f"got {self.wrong_label_samples}")
    if self.dro_certainty not in ("prob", "logprob"):
      raise ValueError(f"intervention.dro_certainty must be 'prob' or 'logprob', "
                       f"got {self.dro_certainty!r}")
    if not 0.0 <= self.random_reward_p <= 1.0:
      raise ValueError(f"intervention.random_reward_p must be in [0, 1], "
                       f"got {self.random_reward_p}")


def forking_token_mask(entropy_BxT, mask_BxT, top_frac: float):
  """1 on the `top_frac` highest-entropy valid tokens of the batch ("forking tokens").

  Wang et al. 2025 (arXiv 2506.01939) train only on the top 20% entropy tokens.
  Ties at the threshold are kept.
  """
  mask = np.asarray(mask_BxT) > 0
  if top_frac >= 1.0 or not mask.any():
    return mask.astype(np.float32)
  ent = np.asarray(entropy_BxT)[mask]
  threshold = np.quantile(ent, 1.0 - top_frac, method="higher")
  return (mask & (np.asarray(entropy_BxT) >= threshold)).astype(np.float32)


def hicra_advantages(adv_BxT, planning_BxT, alpha: float):
  """HICRA (arXiv 2509.03646): A + alpha |A| on planning tokens (T11)."""
  return adv_BxT + alpha * np.abs(adv_BxT) * planning_BxT


def phrase_token_mask(pieces: list[str], phrases) -> np.ndarray:
  """1 on tokens whose characters overlap an occurrence of any phrase.

  `pieces` are the token strings of one completion in order; their concatenation is
  the decoded text, so each token's character span is known.
  """
  text = "".join(pieces)
  ends = np.cumsum([len(p) for p in pieces])
  starts = ends - np.array([len(p) for p in pieces])
  out = np.zeros(len(pieces), np.float32)
  for phrase in phrases:
    if not phrase:
      continue
    begin = text.find(phrase)
    while begin >= 0:
      stop = begin + len(phrase)
      out[(starts < stop) & (ends > begin)] = 1.0
      begin = text.find(phrase, begin + 1)
  return out


def filters_on_reward(cfg: InterventionConfig) -> bool:
  """Dynamic sampling keeps groups whose rewards vary (True) or whose correctness does."""
  if cfg.dynamic_sampling_filter == "auto":
    return cfg.reward_mode in CONTROLS
  return cfg.dynamic_sampling_filter == "reward"
