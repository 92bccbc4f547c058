"""`ModelConfig.attention`: forwards over many tokens through `jax.nn.dot_product_attention`
give rljax's own attention's log-probs, entropies and gradients (shared prompts, left
padding, odd lengths, scanned layers, a prefill into a longer cache), decode steps keep
rljax's own, and the cuDNN setting hands the GPU kernel what it needs (even lengths) or
refuses clearly."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rljax.config import ModelSection
from rljax.model.config import ModelConfig, get_preset
from rljax.model.kv_cache import KVCache
from rljax.model.transformer import init_model
from rljax.rl import sampler
from tests.shared_prompt_test import G
from tests.shared_prompt_test import _batch as _shared_prompt_batch
from tests.shared_prompt_test import _logp_and_grads as _scores_and_grads


def _batch(**kw):
  """shared_prompt_test's batch (one prompt left-padded), 8 completion tokens by
  default: a grouped completion forward then runs 7, an odd length."""
  return _shared_prompt_batch(**{"t": 8, **kw})


@pytest.mark.parametrize("scan_layers, group", [(False, 1), (True, G)])
def test_xla_kernel_gives_rljax_scores_and_gradients(scan_layers, group):
  cfg = get_preset("tiny", scan_layers=scan_layers)
  batch = _batch()
  (want_logp, want_ent), want_g = _scores_and_grads(cfg, group, batch)
  (logp, ent), g = _scores_and_grads(dataclasses.replace(cfg, attention="xla"), group, batch)
  np.testing.assert_allclose(logp, want_logp, atol=2e-5, rtol=1e-4)
  np.testing.assert_allclose(ent, want_ent, atol=2e-5, rtol=1e-4)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-4), g, want_g)


def test_prefill_into_a_longer_cache_then_decode_equals_the_full_forward():
  """The prefill (4 tokens into 16 slots, 12 of them unwritten) takes the kernel; the
  decode steps after it read the cache it wrote."""
  cfg = get_preset("tiny", attention="xla")
  graphdef, state = nnx.split(init_model(cfg, 1), nnx.Param)
  params = nnx.to_pure_dict(state)
  run = jax.jit(lambda p, tok, cache, start, mask: nnx.merge(graphdef, p)(
      tok, cache=cache, cache_start=start, kv_mask_BxS=mask))
  tok = jax.random.randint(jax.random.key(1), (3, 7), 0, 64)
  full = init_model(dataclasses.replace(cfg, attention="rljax"), 1)(tok)
  slot_BxS = jnp.arange(16)[None].repeat(3, 0)
  prefill, cache = run(params, tok[:, :4], KVCache.zeros(cfg, 3, 16), 0, slot_BxS < 4)
  steps = [prefill]
  for t in range(4, 7):
    logits, cache = run(params, tok[:, t:t + 1], cache, t, slot_BxS <= t)
    steps.append(logits)
  np.testing.assert_allclose(jnp.concatenate(steps, 1), full, atol=2e-5)


def test_sampler_draws_the_same_completions_with_either_kernel():
  prompts = jnp.array([[0, 0, 2, 5, 6, 7], [2, 9, 8, 7, 6, 5]], jnp.int32)
  mask = (jnp.arange(6)[None] >= jnp.array([[2], [0]])).astype(jnp.int32)
  cfg = sampler.SamplingConfig(max_new_tokens=8, temperature=0.8, eos_id=1)
  out = {}
  for kernel in ("rljax", "xla"):
    graphdef, state = nnx.split(init_model(get_preset("tiny", attention=kernel), 0), nnx.Param)
    out[kernel] = sampler.sample(graphdef, nnx.to_pure_dict(state), prompts, mask,
                                 jax.random.key(2), cfg=cfg, group_size=3)
  np.testing.assert_array_equal(out["xla"].tokens, out["rljax"].tokens)
  np.testing.assert_allclose(out["xla"].logp, out["rljax"].logp, atol=2e-5)


def test_cudnn_setting_calls_the_gpu_kernel_for_forwards_only(monkeypatch):
  """What a GPU would be handed, seen on a CPU: every forward over several tokens calls
  `jax.nn.dot_product_attention(implementation="cudnn")` once per layer with a
  [B, 1, T, S] mask, T and S even; decode steps do not call it. (The call itself runs JAX's XLA
  version here: cuDNN needs the GPU.)"""
  calls = []
  real = jax.nn.dot_product_attention

  def spy(q, k, v, **kw):
    calls.append((kw["implementation"], q.shape, k.shape, kw["mask"].shape))
    return real(q, k, v, **{**kw, "implementation": "xla"})

  monkeypatch.setattr(jax.nn, "dot_product_attention", spy)
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  cfg = get_preset("tiny", dtype="bfloat16", attention="cudnn")
  prompt, mask, tokens = _batch(p=5, t=5)
  (logp, _), _ = _scores_and_grads(cfg, G, (prompt, mask, tokens))
  assert np.isfinite(logp).all()
  b, p, t = len(tokens), prompt.shape[1], tokens.shape[1]
  q, n, kv, h = b // G, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
  # The prompts' forward (Q prompts, 5 slots), then the completions (4 tokens) reading
  # them (9 slots); odd lengths padded to even ones.
  assert (p, t) == (5, 5)
  assert calls == [("cudnn", (q, 6, n, h), (q, 6, kv, h), (q, 1, 6, 6))] * cfg.n_layers + [
      ("cudnn", (b, 4, n, h), (b, 10, kv, h), (b, 1, 4, 10))] * cfg.n_layers
  calls.clear()
  graphdef, state = nnx.split(init_model(cfg, 0), nnx.Param)
  sampler.sample(graphdef, nnx.to_pure_dict(state), prompt[::G], mask[::G], jax.random.key(0),
                 cfg=sampler.SamplingConfig(max_new_tokens=4, eos_id=1), group_size=G)
  assert [c[1][1] for c in calls] == [p + 1] * cfg.n_layers  # the prefill only


def test_bad_kernels_are_refused_with_the_valid_names():
  with pytest.raises(ValueError,
                     match=r"attention 'flash' is unknown; valid: \['cudnn', 'rljax', 'xla'\]"):
    get_preset("tiny", attention="flash")
  with pytest.raises(ValueError, match="'cudnn' needs dtype 'bfloat16'"):
    ModelSection(attention="cudnn")
  assert ModelSection(attention="cudnn", dtype="bfloat16").layout()["attention"] == "cudnn"
  model = init_model(get_preset("tiny", dtype="bfloat16", attention="cudnn"), 0)
  with pytest.raises(ValueError, match="needs an NVIDIA GPU; this backend is 'cpu'"):
    model(jnp.zeros((1, 4), jnp.int32))
  assert isinstance(get_preset("tiny"), ModelConfig) and get_preset("tiny").attention == "rljax"
