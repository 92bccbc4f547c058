"""One decoder-only transformer for the Qwen2 / Qwen2.5 / Qwen3 / Llama-3 families.

Pre-norm blocks: x + attn(norm(x)), then x + mlp(norm(x)); final RMSNorm; LM head
tied to the embedding or separate. The family differences are `ModelConfig` flags.
Hot loops use the functional form: `graphdef, params = nnx.split(model, nnx.Param)`
once, then `nnx.merge(graphdef, params)` inside jitted functions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from rljax.model.attention import Attention, KVCache
from rljax.model.config import ModelConfig
from rljax.model.layers import RMSNorm, SwiGLU, param, rope_inv_freq


class Block(nnx.Module):

  def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
    self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps, "embed", rngs)
    self.attn = Attention(cfg, rngs)
    self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps, "embed", rngs)
    self.mlp = SwiGLU(cfg, rngs)

  def __call__(self, x_BxTxD, positions_BxT, inv_freq, kv_mask_BxS, cache,
               layer, cache_start):
    h_BxTxD, cache = self.attn(self.attn_norm(x_BxTxD), positions_BxT, inv_freq,
                               kv_mask_BxS, cache, layer, cache_start)
    x_BxTxD = x_BxTxD + h_BxTxD
    return x_BxTxD + self.mlp(self.mlp_norm(x_BxTxD)), cache


class Transformer(nnx.Module):
  """Decoder-only LM. `__call__` gives logits; `hidden` + `logits` split it for chunked heads."""

  def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
    self.cfg = cfg
    # std d^-1/2: the first RMSNorm rescales inputs, and tied heads start with O(1) logits.
    self.embed = param(rngs, (cfg.vocab_size, cfg.d_model), ("vocab", "embed"),
                       cfg.d_model ** -0.5)
    self.blocks = nnx.List([Block(cfg, rngs) for _ in range(cfg.n_layers)])
    self.final_norm = RMSNorm(cfg.d_model, cfg.norm_eps, "embed", rngs)
    if not cfg.tie_embeddings:
      self.lm_head = param(rngs, (cfg.d_model, cfg.vocab_size), ("embed", "vocab"),
                           cfg.d_model ** -0.5)

  def hidden(self, tokens_BxT, *, positions_BxT=None, kv_mask_BxS=None,
             cache: KVCache | None = None, cache_start=0):
    """Final-norm hidden states [B, T, D] and the updated cache.

    Args:
      tokens_BxT: int token ids.
      positions_BxT: RoPE positions; default 0..T-1 (pass them for left padding).
      kv_mask_BxS: 1 where a key slot holds a real token (S = T without a cache,
        the cache length with one). Default: all valid.
      cache: functional KV cache (see `attention.py`), or None.
      cache_start: slot where these T tokens are written.
    """
    cfg = self.cfg
    b, t = tokens_BxT.shape
    if positions_BxT is None:
      positions_BxT = jnp.broadcast_to(cache_start + jnp.arange(t), (b, t))
    if kv_mask_BxS is None:
      s = t if cache is None else cache.k.shape[2]
      kv_mask_BxS = jnp.ones((b, s), bool)
    inv_freq = rope_inv_freq(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling)
    x_BxTxD = self.embed[...][tokens_BxT].astype(jnp.dtype(cfg.dtype))
    for i, block in enumerate(self.blocks):
      x_BxTxD, cache = block(x_BxTxD, positions_BxT, inv_freq, kv_mask_BxS,
                             cache, i, cache_start)
    return self.final_norm(x_BxTxD), cache

  def head_weight_DxV(self) -> jax.Array:
    return self.embed[...].T if self.cfg.tie_embeddings else self.lm_head[...]

  def logits(self, h_BxTxD) -> jax.Array:
    """LM head in float32 (ScaleRL: fp32 logits matter for RL stability)."""
    return h_BxTxD.astype(jnp.float32) @ self.head_weight_DxV()

  def __call__(self, tokens_BxT, **kwargs):
    """Logits [B, T, V] for positions 0..T-1 (and the cache when one is passed)."""
    h_BxTxD, cache = self.hidden(tokens_BxT, **kwargs)
    logits_BxTxV = self.logits(h_BxTxD)
    return logits_BxTxV if cache is None else (logits_BxTxV, cache)


def init_model(cfg: ModelConfig, seed: int) -> Transformer:
  return Transformer(cfg, nnx.Rngs(params=seed))
