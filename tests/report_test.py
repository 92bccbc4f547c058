"""launch.study on tiny runs (reused when finished), then launch.report: every section of
the HTML is there with its figure or table."""

import html.parser
import json
import os
import subprocess
import sys

from configs import study_interventions
from rljax.analysis import evaluate_workdir, study
from rljax.report.builder import SECTIONS
from tests.trainer_test import shrink

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def study_config(methods):
  c = shrink(study_interventions.get_config("runlocal"))
  c.rl.update(steps=4, eval_every=1, trace_every=2, trace_rollouts=6, minibatches=2)
  c.study.methods = methods
  return c


class _Sections(html.parser.HTMLParser):
  """{h2 title: [(tag, start of src) that follow it until the next h2]}."""

  def __init__(self):
    super().__init__()
    self.sections, self.current, self.in_h2 = {}, None, False

  def handle_starttag(self, tag, attrs):
    if tag == "h2":
      self.in_h2 = True
    elif self.current is not None:
      self.sections[self.current].append((tag, dict(attrs).get("src", "")[:22]))

  def handle_endtag(self, tag):
    if tag == "h2":
      self.in_h2 = False

  def handle_data(self, data):
    if self.in_h2:
      self.current = data
      self.sections[data] = []


def _check_report(out):
  parser = _Sections()
  parser.feed((out / "report.html").read_text())
  assert list(parser.sections) == list(SECTIONS)
  figures = {"Training curves", "Entropy law", "Compute scaling", "pass@k", "Diagnostics"}
  tables = {"Comparison", "Entropy law", "Compute scaling", "Capability boundary", "Traces"}
  for name, tags in parser.sections.items():
    if name in figures:  # embedded, so the file is self-contained
      assert ("img", "data:image/png;base64,") in tags, name
    if name in tables:
      assert sum(t == "tr" for t, _ in tags) >= 2, name  # a header and at least one row
  md = (out / "report.md").read_text()
  for png in ("curves.png", "entropy_law.png", "scaling.png", "passk.png", "diagnostics.png"):
    assert f"]({png})" in md and (out / png).stat().st_size > 1000
  return md


def test_study_then_report(tmp_path):
  cfg = study_config("grpo,clip_cov")
  out = study.run(cfg, str(tmp_path))
  assert [r["run"] for r in out["headline"]] == ["grpo", "clip_cov"]
  for row in out["headline"]:
    for key in ("final_pass@1", "final_pass@4", "final_entropy", "law_a", "law_b",
                "law_ceiling", "sigmoid_A", "sigmoid_B"):
      assert row[key] is not None, key
  md = _check_report(tmp_path / "report")
  assert "| grpo |" in md and "| clip_cov |" in md
  # Both runs share the first run's base model.
  base = [json.load(open(tmp_path / m / "base_eval.json")) for m in ("grpo", "clip_cov")]
  assert base[0] == base[1]
  # A second invocation reuses the finished runs (their summaries are untouched).
  stamp = os.path.getmtime(tmp_path / "clip_cov" / "summary.json")
  study.run(cfg, str(tmp_path))
  assert os.path.getmtime(tmp_path / "clip_cov" / "summary.json") == stamp
  # Elicitation probes, then launch.report on the same runs from the command line.
  evaluate_workdir.evaluate(study.plan(cfg)["grpo"], str(tmp_path / "grpo"), "latest", n=4,
                        compare_to="base", probe_n=2)
  proc = subprocess.run([sys.executable, "-m", "launch.report", "--workdir",
                         str(tmp_path / "grpo"), str(tmp_path / "clip_cov"), "--out",
                         str(tmp_path / "cli_report")],
                        cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  md = _check_report(tmp_path / "cli_report")
  assert "outside base top-1" in md and "gain recovered" in md
  # launch.eval's boundary instruments: intervals, CoT-pass@k, Cover, crossover, cells.
  assert "CoT-pass@4" in md and "crossover k*" in md and "| only_step" in md
  assert "Held-out evaluations during training" in md


def test_study_rejects_unknown_method():
  import pytest  # pylint: disable=import-outside-toplevel
  with pytest.raises(ValueError, match="valid: .*clip_cov"):
    study.plan(study_config("grpo,magic"))
