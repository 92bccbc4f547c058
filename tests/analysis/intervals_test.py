"""The boundary instruments against hand-derived values, brute force and known truth:
CoT-pass@k by enumerating k-subsets, Cover@tau by hand, the bootstrap interval's
coverage on synthetic problems whose true pass@k is known, and the crossover."""

import itertools
import math

import numpy as np
import pytest

from rljax.analysis import intervals
from rljax.analysis.boundary import solvable_sets


def _brute_cot_pass(labels, k):
  """The fraction of k-subsets of one problem's n completions holding one whose answer
  is right and whose steps verify: the definition of CoT-pass@k, by enumeration."""
  subsets = list(itertools.combinations(range(len(labels)), k))
  return sum(any(labels[i] == "right+steps" for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("labels", [
    ["right+steps", "right", "wrong", "right", "wrong", "wrong"],
    ["right", "right", "right", "wrong"],          # right answers, none by right steps: 0
    ["right+steps"] * 3 + ["wrong"] * 5])
def test_cot_pass_at_k_matches_enumeration(labels):
  n = len(labels)
  d = sum(x == "right+steps" for x in labels)
  c = sum(x.startswith("right") for x in labels)
  ks = list(range(1, n + 1))
  cot = intervals.pass_at_k_matrix(n, [d], ks)[0]
  plain = intervals.pass_at_k_matrix(n, [c], ks)[0]
  for j, k in enumerate(ks):
    assert cot[j] == pytest.approx(_brute_cot_pass(labels, k), abs=1e-12)
    assert cot[j] <= plain[j] + 1e-12
  # Hand-derived: n = 6, d = 1, k = 2: 1 - C(5, 2) / C(6, 2) = 1 - 10/15 = 1/3.
  if labels[0] == "right+steps" and n == 6:
    assert cot[1] == pytest.approx(1 - math.comb(5, 2) / math.comb(6, 2))


def test_guess_rate_by_hand():
  assert intervals.guess_rate(10 ** 4, 1024) == pytest.approx(1 - (1 - 1e-4) ** 1024)
  assert intervals.guess_rate(10 ** 4, 1024) == pytest.approx(0.0973, abs=1e-4)
  assert intervals.guess_rate(100, 1) == pytest.approx(0.01)


def test_cover_at_tau_by_hand():
  # n = 10; success rates 0, 0.1, 0.5, 0.5, 0.9, 1.0.
  cover = intervals.cover_at(10, [0, 1, 5, 5, 9, 10], taus=(0.1, 0.5, 0.75, 1.0))
  assert cover == {0.1: 5 / 6, 0.5: 4 / 6, 0.75: 2 / 6, 1.0: 1 / 6}


def test_guessing_passes_at_large_k_but_not_cover():
  """A guesser with 1% success on every problem: pass@1024 is about 1 - 0.99^1024 ~ 1,
  while Cover@0.1 is 0."""
  counts = np.random.default_rng(0).binomial(1024, 0.01, size=200)
  table = intervals.boundary_table(1024, counts, resamples=200)
  assert table["pass@k"][1024]["mean"] > 0.99 and table["cover"][0.1] == 0.0


def test_bootstrap_interval_covers_the_truth_at_its_level():
  """Problems with success rates p ~ Beta(0.5, 1.5), n = 16 samples each: the true
  population pass@k is E[1 - (1 - p)^k] (computed on a huge draw). Over 200 synthetic
  evaluations of 150 problems, the 90% interval must hold it about 90% of the time."""
  rng = np.random.default_rng(1)
  n, level, trials = 16, 0.9, 200
  truth_p = rng.beta(0.5, 1.5, size=2_000_000)
  truth = {k: float(np.mean(1 - (1 - truth_p) ** k)) for k in (1, 4, 16)}
  hits = {k: 0 for k in truth}
  narrow_hits = 0
  for t in range(trials):
    p = rng.beta(0.5, 1.5, size=150)
    counts = rng.binomial(n, p)
    curve = intervals.curve_with_intervals(n, counts, level=level, resamples=400, seed=t)
    for k in truth:
      hits[k] += curve[k]["lo"] <= truth[k] <= curve[k]["hi"]
    half = intervals.curve_with_intervals(n, counts, level=0.5, resamples=400, seed=t)[4]
    narrow_hits += half["lo"] <= truth[4] <= half["hi"]
  for k, h in hits.items():  # binomial sd at 200 trials is about 0.021
    assert 0.83 <= h / trials <= 0.96, (k, h / trials)
  assert 0.38 <= narrow_hits / trials <= 0.62  # a 50% interval covers half the time


def test_crossover_and_its_interval():
  ks = [1, 2, 4, 8]
  assert intervals.crossover([0.5, 0.6, 0.7, 0.7], [0.3, 0.5, 0.7, 0.9], ks) == 8
  assert intervals.crossover([0.3, 0.6, 0.7, 0.8], [0.3, 0.5, 0.7, 0.9], ks) == 8  # tie at 1
  assert intervals.crossover([0.5, 0.6], [0.3, 0.5], ks[:2]) is None
  # "RL" solves 40 problems reliably and nothing else; the "base" solves each of 80
  # problems a quarter of the time: RL's pass@k is 0.5 at every k, the base's about
  # 1 - 0.75^k: 0.25, 0.44 at k = 1, 2, then 0.68 at k = 4, the crossover.
  n = 64
  rl = np.array([n] * 40 + [0] * 40)
  base = np.random.default_rng(0).binomial(n, 0.25, size=80)
  c = intervals.crossover_with_interval(n, rl, base, resamples=300)
  assert c["k"] == 4 and c["frac"] > 0.95 and c["lo"] <= c["k"] <= c["hi"]
  same = intervals.crossover_with_interval(n, rl, rl, resamples=50)
  assert same == {"k": None, "frac": 0.0, "lo": None, "hi": None}


def test_solvable_sets_with_examples():
  cells = solvable_sets([3, 0, 1, 0, 2], [1, 2, 0, 0, 4], list("abcde"), examples=1)
  assert cells == {"only_rl": {"count": 1, "examples": ["c"]},
                   "only_base": {"count": 1, "examples": ["b"]},
                   "both": {"count": 2, "examples": ["a"]},
                   "neither": {"count": 1, "examples": ["d"]}}
