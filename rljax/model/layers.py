"""Building blocks shared by every model family: RMSNorm, RoPE, SwiGLU, embedding.

Axis letters: B batch, T sequence, D model width, F MLP width, N query heads,
K KV heads, H head dim, V vocab. Every weight carries logical axis names in its
`out_sharding` metadata; `rljax.sharding` maps them onto mesh axes.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from rljax.model.config import ModelConfig, RopeScaling


def param(rngs: nnx.Rngs, shape, axes, std: float | None = None, init=None):
  """A float32 `nnx.Param` with logical axis names `axes`."""
  if init is not None:
    value = init
  elif std is None:
    value = jnp.ones(shape, jnp.float32)
  else:
    value = std * jax.random.normal(rngs.params(), shape, jnp.float32)
  # Sharding is applied by `rljax.sharding` when state is placed on a mesh,
  # so variables are created unsharded here.
  return nnx.Param(value, out_sharding=tuple(axes), eager_sharding=False)


class RMSNorm(nnx.Module):
  """y = x / sqrt(mean(x^2) + eps) * scale, computed in float32."""

  def __init__(self, dim: int, eps: float, axis_name: str, rngs: nnx.Rngs):
    self.scale = param(rngs, (dim,), (axis_name,))
    self.eps = eps

  def __call__(self, x):
    x32 = x.astype(jnp.float32)
    var = jnp.mean(jnp.square(x32), axis=-1, keepdims=True)
    return (x32 * jax.lax.rsqrt(var + self.eps) * self.scale[...]).astype(x.dtype)


def rope_inv_freq(head_dim: int, theta: float,
                  scaling: RopeScaling | None) -> jax.Array:
  """Inverse frequencies theta^(-2i/H); Llama-3 scaling as in HF `_compute_llama3_parameters`."""
  inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
  if scaling is None:
    return inv_freq
  low_wavelen = scaling.original_max_position / scaling.low_freq_factor
  high_wavelen = scaling.original_max_position / scaling.high_freq_factor
  wavelen = 2 * jnp.pi / inv_freq
  smooth = ((scaling.original_max_position / wavelen - scaling.low_freq_factor)
            / (scaling.high_freq_factor - scaling.low_freq_factor))
  smoothed = (1 - smooth) * inv_freq / scaling.factor + smooth * inv_freq
  out = jnp.where(wavelen > low_wavelen, inv_freq / scaling.factor, inv_freq)
  mid = (wavelen <= low_wavelen) & (wavelen >= high_wavelen)
  return jnp.where(mid, smoothed, out)


def rope_tables(positions_BxT, inv_freq):
  """(cos, sin) of the rotary angles, each [B, T, H/2], read by every layer's queries
  and keys."""
  angles_BxTxH2 = positions_BxT[..., None].astype(jnp.float32) * inv_freq
  # A product with the identity (exact at HIGHEST precision) makes XLA store each table
  # once: left element-wise, XLA:CPU fuses the sine and cosine into every consumer (2L
  # in the forward, more in the backward) and evaluates them again per head and layer.
  eye = jnp.eye(inv_freq.shape[0], dtype=jnp.float32)
  stored = lambda x: jnp.matmul(x, eye, precision=jax.lax.Precision.HIGHEST)
  return stored(jnp.cos(angles_BxTxH2)), stored(jnp.sin(angles_BxTxH2))


def apply_rope(x_BxTxNxH, rope):
  """Rotary embedding in the rotate-half layout used by HF Qwen/Llama; `rope` is
  `rope_tables`' (cos, sin)."""
  cos, sin = (t[:, :, None, :] for t in rope)
  x = x_BxTxNxH.astype(jnp.float32)
  x1, x2 = jnp.split(x, 2, axis=-1)
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x_BxTxNxH.dtype)


def project(equation: str, x, w, widens: bool = False):
  """einsum(equation, x, w) in x's dtype; for bfloat16, accumulated in float32 in the
  forward and in both gradients.

  That is the product the hardware runs fast: XLA:CPU multiplies bfloat16 operands into
  a float32 result with AVX-512-BF16 at about twice its float32 rate (311 vs 155
  GFLOP/s at 2,048^2 here), while a bfloat16 result takes a path no faster than float32
  (148), and autodiff's gradients of a float32-accumulated product multiply a float32
  cotangent by a bfloat16 operand (float32 speed). TPUs and GPUs accumulate in float32
  either way. Every index of `equation` appears in at least two of its three terms
  (batch axes in all three), so that each gradient is an einsum of the other two.

  `widens`: the output is wider than the input (the gate/up projection). The weight
  gradient then multiplies the input, transposed to [the axes the weight keeps, the
  summed axes] and written once behind an optimization barrier, by the gradient as it
  lies: both operands contract over contiguous axes. Left to itself XLA:CPU copies the
  wider gradient transposed ([2F, B*T] per layer), computing the element-wise SwiGLU
  gradient again for each of its consumers. The LM head does the same
  (`logprobs.head_logp_entropy`). The benchmark's update: 8-13% faster, the 94M
  model's 4-7% (benchmarks/README.md)."""
  if x.dtype != jnp.bfloat16 and not widens:
    return jnp.einsum(equation, x, w)
  return _project(equation, widens, x, w)


