"""Hugging Face `transformers` (PyTorch, CPU) side of tests/hf_test.py; runs in .venv-oracle.

  python hf_reference.py make DIR FAMILY SEED   # a random tiny model saved with
                                                # save_pretrained + its logits on DIR/tokens.npy
  python hf_reference.py logits DIR TOKENS      # transformers' logits of a saved directory
"""

import sys

import numpy as np
import torch
import transformers

TOKENS = np.random.default_rng(0).integers(0, 96, size=(2, 11))


def _config(family):
  common = dict(vocab_size=96, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, intermediate_size=128, max_position_embeddings=256,
                rms_norm_eps=1e-6)
  if family == "qwen2":  # QKV bias, tied embeddings
    return transformers.Qwen2Config(**common, tie_word_embeddings=True, rope_theta=10_000.0)
  if family == "qwen3":  # QK-norm, explicit head_dim
    return transformers.Qwen3Config(**common, head_dim=24, tie_word_embeddings=False,
                                    rope_theta=1_000_000.0)
  if family == "llama":  # Llama-3 RoPE scaling; short original context so it bites
    return transformers.LlamaConfig(
        **common, tie_word_embeddings=False, rope_theta=500_000.0,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 8})
  raise ValueError(family)


def _logits(model, tokens):
  with torch.no_grad():
    return model(torch.tensor(tokens)).logits.double().numpy()


def make(directory, family, seed):
  torch.manual_seed(int(seed))
  model = transformers.AutoModelForCausalLM.from_config(_config(family)).float().eval()
  with torch.no_grad():  # every tensor random (norm scales and biases too), not just init
    for p in model.parameters():
      p.add_(0.2 * torch.randn_like(p))
  model.save_pretrained(directory, safe_serialization=True)
  np.save(f"{directory}/tokens.npy", TOKENS)
  np.save(f"{directory}/logits.npy", _logits(model, TOKENS))


def logits(directory, tokens):
  model = transformers.AutoModelForCausalLM.from_pretrained(directory).float().eval()
  np.save(f"{directory}/hf_logits.npy", _logits(model, np.load(tokens)))


if __name__ == "__main__":
  {"make": make, "logits": logits}[sys.argv[1]](*sys.argv[2:])
