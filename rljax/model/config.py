"""Frozen model configuration and named presets.

One decoder covers the Qwen2 / Qwen2.5 / Qwen3 / Llama-3 families; the flags
below select the family's differences (QKV bias, QK-norm, tied embeddings,
Llama-3 RoPE scaling). Real sizes are taken from each model's `config.json`.
"""

from __future__ import annotations

import dataclasses


# Names of `jax.checkpoint_policies` by config value (None: no rematerialisation).
REMAT_POLICIES = {
    "none": None,
    "full": "nothing_saveable",
    "dots": "dots_with_no_batch_dims_saveable",
}

# Attention kernels of the forwards over many tokens (training, scoring, a prompt's
# prefill) by config value: the `implementation` of `jax.nn.dot_product_attention`, or
# None for rljax's own (`attention._attend`: laid out for XLA:CPU, shared prompts read
# once per group). "cudnn" is cuDNN's fused flash attention (NVIDIA GPUs, bfloat16): the
# [B, N, T, S] scores and probabilities never reach memory, in the forward or the
# backward. "xla" is JAX's portable version of the same call, which the cuDNN path is
# checked against on a CPU. Decode steps always use rljax's own.
ATTENTION_KERNELS = {"rljax": None, "xla": "xla", "cudnn": "cudnn"}


def check_attention(attention: str, dtype: str, where: str = "ModelConfig") -> None:
  """Raises ValueError for an unknown kernel, or cuDNN's with a float32 model."""
  if attention not in ATTENTION_KERNELS:
    raise ValueError(f"{where}.attention {attention!r} is unknown; valid: "
                     f"{sorted(ATTENTION_KERNELS)}")
  if attention == "cudnn" and dtype != "bfloat16":
    raise ValueError(f"{where}.attention 'cudnn' needs dtype 'bfloat16' (cuDNN's flash "
                     f"attention has no float32 kernel), got {dtype!r}")


