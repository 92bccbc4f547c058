"""`attention._softmax_over_parts`: the decode window's prefix and block share one
softmax without concatenating their scores."""

import jax
import jax.numpy as jnp
import numpy as np

from rljax.model import attention


def _parts(key, widths=(5, 3)):
  keys = jax.random.split(key, len(widths))
  return [4.0 * jax.random.normal(k, (2, 3, 4, w)) for k, w in zip(keys, widths)]


def test_parts_share_one_softmax_in_values_and_gradients():
  parts = _parts(jax.random.key(0))
  parts[0] = parts[0].at[0, 0, 0].set(attention._NEG_INF)  # a row masked in one part
  whole = jax.nn.softmax(jnp.concatenate(parts, -1), axis=-1)
  got = jnp.concatenate(attention._softmax_over_parts(parts), -1)
  np.testing.assert_allclose(got, whole, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-6)
  weights = jax.random.normal(jax.random.key(1), whole.shape)
  loss_split = lambda ps: (jnp.concatenate(attention._softmax_over_parts(ps), -1) * weights).sum()
  loss_whole = lambda ps: (jax.nn.softmax(jnp.concatenate(ps, -1), -1) * weights).sum()
  for g_split, g_whole in zip(jax.grad(loss_split)(parts), jax.grad(loss_whole)(parts)):
    np.testing.assert_allclose(g_split, g_whole, rtol=1e-5, atol=1e-6)


def test_a_fully_masked_row_is_uniform_as_in_one_softmax():
  parts = [jnp.full((1, 1, 1, w), attention._NEG_INF) for w in (5, 3)]
  got = jnp.concatenate(attention._softmax_over_parts(parts), -1)
  np.testing.assert_allclose(got, np.full((1, 1, 1, 8), 1 / 8), rtol=1e-6)


def test_two_parts_are_never_concatenated():
  parts = _parts(jax.random.key(2))
  eqns = jax.make_jaxpr(attention._softmax_over_parts)(parts).jaxpr.eqns
  assert "concatenate" not in {e.primitive.name for e in eqns}
  # One part is the library softmax itself (the training forward's path is unchanged).
  one = _parts(jax.random.key(3), (7,))
  np.testing.assert_array_equal(attention._softmax_over_parts(one)[0],
                                jax.nn.softmax(one[0], axis=-1))
