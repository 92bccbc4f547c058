"""`layers.project`: float32 as the plain einsum; bfloat16 accumulated in float32, with
gradients whose products also multiply bfloat16 operands into float32 results; a
widening projection's weight gradient from the transposed input, with the same values."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.model.layers import gated_silu, project

EQ = "btd,dnh->btnh"
# (equation, x shape, w shape, d/dx equation, d/dw equation): a projection, and
# attention's scores with batch axes in all three terms.
CASES = [(EQ, (2, 3, 16), (16, 2, 4), "btnh,dnh->btd", "btd,btnh->dnh"),
         ("bkmh,bkhs->bkms", (2, 2, 3, 8), (2, 2, 8, 5), "bkms,bkhs->bkmh", "bkmh,bkms->bkhs")]


def _inputs(x_shape=(2, 3, 16), w_shape=(16, 2, 4)):
  kx, kw = jax.random.split(jax.random.key(0))
  return jax.random.normal(kx, x_shape), jax.random.normal(kw, w_shape)


def test_float32_is_the_einsum():
  x, w = _inputs()
  np.testing.assert_array_equal(project(EQ, x, w), jnp.einsum(EQ, x, w))


@pytest.mark.parametrize("eq,x_shape,w_shape,eq_dx,eq_dw", CASES)
def test_bfloat16_values_and_gradients_match_float32_math_on_rounded_inputs(
    eq, x_shape, w_shape, eq_dx, eq_dw):
  x, w = _inputs(x_shape, w_shape)
  x16, w16 = x.astype(jnp.bfloat16), w.astype(jnp.bfloat16)
  y = project(eq, x16, w16)
  assert y.dtype == jnp.bfloat16
  ref = jnp.einsum(eq, x16.astype(jnp.float32), w16.astype(jnp.float32))
  np.testing.assert_array_equal(y, ref.astype(jnp.bfloat16))   # one rounding, at the end
  g_bf16 = jax.random.normal(jax.random.key(1), y.shape).astype(jnp.bfloat16)
  dx, dw = jax.vjp(lambda a, b: project(eq, a, b), x16, w16)[1](g_bf16)
  g = g_bf16.astype(jnp.float32)
  dx_ref = jnp.einsum(eq_dx, g, w16.astype(jnp.float32))
  dw_ref = jnp.einsum(eq_dw, x16.astype(jnp.float32), g)
  assert dx.dtype == dw.dtype == jnp.bfloat16
  np.testing.assert_array_equal(dx, dx_ref.astype(jnp.bfloat16))
  np.testing.assert_array_equal(dw, dw_ref.astype(jnp.bfloat16))


def test_every_product_of_the_bfloat16_gradient_takes_bfloat16_operands():
  """The speed comes from the operand types: no dot may see a float32 operand."""
  x, w = (a.astype(jnp.bfloat16) for a in _inputs())
  loss = lambda a, b: jnp.sum(project(EQ, a, b).astype(jnp.float32) ** 2)
  hlo = jax.jit(jax.grad(loss, (0, 1))).lower(x, w).as_text()
  dots = [l for l in hlo.splitlines() if "dot_general" in l]
  assert len(dots) == 3  # forward, d/dx, d/dw
  for line in dots:
    operand_types = re.findall(r"tensor<[0-9x]*x(\w+)>", line.split("->")[0].split(":")[-1])
    assert operand_types == ["bf16", "bf16"], line
    assert "f32" in line.split("->")[-1], line   # accumulated into float32


@pytest.mark.parametrize("dtype,tol", [(jnp.float32, 1e-6), (jnp.bfloat16, 2e-2)])
def test_gated_silu_value_and_stacked_gradient_match_autodiff(dtype, tol):
  # The custom VJP against autodiff of silu(gate) * up on the two slices (float32
  # math), at gates across the sigmoid's range.
  gu = (jax.random.normal(jax.random.key(0), (2, 3, 2, 8)) * 4).astype(dtype)
  dout = jax.random.normal(jax.random.key(1), (2, 3, 8)).astype(dtype)
  plain = lambda x: jax.nn.silu(x[..., 0, :]) * x[..., 1, :]
  y, vjp = jax.vjp(gated_silu, gu)
  y_ref, vjp_ref = jax.vjp(plain, gu.astype(jnp.float32))
  assert y.dtype == dtype and vjp(dout)[0].dtype == dtype
  np.testing.assert_allclose(np.float32(y), y_ref, rtol=tol, atol=tol)
  np.testing.assert_allclose(np.float32(vjp(dout)[0]), vjp_ref(dout.astype(jnp.float32))[0],
                             rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype,tol", [(jnp.float32, 1e-5), (jnp.bfloat16, 1e-2)])
def test_widening_projection_changes_the_weight_gradient_layout_not_its_values(dtype, tol):
  # `widens` transposes the input for the weight gradient; every value stays that of
  # the plain projection (float32: its einsums; bfloat16: the accumulated path).
  eq = "btd,dcf->btcf"
  x, w = (a.astype(dtype) for a in _inputs((2, 3, 8), (8, 2, 5)))
  g = jax.random.normal(jax.random.key(1), (2, 3, 2, 5)).astype(dtype)
  y, vjp = jax.vjp(lambda a, b: project(eq, a, b, widens=True), x, w)
  y_ref, vjp_ref = jax.vjp(lambda a, b: project(eq, a, b), x, w)
  np.testing.assert_array_equal(np.float32(y), np.float32(y_ref))
  for got, want in zip(vjp(g), vjp_ref(g)):
    assert got.dtype == want.dtype == dtype
    np.testing.assert_allclose(np.float32(got), np.float32(want), rtol=tol, atol=tol)


def test_widening_projection_multiplies_the_input_transposed_by_the_gradient_as_it_lies():
  # The weight gradient [D, C, F] is one product of the input laid out [D, B, T] (kept
  # axis first, written once behind a barrier) by the gradient [B, T, C, F]: both
  # operands contract over contiguous axes, so XLA copies no [C*F, B*T] transpose.
  x, w = _inputs((2, 3, 8), (8, 2, 5))
  loss = lambda a, b: jnp.sum(project("btd,dcf->btcf", a, b, widens=True) ** 2)
  hlo = jax.jit(jax.grad(loss, 1)).lower(x, w).as_text()
  barrier = re.search(r"(%\S+) = stablehlo.optimization_barrier \S+ : tensor<8x2x3xf32>", hlo)
  assert barrier, hlo
  dw = [l for l in hlo.splitlines() if "dot_general" in l and f"{barrier.group(1)}," in l]
  assert len(dw) == 1, hlo
  assert "contracting_dims = [1, 2] x [0, 1]" in dw[0], dw[0]
  assert "tensor<8x2x5xf32>" in dw[0].split("->")[-1], dw[0]