def _accumulated(equation, a, b, dtype):
  return jnp.einsum(equation, a, b, preferred_element_type=jnp.float32).astype(dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _project(equation, widens, x, w):
  return _accumulated(equation, x, w, x.dtype)


def _project_fwd(equation, widens, x, w):
  return _accumulated(equation, x, w, x.dtype), (x, w)


def _project_bwd(equation, widens, res, g):
  x, w = res
  ins, out = equation.split("->")
  xs, ws = ins.split(",")
  g = g.astype(x.dtype)
  dx = _accumulated(f"{out},{ws}->{xs}", g, w, x.dtype)
  if widens:
    kept_first = sorted(range(len(xs)), key=lambda i: xs[i] not in ws)
    x = jax.lax.optimization_barrier(x.transpose(kept_first))
    xs = "".join(xs[i] for i in kept_first)
  return dx, _accumulated(f"{xs},{out}->{ws}", x, g, w.dtype)


_project.defvjp(_project_fwd, _project_bwd)


class SwiGLU(nnx.Module):
  """down(silu(gate(x)) * up(x))."""

  def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
    std = cfg.d_model ** -0.5
    self.gate = param(rngs, (cfg.d_model, cfg.mlp_dim), ("embed", "mlp"), std)
    self.up = param(rngs, (cfg.d_model, cfg.mlp_dim), ("embed", "mlp"), std)
    self.down = param(rngs, (cfg.mlp_dim, cfg.d_model), ("mlp", "embed"),
                      cfg.mlp_dim ** -0.5 / (2 * cfg.n_layers) ** 0.5)

  def __call__(self, x_BxTxD):
    dt = x_BxTxD.dtype
    # One matmul for both projections (stacked, not concatenated, so that a sharded
    # F axis stays where it is): one larger product, and in the backward one transpose
    # of the activations instead of two.
    w_Dx2xF = jnp.stack([self.gate[...], self.up[...]], axis=1).astype(dt)
    gu_BxTx2xF = project("btd,dcf->btcf", x_BxTxD, w_Dx2xF, widens=True)
    return project("btf,fd->btd", gated_silu(gu_BxTx2xF), self.down[...].astype(dt))


@jax.custom_vjp
def gated_silu(gu_xx2xF):
  """silu(gate) * up of the stacked [..., 2, F] gate/up product (Shazeer 2020, "GLU
  Variants Improve Transformer").

  Its gradient is written as one stacked [..., 2, F] array: autodiff of the two slices
  pads each slice's gradient back to [..., 2, F] and adds them (two pads of the
  activations per layer: 34 of the update's ~1,600 core-ms on the benchmark workload).
  Computed in float32, rounded once to the input's dtype."""
  return _gated_silu_fwd(gu_xx2xF)[0]


def _gated_silu_fwd(gu_xx2xF):
  g, u = gu_xx2xF[..., 0, :].astype(jnp.float32), gu_xx2xF[..., 1, :].astype(jnp.float32)
  return (jax.nn.silu(g) * u).astype(gu_xx2xF.dtype), gu_xx2xF


def _gated_silu_bwd(gu_xx2xF, dout_xxF):
  """d/dg silu(g) u = u s (1 + g (1 - s)), s = sigmoid(g); d/du = silu(g)."""
  g, u = gu_xx2xF[..., 0, :].astype(jnp.float32), gu_xx2xF[..., 1, :].astype(jnp.float32)
  dout, s = dout_xxF.astype(jnp.float32), jax.nn.sigmoid(g)
  d_xx2xF = jnp.stack([dout * u * s * (1 + g * (1 - s)), dout * g * s], axis=-2)
  return (d_xx2xF.astype(gu_xx2xF.dtype),)


gated_silu.defvjp(_gated_silu_fwd, _gated_silu_bwd)
