"""Chunked float32 log-probs equal the unchunked log-softmax of the full forward."""

import jax
import jax.numpy as jnp
import numpy as np

from rljax.rl.logprobs import completion_logp_entropy, sequence_inputs
from rljax.model.config import get_preset
from rljax.model.transformer import init_model


def test_chunked_equals_direct():
  model = init_model(get_preset("tiny"), 0)
  prompt = jnp.array([[0, 2, 5, 6], [2, 9, 8, 7]], jnp.int32)
  pmask = jnp.array([[0, 1, 1, 1], [1, 1, 1, 1]], jnp.int32)
  comp = jax.random.randint(jax.random.key(0), (2, 7), 4, 64)
  tokens, pos, kv = sequence_inputs(prompt, pmask, comp)
  logits = model(tokens, positions_BxT=pos, kv_mask_BxS=kv)[:, 3:10] / 0.8
  direct = jnp.take_along_axis(jax.nn.log_softmax(logits), comp[..., None], -1)[..., 0]
  for chunk in (1, 3, 7, 128):
    logp, ent = completion_logp_entropy(model, prompt, pmask, comp, temperature=0.8, chunk=chunk)
    np.testing.assert_allclose(logp, direct, atol=1e-5)
    p = jax.nn.softmax(logits)
    np.testing.assert_allclose(ent, -(p * jnp.log(p)).sum(-1), atol=1e-5)
