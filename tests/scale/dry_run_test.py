"""`--dry_run` sizes a run from abstract shapes: right numbers, nothing allocated or written."""

import os
import subprocess
import sys

import pytest

from configs import gsm8k_qwen2p5_0p5b
from rljax import sharding, sizing
from rljax.config import from_config_dict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_GIB = 1024 ** 3


def test_plan_adds_up_by_hand():
  cfg = from_config_dict(gsm8k_qwen2p5_0p5b.get_config())
  plan = sizing.plan(cfg, sharding.make_mesh(data=1, fsdp=8, model=1))
  per = plan["per_device_bytes"]
  m = plan["model"]
  assert (m.n_layers, m.d_model, m.vocab_size) == (24, 896, 151_936)  # the preset: no files
  # Every weight but the QKV biases ([heads, head_dim]: no fsdp axis) is split 8 ways,
  # float32 masters.
  biases = m.n_layers * m.head_dim * (m.n_heads + 2 * m.n_kv_heads)
  assert per["parameters"] == 4 * ((m.num_params() - biases) / 8 + biases)
  norms = (2 * m.n_layers + 1) * m.d_model
  assert per["optimizer state"] == pytest.approx(2 * per["parameters"], rel=1e-4)
  assert per["reference"] == per["parameters"]
  # The sampler gathers over fsdp: whole blocks in bfloat16, embedding float32.
  embed = m.vocab_size * m.d_model
  assert per["sampling weights (gathered over fsdp)"] == pytest.approx(
      4 * embed + 2 * (m.num_params() - embed - norms) + 4 * norms, rel=1e-3)
  rows = cfg.rl.prompts_per_step * cfg.rl.group_size // 8
  seq = cfg.prompt_len + cfg.completion_len
  assert per["KV cache"] == 2 * m.n_layers * rows * seq * m.n_kv_heads * m.head_dim * 2
  assert per["total (peak of update and sampling)"] == (
      3 * per["parameters"] + per["optimizer state"] - per["parameters"]
      + max(per["update activations (estimate)"],
            per["sampling weights (gathered over fsdp)"] + per["KV cache"]
            + per["sampler logits"]))


def test_cli_sizes_7b_on_32_simulated_devices_and_writes_nothing(tmp_path):
  workdir = tmp_path / "never"
  env = dict(os.environ, XLA_FLAGS="", PYTHONPATH=ROOT)
  proc = subprocess.run(
      [sys.executable, "-m", "launch.train", "--config", "configs/gsm8k_qwen2p5_7b.py",
       "--workdir", str(workdir), "--dry_run", "--cpu_devices", "32",
       "--device_memory_gib", "32"], capture_output=True, text=True, cwd=ROOT, env=env,
      timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  out = proc.stdout
  assert "7.616B parameters" in out and "'fsdp': 8, 'model': 4} (32 devices)" in out
  table = {line[:40].strip(): float(line[40:]) for line in out.splitlines()
           if line[:40].strip() in ("parameters", "optimizer state", "device memory")}
  assert table["parameters"] == pytest.approx(7.616e9 * 4 / 32 / _GIB, rel=2e-3)
  assert table["optimizer state"] == pytest.approx(2 * table["parameters"], rel=1e-3)
  assert table["device memory"] == 32.0 and "fits:" in out
  assert not workdir.exists()


def test_a_mesh_that_cannot_split_the_heads_is_refused():
  cfg = from_config_dict(gsm8k_qwen2p5_0p5b.get_config())
  with pytest.raises(ValueError, match=r"n_heads = 14 is not divisible by the mesh's model "
                                       r"axis \(8\)"):
    sizing.plan(cfg, sharding.make_mesh(data=1, fsdp=1, model=8))
