"""On-device sampling: prefill once per prompt, decode in a `lax.while_loop`.

Each prompt is prefilled once and its KV cache is repeated for its G samples.
Decoding never returns to the host: the loop stops when every sequence has
emitted EOS or T tokens were generated. Everything is shape-static, so one
compiled sampler serves every training step.

Under a mesh (`jax.set_mesh`) the sampler lays itself out: the weights are gathered
once per call into `sharding.SAMPLE_RULES` (split over model, whole on fsdp, so no
FSDP all-gather per decoded token), and the prompts, the KV cache, the loop's
buffers and the outputs are split over data x fsdp on their rollout axis (the cache's
KV heads also over model). A prompt count the mesh does not divide is padded up to one
it does (`sharding.rows_to_split`), so the rows are still split, never computed whole on
every device.

Axis letters: Q prompts, G samples per prompt, B = Q*G rollouts, P prompt
length (left-padded), T max completion length, V vocab.
"""

from __future__ import annotations

import dataclasses
import functools

import flax.struct
import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import PartitionSpec as P

from rljax import sharding
from rljax.model.kv_cache import DecodeWindow, KVCache, SharedPrefix
from rljax.rl.logprobs import entropy_from_logits, prompt_forward
from rljax.rl.selection import filter_logits, select

DECODE_BLOCK = 64  # decode steps per segment (see `decode_segments`)
MAX_SEGMENTS = 8


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
  """Token selection. temperature > 0; top_k = 0 and top_p = 1 switch them off."""

  max_new_tokens: int
  temperature: float = 1.0
  top_k: int = 0
  top_p: float = 1.0
  eos_id: int = 1
  pad_id: int = 0

  def __post_init__(self):
    if self.temperature <= 0:
      raise ValueError(f"sampling.temperature must be > 0, got {self.temperature}")
    if not 0 < self.top_p <= 1:
      raise ValueError(f"sampling.top_p must be in (0, 1], got {self.top_p}")
    if self.top_k < 0:
      raise ValueError(f"sampling.top_k must be >= 0, got {self.top_k}")
    if self.max_new_tokens < 1:
      raise ValueError(f"sampling.max_new_tokens must be >= 1, got {self.max_new_tokens}")


@flax.struct.dataclass
class Rollout:
  """Sampled completions.

  Attributes:
    tokens: [B, T] completion tokens (pad after EOS).
    mask: [B, T] 1.0 on generated tokens up to and including EOS.
    logp: [B, T] log-prob of each sampled token under the sampling distribution (the
      filtered one, from the decode path): the trainer uses it only for the
      sampler/trainer mismatch metric and the optional rollout correction.
    entropy: [B, T] entropy (nats) of the sampling distribution at each step.
  """

  tokens: jax.Array
  mask: jax.Array
  logp: jax.Array
  entropy: jax.Array


@flax.struct.dataclass
class _LoopState:
  """Carry of the decode loop: step t, each model's cache block (the current segment's
  slots) and logits for step t, outputs."""

  t: jax.Array
  caches: tuple
  logits: tuple
  done_B: jax.Array
  tokens_BxT: jax.Array
  logp_BxT: jax.Array
  ent_BxT: jax.Array
  routed_BxT: jax.Array


@functools.partial(jax.jit, static_argnames=("graphdef", "cfg", "group_size"))
def sample(graphdef, params, prompt_QxP, prompt_mask_QxP, key, *,
           cfg: SamplingConfig, group_size: int) -> Rollout:
  """Draws `group_size` completions for each prompt; row q*G + g is sample g of prompt q."""
  rollout, _ = _generate(graphdef, (params,), prompt_QxP, prompt_mask_QxP, key, cfg,
                         group_size, route=None)
  return rollout


@functools.partial(jax.jit, static_argnames=("graphdef", "cfg", "group_size"))
def hybrid_sample(graphdef, base_params, expert_params, prompt_QxP, prompt_mask_QxP, key,
                  threshold, *, cfg: SamplingConfig, group_size: int):
  """Decodes with the base model, handing each step whose base entropy (of the
  filtered sampling distribution) exceeds `threshold` to the expert (the RL model).

  The elicitation probe of docs/algorithms.md §13: if routing a few uncertain positions
  to the RL model recovers most of its gain, RL selected among paths the base
  already had. Returns (Rollout, routed [B, T]: 1.0 where the expert chose).
  """
  route = lambda base_logits_BxV: entropy_from_logits(filter_logits(base_logits_BxV, cfg)) > threshold
  return _generate(graphdef, (base_params, expert_params), prompt_QxP, prompt_mask_QxP, key,
                   cfg, group_size, route=route)


