"""The built-in procedural reasoning testbed: exactly verifiable, step-by-step tasks.

Families of chained operations on `digits`-digit values (one-digit operands), in
tiers given by the number of operations; each family and its traces are in
`rljax.tasks.testbed_families`. Every step is `a o b = c`; the answer follows `#`.

The pretraining corpus is made *noisy* on purpose: each step's result is wrong
with probability `step_noise` (off by 1..max_offset) and later steps stay
consistent with the wrong value. A model trained on it has the skill but samples
imperfect, diverse solutions. Dials (`TestbedConfig`) make each regime of the RL
debate exist somewhere in a task mix (`regime`):

* latent: arith / solve at pretrained depths; RL can sharpen.
* headroom: tiers beyond `pretrain_tiers`; compositions no pretraining trace shows.
* strategy: two procedures of different reach (S fails on a known subset, N always
  works; `strategy_rare`, `strategy_hard`): where a boundary can narrow.
* shortcut: cancel problems, whose pretraining traces sometimes skip a cancelling
  pair (`shortcut_rate`): right answers through steps that are not the problem's.
* absent: `unseen_families` (e.g. mul) never appear in pretraining: the control.

With the defaults (arith and solve, two digits, every tier pretrained) it is the
original testbed, draw for draw: answers mod 100, so guessing succeeds 1% of the
time and pass@1024 of a guesser is 1 - 0.99^1024; `digits = 4` makes it 9.7%.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rljax.tasks import testbed_families

FAMILIES = ("arith", "solve", "cancel", "mul", "strategy")
# What each problem tests (`regime`): docs/algorithms.md and the README's regimes table.
REGIMES = ("latent", "headroom", "strategy", "shortcut", "absent")
Problem = testbed_families.Problem
make_trace = testbed_families.trace
steps_verify = testbed_families.steps_verify


@dataclasses.dataclass(frozen=True)
class TestbedConfig:
  """Which problems exist and how the pretraining corpus shows them.

  Attributes:
    families: subset of `FAMILIES` (rljax/tasks/testbed_families.py).
    tiers: number of operations per tier, e.g. (2, 4, 6).
    step_noise: probability that a pretraining trace's step result is wrong.
    max_offset: a wrong result is off by 1..max_offset (either sign).
    eval_per_cell: held-out problems per (family, tier).
    eval_seed: seed of the held-out split (never used for training data).
    digits: digits of a value (arithmetic mod 10^digits; a guess is right with
      probability 10^-digits).
    pretrain_tiers: the tiers pretraining shows (empty: all); the others are
      headroom, compositions deeper than any pretraining trace.
    unseen_families: families pretraining never shows (the absent-skill control).
    strategy_rare: the share of the N (net) procedure in pretraining's strategy traces.
    strategy_hard: the share of strategy problems the S (window) procedure fails.
    shortcut_rate: the share of pretraining's cancel traces that skip the pair.
  """

  families: tuple[str, ...] = ("arith", "solve")
  tiers: tuple[int, ...] = (2, 4, 6)
  step_noise: float = 0.5
  max_offset: int = 9
  eval_per_cell: int = 50
  eval_seed: int = 1234
  digits: int = 2
  pretrain_tiers: tuple[int, ...] = ()
  unseen_families: tuple[str, ...] = ()
  strategy_rare: float = 0.2
  strategy_hard: float = 0.3
  shortcut_rate: float = 0.3

  def __post_init__(self):
    bad = sorted(set(self.families) - set(FAMILIES))
    if bad or not self.families:
      raise ValueError(f"task.families has unknown {bad}; valid: {list(FAMILIES)}")
    if not self.tiers or min(self.tiers) < 1:
      raise ValueError(f"task.tiers must be positive step counts, got {self.tiers}")
    if not 0.0 <= self.step_noise < 1.0:
      raise ValueError(f"task.step_noise must be in [0, 1), got {self.step_noise}")
    if not 2 <= self.digits <= 6:
      raise ValueError(f"task.digits must be in 2..6, got {self.digits}")
    if set(self.pretrain_tiers) - set(self.tiers):
      raise ValueError(f"task.pretrain_tiers {self.pretrain_tiers} must be among task.tiers "
                       f"{self.tiers}")
    if set(self.unseen_families) - set(self.families) or \
        not set(self.families) - set(self.unseen_families):
      raise ValueError(f"task.unseen_families {self.unseen_families} must be some, not all, "
                       f"of task.families {self.families}")
    if "cancel" in self.families and min(self.tiers) < 2:
      raise ValueError("task.families has 'cancel', which needs task.tiers of at least 2")
    for name in ("strategy_rare", "strategy_hard", "shortcut_rate"):
      if not 0.0 <= getattr(self, name) <= 1.0:
        raise ValueError(f"task.{name} must be in [0, 1], got {getattr(self, name)}")

  @property
  def seen_tiers(self) -> tuple[int, ...]:
    return self.pretrain_tiers or self.tiers

  @property
  def seen_families(self) -> tuple[str, ...]:
    return tuple(f for f in self.families if f not in self.unseen_families)


def make_problem(rng: np.random.Generator, family: str, steps: int,
                 cfg: TestbedConfig = TestbedConfig()) -> Problem:
  return testbed_families.make(rng, family, steps, cfg.digits, cfg.strategy_hard)


def regime(problem: Problem, cfg: TestbedConfig) -> str:
  """What the problem tests (one of `REGIMES`), first match: a family pretraining never
  shows; a tier deeper than pretraining's; two strategies; a shortcut; else latent skill."""
  if problem.family in cfg.unseen_families:
    return "absent"
  if problem.steps not in cfg.seen_tiers:
    return "headroom"
  return {"strategy": "strategy", "cancel": "shortcut"}.get(problem.family, "latent")


