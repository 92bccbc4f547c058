"""Trains with a config file: python -m launch.train --config configs/testbed.py --workdir DIR."""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from launch import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics, summary.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Join a multi-process run first (TPU pod slices, multi-host GPU): "
    "every host runs this same command. On TPU VMs the cluster is read from the "
    "environment; elsewhere pass the three flags below.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", "", "host:port of process 0 (with --distributed, off TPU).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 0, "Processes in the run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", -1, "This process's index, 0-based.")
_JOIN_TIMEOUT = flags.DEFINE_integer(
    "join_timeout_s", 300, "Seconds to wait for every process to join before failing.")
_DRY_RUN = flags.DEFINE_bool(
    "dry_run", False, "Print the per-device memory plan of the run on its mesh and exit: "
    "abstract shapes only, nothing allocated, no weights read, nothing written.")
_CPU_DEVICES = cli.define_cpu_devices()
_DEVICE_GIB = flags.DEFINE_float(
    "device_memory_gib", 0.0, "With --dry_run: the target device's memory (e.g. 16 for a "
    "TPU v5e chip, 32 for v4, 80 for an H100); default: what this machine's devices have.")
flags.mark_flags_as_required(["config", "workdir"])


def _dry_run(cfg) -> None:
  from rljax import sharding, sizing  # pylint: disable=import-outside-toplevel
  mesh, _ = sharding.train_and_rollout_meshes(cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.model,
                                              cfg.mesh.train_devices)
  plan = sizing.plan(cfg, mesh)  # the update's devices: where the memory is
  if _DEVICE_GIB.value:
    plan["device_bytes"] = int(_DEVICE_GIB.value * 1024 ** 3)
  print(sizing.format_plan(plan))


def main(argv):
  del argv
  cli.start_host(_CPU_DEVICES.value)
  logging.set_verbosity(logging.WARNING)  # orbax logs every file it writes at INFO
  cfg = cli.config_or_exit(_CONFIG.value)  # imports after flag parsing: no work at import
  agent = getattr(cfg, "pipeline", "") == "agent"
  if _DRY_RUN.value:
    if agent:
      sys.exit("error: --dry_run sizes the testbed / real-model pipeline; the agent "
               "pipeline's models are tiny")
    try:
      _dry_run(cfg)
    except ValueError as e:
      sys.exit(f"error: {e}")
    return
  if agent and _DISTRIBUTED.value:
    sys.exit("error: the agent pipeline runs in one process (its rollouts are played on "
             "the host); --distributed is for the testbed / real-model pipeline")
  # pylint: disable=import-outside-toplevel
  from rljax import distributed, experiment
  from rljax.agents import pipeline
  try:
    if _DISTRIBUTED.value:
      distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                             _JOIN_TIMEOUT.value)
    summary = (pipeline if agent else experiment).run(cfg, _WORKDIR.value)
  except (distributed.DistributedError, *cli.user_errors()) as e:
    sys.exit(f"error: {e}")
  if distributed.is_main():
    print({k: v for k, v in summary.items() if not isinstance(v, (dict, list))})
  if summary.get("stopped"):
    sys.exit(143)  # 128 + SIGTERM: schedulers read this as "preempted", not "done"


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
