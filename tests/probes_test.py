"""Elicitation probes: hybrid decoding's two limits are the two models; ranks and log-probs
match a direct computation from the full logits."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rljax.analysis import probes
from rljax.rl import sampler
from rljax.model.config import get_preset
from rljax.model.transformer import init_model
from rljax.rl.logprobs import sequence_inputs


def _two_models():
  a = nnx.split(init_model(get_preset("tiny"), 0), nnx.Param)
  b = nnx.split(init_model(get_preset("tiny"), 1), nnx.Param)
  return a[0], nnx.to_pure_dict(a[1]), nnx.to_pure_dict(b[1])


PROMPTS = jnp.array([[0, 0, 2, 5, 6, 7], [2, 9, 8, 7, 6, 5]], jnp.int32)
MASK = (jnp.arange(6)[None] >= jnp.array([[2], [0]])).astype(jnp.int32)
CFG = sampler.SamplingConfig(max_new_tokens=10, temperature=1.0, eos_id=1, top_k=20)


def test_hybrid_limits_are_the_two_models():
  graphdef, base, expert = _two_models()
  key = jax.random.key(3)
  for threshold, params, routed in ((np.inf, base, 0.0), (-1.0, expert, 1.0)):
    out, routed_BxT = sampler.hybrid_sample(graphdef, base, expert, PROMPTS, MASK, key,
                                            np.float32(threshold), cfg=CFG, group_size=3)
    alone = sampler.sample(graphdef, params, PROMPTS, MASK, key, cfg=CFG, group_size=3)
    np.testing.assert_array_equal(out.tokens, alone.tokens)
    np.testing.assert_allclose(out.logp, alone.logp, atol=1e-5)
    np.testing.assert_array_equal(routed_BxT, routed * np.asarray(out.mask))
  out, routed_BxT = sampler.hybrid_sample(graphdef, base, expert, PROMPTS, MASK, key,
                                          np.float32(np.median(np.asarray(alone.entropy))),
                                          cfg=CFG, group_size=3)
  frac = float(routed_BxT.sum() / out.mask.sum())
  assert 0.0 < frac < 1.0  # a middle threshold routes some tokens, not all


def test_token_logp_rank_against_full_logits():
  graphdef, base, _ = _two_models()
  tokens = jnp.array([[5, 9, 1, 0], [7, 7, 7, 1]], jnp.int32)
  logp, rank = probes.token_logp_rank(graphdef, base, PROMPTS, MASK, tokens, 0.7)
  model = nnx.merge(graphdef, base)
  seq, pos, kv = sequence_inputs(PROMPTS, MASK, tokens)
  h, _ = model.hidden(seq, positions_BxT=pos, kv_mask_BxS=kv)
  z = np.asarray(model.logits(h[:, 5:9]), np.float64) / 0.7
  want_logp = np.take_along_axis(z, np.asarray(tokens)[..., None], -1)[..., 0] - np.log(
      np.exp(z).sum(-1))
  want_rank = (z > np.take_along_axis(z, np.asarray(tokens)[..., None], -1)).sum(-1)
  np.testing.assert_allclose(logp, want_logp, atol=1e-4)
  np.testing.assert_array_equal(rank, want_rank)
