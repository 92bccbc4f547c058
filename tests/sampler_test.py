"""The on-device sampler: log-probs match the training forward, determinism, masks, filters."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rljax.rl import sampler, selection
from rljax.rl.logprobs import completion_logp_entropy
from rljax.model.config import get_preset
from rljax.model.transformer import init_model


@pytest.fixture(scope="module")
def tiny():
  model = init_model(get_preset("tiny"), 0)
  graphdef, state = nnx.split(model, nnx.Param)
  prompts = jnp.array([[0, 0, 2, 5, 6, 7], [2, 9, 8, 7, 6, 5], [0, 0, 0, 0, 2, 11]], jnp.int32)
  mask = (jnp.arange(6)[None] >= jnp.array([[2], [0], [4]])).astype(jnp.int32)
  return model, graphdef, nnx.to_pure_dict(state), prompts, mask


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampler_logp_equals_training_forward(tiny, temperature):
  model, graphdef, params, prompts, mask = tiny
  cfg = sampler.SamplingConfig(max_new_tokens=12, temperature=temperature, eos_id=1)
  out = sampler.sample(graphdef, params, prompts, mask, jax.random.key(0), cfg=cfg,
                       group_size=4)
  prompt_B = jnp.repeat(prompts, 4, 0)
  mask_B = jnp.repeat(mask, 4, 0)
  logp, ent = completion_logp_entropy(model, prompt_B, mask_B, out.tokens,
                                      temperature=temperature, chunk=5)
  np.testing.assert_allclose(out.logp, logp * out.mask, atol=2e-5)
  np.testing.assert_allclose(out.entropy, ent * out.mask, atol=2e-5)


def test_deterministic_per_key_and_groups_differ(tiny):
  _, graphdef, params, prompts, mask = tiny
  cfg = sampler.SamplingConfig(max_new_tokens=10, eos_id=1)
  a = sampler.sample(graphdef, params, prompts, mask, jax.random.key(3), cfg=cfg, group_size=4)
  b = sampler.sample(graphdef, params, prompts, mask, jax.random.key(3), cfg=cfg, group_size=4)
  c = sampler.sample(graphdef, params, prompts, mask, jax.random.key(4), cfg=cfg, group_size=4)
  np.testing.assert_array_equal(a.tokens, b.tokens)
  assert not np.array_equal(a.tokens, c.tokens)
  assert len({tuple(r) for r in np.asarray(a.tokens[:4])}) > 1  # G samples of one prompt


def test_completion_mask_through_eos():
  toks = jnp.array([[5, 1, 0, 0], [5, 6, 7, 8], [1, 0, 0, 0]])
  np.testing.assert_array_equal(sampler.completion_mask(toks, 1),
                                [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])


def test_top_k_top_p_filtering():
  logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05]]))
  z = selection.filter_logits(logits, sampler.SamplingConfig(max_new_tokens=1, top_k=2))
  # The two most likely tokens keep their (tempered) logits; the rest are masked out.
  assert (np.asarray(z[0]) > -1e29).tolist() == [True, True, False, False]
  np.testing.assert_allclose(np.asarray(z[0, :2]), np.asarray(logits[0, :2]), rtol=1e-6)
  z = selection.filter_logits(logits, sampler.SamplingConfig(max_new_tokens=1, top_p=0.8))
  assert (np.asarray(z[0]) > -1e29).tolist() == [True, True, False, False]   # 0.5 + 0.3 >= 0.8
  z = selection.filter_logits(logits, sampler.SamplingConfig(max_new_tokens=1, top_p=0.81))
  assert (np.asarray(z[0]) > -1e29).tolist() == [True, True, True, False]
  z = selection.filter_logits(logits, sampler.SamplingConfig(max_new_tokens=1, top_p=0.1))
  assert (np.asarray(z[0]) > -1e29).tolist() == [True, False, False, False]


def test_truncated_sampling_logp_is_of_the_truncated_distribution(tiny):
  _, graphdef, params, prompts, mask = tiny
  cfg = sampler.SamplingConfig(max_new_tokens=6, top_k=1, eos_id=1)
  out = sampler.sample(graphdef, params, prompts, mask, jax.random.key(0), cfg=cfg, group_size=2)
  np.testing.assert_allclose(out.logp, 0.0, atol=1e-6)      # greedy: prob 1
  np.testing.assert_allclose(out.entropy, 0.0, atol=1e-6)


def test_rows_end_at_eos_and_are_padded_after(tiny):
  _, graphdef, params, prompts, mask = tiny
  cfg = sampler.SamplingConfig(max_new_tokens=20, eos_id=1)
  out = jax.device_get(sampler.sample(graphdef, params, prompts, mask, jax.random.key(0),
                                      cfg=cfg, group_size=8))
  ended = 0
  for row, m in zip(out.tokens, out.mask):
    eos = np.flatnonzero(row == 1)
    if eos.size:
      ended += 1
      first = eos[0]
      assert m.sum() == first + 1 and (row[first + 1:] == 0).all()
    else:
      assert m.sum() == 20
  assert ended > 0  # with 480 sampled tokens over a 64-token vocab, some rows end


def test_does_not_recompile_across_keys(tiny):
  _, graphdef, params, prompts, mask = tiny
  cfg = sampler.SamplingConfig(max_new_tokens=8, eos_id=1)
  fn = chex.assert_max_traces(sampler.sample.__wrapped__, n=1)
  jitted = jax.jit(fn, static_argnames=("graphdef", "cfg", "group_size"))
  for seed in range(3):
    jitted(graphdef, params, prompts, mask, jax.random.key(seed), cfg=cfg, group_size=2)


def test_bad_sampling_config():
  with pytest.raises(ValueError, match="top_p"):
    sampler.SamplingConfig(max_new_tokens=4, top_p=1.5)
  with pytest.raises(ValueError, match="temperature"):
    sampler.SamplingConfig(max_new_tokens=4, temperature=0.0)


def test_draw_has_the_distribution_and_never_draws_probability_zero():
  # 200,000 draws from one row: each frequency within 4.5 standard errors of its
  # probability (a chi-square over the 5 cells would pass far more loosely).
  p = np.array([0.5, 0.0, 0.3, 0.15, 0.0, 0.05], np.float32)
  logp = jnp.log(jnp.broadcast_to(jnp.asarray(p), (200_000, 6)))
  tok = np.asarray(selection.draw(jax.random.key(0), logp))
  freq = np.bincount(tok, minlength=6) / len(tok)
  se = np.sqrt(p * (1 - p) / len(tok))
  assert freq[1] == 0 and freq[4] == 0
  assert np.all(np.abs(freq - p) <= 4.5 * se + 1e-12), (freq, p)
  # Per-row distributions: a row whose mass sits on one token always draws it.
  rows = jnp.log(jnp.eye(6, dtype=jnp.float32) + 1e-30)
  np.testing.assert_array_equal(selection.draw(jax.random.key(1), rows), np.arange(6))
  # 37 tokens: the search's 5 chunks of 8 (the last one padded), zeros at the first and
  # last token of chunks, where the two levels' rounding would land.
  p = np.random.default_rng(0).random(37).astype(np.float32)
  p[[0, 7, 8, 15, 31, 36]] = 0
  p /= p.sum()
  tok = np.asarray(selection.draw(jax.random.key(2), jnp.log(jnp.broadcast_to(p, (200_000, 37)))))
  freq = np.bincount(tok, minlength=37) / len(tok)
  assert np.all(freq[[0, 7, 8, 15, 31, 36]] == 0)
  assert np.all(np.abs(freq - p) <= 4.5 * np.sqrt(p * (1 - p) / len(tok)) + 1e-12), (freq, p)


def test_decode_segments_cover_the_budget_once():
  for t_max in (1, 31, 32, 33, 64, 256, 1000):
    segs = sampler.decode_segments(t_max)
    assert [a for a, _ in segs] == list(np.cumsum([0] + [n for _, n in segs])[:-1])
    assert sum(n for _, n in segs) == t_max and len(segs) <= sampler.MAX_SEGMENTS
    assert all(n <= max(sampler.DECODE_BLOCK, -(-t_max // sampler.MAX_SEGMENTS))
               for _, n in segs)


def test_segmented_decode_attends_to_the_filled_prefix_only(tiny, monkeypatch):
  # Blocks of 3 steps over 12 new tokens: 4 segments. The sampler's log-probs still
  # equal the training forward's across segment boundaries, and segment j's loop
  # reads the prompts' P slots once per prompt (Q rows, not B) and the j earlier
  # segments' 3-slot blocks of each row (not the 12 of the budget), and carries 3.
  model, graphdef, params, prompts, mask = tiny
  monkeypatch.setattr(sampler, "DECODE_BLOCK", 3)
  cfg = sampler.SamplingConfig(max_new_tokens=12, eos_id=1)
  assert len(sampler.decode_segments(12)) == 4
  out = sampler.sample.__wrapped__(graphdef, params, prompts, mask, jax.random.key(5),
                                   cfg=cfg, group_size=2)
  logp, _ = completion_logp_entropy(model, jnp.repeat(prompts, 2, 0), jnp.repeat(mask, 2, 0),
                                    out.tokens)
  np.testing.assert_allclose(out.logp, logp * out.mask, atol=2e-5)
  jaxpr = jax.make_jaxpr(lambda p: sampler.sample.__wrapped__(
      graphdef, p, prompts, mask, jax.random.key(5), cfg=cfg, group_size=2))(params)
  loops = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "while"]
  p = prompts.shape[1]
  prefix_slots, block_slots = [], []
  for loop in loops:
    avals = [v.aval for v in loop.params["body_jaxpr"].jaxpr.invars]
    consts, carry = avals[:loop.params["body_nconsts"]], avals[loop.params["body_nconsts"]:]
    is_keys = lambda a: a.shape[-3:-1] == (model.cfg.n_kv_heads, model.cfg.head_dim)
    # Per-layer keys [B, K, H, S]: the prefix read-only (a constant of the loop), the
    # block carried, one array per layer (nothing stacked is read inside the loop).
    prefix_slots.append(sorted(a.shape[::3] for a in consts if is_keys(a)))
    block_slots.append([a.shape[-1] for a in carry if is_keys(a)])
    assert all(a.ndim == 4 for a in consts + carry if is_keys(a))
  n, q = model.cfg.n_layers, len(prompts)
  assert prefix_slots == [[(q, p)] * n + [(2 * q, 3)] * n * j for j in range(4)], prefix_slots
  assert block_slots == [[3] * n] * 4, block_slots