def decode_segments(t_max: int) -> list[tuple[int, int]]:
  """(first step, steps) of each decode segment: `DECODE_BLOCK` steps each, or more so
  that there are at most `MAX_SEGMENTS` (each segment is one compiled loop body)."""
  block = max(DECODE_BLOCK, -(-t_max // MAX_SEGMENTS))
  return [(t0, min(block, t_max - t0)) for t0 in range(0, t_max, block)]


def _generate(graphdef, params_list, prompt_QxP, prompt_mask_QxP, key, cfg, group_size,
              route):
  """Prefill + decode loop over one or two models (all fed the same chosen tokens).

  With one model it samples from it. With two, `route(logits of model 0)` says per
  row whether model 1's logits choose this step's token.

  The decode runs in segments (`decode_segments`): segment j's loop carries only its
  own block of cache slots and attends to the prompts' slots (once per prompt) and the
  earlier segments' blocks as a read-only prefix (`kv_cache.DecodeWindow`), so a step
  reads the filled prefix, not the whole budget, and never copies the cache.
  """
  models = [nnx.merge(graphdef, sampling_weights(graphdef, p)) for p in params_list]
  # A prompt count the mesh does not divide is padded with copies of the last prompt
  # (`sharding.rows_to_split`), whose rows start finished and are dropped at the end:
  # each row draws the same numbers either way (one uniform per row and step).
  q_real = prompt_QxP.shape[0]
  q = sharding.rows_to_split(q_real)
  prompt_QxP, prompt_mask_QxP = (jnp.pad(x, ((0, q - q_real), (0, 0)), mode="edge")
                                 for x in (prompt_QxP, prompt_mask_QxP))
  p, t_max = prompt_QxP.shape[1], cfg.max_new_tokens
  b, b_real = q * group_size, q_real * group_size
  prompts, logits, kv_mask_BxS, prompt_len_B = _prefill(models, prompt_QxP, prompt_mask_QxP,
                                                        t_max, group_size)
  # Every step's rotary tables, made once rather than at each step.
  rope_BxT = models[0].rope(prompt_len_B[:, None] + jnp.arange(t_max))
  zeros_BxT = sharding.constrain_batch(jnp.zeros((b, t_max), jnp.float32))
  state = _LoopState(
      t=jnp.array(0, jnp.int32), caches=(), logits=tuple(logits),
      done_B=sharding.constrain_batch(jnp.arange(b) >= b_real),
      tokens_BxT=sharding.constrain_batch(jnp.full((b, t_max), cfg.pad_id, jnp.int32)),
      logp_BxT=zeros_BxT, ent_BxT=zeros_BxT, routed_BxT=zeros_BxT)

  def body(st: _LoopState, windows):
    routed_B = jnp.zeros((b,), bool) if route is None else route(st.logits[0])
    logits_BxV = st.logits[0] if route is None else jnp.where(
        routed_B[:, None], st.logits[1], st.logits[0])
    tok_B, logp_B, ent_B = select(jax.random.fold_in(key, st.t), logits_BxV, cfg)
    live_B = ~st.done_B
    tok_B = jnp.where(live_B, tok_B, cfg.pad_id)
    tokens = st.tokens_BxT.at[:, st.t].set(tok_B)
    logp = st.logp_BxT.at[:, st.t].set(jnp.where(live_B, logp_B, 0.0))
    ent = st.ent_BxT.at[:, st.t].set(jnp.where(live_B, ent_B, 0.0))
    routed = st.routed_BxT.at[:, st.t].set((live_B & routed_B).astype(jnp.float32))
    rope_Bx1 = tuple(jax.lax.dynamic_slice_in_dim(x, st.t, 1, axis=1) for x in rope_BxT)
    blocks, logits = [], []
    for model, (prompt, prefix), block in zip(models, windows, st.caches):
      h_Bx1xD, window = model.hidden(
          tok_B[:, None], rope=rope_Bx1, kv_mask_BxS=kv_mask_BxS,
          cache=DecodeWindow(prompt=prompt, prefix=prefix, block=block), cache_start=p + st.t)
      blocks.append(_constrain_cache(window.block))
      logits.append(sharding.constrain_batch(model.logits(h_Bx1xD[:, 0])))
    return _LoopState(t=st.t + 1, caches=tuple(blocks), logits=tuple(logits),
                      done_B=st.done_B | (tok_B == cfg.eos_id), tokens_BxT=tokens,
                      logp_BxT=logp, ent_BxT=ent, routed_BxT=routed)

  cfg0 = models[0].cfg
  prompts = [SharedPrefix(cache=_layered(c, cfg0), group=group_size) for c in prompts]
  done = [() for _ in models]  # each model's blocks of the finished segments
  for t0, steps in decode_segments(t_max):
    # The barrier keeps XLA from sinking the blocks' per-layer slices into the loop
    # body, where they would be copied at every step.
    windows = jax.lax.optimization_barrier(list(zip(prompts, done)))
    state = state.replace(caches=tuple(
        _constrain_cache(_layered(KVCache.zeros(m.cfg, b, steps, jnp.dtype(m.cfg.dtype)), cfg0))
        for m in models))
    state = jax.lax.while_loop(
        lambda st, end=t0 + steps: (st.t < end) & ~jnp.all(st.done_B),
        functools.partial(body, windows=windows), state)
    done = [blocks + (block,) for blocks, block in zip(done, state.caches)]
  mask = completion_mask(state.tokens_BxT, cfg.eos_id)
  rollout = Rollout(tokens=state.tokens_BxT, mask=mask,
                    logp=state.logp_BxT * mask, entropy=state.ent_BxT * mask)
  rows = (rollout, state.routed_BxT * mask)
  return jax.tree.map(lambda x: sharding.constrain_batch(x[:b_real]), rows)


def _layered(cache: KVCache, model_cfg) -> KVCache:
  """Unrolled layers read and write the loop's slots as per-layer arrays: reading layer
  l of a stacked array inside the loop copies it (the block's 8 slices took 90 of a
  64-token call's 635 busy core-ms, benchmarks/README.md)."""
  return cache if model_cfg.scan_layers else cache.per_layer()


def _constrain_cache(cache: KVCache) -> KVCache:
  mesh = sharding.ambient_mesh()
  per_layer = isinstance(cache.k, tuple)
  b, kv_heads = cache.k[0].shape[:2] if per_layer else cache.k.shape[1:3]
  if mesh is None or b % sharding.batch_devices(mesh):
    return cache
  spec = sharding.cache_spec(kv_heads, mesh)
  if per_layer:
    return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, P(*spec[1:])), cache)
  return KVCache(k=jax.lax.with_sharding_constraint(cache.k, spec),
                 v=jax.lax.with_sharding_constraint(cache.v, spec))


