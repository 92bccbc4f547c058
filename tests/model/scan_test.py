"""Scanned layers, rematerialisation and blockwise attention change how, not what.

Each layout gives the unrolled model's logits, decode log-probs and gradients; the
scanned update's program does not grow with depth; blockwise attention gives the
one-shot attention's outputs and gradients without holding its [T, T] scores.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rljax.model import attention, hf
from rljax.model.config import get_preset
from rljax.model.transformer import init_model, stack_blocks, unstack_blocks
from rljax.rl import sampler
from rljax.rl.logprobs import completion_logp_entropy

TOKENS = jnp.asarray(np.random.default_rng(0).integers(2, 60, (2, 11)))


def _split(model):
  graphdef, state = nnx.split(model, nnx.Param)
  return graphdef, nnx.to_pure_dict(state)


def _loss(graphdef, params):
  logp, ent = completion_logp_entropy(nnx.merge(graphdef, params), TOKENS[:, :4],
                                      jnp.ones_like(TOKENS[:, :4]), TOKENS[:, 4:])
  return jnp.sum(logp) + 0.1 * jnp.sum(ent)


@pytest.mark.parametrize("remat", ["none", "full", pytest.param("dots", marks=pytest.mark.slow)])
def test_scanned_layers_match_unrolled(remat, monkeypatch):
  monkeypatch.setattr(sampler, "DECODE_BLOCK", 3)  # 8 new tokens: 3 decode segments
  base = init_model(get_preset("tiny"), seed=1)
  scanned = init_model(get_preset("tiny", scan_layers=True, remat=remat), seed=1)
  gd_u, p_u = _split(base)
  gd_s, p_s = _split(scanned)
  # One random stream, two layouts: the same weights.
  jax.tree.map(np.testing.assert_array_equal, stack_blocks(p_u), p_s)
  jax.tree.map(np.testing.assert_array_equal, unstack_blocks(p_s), p_u)
  np.testing.assert_allclose(scanned(TOKENS), base(TOKENS), atol=1e-5)
  g_u = stack_blocks(jax.grad(lambda p: _loss(gd_u, p))(p_u))
  g_s = jax.grad(lambda p: _loss(gd_s, p))(p_s)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-4), g_s, g_u)
  cfg = sampler.SamplingConfig(max_new_tokens=8)
  a = sampler.sample(gd_u, p_u, TOKENS, jnp.ones_like(TOKENS), jax.random.key(2), cfg=cfg,
                     group_size=2)
  b = sampler.sample(gd_s, p_s, TOKENS, jnp.ones_like(TOKENS), jax.random.key(2), cfg=cfg,
                     group_size=2)
  # The cache carried through the scan, the stacked prefix read inside it.
  np.testing.assert_array_equal(a.tokens, b.tokens)
  np.testing.assert_allclose(a.logp, b.logp, atol=1e-5)


def test_hf_round_trip_through_the_scanned_layout(tmp_path):
  base = init_model(get_preset("tiny", qk_norm=False), seed=2)
  hf.save(base, str(tmp_path / "a"))
  scanned = hf.load(str(tmp_path / "a"), scan_layers=True)
  assert "layers" in nnx.to_pure_dict(nnx.state(scanned, nnx.Param))
  np.testing.assert_allclose(scanned(TOKENS), base(TOKENS), atol=1e-5)
  hf.save(scanned, str(tmp_path / "b"))  # exported per layer, as transformers expects
  back = hf.load(str(tmp_path / "b"))
  np.testing.assert_array_equal(back(TOKENS), base(TOKENS))


def _update_program_size(n_layers: int, scan: bool) -> int:
  cfg = get_preset("tiny", n_layers=n_layers, scan_layers=scan)
  graphdef, abs_state = nnx.split(nnx.eval_shape(lambda: init_model(cfg, 0)), nnx.Param)
  abs_params = nnx.to_pure_dict(abs_state)
  grad = jax.jit(jax.grad(lambda p: _loss(graphdef, p)))
  return len(grad.lower(abs_params).as_text())


def test_scanned_program_does_not_grow_with_depth():
  unrolled = _update_program_size(28, False) / _update_program_size(4, False)
  scanned = _update_program_size(28, True) / _update_program_size(4, True)
  assert unrolled > 4, unrolled   # every block is its own code
  assert scanned < 1.05, scanned  # one block's code, whatever the depth


def test_blockwise_attention_matches_one_shot(monkeypatch):
  cfg = get_preset("tiny", n_heads=4, n_kv_heads=2)
  graphdef, params = _split(init_model(cfg, seed=3))
  tokens = jnp.asarray(np.random.default_rng(1).integers(2, 60, (2, 23)))
  mask = jnp.ones((2, 23), bool).at[0, :5].set(False)  # left padding in row 0

  def run(p):
    h, _ = nnx.merge(graphdef, p).hidden(tokens, kv_mask_BxS=mask)
    return h

  want, want_vjp = jax.vjp(run, params)
  monkeypatch.setattr(attention, "Q_BLOCK", 4)  # 23 tokens: 6 blocks, the last one padded
  got, got_vjp = jax.vjp(run, params)
  np.testing.assert_allclose(got[mask], want[mask], atol=1e-5)
  cot = jnp.where(mask[..., None], jnp.ones_like(want), 0.0)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-4), got_vjp(cot),
               want_vjp(cot))


def test_blockwise_attention_never_holds_the_full_scores(monkeypatch):
  """XLA's planned temporaries for forward + backward at T = 1,024 stay below one
  layer's one-shot scores (compile only, nothing runs)."""
  cfg = dataclasses.replace(get_preset("tiny"), n_heads=8, n_kv_heads=2, head_dim=8,
                            n_layers=1, max_seq_len=1024)
  graphdef, abs_state = nnx.split(nnx.eval_shape(lambda: init_model(cfg, 0)), nnx.Param)
  abs_params = nnx.to_pure_dict(abs_state)
  tokens = jax.ShapeDtypeStruct((2, 1024), jnp.int32)

  def temp_bytes():
    f = jax.jit(jax.grad(lambda p, t: jnp.sum(nnx.merge(graphdef, p).hidden(t)[0])))
    return f.lower(abs_params, tokens).compile().memory_analysis().temp_size_in_bytes

  scores = 2 * cfg.n_heads * 1024 * 1024 * 4
  monkeypatch.setattr(attention, "Q_BLOCK", 10 ** 9)
  one_shot = temp_bytes()
  monkeypatch.setattr(attention, "Q_BLOCK", 64)
  blockwise = temp_bytes()
  assert one_shot > scores            # the one-shot backward keeps the scores
  assert blockwise < scores / 2, (blockwise, scores)
