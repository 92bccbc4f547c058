"""Grouped-query attention over a functional KV cache (`kv_cache.py`).

Without a cache the keys are the T inputs themselves (training forward); with a
`KVCache`, `SharedPrefix` or `DecodeWindow` they are that view's parts and, but for a
`SharedPrefix`, the T inputs written into it.

Long training forwards (no cache or a `SharedPrefix`, T > `Q_BLOCK`) attend block by
block: queries in blocks of `Q_BLOCK`, each block's scores [B, K, G, Q_BLOCK, T] made,
softmaxed and used inside one rematerialised step of a `lax.map`, so neither the
forward nor the backward ever holds the [B, K, G, T, T] scores (at 8 x 4,096 tokens
with Qwen2.5-0.5B's 14 heads that is 7.5 GB per layer in float32); the backward
recomputes each block's.
Each query row is the same softmax over the same keys as in the one-shot path.

With `ModelConfig.attention` naming a kernel of `jax.nn.dot_product_attention` ("cudnn":
cuDNN's flash attention on NVIDIA GPUs), every forward over more than one token goes
through it instead (`_fused`): the parts' keys and values laid out [B, S, K, H], one
mask of causality and key validity. Decode steps (one token) keep rljax's own path.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from rljax.model.config import ATTENTION_KERNELS, ModelConfig
from rljax.model.kv_cache import DecodeWindow, KVCache, Part, SharedPrefix
from rljax.model.layers import RMSNorm, apply_rope, param, project

_NEG_INF = -1e30
Q_BLOCK = 512


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

  def __call__(self, x_BxTxD, rope, kv_mask_BxS,
               cache: KVCache | DecodeWindow | SharedPrefix | None = None, layer: int = 0,
               cache_start=0):
    """Returns (output [B, T, D], the cache with this layer's T new entries).

    Without a cache the keys are the T inputs themselves (training forward). With a
    `KVCache` the new entries are written at slot `cache_start` with one
    dynamic_update_slice per array (in place inside a loop); with a `DecodeWindow`
    into its block (`cache_start` is still the absolute slot). With a `SharedPrefix`
    the keys are the prefix's and the T inputs' (at slots `cache_start` = P onward), and
    the prefix is returned as it came.
    """
    cfg, dt = self.cfg, x_BxTxD.dtype
    b, t, _ = x_BxTxD.shape
    kh, n, h = cfg.n_kv_heads, cfg.n_heads, cfg.head_dim
    g = n // kh
    # One product for queries, keys and values: each KV head's G query heads (head
    # k*G + j reads KV head k) and its key and value stacked on a new axis, so a
    # sharded head axis stays where it is (one larger product instead of three small
    # ones; in the backward one transposed copy of the input instead of three).
    w_DxKxCxH = _by_kv_head(self.q[...], self.k[...], self.v[...], kh)
    qkv_BxTxKxCxH = project("btd,dkch->btkch", x_BxTxD, w_DxKxCxH.astype(dt))
    if cfg.qkv_bias:
      qkv_BxTxKxCxH += _by_kv_head(self.q_bias[...], self.k_bias[...], self.v_bias[...],
                                   kh).astype(dt)
    q_BxTxNxH = qkv_BxTxKxCxH[:, :, :, :g].reshape(b, t, n, h)
    k_BxTxKxH, v_BxTxKxH = qkv_BxTxKxCxH[:, :, :, g], qkv_BxTxKxCxH[:, :, :, g + 1]
    if cfg.qk_norm:
      q_BxTxNxH = self.q_norm(q_BxTxNxH)
      k_BxTxKxH = self.k_norm(k_BxTxKxH)
    q_BxTxNxH = apply_rope(q_BxTxNxH, rope)
    k_BxTxKxH = apply_rope(k_BxTxKxH, rope)

    # [T], or [B, T] where each row writes at its own slot (a `KVCache` only).
    query_slot_T = jnp.asarray(cache_start)[..., None] + jnp.arange(t)
    if cache is None:
      parts = [Part(k_BxTxKxH.transpose(0, 2, 3, 1), v_BxTxKxH.transpose(0, 2, 1, 3), 0)]
    elif isinstance(cache, SharedPrefix):
      parts = [cache.part(layer),
               Part(k_BxTxKxH.transpose(0, 2, 3, 1), v_BxTxKxH.transpose(0, 2, 1, 3),
                     cache.length)]
    elif isinstance(cache, DecodeWindow):
      start = cache.start
      block = cache.block.write(layer, k_BxTxKxH, v_BxTxKxH, cache_start - start)
      cache = cache.replace(block=block)
      parts = cache.parts(layer)
    else:
      cache = cache.write(layer, k_BxTxKxH, v_BxTxKxH, cache_start)
      parts = [Part(cache.k[layer], cache.v[layer], 0)]
    q_BxTxKxGxH = q_BxTxNxH.reshape(b, t, kh, g, h)
    kernel = ATTENTION_KERNELS[cfg.attention]
    if kernel is not None and t > 1 and not isinstance(cache, DecodeWindow):
      out_BxTxKxGxH = _fused(q_BxTxKxGxH, parts, kv_mask_BxS, query_slot_T, kernel)
    elif (cache is None or isinstance(cache, SharedPrefix)) and t > Q_BLOCK:
      out_BxTxKxGxH = _blockwise(q_BxTxKxGxH, parts, kv_mask_BxS, Q_BLOCK, cache_start)
    else:
      out_BxTxKxGxH = _attend(q_BxTxKxGxH, parts, kv_mask_BxS, query_slot_T)
    # One contracting axis (N*H): with two, XLA:CPU reorders them, transposing the
    # attention output and copying the weight at every decode step.
    out_BxTxF = out_BxTxKxGxH.reshape(b, t, n * h)
    w_FxD = self.o[...].reshape(n * h, -1).astype(dt)
    return project("btf,fd->btd", out_BxTxF, w_FxD), cache


def _by_kv_head(q_xNxH, k_xKxH, v_xKxH, kv_heads: int):
  """[..., N, H], [..., K, H], [..., K, H] -> [..., K, G + 2, H]: each KV head's G query
  heads, then its key and its value."""
  *lead, n, h = q_xNxH.shape
  q_xKxGxH = q_xNxH.reshape(*lead, kv_heads, n // kv_heads, h)
  return jnp.concatenate([q_xKxGxH, k_xKxH[..., None, :], v_xKxH[..., None, :]], axis=-2)


def _attend(q_BxTxKxGxH, parts, kv_mask_BxS, query_slot_T):
  """Softmax attention of T queries at slots `query_slot_T` over the key slots of
  `parts` (`Part`s), one softmax over all of them.

  Each KV head's T x G queries are one matrix M = T*G, so both matmuls are plain
  batched [M, H] x [H, S] and [M, S] x [S, H] products over (B, K) with every operand
  in its natural layout (XLA:CPU otherwise transposes the cache or runs a
  transposed-operand kernel several times slower). A part shared by groups of rows
  (a prompt's slots, read by its G samples) is multiplied once per group, its rows'
  queries stacked into one [group * M, H] matrix: the prompt's keys and values are
  read once per prompt, not once per sample, and never copied per row."""
  dt = q_BxTxKxGxH.dtype
  b, t, kh, g, h = q_BxTxKxGxH.shape
  q_BxKxMxH = q_BxTxKxGxH.transpose(0, 2, 1, 3, 4).reshape(b, kh, t * g, h)
  scores = []
  for part in parts:
    s = part.keys.shape[-1]
    valid_BxTxS = _valid(part, kv_mask_BxS, query_slot_T)
    valid_Bx1xMxS = (jnp.broadcast_to(valid_BxTxS[:, None, :, None, :], (b, 1, t, g, s))
                     .reshape(b, 1, t * g, s))
    scores_BxKxMxS = _per_group(part.group, "bkmh,bkhs->bkms", q_BxKxMxH, part.keys.astype(dt))
    scores.append(jnp.where(valid_Bx1xMxS, scores_BxKxMxS.astype(jnp.float32) * (h ** -0.5),
                            _NEG_INF))
  probs = _softmax_over_parts(scores)
  out_BxKxMxH = 0
  for probs_BxKxMxS, part in zip(probs, parts):
    out_BxKxMxH += _per_group(part.group, "bkms,bksh->bkmh", probs_BxKxMxS.astype(dt),
                              part.values.astype(dt))
  return out_BxKxMxH.reshape(b, kh, t, g, h).transpose(0, 2, 1, 3, 4)


def _valid(part, kv_mask_BxS, query_slot_T):
  """[B, T, S]: which of `part`'s S key slots each query may read (causal by slot, and
  a real token); `query_slot_T` is [T], or [B, T] for per-row slots."""
  s = part.keys.shape[-1]
  query_slot_1xT = jnp.atleast_2d(query_slot_T)
  causal_1xTxS = (part.first + jnp.arange(s))[None, None, :] <= query_slot_1xT[..., None]
  kv_BxS = jax.lax.slice_in_dim(kv_mask_BxS, part.first, part.first + s, axis=1).astype(bool)
  return causal_1xTxS & kv_BxS[:, None, :]


def _fused(q_BxTxKxGxH, parts, kv_mask_BxS, query_slot_T, implementation: str):
  """`_attend` by `jax.nn.dot_product_attention(implementation=...)`: the parts' keys
  and values as [B, S, K, H] (a part shared by a group of rows repeated over them; K and
  V are small beside the scores a fused kernel never writes), concatenated along S, and
  one [B, 1, T, S] mask. Query head k*G + j reads KV head k, as in `_attend`."""
  if implementation == "cudnn" and jax.default_backend() != "gpu":
    raise ValueError("model.attention 'cudnn' runs cuDNN's flash attention, which needs an "
                     f"NVIDIA GPU; this backend is {jax.default_backend()!r} (use 'rljax')")
  dt = q_BxTxKxGxH.dtype
  b, t, kh, g, h = q_BxTxKxGxH.shape
  k_BxSxKxH = jnp.concatenate(
      [jnp.repeat(p.keys.transpose(0, 3, 1, 2), p.group, axis=0) for p in parts], axis=1)
  v_BxSxKxH = jnp.concatenate(
      [jnp.repeat(p.values.transpose(0, 2, 1, 3), p.group, axis=0) for p in parts], axis=1)
  valid_BxTxS = jnp.concatenate([_valid(p, kv_mask_BxS, query_slot_T) for p in parts], -1)
  # cuDNN's kernel takes the mask as an additive bias, and with one it differentiates
  # only even T and S: an odd T gets a query row that is dropped, an odd S a key slot
  # that no query reads (a grouped completion forward runs T - 1 tokens).
  pad_t, pad_s = t % 2, k_BxSxKxH.shape[1] % 2
  q_BxTxNxH = jnp.pad(q_BxTxKxGxH.reshape(b, t, kh * g, h), ((0, 0), (0, pad_t), (0, 0), (0, 0)))
  k_BxSxKxH, v_BxSxKxH = (jnp.pad(x, ((0, 0), (0, pad_s), (0, 0), (0, 0)))
                          for x in (k_BxSxKxH, v_BxSxKxH))
  valid_BxTxS = jnp.pad(valid_BxTxS, ((0, 0), (0, pad_t), (0, pad_s)))
  out_BxTxNxH = jax.nn.dot_product_attention(
      q_BxTxNxH, k_BxSxKxH.astype(dt), v_BxSxKxH.astype(dt), mask=valid_BxTxS[:, None],
      scale=h ** -0.5, implementation=implementation)
  return out_BxTxNxH[:, :t].reshape(b, t, kh, g, h)


def _per_group(group: int, equation, rows_BxKxMxX, shared):
  """project(equation, rows, shared) where `shared` has one entry per group of `group`
  rows: the group's rows stacked as one [group * M, X] matrix per entry."""
  if group == 1:
    return project(equation, rows_BxKxMxX, shared)
  b, kh, m, x = rows_BxKxMxX.shape
  stacked = (rows_BxKxMxX.reshape(b // group, group, kh, m, x).transpose(0, 2, 1, 3, 4)
             .reshape(b // group, kh, group * m, x))
  out = project(equation, stacked, shared)
  y = out.shape[-1]
  return (out.reshape(b // group, kh, group, m, y).transpose(0, 2, 1, 3, 4)
          .reshape(b, kh, m, y))


def _softmax_over_parts(scores):
  """One softmax over the last axis of several score arrays [..., S_i] taken together,
  returned part by part. The decode window's prefix and block are scored apart, and
  concatenating them would copy every step's scores (measured: the largest kernel of a
  GPU decode step, benchmarks/README.md), so the parts share one max and one denominator
  instead. A fully masked row (every score _NEG_INF) is uniform, as in one softmax."""
  if len(scores) == 1:
    return [jax.nn.softmax(scores[0], axis=-1)]
  max_BxKxMx1 = jax.lax.stop_gradient(
      functools.reduce(jnp.maximum, [s.max(-1, keepdims=True) for s in scores]))
  exps = [jnp.exp(s - max_BxKxMx1) for s in scores]
  total_BxKxMx1 = sum(e.sum(-1, keepdims=True) for e in exps)
  return [e / total_BxKxMx1 for e in exps]


def _blockwise(q_BxTxKxGxH, parts, kv_mask_BxS, block: int, first_slot=0):
  """`_attend` for a training forward (queries at slots first_slot + 0..T-1), `block`
  queries at a time."""
  b, t, kh, g, h = q_BxTxKxGxH.shape
  n_blocks = -(-t // block)
  q_pad = jnp.pad(q_BxTxKxGxH, ((0, 0), (0, n_blocks * block - t), (0, 0), (0, 0), (0, 0)))
  q_JxBxCxKxGxH = q_pad.reshape(b, n_blocks, block, kh, g, h).swapaxes(0, 1)

  @jax.checkpoint
  def one(xs):
    q_BxCxKxGxH, start = xs
    return _attend(q_BxCxKxGxH, parts, kv_mask_BxS, start + jnp.arange(block))

  out_JxBxCxKxGxH = jax.lax.map(one, (q_JxBxCxKxGxH,
                                      first_slot + jnp.arange(n_blocks) * block))
  return out_JxBxCxKxGxH.swapaxes(0, 1).reshape(b, n_blocks * block, kh, g, h)[:, :t]
