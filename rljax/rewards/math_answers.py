"""Answer extraction and math-equivalence rewards for real reasoning data.

`extract_answer` takes the last `\\boxed{...}` (balanced braces), else the text
after the last `####` (GSM8K's format); only with `last_number` (an option, off by
default: it credits any number a rambling completion ends on) the last number. `math_reward`
compares it with the reference answer through `math-verify` (symbolic and
numeric equivalence: 1/2 == 0.5 == \\frac{1}{2}). Model output is never passed
to eval/exec; math-verify parses with sympy under its own time limits, inputs are
cut to their last `MAX_CHARS` characters, and the trainer runs this function in
`rljax.rewards.sandbox.RewardGuard` with a hard per-call limit on top.
"""

from __future__ import annotations

import re

MAX_CHARS = 4000
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def last_boxed(text: str) -> str | None:
  """Content of the last \\boxed{...} or \\fbox{...}, braces balanced; None if none."""
  start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
  if start < 0:
    return None
  i = text.find("{", start)
  if i < 0:
    return None
  depth = 0
  for j in range(i, len(text)):
    depth += {"{": 1, "}": -1}.get(text[j], 0)
    if depth == 0:
      return text[i + 1:j]
  return None


def extract_answer(text: str, last_number: bool = False) -> str | None:
  """The final answer of a completion (see module doc), or None."""
  text = text[-MAX_CHARS:]
  boxed = last_boxed(text)
  if boxed is not None:
    return boxed.strip()
  if "####" in text:
    tail = text.rsplit("####", 1)[1].strip().split("\n")[0]
    return tail.replace(",", "").strip() or None
  if not last_number:
    return None
  numbers = _NUMBER.findall(text)
  return numbers[-1].replace(",", "") if numbers else None


def math_reward(problem, completion: str, last_number: bool = False) -> float:
  """1.0 when the completion's final answer equals `problem.answer` mathematically."""
  from math_verify import parse, verify  # pylint: disable=import-outside-toplevel
  pred = extract_answer(completion, last_number)
  if pred is None:
    return 0.0
  gold = parse(f"${problem.answer}$", parsing_timeout=2)
  guess = parse(f"${pred}$", parsing_timeout=2)
  if not gold or not guess:
    return float(pred.strip() == problem.answer.strip())
  return float(verify(gold, guess, timeout_seconds=2))


def math_reward_last_number(problem, completion: str) -> float:
  """`math_reward` that falls back to the completion's last number (data.last_number_fallback)."""
  return math_reward(problem, completion, last_number=True)
