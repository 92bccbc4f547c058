"""Runs a study: one config per method, same seed, data and budget, then a joint report.

  python -m launch.study --config configs/study_interventions.py[:runlocal] --workdir DIR
  python -m launch.study --config configs/agent_study.py[:runlocal] --workdir DIR

An agent config (`pipeline="agent"`) runs the agent study (`rljax.agents.study`: its
methods x seeds, intervals over seeds, the repetition verdict).
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from launch import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Study config file.",
                                          lock_config=False)
_WORKDIR = flags.DEFINE_string("workdir", None, "Study directory (one subdirectory per run).")
_CPU_DEVICES = cli.define_cpu_devices()
flags.mark_flags_as_required(["config", "workdir"])


def _agent_study() -> None:
  from rljax.agents import study  # pylint: disable=import-outside-toplevel
  try:
    configs = study.plan(_CONFIG.value)
  except ValueError as e:
    sys.exit(f"invalid config: {e}")
  print(f"agent study of {len(configs)} runs: "
        f"{', '.join(f'{m}/seed{s}' for m, s in configs)}")
  out = study.run(_CONFIG.value, _WORKDIR.value)
  rep = out.get("repetition")
  if rep:
    iv = rep["rlvmr_minus_grpo"]
    print(f"{rep['key']}: RLVMR - GRPO {iv['mean']:+.4f} [{iv['lo']}, {iv['hi']}] "
          f"over {iv['n']} seeds: {rep['verdict']}")
  print(f"study: {_WORKDIR.value}/study.json")


def main(argv):
  del argv
  cli.start_host(_CPU_DEVICES.value)
  logging.set_verbosity(logging.WARNING)
  if _CONFIG.value.get("pipeline") == "agent":
    _agent_study()
    return
  from rljax.report import builder
  from rljax.analysis import study
  try:
    configs = study.plan(_CONFIG.value)  # every method validated before anything runs
  except ValueError as e:
    sys.exit(f"invalid config: {e}")
  print(f"study of {len(configs)} runs: {', '.join(configs)}")
  try:
    out = study.run(_CONFIG.value, _WORKDIR.value)
  except cli.user_errors() as e:
    sys.exit(f"error: {e}")
  print("\n".join(builder.markdown_table(out["headline"])))
  print(f"report: {out['report']['html']}")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
