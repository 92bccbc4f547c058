"""The real-model recipes end to end: a tiny random Qwen2 Hugging Face directory (written by
rljax, with SmolLM2's tokenizer) runs configs/gsm8k_qwen2p5_0p5b.py:runlocal; the real
SmolLM2-135M-Instruct runs configs/gsm8k_smollm2.py:runlocal (slow)."""

import importlib
import json
import os
import subprocess
import sys

import pytest

from rljax import experiment
from rljax.config import from_config_dict
from rljax.metrics import read_rows
from rljax.model import gguf_io, hf
from rljax.model.config import ModelConfig
from rljax.model.transformer import init_model
from rljax.tokenizers.hf import HFTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(name, arg):
  return importlib.import_module(f"configs.{name}").get_config(arg)


def _tiny_qwen_dir(path):
  """A random Qwen2-shaped model with SmolLM2's tokenizer (49152 tokens, ChatML)."""
  smol = gguf_io.smollm2_path()
  tok = HFTokenizer.from_gguf(smol)
  cfg = ModelConfig(vocab_size=tok.vocab_size, d_model=32, n_layers=2, n_heads=4,
                    n_kv_heads=2, head_dim=8, mlp_dim=64, qkv_bias=True, tie_embeddings=True)
  hf.save(init_model(cfg, 0), path, family="qwen2")
  with open(os.path.join(path, "tokenizer.json"), "w") as f:
    f.write(tok.json)
  with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
    json.dump({"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
               "chat_template": tok.chat_template}, f)


@pytest.mark.parametrize("name", ["gsm8k_qwen2p5_0p5b", "math_qwen2p5_math_1p5b",
                                  "gsm8k_smollm2"])
def test_real_configs_validate(name):
  for arg in ("checkpoint=/x", "runlocal,checkpoint=/x"):
    cfg = from_config_dict(load_config(name, arg))
    assert cfg.model.checkpoint in ("/x", "smollm2") and cfg.data.source


def test_qwen_recipe_from_a_hf_directory(tmp_path):
  ckpt = str(tmp_path / "qwen")
  _tiny_qwen_dir(ckpt)
  c = load_config("gsm8k_qwen2p5_0p5b", f"runlocal,checkpoint={ckpt}")
  c.rl.steps = 2
  c.data.eval_size = 4
  summary = experiment.run(from_config_dict(c), str(tmp_path / "run"))
  assert summary["steps"] == 2
  rows = read_rows(str(tmp_path / "run" / "metrics.jsonl"))
  assert [r["step"] for r in rows] == [1, 2]
  assert all(r["reward_failures/timeout"] == 0 for r in rows)
  assert os.listdir(tmp_path / "run" / "traces")


@pytest.mark.slow
def test_smollm2_grpo_runlocal_on_gsm8k(tmp_path):
  # Through the command line, on one CPU device as a user would run it (the test
  # session's 8 fake devices would replicate the 135M-parameter state 8 times).
  proc = subprocess.run(
      [sys.executable, "-m", "launch.train", "--config", "configs/gsm8k_smollm2.py:runlocal",
       "--workdir", str(tmp_path)], cwd=ROOT, env={**os.environ, "XLA_FLAGS": ""},
      capture_output=True, text=True, timeout=1800)
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = read_rows(str(tmp_path / "metrics.jsonl"))
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert summary["steps"] == 3 and [r["step"] for r in rows] == [1, 2, 3]
  assert summary["base_eval_entropy"] > 0.1  # a real, uncertain model, not a collapsed one
  print("step_time_s:", [round(r["step_time_s"], 1) for r in rows])
