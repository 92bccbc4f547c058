"""A group's prompt run once (`logprobs.completion_logp_entropy(group=G)`) changes how
much is computed, not what: the log-probs, entropies and gradients of every row equal
the full forward's, in every layout, and the step functions take the shared path
exactly when a batch's rows come in groups of one prompt."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rljax import sharding
from rljax.model import attention
from rljax.model.config import get_preset
from rljax.model.transformer import init_model
from rljax.rl import train_state, update
from rljax.config import OptimConfig
from rljax.rl.logprobs import completion_logp_entropy, prompt_groups
from rljax.rl.losses import LossConfig

G = 3


def _batch(q=2, p=6, t=9, seed=0, vocab=64):
  rng = np.random.default_rng(seed)
  prompt_QxP = rng.integers(2, vocab, (q, p)).astype(np.int32)
  mask_QxP = np.ones((q, p), np.int32)
  mask_QxP[0, :2] = 0  # left padding in one prompt only: rows differ in length
  prompt_QxP[0, :2] = 0
  tokens_BxT = rng.integers(2, vocab, (q * G, t)).astype(np.int32)
  return np.repeat(prompt_QxP, G, 0), np.repeat(mask_QxP, G, 0), tokens_BxT


def _logp_and_grads(cfg, group, batch, temperature=0.7, **kw):
  graphdef, state = nnx.split(init_model(cfg, seed=4), nnx.Param)
  params = nnx.to_pure_dict(state)
  weights_BxT = jax.random.normal(jax.random.key(5), batch[2].shape)

  def loss(p):
    logp, ent = completion_logp_entropy(nnx.merge(graphdef, p), *batch,
                                        temperature=temperature, group=group, **kw)
    return jnp.sum(logp * weights_BxT) + 0.3 * jnp.sum(ent), (logp, ent)

  (_, scores), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
  return scores, grads


@pytest.mark.parametrize("overrides", [
    dict(), dict(scan_layers=True),
    pytest.param(dict(scan_layers=True, remat="full"), marks=pytest.mark.slow)])
def test_shared_prompt_gives_the_full_forwards_logprobs_and_gradients(overrides):
  cfg = get_preset("tiny", **overrides)
  batch = _batch()
  (want_logp, want_ent), want_g = _logp_and_grads(cfg, 1, batch)
  (logp, ent), g = _logp_and_grads(cfg, G, batch)
  np.testing.assert_allclose(logp, want_logp, atol=2e-5, rtol=1e-4)
  np.testing.assert_allclose(ent, want_ent, atol=2e-5, rtol=1e-4)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-4), g, want_g)


def test_shared_prompt_in_bfloat16_is_as_close_to_float32_as_the_full_forward():
  """bfloat16 rounds the two paths differently; each is as far from float32 as the other."""
  batch = _batch()
  (ref, _), ref_g = _logp_and_grads(get_preset("tiny"), 1, batch)
  bf16 = get_preset("tiny", dtype="bfloat16")
  err = {}
  for group in (1, G):
    (logp, _), g = _logp_and_grads(bf16, group, batch)
    err[group] = (np.abs(logp - ref).max(),
                  max(jax.tree.leaves(jax.tree.map(lambda a, b: float(
                      np.linalg.norm(a - b) / np.linalg.norm(b)), g, ref_g))))
  assert err[G][0] < 2 * err[1][0] + 1e-3 and err[G][1] < 2 * err[1][1] + 1e-3, err
  assert err[1][0] < 0.1 and err[1][1] < 0.1, err  # bfloat16's size, not a broken path


def test_shared_prompt_with_one_token_and_blockwise_attention(monkeypatch):
  cfg = get_preset("tiny")
  one = _batch(t=1)
  np.testing.assert_allclose(_logp_and_grads(cfg, G, one)[0][0],
                             _logp_and_grads(cfg, 1, one)[0][0], atol=2e-5)
  # 12 completion tokens in blocks of 5 queries: the blocks start after the prompt.
  batch = _batch(t=13, seed=1)
  (want, _), want_g = _logp_and_grads(cfg, 1, batch)
  monkeypatch.setattr(attention, "Q_BLOCK", 5)
  (got, _), got_g = _logp_and_grads(cfg, G, batch)
  np.testing.assert_allclose(got, want, atol=2e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-4),
               got_g, want_g)


def test_shared_prompt_computes_less():
  """XLA's FLOP count of forward + backward falls by about the prompt's share of the
  tokens times (G - 1) / G (here 16 of 24 tokens, G = 8)."""
  cfg = dataclasses.replace(get_preset("tiny"), d_model=64, mlp_dim=256)
  graphdef, state = nnx.split(nnx.eval_shape(lambda: init_model(cfg, 0)), nnx.Param)
  params = nnx.to_pure_dict(state)
  sds = lambda *s: jax.ShapeDtypeStruct(s, jnp.int32)

  def flops(group):
    loss = lambda p, pr, m, y: jnp.sum(completion_logp_entropy(
        nnx.merge(graphdef, p), pr, m, y, group=group)[0])
    return jax.jit(jax.grad(loss)).lower(params, sds(16, 16), sds(16, 16),
                                         sds(16, 8)).compile().cost_analysis()["flops"]

  ratio = flops(8) / flops(1)
  assert 0.3 < ratio < 0.55, ratio  # the blocks' share: (8 + 16/8) / 24 = 0.42


def test_prompt_groups_reads_the_host_batch():
  prompt, mask, _ = _batch(q=4)
  assert prompt_groups(prompt, mask, G) == G
  assert prompt_groups(prompt, mask, G, batch_devices=2) == G   # 2 whole groups each
  assert prompt_groups(prompt, mask, G, batch_devices=3) == 1   # a group would straddle
  assert prompt_groups(prompt, mask, 1) == 1
  assert prompt_groups(prompt[:-1], mask[:-1], G) == 1          # 11 rows: no groups of 3
  other = prompt.copy()
  other[4, -1] += 1                                              # one row's prompt differs
  assert prompt_groups(other, mask, G) == 1
  other_mask = mask.copy()
  other_mask[G, 0] = 0                                           # one row's mask differs
  assert prompt_groups(prompt, other_mask, G) == 1
  shuffled = np.random.default_rng(0).permutation(len(prompt))
  assert prompt_groups(prompt[shuffled], mask[shuffled], G) == 1


def test_step_functions_share_the_prompt_only_for_grouped_batches(monkeypatch):
  cfg = get_preset("tiny")
  seen = []
  real = update.rl_update

  def spy(graphdef, optimizer, loss_cfg, temperature, on_policy, weighted, with_scores, group,
          *args):
    seen.append(group)
    return real(graphdef, optimizer, loss_cfg, temperature, on_policy, weighted, with_scores,
                group, *args)

  monkeypatch.setattr(update, "rl_update", spy)
  mesh = sharding.make_mesh(1, 1, 1, devices=jax.devices()[:1])
  opt = train_state.make_optimizer(OptimConfig(lr=1e-3), 10)
  with jax.set_mesh(mesh):
    graphdef, abs_state = train_state.abstract_model(cfg)
    sh = train_state.state_shardings(graphdef, abs_state, opt, mesh, with_reference=True)
    params = train_state.init_params(cfg, 0, sh.params)
    state = train_state.new_state(params, opt, sh, 0, with_reference=True)
    fns = update.make_step_fns(graphdef, opt, sh, mesh, LossConfig(), 1.0, False,
                               on_policy=True, weighted=False, with_scores=True, group_size=G)
    prompt, mask, tokens = _batch()
    b = len(tokens)
    mb = {"prompt": prompt, "prompt_mask": mask, "tokens": tokens,
          "mask": np.ones(tokens.shape, np.float32), "old_logp": np.zeros(tokens.shape, np.float32),
          "adv": np.ones(tokens.shape, np.float32), "sft_mask": np.zeros(b, np.float32),
          "offpolicy": np.zeros(b, np.float32), "is_weight": np.ones(tokens.shape, np.float32)}
    mb["ref_logp"], _ = fns.score(state.params, {k: mb[k] for k in update.SEQUENCE_KEYS})
    coefs = {k: np.float32(v) for k, v in dict(entropy=0.0, kl=0.1, sft=0.0).items()}
    state, m, (logp, _) = fns.update(state, mb, jax.random.key(0), coefs)
    # Before the update, the shared and the full forward score the same log-probs.
    np.testing.assert_allclose(logp, mb["ref_logp"], atol=2e-5)
    rows = np.random.default_rng(1).permutation(b)
    fns.update(state, {k: v[rows] for k, v in mb.items()}, jax.random.key(1), coefs)
  assert seen == [G, 1]
