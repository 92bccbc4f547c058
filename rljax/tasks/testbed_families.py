"""The testbed's problem families: how each is drawn, solved step by step, and checked.

A value has `digits` digits (arithmetic mod 10^digits, so a guess is right with
probability 10^-digits); operands are one digit. A trace is steps `a o b = c`
joined by ";", then ";#answer". Examples with digits = 4:

* `arith`   latent skill     `3705+8-5=?`  ->  `3705+8=3713;3713-5=3708;#3708`
* `solve`   latent skill     `x+8-5=3708`  ->  `3708+5=3713;3713-8=3705;#3705`
* `cancel`  shortcuts        `3705+4+7-7=?`: one adjacent pair cancels. The full trace
  computes all four steps; the shortcut trace skips the pair (`3705+4=3709;#3709`):
  the right answer through steps that are not the problem's.
* `mul`     absent skill     `3705*3*7=?`  ->  `3705*3=1115;1115*7=7805;#7805`; kept
  out of pretraining (`TestbedConfig.unseen_families`), so the base never saw `*`.
* `strategy` procedures with different reach, chosen by the trace's first token:
  - `S` (window; frequent in pretraining) works on the low digits-1 digits and keeps
    the top digit: `2995+8-5+9=?` -> `S;995+8=003;003-5=998;998+9=007;#2007`. Short,
    but wrong whenever a step carries out of the window (the problem is "hard").
  - `N` (net; rare) sums the operands first, then applies the net change once:
    `N;+8-5+9=+12;2995+12=3007;#3007`. Always right.
  A share `strategy_hard` of the problems is hard (S's answer is wrong). Every start
  lies near a window edge, so telling hard from easy needs the net change, not a
  glance at the start. The prompt carries its own mark (`@2995+8-5+9=?`), so
  pretraining pairs that form with S and N only. arith's full-width trace (no plan
  token) still solves it, a third procedure that is always right and that steps_verify
  accepts; the mark leaves RL to reach it by transfer from arith, if at all, rather
  than handing the strategy prompt arith's form (without the mark, RL took it at once
  and the boundary could not narrow).
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

STRATEGIES = ("S", "N")
STRATEGY_MARK = "@"  # opens a strategy prompt: its own form, not arith's
_STEP = re.compile(r"^(\d+)([+\-*])(\d+)=(\d+)$")
_NET = re.compile(r"^((?:[+-]\d)+)=([+-])(\d+)$")


@dataclasses.dataclass(frozen=True)
class Problem:
  """One task instance: prompt, exact answer, family, tier (operations) and digits."""

  family: str
  steps: int
  prompt: str
  answer: int
  numbers: tuple
  ops: tuple
  digits: int = 2


def apply(a: int, op: str, b: int, modulus: int) -> int:
  if op == "*":
    return (a * b) % modulus
  return (a + b) % modulus if op == "+" else (a - b) % modulus


def _inverse(op: str) -> str:
  return "-" if op == "+" else "+"


def _fmt(v: int, width: int) -> str:
  return f"{v:0{width}d}"


def _chain(problem: Problem) -> int:
  value = problem.numbers[0]
  for op, b in zip(problem.ops, problem.numbers[1:]):
    value = apply(value, op, b, 10 ** problem.digits)
  return value


def _tail(ops, operands) -> str:
  return "".join(f"{op}{b}" for op, b in zip(ops, operands))


def window_path(problem: Problem) -> list[int]:
  """The S procedure's exact low-window values (before any wrap), start included."""
  w = 10 ** (problem.digits - 1)
  path = [problem.numbers[0] % w]
  for op, b in zip(problem.ops, problem.numbers[1:]):
    path.append(path[-1] + b if op == "+" else path[-1] - b)
  return path


def strategy_is_hard(problem: Problem) -> bool:
  """Whether the S procedure's answer is wrong: the net change carries the value out of
  the low window [0, 10^(digits-1)). (A path that leaves the window and comes back
  gives the right answer through steps that do not verify: a shortcut.)"""
  return not 0 <= window_path(problem)[-1] < 10 ** (problem.digits - 1)


def window_fits(problem: Problem) -> bool:
  """Whether every S step stays inside the window (S's steps verify)."""
  return all(0 <= v < 10 ** (problem.digits - 1) for v in window_path(problem))


