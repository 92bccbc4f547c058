"""The decoder: causality, cached decoding == full forward, family flags, presets."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rljax.model.kv_cache import KVCache
from rljax.model.config import PRESETS, get_preset
from rljax.model.transformer import init_model

FAMILIES = {
    "qwen2": dict(qkv_bias=True, qk_norm=False, tie_embeddings=True),
    "qwen3": dict(qkv_bias=False, qk_norm=True, tie_embeddings=False),
    "llama3": dict(qkv_bias=False, qk_norm=False, tie_embeddings=False,
                   rope_scaling=PRESETS["llama-3.1-8b"].rope_scaling, rope_theta=500_000.0),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_causal(family):
  model = init_model(get_preset("tiny", **FAMILIES[family]), 0)
  tok = jax.random.randint(jax.random.key(0), (2, 12), 0, 64)
  changed = tok.at[:, 7:].set((tok[:, 7:] + 1) % 64)
  a, b = model(tok), model(changed)
  np.testing.assert_allclose(a[:, :7], b[:, :7], atol=1e-6)
  assert not np.allclose(a[:, 7:], b[:, 7:])


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_cached_decoding_equals_full_forward(family):
  cfg = get_preset("tiny", **FAMILIES[family])
  model = init_model(cfg, 1)
  tok = jax.random.randint(jax.random.key(1), (3, 10), 0, 64)
  full = model(tok)
  cache = KVCache.zeros(cfg, 3, 16)
  prefill, cache = model(tok[:, :4], cache=cache, cache_start=0)
  steps = [prefill]
  for t in range(4, 10):
    logits, cache = model(tok[:, t:t + 1], cache=cache, cache_start=t)
    steps.append(logits)
  np.testing.assert_allclose(jnp.concatenate(steps, 1), full, atol=2e-5)


@pytest.mark.parametrize("scan_layers", [False, True])
def test_rows_at_their_own_slots_decode_as_their_own_forwards(scan_layers):
  """A per-row `cache_start` (the multi-turn cache): each row prefilled from slot 0
  with padding past its length, then fed one token a step at its own next slot, gives
  each row the logits of its own unpadded forward."""
  cfg = get_preset("tiny", scan_layers=scan_layers)
  model = init_model(cfg, 3)
  lens = np.array([2, 5, 3])
  tok = jax.random.randint(jax.random.key(3), (3, 9), 4, 64)
  padded = jnp.where(jnp.arange(5)[None] < lens[:, None], tok[:, :5], 0)
  call = nnx.jit(lambda m, tok, **kw: m(tok, **kw))
  cache = KVCache.zeros(cfg, 3, 10)
  prefill, cache = call(model, padded, cache=cache, cache_start=jnp.zeros(3, jnp.int32))
  steps = []
  for t in range(4):
    slot = jnp.asarray(lens + t)
    nxt = jnp.take_along_axis(tok, slot[:, None], 1)
    logits, cache = call(model, nxt, positions_BxT=slot[:, None], cache=cache,
                         cache_start=slot)
    steps.append(logits[:, 0])
  for b, n in enumerate(lens):
    full = call(model, tok[b:b + 1, :n + 4])[0]
    np.testing.assert_allclose(prefill[b, :n], full[:n], atol=2e-5)
    np.testing.assert_allclose(jnp.stack([s[b] for s in steps]), full[n:], atol=2e-5)


def test_row_writes_past_the_cache_end_are_dropped_not_clamped():
  cfg = get_preset("tiny")
  cache = KVCache.zeros(cfg, 2, 6)
  kv_BxTxKxH = jnp.ones((2, 3, cfg.n_kv_heads, cfg.head_dim))
  out = cache.write(0, kv_BxTxKxH, 2 * kv_BxTxKxH, jnp.array([4, 1]))
  written_BxS = np.asarray(out.k[0, :, 0, 0, :])
  np.testing.assert_array_equal(written_BxS, [[0, 0, 0, 0, 1, 1], [0, 1, 1, 1, 0, 0]])
  np.testing.assert_array_equal(np.asarray(out.v[0, :, 0, :, 0]) / 2, written_BxS)
  assert not np.asarray(out.k[1:]).any()
  per_layer = cache.per_layer().write(0, kv_BxTxKxH, 2 * kv_BxTxKxH, jnp.array([4, 1]))
  np.testing.assert_array_equal(np.stack(per_layer.k), out.k)
  np.testing.assert_array_equal(np.stack(per_layer.v), out.v)


def test_left_padding_matches_unpadded():
  """A left-padded prompt with positions from its mask gives the unpadded logits."""
  cfg = get_preset("tiny")
  model = init_model(cfg, 2)
  tok = jax.random.randint(jax.random.key(2), (1, 6), 4, 64)
  padded = jnp.concatenate([jnp.zeros((1, 3), jnp.int32), tok], 1)
  mask = jnp.array([[0, 0, 0, 1, 1, 1, 1, 1, 1]], bool)
  pos = jnp.maximum(jnp.cumsum(mask, 1) - 1, 0)
  out = model(padded, positions_BxT=pos, kv_mask_BxS=mask)
  np.testing.assert_allclose(out[:, 3:], model(tok), atol=2e-5)


def test_param_counts_of_real_presets():
  # Published sizes (embeddings included): Qwen2.5-0.5B 494M, Qwen3-0.6B 596M (tied),
  # Llama-3.1-8B 8.03B.
  assert PRESETS["qwen2.5-0.5b"].num_params() == pytest.approx(494e6, rel=0.01)
  assert PRESETS["qwen3-0.6b"].num_params() == pytest.approx(596e6, rel=0.01)
  assert PRESETS["llama-3.1-8b"].num_params() == pytest.approx(8.03e9, rel=0.01)


def test_num_params_matches_module():
  from flax import nnx
  for family in FAMILIES:
    cfg = get_preset("tiny", **FAMILIES[family])
    _, state = nnx.split(init_model(cfg, 0), nnx.Param)
    assert sum(x.size for x in jax.tree.leaves(state)) == cfg.num_params()


def test_every_weight_has_logical_axes():
  from flax import nnx
  _, state = nnx.split(init_model(get_preset("tiny"), 0), nnx.Param)
  for path, var in nnx.to_flat_state(state):
    axes = var.get_metadata()["out_sharding"]
    assert len(axes) == var.get_value().ndim, path


def test_bad_config():
  with pytest.raises(ValueError, match="multiple of n_kv_heads"):
    dataclasses.replace(PRESETS["tiny"], n_kv_heads=3)
  with pytest.raises(ValueError, match="valid presets"):
    get_preset("gpt-5")
