"""Grouped-query attention with a functional KV cache.

Cache layout (documented once, used by the sampler): one pair of arrays k, v of
shape [L, B, S, K, H] for all L layers (layer l reads and writes k[l], v[l]), S the
cache length. A forward call with a cache writes its T new keys/values at slots
[start, start + T) and returns the updated arrays; nothing is mutated in place. Which slots hold real tokens is
the caller's `kv_mask_BxS`; a query at slot s attends to valid slots <= s.

Long training forwards (no cache, T > `Q_BLOCK`) attend block by block: queries in
blocks of `Q_BLOCK`, each block's scores [B, K, G, Q_BLOCK, T] made, softmaxed and
used inside one rematerialised step of a `lax.map`, so neither the forward nor the
backward ever holds the [B, K, G, T, T] scores (at 8 x 4,096 tokens with Qwen2.5-0.5B's
14 heads that is 7.5 GB per layer in float32); the backward recomputes each block's.
Each query row is the same softmax over the same keys as in the one-shot path.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
from flax import nnx

from rljax.model.config import ModelConfig
from rljax.model.layers import RMSNorm, apply_rope, param

_NEG_INF = -1e30
Q_BLOCK = 512


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
    b, _, n, h = q_BxTxNxH.shape
    kh = cfg.n_kv_heads
    q_BxTxKxGxH = q_BxTxNxH.reshape(b, t, kh, n // kh, h)
    if cache is None and t > Q_BLOCK:
      out_BxTxKxGxH = _blockwise(q_BxTxKxGxH, keys, values, kv_mask_BxS, Q_BLOCK)
    else:
      out_BxTxKxGxH = _attend(q_BxTxKxGxH, keys, values, kv_mask_BxS, query_slot_T)
    out_BxTxNxH = out_BxTxKxGxH.reshape(b, t, n, h)
    return jnp.einsum("btnh,nhd->btd", out_BxTxNxH, self.o[...].astype(dt)), cache


def _attend(q_BxTxKxGxH, keys_BxSxKxH, values_BxSxKxH, kv_mask_BxS, query_slot_T):
  """Softmax attention of T queries at cache slots `query_slot_T` over S key slots."""
  dt, h = q_BxTxKxGxH.dtype, q_BxTxKxGxH.shape[-1]
  s = keys_BxSxKxH.shape[1]
  causal_TxS = jnp.arange(s)[None, :] <= query_slot_T[:, None]
  mask_Bx1x1xTxS = (causal_TxS[None] & kv_mask_BxS[:, None, :].astype(bool))[:, None, None]
  scores = jnp.einsum("btkgh,bskh->bkgts", q_BxTxKxGxH, keys_BxSxKxH.astype(dt))
  scores = scores.astype(jnp.float32) * (h ** -0.5)
  scores = jnp.where(mask_Bx1x1xTxS, scores, _NEG_INF)
  probs = jax.nn.softmax(scores, axis=-1).astype(dt)
  return jnp.einsum("bkgts,bskh->btkgh", probs, values_BxSxKxH.astype(dt))


def _blockwise(q_BxTxKxGxH, keys_BxTxKxH, values_BxTxKxH, kv_mask_BxT, block: int):
  """`_attend` for a training forward (queries at slots 0..T-1), `block` queries at a time."""
  b, t, kh, g, h = q_BxTxKxGxH.shape
  n_blocks = -(-t // block)
  q_pad = jnp.pad(q_BxTxKxGxH, ((0, 0), (0, n_blocks * block - t), (0, 0), (0, 0), (0, 0)))
  q_JxBxCxKxGxH = q_pad.reshape(b, n_blocks, block, kh, g, h).swapaxes(0, 1)

  @jax.checkpoint
  def one(xs):
    q_BxCxKxGxH, start = xs
    return _attend(q_BxCxKxGxH, keys_BxTxKxH, values_BxTxKxH, kv_mask_BxT,
                   start + jnp.arange(block))

  out_JxBxCxKxGxH = jax.lax.map(one, (q_JxBxCxKxGxH, jnp.arange(n_blocks) * block))
  return out_JxBxCxKxGxH.swapaxes(0, 1).reshape(b, n_blocks * block, kh, g, h)[:, :t]