def make(rng: np.random.Generator, family: str, steps: int, digits: int = 2,
         strategy_hard: float = 0.3) -> Problem:
  """A random problem of `family` with `steps` operations."""
  modulus = 10 ** digits
  if family == "mul":
    nums = (int(rng.integers(0, modulus)),) + tuple(int(x) for x in rng.integers(2, 10, steps))
    p = Problem(family, steps, "", 0, nums, ("*",) * steps, digits)
  elif family == "cancel":
    if steps < 2:
      raise ValueError("task family 'cancel' needs at least 2 steps")
    nums = [int(rng.integers(0, modulus))] + [int(x) for x in rng.integers(1, 10, steps - 2)]
    ops = ["+" if x else "-" for x in rng.integers(0, 2, steps - 2)]
    at, b, op = int(rng.integers(0, steps - 1)), int(rng.integers(1, 10)), "+-"[rng.integers(2)]
    nums[1 + at:1 + at] = [b, b]
    ops[at:at] = [op, _inverse(op)]
    p = Problem(family, steps, "", 0, tuple(nums), tuple(ops), digits)
  elif family == "strategy":
    # The start is drawn first, near a window edge (its low digits within 3 x steps of
    # 0 or of the window's top), independently of hard or easy; then operations until
    # the problem is the wanted kind. So the start alone says nothing about hardness:
    # only the net change against the start does.
    hard = rng.random() < strategy_hard
    w = 10 ** (digits - 1)
    start = int(rng.integers(0, modulus // w)) * w + int(rng.integers(-3 * steps, 3 * steps)) % w
    while True:
      nums = (start,) + tuple(int(x) for x in rng.integers(1, 10, steps))
      ops = tuple("+" if x else "-" for x in rng.integers(0, 2, steps))
      p = Problem(family, steps, "", 0, nums, ops, digits)
      if strategy_is_hard(p) == hard:
        break
  else:  # arith / solve: the draws of the original two-family testbed, unchanged
    nums = (int(rng.integers(0, modulus)),) + tuple(int(x) for x in rng.integers(1, 10, size=steps))
    ops = tuple("+" if x else "-" for x in rng.integers(0, 2, size=steps))
    p = Problem(family, steps, "", 0, nums, ops, digits)
  value = _chain(p)
  tail = _tail(p.ops, p.numbers[1:])
  if family == "solve":  # x o1 b1 o2 b2 ... = value, unknown x = nums[0]
    return dataclasses.replace(p, prompt=f"x{tail}={_fmt(value, digits)}", answer=p.numbers[0])
  mark = STRATEGY_MARK if family == "strategy" else ""
  return dataclasses.replace(p, prompt=f"{mark}{_fmt(p.numbers[0], digits)}{tail}=?",
                             answer=value)


def solution_steps(problem: Problem) -> list[tuple[str, int]]:
  """(op, operand) of each step of the full correct trace, in order."""
  if problem.family == "solve":  # undo the operations from the right
    return [(_inverse(op), b) for op, b in zip(reversed(problem.ops),
                                               reversed(problem.numbers[1:]))]
  return list(zip(problem.ops, problem.numbers[1:]))


def _start(problem: Problem) -> int:
  """The value the full trace starts from: the right-hand side for solve."""
  return int(problem.prompt.split("=")[1]) if problem.family == "solve" else problem.numbers[0]


def _noisy(result: int, rng, step_noise: float, max_offset: int, modulus: int) -> int:
  if rng is not None and rng.random() < step_noise:
    offset = int(rng.integers(1, max_offset + 1)) * (1 if rng.random() < 0.5 else -1)
    result = (result + offset) % modulus
  return result


def _steps_trace(problem, steps, start, rng, step_noise, max_offset) -> str:
  d, value, parts = problem.digits, start, []
  for op, b in steps:
    result = _noisy(apply(value, op, b, 10 ** d), rng, step_noise, max_offset, 10 ** d)
    parts.append(f"{_fmt(value, d)}{op}{b}={_fmt(result, d)}")
    value = result
  return ";".join(parts) + f";#{_fmt(value, d)}"


def trace(problem: Problem, rng: np.random.Generator | None = None, step_noise: float = 0.0,
          max_offset: int = 10, strategy: str = "N", shortcut: bool = False) -> str:
  """A step-by-step solution; with `rng`, each result is wrong with prob. `step_noise`.

  `strategy` picks the strategy family's procedure; `shortcut` skips a cancel
  problem's cancelling pair.
  """
  if problem.family == "strategy":
    return _strategy_trace(problem, strategy, rng, step_noise, max_offset)
  steps = solution_steps(problem)
  if shortcut and problem.family == "cancel":
    at = next(i for i in range(len(steps) - 1)
              if steps[i][1] == steps[i + 1][1] and steps[i][0] == _inverse(steps[i + 1][0]))
    steps = steps[:at] + steps[at + 2:]
    if not steps:
      return f";#{_fmt(problem.numbers[0], problem.digits)}"
  return _steps_trace(problem, steps, _start(problem), rng, step_noise, max_offset)


def _strategy_trace(problem, strategy, rng, step_noise, max_offset) -> str:
  d = problem.digits
  if strategy == "S":
    w = 10 ** (d - 1)
    top, value, parts = problem.numbers[0] - problem.numbers[0] % w, problem.numbers[0] % w, []
    for op, b in zip(problem.ops, problem.numbers[1:]):
      result = _noisy(apply(value, op, b, w), rng, step_noise, max_offset, w)
      parts.append(f"{_fmt(value, d - 1)}{op}{b}={_fmt(result, d - 1)}")
      value = result
    return "S;" + ";".join(parts) + f";#{_fmt(top + value, d)}"
  if strategy != "N":
    raise ValueError(f"strategy {strategy!r} is unknown; valid: {list(STRATEGIES)}")
  net = sum(b if op == "+" else -b for op, b in zip(problem.ops, problem.numbers[1:]))
  net = _noisy(net, rng, step_noise, max_offset, 10 ** 6)
  net = net - 10 ** 6 if net > 10 ** 5 else net  # the noise wraps a signed value
  sign, size = ("+" if net >= 0 else "-"), abs(net)
  head = f"N;{_tail(problem.ops, problem.numbers[1:])}={sign}{size}"
  return head + ";" + _steps_trace(problem, [(sign, size)], problem.numbers[0], rng,
                                   step_noise, max_offset)


def extract_answer(completion: str, digits: int = 2) -> int | None:
  """The integer after the last '#' (at most `digits` digits), or None."""
  if "#" not in completion:
    return None
  tail = completion.rsplit("#", 1)[1]
  return int(tail) if re.fullmatch(rf"\d{{1,{digits}}}", tail) else None


def _check_steps(parts, expected, start, digits, width, modulus) -> int | None:
  """The last value if each part is the expected step, chained and computed right."""
  if len(parts) != len(expected):
    return None
  value = start
  for part, (op, b) in zip(parts, expected):
    m = _STEP.match(part)
    if not m or m.group(2) != op or m.group(3) != str(b):
      return None
    if len(m.group(1)) != width or len(m.group(4)) != width or int(m.group(1)) != value:
      return None
    a, c = int(m.group(1)), int(m.group(4))
    exact = a * b if op == "*" else (a + b if op == "+" else a - b)
    if c != exact % modulus or (modulus != 10 ** digits and not 0 <= exact < modulus):
      return None  # the strategy window may not wrap: a wrap is a wrong step
    value = c
  return value


def steps_verify(problem: Problem, completion: str) -> bool:
  """True when the trace's steps are the problem's steps (or one strategy's), each right,
  and its answer is the last step's result: catches right answers through wrong steps."""
  d = problem.digits
  body = completion.rsplit(";#", 1)[0] if ";#" in completion else ""
  parts = body.split(";") if body else []
  answer = extract_answer(completion, d)
  if problem.family != "strategy" or (parts and parts[0] not in STRATEGIES):
    # arith's full-width steps solve a strategy problem too: a third procedure, right
    # on every problem, that pretraining never pairs with the strategy prompt's mark.
    last = _check_steps(parts, solution_steps(problem), _start(problem), d, d, 10 ** d)
    return last is not None and last == answer
  if not parts:
    return False
  if parts[0] == "S":
    w = 10 ** (d - 1)
    last = _check_steps(parts[1:], solution_steps(problem), problem.numbers[0] % w, d,
                        d - 1, w)
    return last is not None and problem.numbers[0] - problem.numbers[0] % w + last == answer
  m = _NET.match(parts[1]) if len(parts) == 3 else None
  net = sum(b if op == "+" else -b for op, b in zip(problem.ops, problem.numbers[1:]))
  if not m or m.group(1) != _tail(problem.ops, problem.numbers[1:]):
    return False
  if (-1 if m.group(2) == "-" else 1) * int(m.group(3)) != net or m.group(3) != str(abs(net)):
    return False
  last = _check_steps(parts[2:], [(m.group(2), abs(net))], problem.numbers[0], d, d, 10 ** d)
  return last is not None and last == answer
