"""Chunked float32 log-probs equal the unchunked log-softmax of the full forward; the
head's and the log-prob / entropy's own VJPs equal autodiff of the plain formulas."""

import jax
import jax.numpy as jnp
import numpy as np

from rljax.rl.logprobs import (completion_logp_entropy, head_logits, sequence_inputs,
                               token_logp_entropy)
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


def _plain_logp_entropy(z_xV, y_x):
  logp_xV = jax.nn.log_softmax(z_xV)
  p_xV = jnp.exp(logp_xV)
  return jnp.take_along_axis(logp_xV, y_x[..., None], -1)[..., 0], -(p_xV * logp_xV).sum(-1)


def test_logp_entropy_gradient_is_autodiffs():
  """dz = g_logp (onehot(y) - p) - g_H p (z - E_p[z]), checked against autodiff of
  log_softmax and -sum p log p; logits with a wide range, a row with one dominant entry."""
  k = jax.random.split(jax.random.key(0), 4)
  z_xV = 6.0 * jax.random.normal(k[0], (3, 5, 40))
  z_xV = z_xV.at[1, 2, 7].set(80.0)
  y_x = jax.random.randint(k[1], (3, 5), 0, 40)
  g_logp, g_ent = jax.random.normal(k[2], (3, 5)), jax.random.normal(k[3], (3, 5))
  for f in (token_logp_entropy, _plain_logp_entropy):
    np.testing.assert_allclose(f(z_xV, y_x)[0], _plain_logp_entropy(z_xV, y_x)[0], atol=1e-5)
    np.testing.assert_allclose(f(z_xV, y_x)[1], _plain_logp_entropy(z_xV, y_x)[1], atol=1e-5)
  loss = lambda f: lambda z: (f(z, y_x)[0] * g_logp + f(z, y_x)[1] * g_ent).sum()
  np.testing.assert_allclose(jax.grad(loss(token_logp_entropy))(z_xV),
                             jax.grad(loss(_plain_logp_entropy))(z_xV), atol=1e-5, rtol=1e-5)
  # By hand, one row of three logits (0, log 2, log 5 -> p = 1/8, 2/8, 5/8), token 1:
  # dlogp/dz = (-1/8, 6/8, -5/8); E_p[z] = (2 log 2 + 5 log 5) / 8,
  # dH/dz_j = -p_j (z_j - E_p[z]).
  z = jnp.log(jnp.array([1.0, 2.0, 5.0]))
  p, ez = np.array([1, 2, 5]) / 8, (2 * np.log(2) + 5 * np.log(5)) / 8
  np.testing.assert_allclose(jax.grad(lambda z: token_logp_entropy(z, jnp.array(1))[0])(z),
                             [-1 / 8, 6 / 8, -5 / 8], rtol=1e-6)
  np.testing.assert_allclose(jax.grad(lambda z: token_logp_entropy(z, jnp.array(1))[1])(z),
                             -p * (np.log([1, 2, 5]) - ez), rtol=1e-5, atol=1e-7)


def test_head_gradients_are_autodiffs_and_the_cotangent_is_not_transposed():
  k = jax.random.split(jax.random.key(1), 3)
  h_xD, w_DxV = jax.random.normal(k[0], (2, 8, 16)), jax.random.normal(k[1], (16, 512))
  dz_xV = jax.random.normal(k[2], (2, 8, 512))
  loss = lambda f: lambda h, w: (f(h, w) * dz_xV).sum()
  for got, want in zip(jax.grad(loss(head_logits), (0, 1))(h_xD, w_DxV),
                       jax.grad(loss(jnp.matmul), (0, 1))(h_xD, w_DxV)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  # What the custom VJP is for: XLA:CPU's compiled weight gradient reads the [16, 512]
  # cotangent as it is, with no [512, 16] copy of it (autodiff's writes one).
  hlo = jax.jit(jax.grad(loss(head_logits), 1)).lower(h_xD, w_DxV).compile().as_text()
  assert "f32[512,16]" not in hlo, hlo
