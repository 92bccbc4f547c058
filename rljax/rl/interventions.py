"""Exploration interventions the trainer applies around the loss, as small pure functions.

Each is switched on in `InterventionConfig` (configs/*.py, section `intervention`);
all default to off, so the plain GRPO recipe is unchanged. Host-side state that
must survive a restart (the adaptive entropy coefficient, reference resets) lives
in `ControlState` and is stored in every checkpoint's JSON record.
"""

from __future__ import annotations

import dataclasses

import numpy as np

ENTROPY_SCHEDULES = ("constant", "linear", "adaptive")
REWARD_MODES = ("verifier", "random", "format", "wrong_label", "dro")


@dataclasses.dataclass(frozen=True)
class InterventionConfig:
  """Switches for the interventions of algorithms.md §1, §3, §7, §8, §9, §15.

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
    dynamic_sampling: DAPO group filtering: drop groups whose rewards are all equal and
      sample more prompts until the batch is full, at most max_gen_rounds rounds (then
      the batch is completed with dropped groups, which carry zero advantage).
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
    reward_mode: verifier | random (1 with prob. random_reward_p) | format (1 for any
      well-formed answer) | wrong_label (1 only for a deliberately wrong answer) |
      dro (the reasoning-reflection reward R3 from the reference answer, no verifier).
    random_reward_p: probability of the random reward.
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
  one_shot_pool: int = 0
  one_shot_history_steps: int = 20
  one_shot_index: int = -1
  dro_temperature: float = 0.1
  dro_certainty: str = "prob"
  dro_filter_threshold: float = 0.0

  def __post_init__(self):
    if self.entropy_schedule not in ENTROPY_SCHEDULES:
      raise ValueError(f"intervention.entropy_schedule {self.entropy_schedule!r} is unknown; "
                       f"valid: {list(ENTROPY_SCHEDULES)}")
    if self.reward_mode not in REWARD_MODES:
      raise ValueError(f"intervention.reward_mode {self.reward_mode!r} is unknown; "
                       f"valid: {list(REWARD_MODES)}")
    if not 0.0 < self.forking_top_frac <= 1.0:
      raise ValueError(f"intervention.forking_top_frac must be in (0, 1], "
                       f"got {self.forking_top_frac}")
    if self.dro_certainty not in ("prob", "logprob"):
      raise ValueError(f"intervention.dro_certainty must be 'prob' or 'logprob', "
                       f"got {self.dro_certainty!r}")
    if not 0.0 <= self.random_reward_p <= 1.0:
      raise ValueError(f"intervention.random_reward_p must be in [0, 1], "
                       f"got {self.random_reward_p}")


@dataclasses.dataclass
class ControlState:
  """Host-side controller state, saved in checkpoints (JSON-serialisable fields only)."""

  entropy_coef: float | None = None
  entropy_target: float | None = None
  resets: list = dataclasses.field(default_factory=list)
  best_eval: float = -1.0
  evals_since_best: int = 0
  compute_flops: float = 0.0


def linear(start: float, end: float, step: int, total: int) -> float:
  """start + (end - start) * step / total, clamped at `end`."""
  frac = min(max(step / max(total, 1), 0.0), 1.0)
  return start + (end - start) * frac


def adaptive_entropy_coef(coef: float, entropy: float, target: float, rate: float,
                          coef_max: float) -> float:
  """Adaptive entropy control (Skywork-OR1, He et al. 2025, arXiv 2505.22312).

  coef' = clip(coef + rate * sign(target - H), 0, coef_max): a fixed-step controller.
  Together with `entropy_bonus_active` (the bonus only acts while H < target) it
  cannot wind up and blow entropy past the target, which a proportional
  controller with a large cap did on the testbed (entropy 0.29 -> 0.55, pass@1 -> 2%).
  """
  return float(np.clip(coef + rate * np.sign(target - entropy), 0.0, coef_max))


def entropy_bonus_active(entropy: float, target: float) -> bool:
  """The adaptive bonus applies only to steps whose rollout entropy is below target."""
  return entropy < target


def reset_reason(cfg: InterventionConfig, ctrl: ControlState, step: int,
                 metrics: dict) -> str | None:
  """Why the reference should be reset after `step` (ProRL, §8), or None.

  "plateau": held-out pass@1 has not improved for `reset_patience` evaluations
  (updates ctrl's best / counter); "schedule": every `reset_every` steps; "kl":
  the rollouts' KL to the reference passed `reset_kl_threshold`.
  """
  reason = None
  if "eval/pass@1" in metrics and cfg.reset_patience:
    if metrics["eval/pass@1"] > ctrl.best_eval:
      ctrl.best_eval, ctrl.evals_since_best = metrics["eval/pass@1"], 0
    else:
      ctrl.evals_since_best += 1
      if ctrl.evals_since_best >= cfg.reset_patience:
        reason = "plateau"
  if cfg.reset_every and step % cfg.reset_every == 0:
    reason = "schedule"
  if cfg.reset_kl_threshold and metrics["kl"] > cfg.reset_kl_threshold:
    reason = "kl"
  return reason


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


def overlong_penalty(lengths_B, max_len: int, buffer: int, factor: float):
  """DAPO soft overlong punishment (algorithms.md §3, T12), lengths in tokens.

  0 up to max_len - buffer, then linearly down to -factor at max_len.
  """
  exceed = np.asarray(lengths_B, np.float64) - (max_len - buffer)
  return np.minimum(-exceed / buffer * factor, 0.0)


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


def controlled_rewards(mode: str, verified_B, well_formed_B, wrong_label_B, rng, p: float):
  """Rewards for the spurious-reward controls (Shao et al. 2025, arXiv 2506.10947)."""
  if mode == "verifier":
    return np.asarray(verified_B, np.float32)
  if mode == "random":
    return (rng.random(len(verified_B)) < p).astype(np.float32)
  if mode == "format":
    return np.asarray(well_formed_B, np.float32)
  return np.asarray(wrong_label_B, np.float32)


def dro_reward(logp_GxL, temperature: float, certainty: str = "prob"):
  """DRO's reasoning-reflection reward R3 for one group (arXiv 2506.13351, §10).

  logp_GxL: log pi(y*_j | q, cot_i, y*_<j) of the L reference tokens teacher-forced
  after each of the G chains of thought. s = exp(logp) (or logp); sigma_j = std over
  the group; w = softmax(sigma / tau) emphasises reasoning-reflective tokens (whose
  certainty depends on the reasoning); R3_i = sum_j w_j s_ij. Returns (R3 [G], max sigma).
  [paper-only: no public code; the weighting function is the paper's reading in §10.]
  """
  s = np.exp(logp_GxL) if certainty == "prob" else np.asarray(logp_GxL)
  sigma = s.std(axis=0)
  z = sigma / temperature
  w = np.exp(z - z.max())
  w /= w.sum()
  return s @ w, float(sigma.max())
