"""Held-out pass@k and capability boundary of a trained run.

  python -m launch.eval --config configs/testbed.py --workdir DIR [--checkpoint STEP|base|latest]
      [--n 256] [--compare_to base|none] [--probe_n 8] [--strategy_n 64]
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from launch import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "The run's directory.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", "latest", "RL step, 'latest' or 'base'.")
_N = flags.DEFINE_integer("n", 128, "Samples per held-out problem.")
_COMPARE = flags.DEFINE_string("compare_to", "base", "Second model ('base', a step, 'none').")
_PROBE_N = flags.DEFINE_integer(
    "probe_n", 8, "Samples per problem for the elicitation probes against the base "
    "(token ranks, perplexity, hybrid decoding); 0 skips them.")
_STRATEGY_N = flags.DEFINE_integer(
    "strategy_n", 0, "Samples per held-out strategy problem for the procedure mix (testbed "
    "v2: how often each model opens with S or N, and how often each is right); 0 skips it.")
_CPU_DEVICES = cli.define_cpu_devices()
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  cli.start_host(_CPU_DEVICES.value)
  logging.set_verbosity(logging.WARNING)
  cfg = cli.config_or_exit(_CONFIG.value)
  from rljax.analysis import evaluate_workdir
  compare = None if _COMPARE.value == "none" else _COMPARE.value
  try:
    report = evaluate_workdir.evaluate(cfg, _WORKDIR.value, _CHECKPOINT.value, _N.value, compare,
                                       probe_n=_PROBE_N.value, strategy_n=_STRATEGY_N.value)
  except cli.user_errors() as e:
    sys.exit(f"error: {e}")
  print(evaluate_workdir.format_report(report, _N.value))
  for name, mix in report.get("strategy_mix", {}).items():
    for kind, row in mix.items():
      print(f"strategy mix, {name}, {kind} problems: {row}")
  if "comparison" in report:
    c = report["comparison"]
    print({k: v for k, v in c.items() if not k.endswith("_curve")})
  if "probes" in report:
    print({k: v for k, v in report["probes"].items() if k != "hybrid"})
    for row in report["probes"]["hybrid"]:
      print(f"hybrid decoding: {row}")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
