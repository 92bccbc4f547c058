"""Capability-boundary comparison on hand-made counts."""

import os

import pytest

from rljax.analysis.boundary import compare_boundaries, plot_curves


def test_compare_boundaries_crossover_and_sets(tmp_path):
  n = 4
  rl = [4, 4, 0, 0]      # sharp: solves two problems always, never the others
  base = [1, 1, 1, 1]    # diffuse: solves everything sometimes
  c = compare_boundaries(rl, base, n)
  assert c["rl_curve"][1] == pytest.approx(0.5) and c["base_curve"][1] == pytest.approx(0.25)
  assert c["base_curve"][4] == pytest.approx(1.0) and c["rl_curve"][4] == pytest.approx(0.5)
  assert c["crossover_k"] == 4          # pass@2: rl 0.5 = base 0.5 is a tie, not a lead change
  assert (c["only_rl"], c["only_base"], c["both"], c["neither"]) == (0, 2, 2, 0)
  assert c["rl_coverage"] == 0.5 and c["base_coverage"] == 1.0
  plot_curves({"rl": c["rl_curve"], "base": c["base_curve"]}, str(tmp_path / "p.png"))
  assert os.path.getsize(tmp_path / "p.png") > 1000
  with pytest.raises(ValueError):
    compare_boundaries([1, 2], [1], 4)


def test_no_crossover_when_tied_at_k1_and_rl_never_leads():
  # pass@1 ties (0.125 each); the base then leads at every larger k: RL never led.
  rl = [2, 0, 0, 0]
  base = [1, 1, 0, 0]
  c = compare_boundaries(rl, base, 4)
  assert c["rl_curve"][1] == pytest.approx(c["base_curve"][1], abs=1e-15)
  assert all(c["rl_curve"][k] < c["base_curve"][k] for k in (2, 4))
  assert c["crossover_k"] is None
