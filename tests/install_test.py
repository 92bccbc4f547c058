"""A non-editable install works from outside the source tree: configs, data, launch."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
  """rljax installed (no deps, not editable) under a prefix put first on PYTHONPATH."""
  prefix = tmp_path_factory.mktemp("prefix")
  subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                  "--target", str(prefix), ROOT],
                 check=True, capture_output=True, timeout=300)
  outside = tmp_path_factory.mktemp("elsewhere")
  env = dict(os.environ, PYTHONPATH=str(prefix), XLA_FLAGS="")  # one device
  return prefix, outside, env


def _run(code, installed_):
  prefix, outside, env = installed_
  out = subprocess.run([sys.executable, "-c", code], cwd=outside, env=env, text=True,
                       capture_output=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_configs_and_shipped_data_come_from_the_install(installed):
  prefix = str(installed[0])
  got = _run("""
import json, configs.testbed, configs.gsm8k_qwen2p5_0p5b, configs.math_qwen2p5_math_1p5b
import rljax
from rljax.config import from_config_dict
from rljax.tasks import sources
g = from_config_dict(configs.gsm8k_qwen2p5_0p5b.get_config('checkpoint=/x'))
m = from_config_dict(configs.math_qwen2p5_math_1p5b.get_config('checkpoint=/x'))
gtrain, gheld = sources.SOURCES['gsm8k'].load(g.data, 0)
mtrain, mheld = sources.SOURCES['math500'].load(m.data, 0)
print(json.dumps({'configs': configs.testbed.__file__, 'rljax': rljax.__file__,
                  'data': sources.data_dir(), 'gsm8k': [len(gtrain), len(gheld)],
                  'math500': [len(mtrain), len(mheld)]}))
""", installed)
  for key in ("configs", "rljax", "data"):
    assert got[key].startswith(prefix), (key, got[key])
  assert got["gsm8k"] == [7473, 1319] and sum(got["math500"]) == 500


def test_launch_train_runs_with_the_installed_config(installed):
  prefix, outside, env = installed
  workdir = outside / "run"
  tiny = ["--config.model.preset=tiny", "--config.task.tiers=(2,)",
          "--config.task.pretrain_tiers=(2,)", "--config.task.eval_per_cell=2",
          "--config.pretrain.clean_max_steps=2",
          "--config.pretrain.noisy_steps=2", "--config.pretrain.log_every=1",
          "--config.pretrain.checkpoint_every=1", "--config.pretrain.batch_size=8",
          "--config.rl.steps=1", "--config.rl.prompts_per_step=2", "--config.rl.group_size=2",
          "--config.rl.eval_every=0", "--config.eval.n_samples=2",
          "--config.eval.batch_rollouts=8"]
  out = subprocess.run([sys.executable, "-m", "launch.train",
                        "--config=configs/testbed.py:runlocal", f"--workdir={workdir}", *tiny],
                       cwd=outside, env=env, text=True, capture_output=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  with open(workdir / "summary.json") as f:
    assert json.load(f)["steps"] == 1
  with open(workdir / "config.json") as f:
    assert json.load(f)["model"]["preset"] == "tiny"
