"""The benchmark workload (`workload.json`) and its model FLOPs, shared by every side.

Loaded without importing jax or torch, so the peers' environment reads it too.
`model_flops` counts what the model needs (the MFU convention): 2 FLOPs per
multiply-add of every matmul of the forward, the causal half of the attention
scores and their weighted sum, the LM head on the positions that are scored, and a
backward of twice the forward.
"""

from __future__ import annotations

import json
import pathlib

WORKLOAD = json.loads((pathlib.Path(__file__).parent / "workload.json").read_text())

# The larger model of `mfu_large` (the "hidden 1024 x 8 layers"), float32.
LARGE_MODEL = dict(vocab_size=1024, hidden_size=1024, num_hidden_layers=8,
                   num_attention_heads=16, num_key_value_heads=8, head_dim=64,
                   intermediate_size=2816)
LARGE_BATCH = dict(sequences=8, prompt_length=32, completion_length=96)


def forward_flops(m: dict, sequences: int, length: int, scored: int) -> float:
  """FLOPs of one forward over `sequences` x `length` tokens with the head on `scored`
  positions per sequence. `m` uses the workload's (Hugging Face) field names."""
  d, h = m["hidden_size"], m["head_dim"]
  n, k, f = m["num_attention_heads"], m["num_key_value_heads"], m["intermediate_size"]
  per_token = 2 * (d * n * h + 2 * d * k * h + n * h * d + 3 * d * f)
  causal_pairs = length * (length + 1) / 2
  attention = 2 * 2 * causal_pairs * n * h  # q.k and probs.v
  layer = sequences * (length * per_token + attention)
  head = 2 * sequences * scored * d * m["vocab_size"]
  return m["num_hidden_layers"] * layer + head


def grpo_update_flops(m: dict, sequences: int, prompt: int, completion: int) -> dict:
  """FLOPs of a GRPO update: the policy's forward + backward and the reference's forward."""
  fwd = forward_flops(m, sequences, prompt + completion, completion)
  return {"policy_fwd_bwd": 3 * fwd, "reference_fwd": fwd, "total": 4 * fwd}
