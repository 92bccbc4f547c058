"""`rljax.cpu_devices` and the launch commands' --cpu_devices: a CPU host as N devices.

Each case runs in its own process: the count is read once, when JAX's backend starts
(this process's backend runs the suite's 8 simulated devices). That a data-parallel
mesh gives the single device's tokens and update is mesh_test.py's.
"""

import os
import pathlib
import subprocess
import sys

import pytest

from rljax import cpu_devices

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _python(code: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        cwd=ROOT, timeout=120, env={**os.environ, "XLA_FLAGS": ""})


def test_use_runs_jax_on_that_many_cpu_devices_and_only_before_it_starts():
  out = _python(
      "import jax\n"
      "from rljax import cpu_devices\n"
      "print(cpu_devices.use(3), [d.platform for d in jax.devices()])\n"
      "try:\n"
      "  cpu_devices.use(2)\n"
      "except RuntimeError:\n"
      "  print('refused once started')\n")
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.splitlines() == ["3 ['cpu', 'cpu', 'cpu']", "refused once started"]


def test_minus_one_is_one_device_per_core_this_process_may_use():
  out = _python(
      "import os\n"
      "os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core\n"
      "import jax\n"
      "from rljax import cpu_devices\n"
      "print(cpu_devices.use(-1), len(jax.devices()))\n")
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.split() == ["1", "1"]


def test_a_count_below_minus_one_or_zero_is_refused_before_touching_jax():
  for bad in (0, -2):
    with pytest.raises(ValueError, match="positive count or -1"):
      cpu_devices.use(bad)


def test_launch_flag_refuses_a_bad_count_in_one_line(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "launch.train", "--config", "configs/testbed.py",
       "--workdir", str(tmp_path / "run"), "--cpu_devices", "-3"],
      capture_output=True, text=True, cwd=ROOT, timeout=120)
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines() == [
      "invalid flag: cpu_devices must be a positive count or -1 (one per core), got -3"]
  assert not (tmp_path / "run").exists()