@functools.partial(jax.jit, static_argnames=("graphdef", "max_new_tokens", "group_size"))
def prefill(graphdef, params, prompt_QxP, prompt_mask_QxP, *, max_new_tokens: int,
            group_size: int):
  """The decode loop's starting point as one cache per row: (KV cache of P + T slots,
  the prompt's entries repeated for its G samples, the rest zero; next-token logits
  [B, V]), laid out as `sample` does when the mesh divides Q (this entry does not pad:
  its rows are the caller's)."""
  model = nnx.merge(graphdef, sampling_weights(graphdef, params))
  prompts, logits, _, _ = _prefill([model], prompt_QxP, prompt_mask_QxP, max_new_tokens,
                                   group_size)
  b, p = len(logits[0]), prompt_QxP.shape[1]
  cache = KVCache.zeros(model.cfg, b, p + max_new_tokens, jnp.dtype(model.cfg.dtype))
  return _constrain_cache(cache.put(prompts[0].repeat(group_size), 0)), logits[0]


def sampling_weights(graphdef, params: dict) -> dict:
  """The weights as the decode loop reads them, made once per call: the blocks' matmul
  weights and biases in the compute dtype (the forward casts them at every use, so the
  values are the same and a bfloat16 model gathers half the bytes), norms, embedding
  and LM head in float32 (the log-probs stay float32), laid out by `SAMPLE_RULES`."""
  params = cast_for_sampling(params, nnx.merge(graphdef, params).cfg.dtype)
  return sharding.constrain_params(graphdef, params, sharding.SAMPLE_RULES)


def cast_for_sampling(params: dict, dtype) -> dict:
  """The blocks' matmul weights and biases in `dtype`; norms, embedding and head as they are."""
  def cast(path, x):
    keys = [str(getattr(k, "key", k)) for k in path]
    in_block = keys[0] in ("blocks", "layers") and not any("norm" in k for k in keys)
    return x.astype(dtype) if in_block else x
  return jax.tree_util.tree_map_with_path(cast, params)


def _prefill(models, prompt_QxP, prompt_mask_QxP, t_max: int, group_size: int):
  """Runs each model's forward once per prompt.

  Returns (each model's prompt cache [L, Q, ..., P], kept once per prompt: the decode
  reads it as a `SharedPrefix`; next-token logits [B, V] per model, repeated for the G
  samples; kv_mask [B, P + T]; prompt lengths [B]).
  """
  prompt_QxP, prompt_mask_QxP = map(sharding.constrain_batch, (prompt_QxP, prompt_mask_QxP))
  q = len(prompt_QxP)
  prompt_mask = prompt_mask_QxP.astype(bool)
  prompts, logits = [], []
  for model in models:
    h_QxPxD, cache = prompt_forward(model, prompt_QxP, prompt_mask)
    prompts.append(_constrain_cache(cache))
    logits.append(sharding.constrain_batch(
        jnp.repeat(model.logits(h_QxPxD[:, -1]), group_size, axis=0)))
  kv_mask_QxS = jnp.concatenate([prompt_mask, jnp.ones((q, t_max), bool)], axis=1)
  kv_mask_BxS = sharding.constrain_batch(jnp.repeat(kv_mask_QxS, group_size, axis=0))
  prompt_len_B = jnp.repeat(jnp.sum(prompt_mask, axis=1), group_size)
  return prompts, logits, kv_mask_BxS, prompt_len_B


def completion_mask(tokens_BxT, eos_id: int):
  """1.0 on tokens up to and including the first EOS; all T tokens if none."""
  is_eos = tokens_BxT == eos_id
  eos_before = jnp.cumsum(is_eos, axis=1) - is_eos
  return (eos_before == 0).astype(jnp.float32)
