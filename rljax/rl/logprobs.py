"""Token log-probs and entropies from a model, in float32, chunked along T.

Memory stays O(B x chunk x V) instead of O(B x T x V): the LM head is applied to
one chunk of hidden states at a time under `jax.checkpoint`, so the backward
pass recomputes each chunk's logits instead of storing all of them.

Axis letters: B rollouts, P prompt length, T completion length, D width, V vocab,
J chunks of C tokens along T.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def entropy_from_logits(logits_xV):
  """H = logsumexp(z) - sum softmax(z) z, in nats (verl `entropy_from_logits`).

  rljax's one entropy function: the training forward's, the sampler's (of its
  filtered logits, where masked entries have softmax 0) and the probes' all call it.
  """
  z = logits_xV.astype(jnp.float32)
  lse = jax.nn.logsumexp(z, axis=-1)
  return lse - jnp.sum(jax.nn.softmax(z, axis=-1) * z, axis=-1)


def token_logp_entropy(logits_xV, tokens_x):
  """log softmax(z)[token] and the entropy of softmax(z), float32."""
  z = logits_xV.astype(jnp.float32)
  logp_xV = jax.nn.log_softmax(z, axis=-1)
  logp_x = jnp.take_along_axis(logp_xV, tokens_x[..., None], axis=-1)[..., 0]
  return logp_x, entropy_from_logits(z)


def sequence_inputs(prompt_BxP, prompt_mask_BxP, completion_BxT, position_offset_B=None):
  """Tokens, RoPE positions and key mask of [left-padded prompt | completion]; the
  positions start at `position_offset_B` (default 0) at the first real token."""
  tokens = jnp.concatenate([prompt_BxP, completion_BxT], axis=1)
  kv_mask = jnp.concatenate(
      [prompt_mask_BxP.astype(bool), jnp.ones(completion_BxT.shape, bool)], axis=1)
  positions = jnp.maximum(jnp.cumsum(kv_mask, axis=1) - 1, 0)
  if position_offset_B is not None:
    positions = positions + position_offset_B[:, None].astype(positions.dtype)
  return tokens, positions, kv_mask


def completion_logp_entropy(model, prompt_BxP, prompt_mask_BxP, completion_BxT,
                            *, temperature: float = 1.0, chunk: int = 128,
                            position_offset_B=None):
  """Per-token log pi(y_t | x, y_<t) and entropy at `temperature`, each [B, T].

  Logits are divided by the sampling temperature before the softmax (verl
  `dp_actor.py`), so these equal the sampler's log-probs when no top-k/top-p
  truncation is used.
  """
  tokens, positions, kv_mask = sequence_inputs(prompt_BxP, prompt_mask_BxP, completion_BxT,
                                               position_offset_B)
  h_BxLxD, _ = model.hidden(tokens, positions_BxT=positions, kv_mask_BxS=kv_mask)
  p, t = prompt_BxP.shape[1], completion_BxT.shape[1]
  h_BxTxD = h_BxLxD[:, p - 1:p + t - 1]  # position i predicts token i + 1
  w_DxV = model.head_weight_DxV()

  chunk = min(chunk, t)
  n_chunks = -(-t // chunk)
  pad = n_chunks * chunk - t
  h_pad = jnp.pad(h_BxTxD, ((0, 0), (0, pad), (0, 0)))
  y_pad = jnp.pad(completion_BxT, ((0, 0), (0, pad)))
  b, _, d = h_pad.shape
  h_JxBxCxD = h_pad.reshape(b, n_chunks, chunk, d).swapaxes(0, 1)
  y_JxBxC = y_pad.reshape(b, n_chunks, chunk).swapaxes(0, 1)

  @jax.checkpoint
  def one_chunk(h_BxCxD, y_BxC):
    logits = (h_BxCxD.astype(jnp.float32) @ w_DxV.astype(jnp.float32)) / temperature
    return token_logp_entropy(logits, y_BxC)

  logp_JxBxC, ent_JxBxC = jax.lax.map(lambda a: one_chunk(*a), (h_JxBxCxD, y_JxBxC))
  unchunk = lambda x: x.swapaxes(0, 1).reshape(b, n_chunks * chunk)[:, :t]
  return unchunk(logp_JxBxC), unchunk(ent_JxBxC)
