"""One decoder-only transformer for the Qwen2 / Qwen2.5 / Qwen3 / Llama-3 families.

Pre-norm blocks: x + attn(norm(x)), then x + mlp(norm(x)); final RMSNorm; LM head
tied to the embedding or separate. The family differences are `ModelConfig` flags.
Hot loops use the functional form: `graphdef, params = nnx.split(model, nnx.Param)`
once, then `nnx.merge(graphdef, params)` inside jitted functions.

Two layouts of the blocks (`ModelConfig.scan_layers`): a list `blocks[i]` run one
after the other (XLA compiles every block: compile time grows with depth), or one
`layers` Block whose weights carry a leading layer axis, run by `lax.scan` (one block
compiled; the KV cache is carried and layer i writes its slice in place). Both are
initialised from the same random stream, so a seed gives the same weights in either;
`stack_blocks` / `unstack_blocks` convert a parameter dict between them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from rljax.model.attention import Attention
from rljax.model.config import REMAT_POLICIES, ModelConfig
from rljax.model.kv_cache import KVCache, SharedPrefix
from rljax.model.layers import RMSNorm, SwiGLU, param, rope_inv_freq, rope_tables


class Block(nnx.Module):

  def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
    self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps, "embed", rngs)
    self.attn = Attention(cfg, rngs)
    self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps, "embed", rngs)
    self.mlp = SwiGLU(cfg, rngs)

  def __call__(self, x_BxTxD, rope, kv_mask_BxS, cache, layer, cache_start):
    h_BxTxD, cache = self.attn(self.attn_norm(x_BxTxD), rope, kv_mask_BxS, cache, layer,
                               cache_start)
    x_BxTxD = x_BxTxD + h_BxTxD
    return x_BxTxD + self.mlp(self.mlp_norm(x_BxTxD)), cache


class Transformer(nnx.Module):
  """Decoder-only LM. `__call__` gives logits; `hidden` + `logits` split it for chunked heads."""

  def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
    self.cfg = cfg
    # std d^-1/2: the first RMSNorm rescales inputs, and tied heads start with O(1) logits.
    self.embed = param(rngs, (cfg.vocab_size, cfg.d_model), ("vocab", "embed"),
                       cfg.d_model ** -0.5)
    blocks = [Block(cfg, rngs) for _ in range(cfg.n_layers)]
    if cfg.scan_layers:
      self.layers = _stacked(blocks)
    else:
      self.blocks = nnx.List(blocks)
    self.final_norm = RMSNorm(cfg.d_model, cfg.norm_eps, "embed", rngs)
    if not cfg.tie_embeddings:
      self.lm_head = param(rngs, (cfg.d_model, cfg.vocab_size), ("embed", "vocab"),
                           cfg.d_model ** -0.5)

  def rope(self, positions_BxT):
    """The rotary tables (cos, sin) [B, T, H/2] of these positions (`layers.rope_tables`)."""
    cfg = self.cfg
    return rope_tables(positions_BxT,
                       rope_inv_freq(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling))

  def hidden(self, tokens_BxT, *, positions_BxT=None, kv_mask_BxS=None,
             cache: KVCache | None = None, cache_start=0, rope=None):
    """Final-norm hidden states [B, T, D] and the updated cache.

    Args:
      tokens_BxT: int token ids.
      positions_BxT: RoPE positions; default 0..T-1 (pass them for left padding).
      kv_mask_BxS: 1 where a key slot holds a real token (S = T without a cache,
        the cache length with one, P + T with a shared prefix). Default: all valid.
      cache: functional KV cache or a training forward's `SharedPrefix` (see
        `kv_cache.py`), or None.
      cache_start: slot where these T tokens are written: one for all rows, or one per
        row [B] (a `KVCache` only).
      rope: `rope(positions_BxT)`, made by the caller (then positions_BxT is unused): a
        decode loop makes every step's tables once, before the loop, rather than
        evaluating sines and cosines at each step.
    """
    cfg = self.cfg
    b, t = tokens_BxT.shape
    if positions_BxT is None:
      positions_BxT = jnp.broadcast_to(jnp.asarray(cache_start)[..., None] + jnp.arange(t),
                                       (b, t))
    if kv_mask_BxS is None:
      s = t if cache is None else cache.length + (t if isinstance(cache, SharedPrefix) else 0)
      kv_mask_BxS = jnp.ones((b, s), bool)
    if rope is None:
      rope = self.rope(positions_BxT)
    x_BxTxD = self.embed[...][tokens_BxT].astype(jnp.dtype(cfg.dtype))
    remat = _remat(cfg)

    def apply(block, x_BxTxD, cache, layer):
      return block(x_BxTxD, rope, kv_mask_BxS, cache, layer, cache_start)

    if cfg.scan_layers:
      block_def, stacked = nnx.split(self.layers)

      def body(carry, xs):
        layer_state, layer = xs
        x_BxTxD, cache = remat(apply)(nnx.merge(block_def, layer_state), *carry, layer)
        return (x_BxTxD, cache), None

      (x_BxTxD, cache), _ = jax.lax.scan(body, (x_BxTxD, cache),
                                         (stacked, jnp.arange(cfg.n_layers)))
    else:
      for i, block in enumerate(self.blocks):
        x_BxTxD, cache = remat(apply, static_argnums=(3,))(block, x_BxTxD, cache, i)
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


def _remat(cfg: ModelConfig):
  """`jax.checkpoint` (nnx-aware) with the config's policy, or the identity."""
  name = REMAT_POLICIES[cfg.remat]
  if name is None:
    return lambda f, **_: f
  policy = getattr(jax.checkpoint_policies, name)
  return lambda f, **kw: nnx.remat(f, policy=policy, **kw)


def _stacked(blocks: list) -> Block:
  """One Block whose every weight is the blocks' weights stacked on a new leading
  `layers` axis (a logical name that stays unsharded)."""
  block_def, first = nnx.split(blocks[0])
  states = [first] + [nnx.split(b)[1] for b in blocks[1:]]

  def stack(*variables):
    v = variables[0]
    axes = v.get_metadata().get("out_sharding") or (None,) * v.get_value().ndim
    return v.replace(jnp.stack([x.get_value() for x in variables]),
                     out_sharding=("layers", *axes))

  return nnx.merge(block_def, jax.tree.map(stack, *states,
                                           is_leaf=lambda x: isinstance(x, nnx.Variable)))


def stack_blocks(params: dict) -> dict:
  """A parameter dict with `blocks` {0: ..., 1: ...} -> the scanned layout's `layers`."""
  out = {k: v for k, v in params.items() if k != "blocks"}
  blocks = [params["blocks"][i] for i in sorted(params["blocks"])]
  out["layers"] = jax.tree.map(lambda *xs: jnp.stack(xs), *blocks)
  return out


def unstack_blocks(params: dict) -> dict:
  """The inverse of `stack_blocks`."""
  out = {k: v for k, v in params.items() if k != "layers"}
  n = jax.tree.leaves(params["layers"])[0].shape[0]
  out["blocks"] = {i: jax.tree.map(lambda x, i=i: x[i], params["layers"]) for i in range(n)}
  return out


def init_model(cfg: ModelConfig, seed: int) -> Transformer:
  return Transformer(cfg, nnx.Rngs(params=seed))