def extract_answer(completion: str, digits: int = 2) -> int | None:
  """The integer after the last '#', or None when the completion has none."""
  return testbed_families.extract_answer(completion, digits)


def is_correct(problem: Problem, completion: str) -> bool:
  return testbed_families.extract_answer(completion, problem.digits) == problem.answer


def eval_split(cfg: TestbedConfig) -> list[Problem]:
  """The held-out problems: `eval_per_cell` per (family, tier), distinct prompts."""
  rng = np.random.default_rng(cfg.eval_seed)
  out, seen = [], set()
  for family in cfg.families:
    for steps in cfg.tiers:
      n = 0
      while n < cfg.eval_per_cell:
        p = make_problem(rng, family, steps, cfg)
        if p.prompt not in seen:
          seen.add(p.prompt)
          out.append(p)
          n += 1
  return out


def canonical(problem: Problem) -> str:
  """A problem's canonical form: its correct solution trace. Different prompts can share
  one (`37+8-5=?` and `x+5-8=37` are both solved by `37+8=45;45-5=40;#40`), so held-out
  data is excluded by this, not by prompt."""
  return make_trace(problem)


class ProblemStream:
  """Training problems, a pure function of (seed, index): resumable from any position.

  Families and tiers are drawn uniformly; problems whose canonical solution is a
  held-out problem's are rejected, so no evaluation solution appears in training or
  pretraining data.
  """

  def __init__(self, cfg: TestbedConfig, seed: int, exclude: set[str]):
    """`exclude`: canonical solutions (`canonical`) never to produce."""
    self.cfg, self.seed, self.exclude = cfg, seed, exclude

  def batch(self, index: int, size: int, tier: int | None = None,
            families: tuple[str, ...] | None = None) -> list[Problem]:
    """Problems of batch `index`; all of `tier` steps when given, of `families` only
    when given (default: all)."""
    rng = np.random.default_rng((self.seed, index))
    names = self.cfg.families if families is None else families
    out = []
    while len(out) < size:
      family = names[rng.integers(len(names))]
      steps = self.cfg.tiers[rng.integers(len(self.cfg.tiers))] if tier is None else tier
      p = make_problem(rng, family, steps, self.cfg)
      if canonical(p) not in self.exclude:
        out.append(p)
    return out

  def rng_for(self, index: int) -> np.random.Generator:
    """A generator for noise decisions of batch `index`, independent of the problems."""
    return np.random.default_rng((self.seed, index, 1))
