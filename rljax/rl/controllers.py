"""Host-side controllers between RL steps: loss coefficients and reference resets.

The coefficients of the loss's entropy, KL and SFT terms are computed on the host
each step (a schedule, or a controller that reads the rollouts' entropy) and
passed to the jitted update as traced scalars, so changing them never
recompiles. What must survive a restart (the adaptive coefficient, its target,
the resets so far, the FLOP count) lives in `ControlState`, stored in every
checkpoint's JSON record.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class ControlState:
  """Host-side controller state, saved in checkpoints (JSON-serialisable fields only)."""

  entropy_coef: float | None = None
  entropy_target: float | None = None
  resets: list = dataclasses.field(default_factory=list)
  best_eval: float = -1.0
  evals_since_best: int = 0
  compute_flops: float = 0.0
  wrong_labels: dict = dataclasses.field(default_factory=dict)  # canonical -> label


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


@dataclasses.dataclass(frozen=True)
class StepContext:
  """What an entropy schedule reads: the configured coefficient and this step's state."""

  coef: float
  icfg: object  # rljax.rl.interventions.InterventionConfig (which imports this module)
  ctrl: ControlState
  step: int
  total_steps: int
  rollout_entropy: float


def _constant(c: StepContext) -> float:
  return c.coef


def _linear(c: StepContext) -> float:
  return linear(c.coef, c.icfg.entropy_coef_end, c.step, c.total_steps)


def _adaptive(c: StepContext) -> float:
  if c.ctrl.entropy_target is None:  # calibrated on the first step's rollouts
    c.ctrl.entropy_target = (c.icfg.entropy_target if c.icfg.entropy_target is not None
                             else c.icfg.entropy_target_frac * c.rollout_entropy)
  active = entropy_bonus_active(c.rollout_entropy, c.ctrl.entropy_target)
  return c.ctrl.entropy_coef if active else 0.0


# intervention.entropy_schedule -> the step's entropy coefficient.
ENTROPY_SCHEDULES = {"constant": _constant, "linear": _linear, "adaptive": _adaptive}


def loss_coefs(loss_cfg, icfg, ctrl: ControlState, step: int,
               total_steps: int, rollout_entropy: float) -> dict:
  """{"entropy", "kl", "sft"} coefficients of step `step` as float32 scalars."""
  ent = ENTROPY_SCHEDULES[icfg.entropy_schedule](StepContext(
      loss_cfg.entropy_coef, icfg, ctrl, step, total_steps, rollout_entropy))
  kl = loss_cfg.kl_coef if icfg.kl_coef_end is None else linear(
      loss_cfg.kl_coef, icfg.kl_coef_end, step, total_steps)
  return {"entropy": np.float32(ent), "kl": np.float32(kl), "sft": np.float32(icfg.sft_coef)}


def reset_reason(cfg, ctrl: ControlState, step: int,
                 metrics: dict) -> str | None:
  """Why the reference should be reset after `step` (ProRL, docs/algorithms.md §8), or None.

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


def after_step(icfg, ctrl: ControlState, step: int,
               metrics: dict) -> str | None:
  """Updates the adaptive coefficient after step `step`; returns a reset reason or None."""
  if icfg.entropy_schedule == "adaptive":
    ctrl.entropy_coef = adaptive_entropy_coef(
        ctrl.entropy_coef, metrics["entropy"], ctrl.entropy_target,
        icfg.entropy_adapt_rate, icfg.entropy_coef_max)
  return reset_reason(icfg, ctrl, step, metrics)
