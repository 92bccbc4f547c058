"""Token log-probs and entropies from a model, in float32, chunked along T.

Memory stays O(B x chunk x V) instead of O(B x T x V): the LM head is applied to
one chunk of hidden states at a time (`head_logp_entropy`), and the backward pass
recomputes each chunk's logits instead of storing all of them.

Rows that share their prompt in groups (GRPO's G completions of a prompt) can run the
prompt once per group (`group`): the prompt's forward on Q = B / G rows, then the
completions' forward attending to its keys and values (`kv_cache.SharedPrefix`). The
same function of the parameters, at a fraction of the cost (the prompt's share of the
tokens, times (G - 1) / G), in the forward and the backward alike.

Axis letters: B rollouts, Q prompts, G rows per prompt, P prompt length, T completion
length, D width, V vocab, J chunks of C tokens along T.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from rljax import sharding
from rljax.model.kv_cache import KVCache, SharedPrefix


def entropy_from_logits(logits_xV):
  """H = logsumexp(z) - sum softmax(z) z, in nats (verl `entropy_from_logits`).

  rljax's one entropy function: the training forward's (`head_logp_entropy`), the
  sampler's (of its filtered logits, where masked entries have softmax 0) and the
  probes' all come to `_softmax_stats`.
  """
  lse_x, mean_x = _softmax_stats(logits_xV.astype(jnp.float32))
  return lse_x - mean_x


def _softmax_stats(z_xV):
  """(logsumexp(z), E_p[z]) for p = softmax(z) over the last axis: the max, then one
  pass that sums exp(z - max) and exp(z - max) * z. (jax.nn's log_softmax, logsumexp
  and softmax each take their own passes over [x, V]: at a real vocabulary the loss's
  element-wise work, not its matmul, was most of the head's time.)"""
  max_x1 = jax.lax.stop_gradient(z_xV.max(axis=-1, keepdims=True))
  e_xV = jnp.exp(z_xV - max_x1)
  sum_x = e_xV.sum(axis=-1)
  return max_x1[..., 0] + jnp.log(sum_x), (e_xV * z_xV).sum(axis=-1) / sum_x


def token_logp_entropy(logits_xV, tokens_x):
  """log softmax(z)[token] and the entropy of softmax(z), float32, from logits already
  made (the probes'). The training forward's, which never stores the logits and has
  its own VJP, is `head_logp_entropy`."""
  return _logp_entropy_stats(logits_xV.astype(jnp.float32), tokens_x)[0]


def _logp_entropy_stats(z_xV, tokens_x):
  """((log-probs, entropies), (lse, E_p[z])) of float32 logits."""
  lse_x, mean_x = _softmax_stats(z_xV)
  logp_x = jnp.take_along_axis(z_xV, tokens_x[..., None], axis=-1)[..., 0] - lse_x
  return (logp_x, lse_x - mean_x), (lse_x, mean_x)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def head_logp_entropy(h_xD, w_DxV, tokens_x, temperature: float):
  """Log-probs and entropies of softmax(h @ w / temperature) (the LM head and the loss's
  statistics of one chunk of tokens), float32, with its own VJP.

  The forward keeps only (lse, E_p[z]) per token beside its inputs: the backward
  recomputes z = h @ w / temperature (the logits are never stored) and, with
  p = exp(z - lse), d logp_y / dz = onehot(y) - p and dH / dz = -p (z - E_p[z]), forms
  dz = g_logp onehot(y) - p (g_logp + g_H (z - E_p[z])) in one element-wise pass over
  [x, V] with no reduction (autodiff of the softmaxes takes several, and under
  `jax.checkpoint` its backward asks for the max and the exp-sum again, which it is left
  to XLA to drop). The weight gradient is dw = (h^T) dz / temperature with the small
  h^T materialised first behind an
  `optimization_barrier`: autodiff's h^T dz made XLA:CPU write the [x, V] cotangent
  transposed (a strided copy at about 0.6 GB/s, more than the product's time) and run a
  transposed-operand product. Checked against autodiff of the plain formulas in
  tests/logprobs_test.py."""
  return _head_fwd(h_xD, w_DxV, tokens_x, temperature)[0]


def _head_fwd(h_xD, w_DxV, tokens_x, temperature):
  scores, (lse_x, mean_x) = _logp_entropy_stats((h_xD @ w_DxV) / temperature, tokens_x)
  return scores, (h_xD, w_DxV, tokens_x, lse_x, mean_x)


def _head_bwd(temperature, res, g):
  h_xD, w_DxV, tokens_x, lse_x, mean_x = res
  d, v = w_DxV.shape
  g_logp_x1, g_ent_x1 = g[0][..., None], g[1][..., None]
  z_xV = (h_xD @ w_DxV) / temperature
  p_xV = jnp.exp(z_xV - lse_x[..., None])
  onehot_xV = tokens_x[..., None] == jnp.arange(v)
  dz_xV = (jnp.where(onehot_xV, g_logp_x1, 0.0)
           - p_xV * (g_logp_x1 + g_ent_x1 * (z_xV - mean_x[..., None]))) / temperature
  h_DxR = jax.lax.optimization_barrier(h_xD.reshape(-1, d).T)  # R: all the rows of x
  return dz_xV @ w_DxV.T, h_DxR @ dz_xV.reshape(-1, v), None


head_logp_entropy.defvjp(_head_fwd, _head_bwd)


def left_padded_positions(mask_BxL):
  """RoPE positions of left-padded rows: 0 at the first real token (pads take 0)."""
  return jnp.maximum(jnp.cumsum(mask_BxL, axis=1) - 1, 0)


def prompt_forward(model, prompt_QxP, prompt_mask_QxP):
  """Each (left-padded) prompt's forward on its own row: (hidden states [Q, P, D], its
  keys and values as a KVCache of P slots), what a `SharedPrefix` reads. The training
  forward's grouped path and the sampler's prefill both start here."""
  q, p = prompt_QxP.shape
  mask_QxP = prompt_mask_QxP.astype(bool)
  cache = KVCache.zeros(model.cfg, q, p, jnp.dtype(model.cfg.dtype))
  return model.hidden(prompt_QxP, positions_BxT=left_padded_positions(mask_QxP),
                      kv_mask_BxS=mask_QxP, cache=cache, cache_start=0)


def sequence_inputs(prompt_BxP, prompt_mask_BxP, completion_BxT, position_offset_B=None):
  """Tokens, RoPE positions and key mask of [left-padded prompt | completion]; the
  positions start at `position_offset_B` (default 0) at the first real token."""
  tokens = jnp.concatenate([prompt_BxP, completion_BxT], axis=1)
  kv_mask = jnp.concatenate(
      [prompt_mask_BxP.astype(bool), jnp.ones(completion_BxT.shape, bool)], axis=1)
  positions = left_padded_positions(kv_mask)
  if position_offset_B is not None:
    positions = positions + position_offset_B[:, None].astype(positions.dtype)
  return tokens, positions, kv_mask


def completion_logp_entropy(model, prompt_BxP, prompt_mask_BxP, completion_BxT,
                            *, temperature: float = 1.0, chunk: int = 128,
                            position_offset_B=None, group: int = 1):
  """Per-token log pi(y_t | x, y_<t) and entropy at `temperature`, each [B, T].

  Logits are divided by the sampling temperature before the softmax (verl
  `dp_actor.py`), so these equal the sampler's log-probs when no top-k/top-p
  truncation is used. `group` > 1 says that rows q*G .. q*G + G - 1 share one prompt
  (and prompt mask): it then runs once per group (`prompt_groups`, static). The rows
  run as `model.cfg.forward_chains` independent computations (`in_chains`).
  """
  fn = functools.partial(_completion_logp_entropy, model, temperature=temperature,
                         chunk=chunk, group=group)
  mesh = sharding.ambient_mesh()
  devices = 1 if mesh is None else sharding.batch_devices(mesh)
  chains = row_chains(len(prompt_BxP), group, devices, model.cfg.forward_chains)
  return in_chains(fn, chains, devices, prompt_BxP, prompt_mask_BxP, completion_BxT,
                   position_offset_B)


def row_chains(b: int, group: int, devices: int, most: int) -> int:
  """The most chains (<= `most`) that split each device's share of `b` rows into equal
  runs of whole groups; 1 when there is no such split."""
  if b % (devices * group):
    return 1
  units = b // (devices * group)
  return max(c for c in range(1, min(most, units) + 1) if units % c == 0)


def in_chains(fn, chains: int, devices: int, *rows_B):
  """`fn(*rows_B)` (arrays [B, ...] or None in, a tuple of [B, ...] out) computed as
  `chains` independent calls on parts of the rows: part c holds the c-th run of every
  device's rows (a reshape [B] -> [devices, chains, B / (devices x chains)], so a batch
  split over the devices stays where it is), and the outputs are put back in row order.

  Row by row the same function. What changes is the program: XLA:CPU runs one device's
  ops one at a time, except ops with no path between them, which its executor runs side
  by side. A small model's forward and backward are mostly single-threaded element-wise
  ops and products too small to split, so two chains keep both cores busy
  (benchmarks/README.md: the training case 7-12% faster on the workload; a 94M model's
  update, whose products already split over the cores, 2-4% slower).
  """
  if chains == 1:
    return fn(*rows_B)
  part = lambda x, c: x.reshape(devices, chains, -1, *x.shape[1:])[:, c].reshape(-1, *x.shape[1:])
  outs = [fn(*(None if x is None else part(x, c) for x in rows_B)) for c in range(chains)]
  merge = lambda *ys: jnp.stack([y.reshape(devices, -1, *y.shape[1:]) for y in ys], axis=1
                                ).reshape(-1, *ys[0].shape[1:])
  return tuple(merge(*ys) for ys in zip(*outs))


def _completion_logp_entropy(model, prompt_BxP, prompt_mask_BxP, completion_BxT,
                             position_offset_B, *, temperature: float, chunk: int, group: int):
  if group > 1:
    if position_offset_B is not None:
      raise ValueError("a shared prompt (group > 1) starts every row at position 0; "
                       "position_offset_B needs group = 1")
    h_BxTxD = _grouped_hidden(model, prompt_BxP, prompt_mask_BxP, completion_BxT, group)
  else:
    tokens, positions, kv_mask = sequence_inputs(prompt_BxP, prompt_mask_BxP, completion_BxT,
                                                 position_offset_B)
    h_BxLxD, _ = model.hidden(tokens, positions_BxT=positions, kv_mask_BxS=kv_mask)
    p = prompt_BxP.shape[1]
    h_BxTxD = h_BxLxD[:, p - 1:p + completion_BxT.shape[1] - 1]  # i predicts token i + 1
  t = completion_BxT.shape[1]
  w_DxV = model.head_weight_DxV()

  chunk = min(chunk, t)
  n_chunks = -(-t // chunk)
  pad = n_chunks * chunk - t
  h_pad = jnp.pad(h_BxTxD, ((0, 0), (0, pad), (0, 0)))
  y_pad = jnp.pad(completion_BxT, ((0, 0), (0, pad)))
  b, _, d = h_pad.shape
  h_JxBxCxD = h_pad.reshape(b, n_chunks, chunk, d).swapaxes(0, 1)
  y_JxBxC = y_pad.reshape(b, n_chunks, chunk).swapaxes(0, 1)

  def one_chunk(h_BxCxD, y_BxC):
    return head_logp_entropy(h_BxCxD.astype(jnp.float32), w_DxV.astype(jnp.float32), y_BxC,
                             temperature)

  logp_JxBxC, ent_JxBxC = jax.lax.map(lambda a: one_chunk(*a), (h_JxBxCxD, y_JxBxC))
  unchunk = lambda x: x.swapaxes(0, 1).reshape(b, n_chunks * chunk)[:, :t]
  return unchunk(logp_JxBxC), unchunk(ent_JxBxC)


def _grouped_hidden(model, prompt_BxP, prompt_mask_BxP, completion_BxT, group: int):
  """The hidden states [B, T, D] that predict the completion tokens, with each group's
  prompt run once: the prompts' forward on [Q, P] fills their keys and values, and the
  completions' forward reads them as a `SharedPrefix`. The last completion token
  predicts nothing, so it is not run. The grouping is a reshape of the rows [B] ->
  [Q, G], so a batch split over devices by whole groups stays where it is."""
  b, p = prompt_BxP.shape
  if b % group:
    raise ValueError(f"{b} rows do not split into groups of {group}")
  q = b // group
  prompt_QxP = prompt_BxP.reshape(q, group, p)[:, 0]
  mask_QxP = prompt_mask_BxP.reshape(q, group, p)[:, 0].astype(bool)
  h_QxPxD, cache = prompt_forward(model, prompt_QxP, mask_QxP)
  prefix = SharedPrefix(cache=cache, group=group)
  last_Bx1xD = prefix.rows(h_QxPxD[:, -1:])  # left-padded: the last slot is the last token
  t = completion_BxT.shape[1]
  if t == 1:
    return last_Bx1xD
  prompt_len_Bx1 = prefix.rows(mask_QxP.sum(axis=1, keepdims=True))
  kv_mask_BxS = jnp.concatenate([prefix.rows(mask_QxP), jnp.ones((b, t - 1), bool)], axis=1)
  h_rest_BxTxD, _ = model.hidden(completion_BxT[:, :-1],
                                 positions_BxT=prompt_len_Bx1 + jnp.arange(t - 1),
                                 kv_mask_BxS=kv_mask_BxS, cache=prefix, cache_start=p)
  return jnp.concatenate([last_Bx1xD, h_rest_BxTxD], axis=1)


def prompt_groups(prompt_BxP, prompt_mask_BxP, group: int, batch_devices: int = 1) -> int:
  """`group` if a host batch's rows come in runs of `group` with one prompt and mask
  each, whole runs on each of `batch_devices` (Q divisible by it), else 1: what
  `completion_logp_entropy` may be told."""
  b = len(prompt_BxP)
  if group <= 1 or b % group or (b // group) % batch_devices:
    return 1
  for x in (prompt_BxP, prompt_mask_BxP):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return 1  # another process's rows: not this host's to read
    x_QxGxP = np.asarray(x).reshape(b // group, group, -1)
    if not (x_QxGxP == x_QxGxP[:, :1]).all():
      return 1
  return group
