"""Trains with a config file: python -m launch.train --config configs/testbed.py --workdir DIR."""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from launch import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics, summary.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Call jax.distributed.initialize() first (TPU pod slices, "
    "multi-host GPU): every host runs this same command.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # orbax logs every file it writes at INFO
  cfg = cli.config_or_exit(_CONFIG.value)  # imports after flag parsing: no work at import
  if _DISTRIBUTED.value:
    import jax  # pylint: disable=import-outside-toplevel
    jax.distributed.initialize()
  from rljax import experiment
  try:
    summary = experiment.run(cfg, _WORKDIR.value)
  except cli.user_errors() as e:
    sys.exit(f"error: {e}")
  print({k: v for k, v in summary.items() if not isinstance(v, (dict, list))})
  if summary.get("stopped"):
    sys.exit(143)  # 128 + SIGTERM: schedulers read this as "preempted", not "done"


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
