"""launch.report on a real (tiny) run: every section is in the HTML with its figure or table."""

import html.parser
import os
import subprocess
import sys

from rljax import pipeline
from rljax.report import SECTIONS
from tests.trainer_test import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Sections(html.parser.HTMLParser):
  """{h2 title: [tags that follow it until the next h2]}."""

  def __init__(self):
    super().__init__()
    self.sections, self.current, self.in_h2 = {}, None, False

  def handle_starttag(self, tag, attrs):
    if tag == "h2":
      self.in_h2 = True
    elif self.current is not None:
      src = dict(attrs).get("src", "")
      self.sections[self.current].append((tag, src[:22]))

  def handle_endtag(self, tag):
    if tag == "h2":
      self.in_h2 = False

  def handle_data(self, data):
    if self.in_h2:
      self.current = data
      self.sections[data] = []


def test_report_has_every_section_with_its_figures(tmp_path):
  runs = []
  for name, loss in (("grpo", {}), ("entropy_bonus", {"entropy_coef": 0.01})):
    workdir = str(tmp_path / name)
    pipeline.run(tiny_config(4, None, loss, eval_every=1, trace_every=2, trace_rollouts=6),
                 workdir)
    runs.append(workdir)
  proc = subprocess.run([sys.executable, "-m", "launch.report", "--workdir", *runs],
                        cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  out = tmp_path / "report"
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
  assert "| grpo |" in md and "| entropy_bonus |" in md
