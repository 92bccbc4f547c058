"""Writes report.html (self-contained) and report.md with PNG plots for one or more runs.

  python -m launch.report --workdir DIR [DIR ...] [--out OUT]

OUT defaults to DIR/report for one run, and to the runs' common parent /report for
several (with a comparison table and overlaid curves).
"""

import os
import sys

from absl import app, flags

from launch import cli

_WORKDIR = flags.DEFINE_multi_string("workdir", None, "Run directories (repeat or list).")
_OUT = flags.DEFINE_string("out", None, "Output directory.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  workdirs = list(_WORKDIR.value) + argv[1:]  # --workdir A B: B arrives as an argument
  out = _OUT.value or os.path.join(
      workdirs[0] if len(workdirs) == 1 else os.path.commonpath(
          [os.path.abspath(w) for w in workdirs]), "report")
  from rljax.report import agent_report, builder
  agents = [agent_report.is_agent_run(w) for w in workdirs]
  if any(agents) and not all(agents):
    sys.exit("error: agent runs and testbed runs report apart (different instruments)")
  try:
    paths = (agent_report if all(agents) else builder).build(workdirs, out)
  except FileNotFoundError as e:
    sys.exit(f"error: {e}")
  print(f"wrote {paths['html']} and {paths['md']}")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