@dataclasses.dataclass(frozen=True)
class RopeScaling:
  """Llama-3.1 "llama3" RoPE frequency scaling (HF `rope_scaling`)."""

  factor: float = 8.0
  low_freq_factor: float = 1.0
  high_freq_factor: float = 4.0
  original_max_position: int = 8192


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Decoder-only transformer hyperparameters.

  Attributes:
    vocab_size: V.
    d_model: D, residual width.
    n_layers: number of decoder blocks.
    n_heads: N, query heads.
    n_kv_heads: K, key/value heads (grouped-query attention, N % K == 0).
    head_dim: H.
    mlp_dim: F, SwiGLU hidden width.
    rope_theta: RoPE base frequency.
    rope_scaling: optional Llama-3 scaling of the RoPE frequencies.
    norm_eps: RMSNorm epsilon.
    qkv_bias: Qwen2/2.5 add a bias to the Q, K and V projections.
    qk_norm: Qwen3 RMS-normalises each query and key head before RoPE.
    tie_embeddings: the output projection reuses the input embedding.
    max_seq_len: the longest sequence (prompt + completion) the model serves.
    dtype: activation dtype ("float32" or "bfloat16"); params stay float32.
    scan_layers: the decoder blocks' weights stacked on a leading layer axis and run by
      one `lax.scan`, so compile time does not grow with depth (the parameter tree then
      has `layers` instead of `blocks`; HF import/export convert).
    remat: what the backward keeps of each block (`REMAT_POLICIES`): "none" keeps every
      activation, "full" recomputes the block from its input, "dots" keeps the matmul
      outputs and recomputes the rest.
    attention: the kernel of forwards over many tokens (`ATTENTION_KERNELS`).
    forward_chains: the training and scoring forwards run their rows as this many
      independent computations (`logprobs.in_chains`): faster for small models on
      XLA:CPU, where a device runs one op at a time unless ops are independent.
  """

  vocab_size: int
  d_model: int
  n_layers: int
  n_heads: int
  n_kv_heads: int
  head_dim: int
  mlp_dim: int
  rope_theta: float = 10_000.0
  rope_scaling: RopeScaling | None = None
  norm_eps: float = 1e-6
  qkv_bias: bool = False
  qk_norm: bool = False
  tie_embeddings: bool = False
  max_seq_len: int = 2048
  dtype: str = "float32"
  scan_layers: bool = False
  remat: str = "none"
  attention: str = "rljax"
  forward_chains: int = 1

  def __post_init__(self):
    if self.forward_chains < 1:
      raise ValueError(f"ModelConfig.forward_chains must be >= 1, got {self.forward_chains}")
    if self.n_heads % self.n_kv_heads:
      raise ValueError(
          f"ModelConfig.n_heads ({self.n_heads}) must be a multiple of "
          f"n_kv_heads ({self.n_kv_heads})")
    if self.remat not in REMAT_POLICIES:
      raise ValueError(f"ModelConfig.remat {self.remat!r} is unknown; valid: "
                       f"{sorted(REMAT_POLICIES)}")
    if self.dtype not in ("float32", "bfloat16"):
      raise ValueError(
          f"ModelConfig.dtype must be 'float32' or 'bfloat16', got {self.dtype!r}")
    check_attention(self.attention, self.dtype)

  def num_params(self) -> int:
    """Parameter count (embeddings included once when tied)."""
    d, h = self.d_model, self.head_dim
    attn = d * h * (2 * self.n_heads + 2 * self.n_kv_heads)
    if self.qkv_bias:
      attn += h * (self.n_heads + 2 * self.n_kv_heads)
    if self.qk_norm:
      attn += 2 * h
    block = attn + 3 * d * self.mlp_dim + 2 * d
    emb = self.vocab_size * d * (1 if self.tie_embeddings else 2)
    return self.n_layers * block + emb + d


def _qwen2(vocab, d, layers, heads, kv, mlp, tie, theta=1_000_000.0):
  return ModelConfig(vocab_size=vocab, d_model=d, n_layers=layers,
                     n_heads=heads, n_kv_heads=kv, head_dim=d // heads,
                     mlp_dim=mlp, rope_theta=theta, norm_eps=1e-6,
                     qkv_bias=True, tie_embeddings=tie, max_seq_len=32_768)


def _qwen3(d, layers, heads, kv, mlp, tie):
  return ModelConfig(vocab_size=151_936, d_model=d, n_layers=layers,
                     n_heads=heads, n_kv_heads=kv, head_dim=128, mlp_dim=mlp,
                     rope_theta=1_000_000.0, norm_eps=1e-6, qk_norm=True,
                     tie_embeddings=tie, max_seq_len=40_960)


def _llama3(d, layers, heads, kv, mlp, tie, factor):
  return ModelConfig(vocab_size=128_256, d_model=d, n_layers=layers,
                     n_heads=heads, n_kv_heads=kv, head_dim=d // heads,
                     mlp_dim=mlp, rope_theta=500_000.0,
                     rope_scaling=RopeScaling(factor=factor), norm_eps=1e-5,
                     tie_embeddings=tie, max_seq_len=131_072)


PRESETS: dict[str, ModelConfig] = {
    # A few-thousand-parameter model that every unit test builds.
    "tiny": ModelConfig(vocab_size=64, d_model=32, n_layers=2, n_heads=4,
                        n_kv_heads=2, head_dim=8, mlp_dim=64,
                        qkv_bias=True, qk_norm=True, tie_embeddings=False,
                        max_seq_len=128),
    # The built-in testbed's policy (vocab is replaced by the tokenizer's), and the two
    # other sizes of the testbed's scaling ladder (~0.03M, 0.15M, 0.8M parameters).
    "testbed-s": ModelConfig(vocab_size=48, d_model=32, n_layers=2, n_heads=2,
                             n_kv_heads=1, head_dim=16, mlp_dim=96,
                             rope_theta=10_000.0, tie_embeddings=True,
                             max_seq_len=128),
    "testbed": ModelConfig(vocab_size=48, d_model=64, n_layers=3, n_heads=4,
                           n_kv_heads=2, head_dim=16, mlp_dim=192,
                           rope_theta=10_000.0, tie_embeddings=True,
                           max_seq_len=128),
    "testbed-l": ModelConfig(vocab_size=48, d_model=128, n_layers=4, n_heads=8,
                             n_kv_heads=4, head_dim=16, mlp_dim=384,
                             rope_theta=10_000.0, tie_embeddings=True,
                             max_seq_len=128),
    "qwen2.5-0.5b": _qwen2(151_936, 896, 24, 14, 2, 4864, tie=True),
    "qwen2.5-1.5b": _qwen2(151_936, 1536, 28, 12, 2, 8960, tie=True),
    "qwen2.5-7b": _qwen2(152_064, 3584, 28, 28, 4, 18_944, tie=False),
    "qwen3-0.6b": _qwen3(1024, 28, 16, 8, 3072, tie=True),
    "qwen3-1.7b": _qwen3(2048, 28, 16, 8, 6144, tie=True),
    "qwen3-4b": _qwen3(2560, 36, 32, 8, 9728, tie=True),
    "qwen3-8b": _qwen3(4096, 36, 32, 8, 12_288, tie=False),
    "smollm2-135m": ModelConfig(vocab_size=49_152, d_model=576, n_layers=30, n_heads=9,
                                n_kv_heads=3, head_dim=64, mlp_dim=1536, rope_theta=100_000.0,
                                norm_eps=1e-5, tie_embeddings=True, max_seq_len=8192),
    "llama-3.2-1b": _llama3(2048, 16, 32, 8, 8192, tie=True, factor=32.0),
    "llama-3.2-3b": _llama3(3072, 28, 24, 8, 8192, tie=True, factor=32.0),
    "llama-3.1-8b": _llama3(4096, 32, 32, 8, 14_336, tie=False, factor=8.0),
}


def get_preset(name: str, **overrides) -> ModelConfig:
  """Returns the named preset with `overrides` applied."""
  if name not in PRESETS:
    raise ValueError(
        f"Unknown model preset {name!r}; valid presets: {sorted(PRESETS)}")
  return dataclasses.replace(PRESETS[name], **overrides)
