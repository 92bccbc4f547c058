"""Grouped-query attention with a functional KV cache.

Cache layout (documented once, used by the sampler): one pair of arrays k, v of
shape [L, B, S, K, H] for all L layers (layer l reads and writes k[l], v[l]), S the
cache length. A forward call with a cache writes its T new keys/values at slots
[start, start + T) and returns the updated arrays; nothing is mutated in place. Which slots hold real tokens is
the caller's `kv_mask_BxS`; a query at slot s attends to valid slots <= s.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
from flax import nnx

from rljax.model.config import ModelConfig
from rljax.model.layers import RMSNorm, apply_rope, param

_NEG_INF = -1e30


@flax.struct.dataclass
class KVCache:
  """Keys and values of every layer: k, v are [L, B, S, K, H]."""

  k: jax.Array
  v: jax.Array

  @classmethod
  def zeros(cls, cfg: ModelConfig, batch: int, length: int, dtype=jnp.float32):
    shape = (cfg.n_layers, batch, length, cfg.n_kv_heads, cfg.head_dim)
    return cls(k=jnp.zeros(shape, dtype), v=jnp.zeros(shape, dtype))

  def repeat(self, times: int) -> "KVCache":
    """Each row repeated `times` times (prompt cache shared by its G samples)."""
    return KVCache(k=jnp.repeat(self.k, times, axis=1),
                   v=jnp.repeat(self.v, times, axis=1))


class Attention(nnx.Module):
  """Multi-head attention with K <= N key/value heads (GQA)."""

  def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
    d, n, k, h = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
    self.cfg = cfg
    self.q = param(rngs, (d, n, h), ("embed", "q_heads", "head_dim"), d ** -0.5)
    self.k = param(rngs, (d, k, h), ("embed", "kv_heads", "head_dim"), d ** -0.5)
    self.v = param(rngs, (d, k, h), ("embed", "kv_heads", "head_dim"), d ** -0.5)
    self.o = param(rngs, (n, h, d), ("q_heads", "head_dim", "embed"),
                   (n * h) ** -0.5 / (2 * cfg.n_layers) ** 0.5)
    if cfg.qkv_bias:
      self.q_bias = param(rngs, (n, h), ("q_heads", "head_dim"), init=jnp.zeros((n, h)))
      self.k_bias = param(rngs, (k, h), ("kv_heads", "head_dim"), init=jnp.zeros((k, h)))
      self.v_bias = param(rngs, (k, h), ("kv_heads", "head_dim"), init=jnp.zeros((k, h)))
    if cfg.qk_norm:
      self.q_norm = RMSNorm(h, cfg.norm_eps, "head_dim", rngs)
      self.k_norm = RMSNorm(h, cfg.norm_eps, "head_dim", rngs)

  def __call__(self, x_BxTxD, positions_BxT, inv_freq, kv_mask_BxS,
               cache: KVCache | None = None, layer: int = 0, cache_start=0):
    """Returns (output [B, T, D], the cache with this layer's T new entries).

    Without a cache the keys are the T inputs themselves (training forward).
    The new entries are written into the stacked [L, B, S, K, H] arrays with a
    single dynamic_update_slice so XLA updates the buffer in place in a loop.
    """
    cfg, dt = self.cfg, x_BxTxD.dtype
    q_BxTxNxH = jnp.einsum("btd,dnh->btnh", x_BxTxD, self.q[...].astype(dt))
    k_BxTxKxH = jnp.einsum("btd,dkh->btkh", x_BxTxD, self.k[...].astype(dt))
    v_BxTxKxH = jnp.einsum("btd,dkh->btkh", x_BxTxD, self.v[...].astype(dt))
    if cfg.qkv_bias:
      q_BxTxNxH += self.q_bias[...].astype(dt)
      k_BxTxKxH += self.k_bias[...].astype(dt)
      v_BxTxKxH += self.v_bias[...].astype(dt)
    if cfg.qk_norm:
      q_BxTxNxH = self.q_norm(q_BxTxNxH)
      k_BxTxKxH = self.k_norm(k_BxTxKxH)
    q_BxTxNxH = apply_rope(q_BxTxNxH, positions_BxT, inv_freq)
    k_BxTxKxH = apply_rope(k_BxTxKxH, positions_BxT, inv_freq)

    t = x_BxTxD.shape[1]
    if cache is None:
      keys, values = k_BxTxKxH, v_BxTxKxH
      query_slot_T = jnp.arange(t)
    else:
      start = (layer, 0, cache_start, 0, 0)
      cache = KVCache(
          k=jax.lax.dynamic_update_slice(cache.k, k_BxTxKxH[None].astype(cache.k.dtype), start),
          v=jax.lax.dynamic_update_slice(cache.v, v_BxTxKxH[None].astype(cache.v.dtype), start))
      keys, values = cache.k[layer], cache.v[layer]
      query_slot_T = cache_start + jnp.arange(t)
    s = keys.shape[1]
    causal_TxS = jnp.arange(s)[None, :] <= query_slot_T[:, None]
    mask_Bx1x1xTxS = (causal_TxS[None] & kv_mask_BxS[:, None, :].astype(bool))[:, None, None]

    b, _, n, h = q_BxTxNxH.shape
    kh = cfg.n_kv_heads
    q_BxTxKxGxH = q_BxTxNxH.reshape(b, t, kh, n // kh, h)
    scores = jnp.einsum("btkgh,bskh->bkgts", q_BxTxKxGxH, keys.astype(dt))
    scores = scores.astype(jnp.float32) * (h ** -0.5)
    scores = jnp.where(mask_Bx1x1xTxS, scores, _NEG_INF)
    probs = jax.nn.softmax(scores, axis=-1).astype(dt)
    out_BxTxKxGxH = jnp.einsum("bkgts,bskh->btkgh", probs, values.astype(dt))
    out_BxTxNxH = out_BxTxKxGxH.reshape(b, t, n, h)
    return jnp.einsum("btnh,nhd->btd", out_BxTxNxH, self.o[...].astype(dt)), cache
