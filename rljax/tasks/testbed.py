"""The built-in procedural reasoning testbed: exactly verifiable, step-by-step tasks.

Two families over numbers modulo 100 (a two-digit start, one-digit operands
1..9), each in difficulty tiers given by the number of steps k:

* `arith`: evaluate a chain left to right.
    prompt `37+8-5=?`    trace `37+8=45;45-5=40;#40`
* `solve`: find x in an equation by undoing its operations from the right.
    prompt `x+8-5=40`    trace `40+5=45;45-8=37;#37`

One-digit operands keep each step learnable by a tiny model within a CPU
budget (a step changes the units digit and at most carries into the tens),
while the answer space stays 100 values, so guessing succeeds 1% of the time.

Every step is `a o b = c`; the answer follows `#`. The pretraining corpus is
made *noisy* on purpose: each step's result is wrong with probability
`step_noise` (off by 1..9) and later steps stay consistent with the wrong
value. A model trained on it has the skill (the correct value stays the most
likely one) but samples imperfect, diverse solutions: a base model with latent
ability for RL to sharpen. Longer tiers compound the noise, leaving headroom.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

FAMILIES = ("arith", "solve")
_STEP = re.compile(r"^(\d{2})([+-])(\d)=(\d{2})$")


@dataclasses.dataclass(frozen=True)
class Problem:
  """One task instance: its prompt text, exact answer, family and tier (steps)."""

  family: str
  steps: int
  prompt: str
  answer: int
  numbers: tuple[int, ...]
  ops: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class TestbedConfig:
  """Which problems exist and how noisy the pretraining traces are.

  Attributes:
    families: subset of `FAMILIES`.
    tiers: number of steps per tier, e.g. (2, 4, 6).
    step_noise: probability that a pretraining trace's step result is wrong.
    max_offset: a wrong result is off by 1..max_offset (either sign), mod 100.
    eval_per_cell: held-out problems per (family, tier).
    eval_seed: seed of the held-out split (never used for training data).
  """

  families: tuple[str, ...] = FAMILIES
  tiers: tuple[int, ...] = (2, 4, 6)
  step_noise: float = 0.5
  max_offset: int = 9
  eval_per_cell: int = 50
  eval_seed: int = 1234

  def __post_init__(self):
    bad = sorted(set(self.families) - set(FAMILIES))
    if bad or not self.families:
      raise ValueError(f"task.families has unknown {bad}; valid: {list(FAMILIES)}")
    if not self.tiers or min(self.tiers) < 1:
      raise ValueError(f"task.tiers must be positive step counts, got {self.tiers}")
    if not 0.0 <= self.step_noise < 1.0:
      raise ValueError(f"task.step_noise must be in [0, 1), got {self.step_noise}")


def _apply(a: int, op: str, b: int) -> int:
  return (a + b) % 100 if op == "+" else (a - b) % 100


def _inverse(op: str) -> str:
  return "-" if op == "+" else "+"


def make_problem(rng: np.random.Generator, family: str, steps: int) -> Problem:
  nums = (int(rng.integers(0, 100)),) + tuple(int(x) for x in rng.integers(1, 10, size=steps))
  ops = tuple("+" if x else "-" for x in rng.integers(0, 2, size=steps))
  value = nums[0]
  for op, b in zip(ops, nums[1:]):
    value = _apply(value, op, b)
  tail = "".join(f"{op}{b}" for op, b in zip(ops, nums[1:]))
  if family == "arith":
    return Problem(family, steps, f"{nums[0]:02d}{tail}=?", value, nums, ops)
  # solve: x o1 b1 o2 b2 ... = value, unknown x = nums[0].
  return Problem(family, steps, f"x{tail}={value:02d}", nums[0], nums, ops)


def solution_steps(problem: Problem) -> list[tuple[int, str, int]]:
  """(left operand, op, right operand) of each correct step, in trace order."""
  if problem.family == "arith":
    return list(zip(problem.numbers[:1] + (None,) * (problem.steps - 1),
                    problem.ops, problem.numbers[1:]))
  # Undo the operations from the right: value o' b_k, then o' b_{k-1}, ...
  return [(None, _inverse(op), b) for op, b in
          zip(reversed(problem.ops), reversed(problem.numbers[1:]))]


def make_trace(problem: Problem, rng: np.random.Generator | None = None,
               step_noise: float = 0.0, max_offset: int = 10) -> str:
  """A step-by-step solution; with `rng`, each step is wrong with prob. `step_noise`."""
  steps = solution_steps(problem)
  value = steps[0][0] if problem.family == "arith" else int(problem.prompt.split("=")[1])
  parts = []
  for _, op, b in steps:
    result = _apply(value, op, b)
    if rng is not None and rng.random() < step_noise:
      offset = int(rng.integers(1, max_offset + 1)) * (1 if rng.random() < 0.5 else -1)
      result = (result + offset) % 100
    parts.append(f"{value:02d}{op}{b}={result:02d}")
    value = result
  return ";".join(parts) + f";#{value:02d}"


def extract_answer(completion: str) -> int | None:
  """The integer after the last '#', or None when the completion has none."""
  if "#" not in completion:
    return None
  tail = completion.rsplit("#", 1)[1]
  return int(tail) if re.fullmatch(r"\d{1,2}", tail) else None


def is_correct(problem: Problem, completion: str) -> bool:
  return extract_answer(completion) == problem.answer


def steps_verify(problem: Problem, completion: str) -> bool:
  """True when the trace's steps are the problem's steps, each computed correctly.

  Catches shortcut solutions: a right answer reached through wrong or missing steps.
  """
  body = completion.rsplit(";#", 1)[0] if ";#" in completion else ""
  parts = body.split(";") if body else []
  expected = solution_steps(problem)
  if len(parts) != len(expected):
    return False
  value = None
  for part, (_, op, b) in zip(parts, expected):
    m = _STEP.match(part)
    if not m or m.group(2) != op or int(m.group(3)) != b:
      return False
    a, c = int(m.group(1)), int(m.group(4))
    if value is not None and a != value:
      return False
    if c != _apply(a, op, b):
      return False
    value = c
  first = expected[0][0] if problem.family == "arith" else int(problem.prompt.split("=")[1])
  return int(_STEP.match(parts[0]).group(1)) == first and value == extract_answer(completion)


def eval_split(cfg: TestbedConfig) -> list[Problem]:
  """The held-out problems: `eval_per_cell` per (family, tier), distinct prompts."""
  rng = np.random.default_rng(cfg.eval_seed)
  out, seen = [], set()
  for family in cfg.families:
    for steps in cfg.tiers:
      n = 0
      while n < cfg.eval_per_cell:
        p = make_problem(rng, family, steps)
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

  def batch(self, index: int, size: int, tier: int | None = None) -> list[Problem]:
    """Problems of batch `index`; all of `tier` steps when given."""
    rng = np.random.default_rng((self.seed, index))
    out = []
    while len(out) < size:
      family = self.cfg.families[rng.integers(len(self.cfg.families))]
      steps = self.cfg.tiers[rng.integers(len(self.cfg.tiers))] if tier is None else tier
      p = make_problem(rng, family, steps)
      if canonical(p) not in self.exclude:
        out.append(p)
    return out

  def rng_for(self, index: int) -> np.random.Generator:
    """A generator for noise decisions of batch `index`, independent of the problems."""
    return np.random.default_rng((self.seed, index, 1))
