"""Hugging Face checkpoints: random tiny Qwen2 / Qwen3 / Llama-3 models written by
`transformers` load into rljax with the same logits (1e-4), and an exported checkpoint
loads back into `transformers` with the same logits (round trip)."""

import json
import os
import subprocess

import jax
import numpy as np
import pytest

from rljax import sharding
from rljax.model import hf, safetensors_io

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORACLE = os.environ.get("RLJAX_ORACLE_PYTHON", os.path.join(ROOT, ".venv-oracle/bin/python"))
SCRIPT = os.path.join(ROOT, "tests", "oracle", "hf_reference.py")


def _oracle(*args):
  if not os.path.exists(ORACLE):
    pytest.fail(f"oracle interpreter {ORACLE} missing: run `make oracle` (make test does)")
  proc = subprocess.run([ORACLE, SCRIPT, *map(str, args)], capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.parametrize("family", ["qwen2", "qwen3", "llama"])
def test_logits_match_transformers_and_export_round_trips(tmp_path, family):
  src = tmp_path / "hf"
  _oracle("make", src, family, 7)
  tokens = np.load(src / "tokens.npy")
  model = hf.load(str(src))
  expected = {"qwen2": dict(qkv_bias=True, tie_embeddings=True),
              "qwen3": dict(qk_norm=True, head_dim=24),
              "llama": dict(qkv_bias=False)}[family]
  for k, v in expected.items():
    assert getattr(model.cfg, k) == v, k
  if family == "llama":
    assert model.cfg.rope_scaling is not None and model.cfg.rope_scaling.factor == 8.0
  ours = np.asarray(model(jax.numpy.asarray(tokens)), np.float64)
  np.testing.assert_allclose(ours, np.load(src / "logits.npy"), atol=1e-4, rtol=1e-4)

  out = tmp_path / "export"
  hf.save(model, str(out), family=family)
  _oracle("logits", out, src / "tokens.npy")  # transformers reads what rljax wrote
  np.testing.assert_allclose(np.load(out / "hf_logits.npy"), ours, atol=1e-4, rtol=1e-4)
  again = hf.load(str(out))
  np.testing.assert_array_equal(np.asarray(again(jax.numpy.asarray(tokens))), ours)


def test_sharded_index_and_mesh_placement(tmp_path):
  """A checkpoint split over two files with an index loads onto an 8-device mesh."""
  src = tmp_path / "hf"
  _oracle("make", src, "qwen3", 3)
  reader = safetensors_io.SafetensorsFile(str(src / "model.safetensors"))
  names = reader.names()
  halves = {"model-00001-of-00002.safetensors": names[::2],
            "model-00002-of-00002.safetensors": names[1::2]}
  index = {"metadata": {}, "weight_map": {}}
  for file, part in halves.items():
    safetensors_io.save({n: reader.get(n) for n in part}, str(src / file))
    index["weight_map"].update({n: file for n in part})
  os.remove(src / "model.safetensors")
  (src / "model.safetensors.index.json").write_text(json.dumps(index))
  mesh = sharding.make_mesh(data=2, fsdp=2, model=2)
  model = hf.load(str(src), mesh=mesh)
  q = model.blocks[0].attn.q[...]
  assert len(q.sharding.device_set) > 1  # placed sharded, not on one device
  logits = np.asarray(model(jax.numpy.asarray(np.load(src / "tokens.npy"))), np.float64)
  np.testing.assert_allclose(logits, np.load(src / "logits.npy"), atol=1e-4, rtol=1e-4)


def test_clear_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="no config.json"):
    hf.load(str(tmp_path))
  (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
  with pytest.raises(ValueError, match="valid: \\['qwen2', 'qwen3', 'llama'\\]"):
    hf.load(str(tmp_path))
  (tmp_path / "config.json").write_text(json.dumps(
      {"model_type": "llama", "vocab_size": 8, "hidden_size": 8, "num_hidden_layers": 1,
       "num_attention_heads": 2, "intermediate_size": 8}))
  (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
  with pytest.raises(FileNotFoundError, match="pickle"):
    hf.load(str(tmp_path))
  (tmp_path / "model.safetensors").write_bytes(b"\x00" * 3)
  with pytest.raises(ValueError, match="not a readable safetensors"):
    hf.load(str(tmp_path))
