"""Command-line plumbing shared by the launch commands: user errors as one clear line.

A mistyped flag, an invalid config, a missing checkpoint or a malformed dataset
is the user's to fix: it is printed as one line (exit status 1), not as a stack
trace from inside absl or ml_collections. Anything else is a bug and keeps its
traceback.
"""

import os
import sys

from absl import flags


def resolve_config_path(argv: list[str]) -> list[str]:
  """`--config configs/X.py[:arg]` read from the installed `configs` package when the
  path does not exist where the command runs (rljax installed, run outside the clone)."""
  out = list(argv)
  for i, arg in enumerate(out):
    if arg == "--config" and i + 1 < len(out):
      i, value, prefix = i + 1, out[i + 1], ""
    elif arg.startswith("--config="):
      value, prefix = arg[len("--config="):], "--config="
    else:
      continue
    path, sep, rest = value.partition(":")
    if path.startswith("configs/") and not os.path.exists(path):
      import configs  # pylint: disable=import-outside-toplevel
      installed = os.path.join(os.path.dirname(configs.__file__), path[len("configs/"):])
      if os.path.exists(installed):
        out[i] = prefix + installed + sep + rest
  return out


def parse_flags(argv):
  """absl's flag parsing, with ml_collections' override errors (AttributeError,
  KeyError, TypeError, ValueError raised while parsing --config.x=v) made one line."""
  try:
    return flags.FLAGS(resolve_config_path(argv))
  except flags.Error as e:
    sys.exit(f"invalid flag: {e}\nPass --help for usage.")
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    while e.args and isinstance(e.args[0], BaseException):  # ml_collections wraps KeyErrors
      e = e.args[0]
    message = e.args[0] if e.args else e
    sys.exit(f"invalid flag: {message}")


def define_cpu_devices():
  """The --cpu_devices flag of the commands that run models (`start_host` reads it)."""
  return flags.DEFINE_integer(
      "cpu_devices", 0, "Run on this many CPU devices (JAX_PLATFORMS=cpu); -1: one per "
      "core, and a config's data axis (mesh.data = -1) then splits the batch over the "
      "cores (decode 17-27% faster on 2 cores); with --config.mesh.train_devices=1 the "
      "update stays on one of them, as `make demo` runs (rljax/cpu_devices.py). 0: the "
      "devices JAX finds. With --dry_run, e.g. 32 sizes a pod slice on a laptop.")


def start_host(cpu_devices: int) -> None:
  """What a command sets before JAX's backend starts: glibc keeps freed memory
  (`rljax.host_memory`) and, if `cpu_devices`, JAX runs on that many CPU devices."""
  # pylint: disable-next=import-outside-toplevel
  from rljax import cpu_devices as devices, host_memory
  host_memory.keep_freed_memory()
  if cpu_devices:
    try:
      devices.use(cpu_devices)
    except ValueError as e:
      sys.exit(f"invalid flag: {e}")


# A config's `pipeline` field picks its config builder (and the run that takes it);
# configs without one are the testbed / real-model pipeline's.
PIPELINES = {"experiment": "rljax.config", "agent": "rljax.agents.config"}


def config_or_exit(config_dict):
  """The validated config (ExperimentConfig, or AgentConfig for `pipeline="agent"`), or
  exit with the validation's message."""
  import importlib  # pylint: disable=import-outside-toplevel
  name = config_dict.get("pipeline", "experiment") if hasattr(config_dict, "get") else "experiment"
  if name not in PIPELINES:
    sys.exit(f"invalid config: pipeline {name!r} is unknown; valid: {sorted(PIPELINES)}")
  try:
    return importlib.import_module(PIPELINES[name]).from_config_dict(config_dict)
  except ValueError as e:
    sys.exit(f"invalid config: {e}")


def user_errors() -> tuple:
  """The errors a user fixes (bad files, checkpoints, diverged runs), not bugs."""
  # pylint: disable=import-outside-toplevel
  from rljax.checkpoint import CheckpointError
  from rljax.rl.trainer import NonFiniteError
  from rljax.tasks.jsonl import DatasetError
  return CheckpointError, DatasetError, NonFiniteError
