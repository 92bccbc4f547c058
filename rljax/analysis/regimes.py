"""Checks that the testbed's regimes are what they claim, on samples of a model.

The regimes table (`launch.eval --n 1024` on the base) shows each regime's pass@k,
CoT-pass@k, Cover@tau and guessing rate. What it cannot show is *how* the strategy
regime's problems get solved: `strategy_mix` samples the held-out strategy problems
and reports, on the hard problems (the S procedure's answer is wrong) and the easy
ones, the share of samples that open with each procedure and how often each is
right. A base "really mixes strategies" when both shares are well above zero; the
boundary can narrow when RL moves mass from N to S and hard problems lose their
only solver.
"""

from __future__ import annotations

import collections

from rljax.tasks import testbed_families


def strategy_mix(setup, params, n: int, tag: str = "regimes") -> dict:
  """{hard|easy: {problems, samples, share_X, right_X, solved}} over the held-out strategy
  problems, n samples each, for X in S, N, plain (arith's full-width trace, which also
  solves every strategy problem) and other (`right_X`: the share of X's samples that
  are right; `solved`: problems with a right sample)."""
  problems = [p for p in setup.task.eval_problems if p.family == "strategy"]
  if not problems:
    raise ValueError("task.families has no 'strategy' family: nothing to check")
  tally = {k: collections.Counter() for k in ("hard", "easy")}

  def observe(problem, texts, right):
    t = tally["hard" if testbed_families.strategy_is_hard(problem) else "easy"]
    t["problems"] += 1
    t["solved"] += bool(right.any())
    for text, ok in zip(texts, right):
      plan = (text[:1] if text[:1] in testbed_families.STRATEGIES else
              "plain" if text.startswith(str(problem.numbers[0]).zfill(problem.digits))
              else "other")
      t["samples"] += 1
      t[f"n_{plan}"] += 1
      t[f"ok_{plan}"] += bool(ok)

  setup.evaluate(params, n, tag, problems=problems, observe=observe)
  out = {}
  for kind, t in tally.items():
    samples = max(t["samples"], 1)
    out[kind] = {"problems": t["problems"], "samples": t["samples"], "solved": t["solved"],
                 **{f"share_{p}": t[f"n_{p}"] / samples for p in ("S", "N", "plain", "other")},
                 **{f"right_{p}": (t[f"ok_{p}"] / t[f"n_{p}"] if t[f"n_{p}"] else None)
                    for p in ("S", "N", "plain")}}
  return out
