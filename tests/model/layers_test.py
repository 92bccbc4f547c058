"""`layers.project`: float32 as the plain einsum; bfloat16 accumulated in float32, with
gradients whose products also multiply bfloat16 operands into float32 results."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.model.layers import project

EQ = "btd,dnh->btnh"


def _inputs():
  kx, kw = jax.random.split(jax.random.key(0))
  return jax.random.normal(kx, (2, 3, 16)), jax.random.normal(kw, (16, 2, 4))


def test_float32_is_the_einsum():
  x, w = _inputs()
  np.testing.assert_array_equal(project(EQ, x, w), jnp.einsum(EQ, x, w))


def test_bfloat16_values_and_gradients_match_float32_math_on_rounded_inputs():
  x, w = _inputs()
  x16, w16 = x.astype(jnp.bfloat16), w.astype(jnp.bfloat16)
  y = project(EQ, x16, w16)
  assert y.dtype == jnp.bfloat16
  ref = jnp.einsum(EQ, x16.astype(jnp.float32), w16.astype(jnp.float32))
  np.testing.assert_array_equal(y, ref.astype(jnp.bfloat16))   # one rounding, at the end
  g_BxTxNxH = jax.random.normal(jax.random.key(1), y.shape).astype(jnp.bfloat16)
  dx, dw = jax.vjp(lambda a, b: project(EQ, a, b), x16, w16)[1](g_BxTxNxH)
  g = g_BxTxNxH.astype(jnp.float32)
  dx_ref = jnp.einsum("btnh,dnh->btd", g, w16.astype(jnp.float32))
  dw_ref = jnp.einsum("btd,btnh->dnh", x16.astype(jnp.float32), g)
  assert dx.dtype == dw.dtype == jnp.bfloat16
  np.testing.assert_array_equal(dx, dx_ref.astype(jnp.bfloat16))
  np.testing.assert_array_equal(dw, dw_ref.astype(jnp.bfloat16))


@pytest.mark.parametrize("dtype", [jnp.bfloat16])
def test_every_product_of_the_bfloat16_gradient_takes_bfloat16_operands(dtype):
  """The speed comes from the operand types: no dot may see a float32 operand."""
  x, w = (a.astype(dtype) for a in _inputs())
  loss = lambda a, b: jnp.sum(project(EQ, a, b).astype(jnp.float32) ** 2)
  hlo = jax.jit(jax.grad(loss, (0, 1))).lower(x, w).as_text()
  dots = [l for l in hlo.splitlines() if "dot_general" in l]
  assert len(dots) == 3  # forward, d/dx, d/dw
  for line in dots:
    operand_types = re.findall(r"tensor<[0-9x]*x(\w+)>", line.split("->")[0].split(":")[-1])
    assert operand_types == ["bf16", "bf16"], line
    assert "f32" in line.split("->")[-1], line   # accumulated into float32
