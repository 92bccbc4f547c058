"""Chunked float32 log-probs equal the unchunked log-softmax of the full forward; the
head's own VJP (log-probs and entropies of one chunk) equals autodiff of the plain
formulas and hand-derived values."""

import jax
import jax.numpy as jnp
import numpy as np

from rljax.rl.logprobs import completion_logp_entropy, head_logp_entropy, sequence_inputs
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


def _plain_head(h_xD, w_DxV, y_x, temperature):
  logp_xV = jax.nn.log_softmax(h_xD @ w_DxV / temperature)
  p_xV = jnp.exp(logp_xV)
  return jnp.take_along_axis(logp_xV, y_x[..., None], -1)[..., 0], -(p_xV * logp_xV).sum(-1)


def test_head_gradients_are_autodiffs():
  """dz = g_logp (onehot(y) - p) - g_H p (z - E_p[z]) through z = h w / tau, checked
  against autodiff of log_softmax and -sum p log p; logits with a wide range, a row with
  one dominant entry, two temperatures."""
  k = jax.random.split(jax.random.key(0), 5)
  h_xD = jax.random.normal(k[0], (3, 5, 8))
  h_xD = h_xD.at[1, 2].set(10.0)
  w_DxV = 3.0 * jax.random.normal(k[1], (8, 40))
  y_x = jax.random.randint(k[2], (3, 5), 0, 40)
  g_logp, g_ent = jax.random.normal(k[3], (3, 5)), jax.random.normal(k[4], (3, 5))
  for tau in (1.0, 0.7):
    for got, want in zip(head_logp_entropy(h_xD, w_DxV, y_x, tau),
                         _plain_head(h_xD, w_DxV, y_x, tau)):
      np.testing.assert_allclose(got, want, atol=1e-5)
    loss = lambda f: lambda h, w: (f(h, w, y_x, tau)[0] * g_logp
                                   + f(h, w, y_x, tau)[1] * g_ent).sum()
    for got, want in zip(jax.grad(loss(head_logp_entropy), (0, 1))(h_xD, w_DxV),
                         jax.grad(loss(_plain_head), (0, 1))(h_xD, w_DxV)):
      np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-5)


def test_head_gradient_by_hand():
  """One token, width 1 (h = 1), so z = w / tau and dw = dz / tau. Three logits
  (0, log 2, log 5 -> p = 1/8, 2/8, 5/8), token 1: dlogp/dz = (-1/8, 6/8, -5/8);
  E_p[z] = (2 log 2 + 5 log 5) / 8, dH/dz_j = -p_j (z_j - E_p[z])."""
  p, ez = np.array([1, 2, 5]) / 8, (2 * np.log(2) + 5 * np.log(5)) / 8
  for tau in (1.0, 0.5):
    w_1xV = tau * jnp.log(jnp.array([[1.0, 2.0, 5.0]]))
    h, y = jnp.ones((1, 1)), jnp.array([1])
    grad = lambda i: jax.grad(lambda w: head_logp_entropy(h, w, y, tau)[i].sum())(w_1xV)[0]
    np.testing.assert_allclose(grad(0), np.array([-1 / 8, 6 / 8, -5 / 8]) / tau, rtol=1e-6)
    np.testing.assert_allclose(grad(1), -p * (np.log([1, 2, 5]) - ez) / tau, rtol=1e-5,
                               atol=1e-7)


def test_head_weight_gradient_reads_the_cotangent_as_it_is():
  """What the custom VJP's weight gradient is for: XLA:CPU's compiled dw reads the
  [16, 512] cotangent as it is, with no [512, 16] copy of it (autodiff's writes one)."""
  k = jax.random.split(jax.random.key(1), 3)
  h_xD, w_DxV = jax.random.normal(k[0], (2, 8, 16)), jax.random.normal(k[1], (16, 512))
  y_x = jax.random.randint(k[2], (2, 8), 0, 512)
  loss = lambda f: lambda w: sum(s.sum() for s in f(h_xD, w, y_x, 1.0))
  compiled = lambda f: jax.jit(jax.grad(loss(f))).lower(w_DxV).compile().as_text()
  assert "f32[512,16]" not in compiled(head_logp_entropy)
  assert "f32[512,16]" in compiled(_plain_head)  # so the check can fail
