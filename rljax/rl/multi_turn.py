"""Multi-turn rollouts: the model acts, the environment answers, the KV cache carries on.

Each trajectory (row b; G rows per environment seed) starts from its prompt (the
reset's observation, formatted), then alternates turns and observations: the model
decodes until the action delimiter's tokens, EOS or the turn's token budget; the
environment is stepped with the turn's action (`envs.base.guarded_step`: a raising or
hanging environment ends the episode scored 0); its answer is tokenised and
prefilled into the same cache, only those new tokens. Nothing is re-prefilled.

Cache layout: compact, per row. A token's slot is its position in its own row
(`KVCache.write_rows`): the prompt's real tokens at slots [0, its length), then
every turn's and observation's tokens right after the row's last one, so a row's
slots hold its compacted trajectory and nothing else, and causality by slot is its
whole mask: the keys a row attends to, and their RoPE positions, are those of the
training forward over [prompt | turns and observations]
(`logprobs.completion_logp_entropy`), which gives the same log-probs (tested). The
cache holds one row's budget (`MultiTurnConfig.cache_slots`), not a block per turn
and observation at their budgets (a turn stops at its action, an observation is
often short), so each step attends over fewer slots; the cache stays on the device
between turns (only the turn's tokens and scores come back).

Output (`MultiTurnBatch`): the prompt left-padded as the trainer takes it, and the
compacted rest right-padded to N = `max_tokens` with `model_mask_BxN` 1.0 only on the
model's own tokens: observation tokens carry no loss, log-prob or entropy.

Axis letters: B trajectories, P prompt slots, T turn tokens, O observation tokens,
S cache slots, N trajectory tokens after the prompt, V vocab.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rljax.envs import base, episodes, turns
from rljax.model.kv_cache import KVCache
from rljax.rl import sampler, selection


@dataclasses.dataclass(frozen=True)
class MultiTurnConfig:
  """Budgets of one trajectory. max_tokens: its tokens after the prompt (turns and
  observations); a longer observation is cut to `obs_tokens`; timeout_s: one
  environment step's limit."""

  max_turns: int = 12
  max_tokens: int = 512
  prompt_tokens: int = 64
  turn_tokens: int = 32
  obs_tokens: int = 48
  timeout_s: float = 5.0

  def __post_init__(self):
    for name in ("max_turns", "max_tokens", "prompt_tokens", "turn_tokens", "obs_tokens"):
      if getattr(self, name) < 1:
        raise ValueError(f"multi_turn.{name} must be >= 1, got {getattr(self, name)}")

  @property
  def cache_slots(self) -> int:
    """A row's whole budget (the compact layout): its prompt, then its N tokens, or all
    its turns and the observations between them where those are fewer."""
    turns = self.max_turns * self.turn_tokens + (self.max_turns - 1) * self.obs_tokens
    return self.prompt_tokens + min(self.max_tokens, turns)


@flax.struct.dataclass
class MultiTurnBatch:
  """Trajectories as the trainer takes them (module docstring); `episodes` per row."""

  prompt_BxP: jax.Array
  prompt_mask_BxP: jax.Array
  tokens_BxN: jax.Array
  model_mask_BxN: jax.Array
  logp_BxN: jax.Array
  entropy_BxN: jax.Array
  turn_BxN: jax.Array          # the turn a model token belongs to; -1 elsewhere
  episodes: tuple = flax.struct.field(pytree_node=False, default=())


@flax.struct.dataclass
class _TurnState:
  t: jax.Array
  cache: KVCache
  logits_BxV: jax.Array
  live_B: jax.Array
  n_B: jax.Array
  tail_BxK: jax.Array
  tokens_BxT: jax.Array
  written_BxT: jax.Array
  logp_BxT: jax.Array
  ent_BxT: jax.Array


def _model(graphdef, params):
  return nnx.merge(graphdef, sampler.sampling_weights(graphdef, params))


@functools.partial(jax.jit, static_argnames=("graphdef",), donate_argnames=("cache",))
def prefill_chunk(graphdef, params, cache, logits_BxV, tokens_BxC, len_B, pos_B):
  """Writes each row's first len_B of the C tokens at its slots (= positions)
  pos_B + 0..; the next-token logits of rows with len_B > 0 come from their last one.
  A row's slots past its len_B get the padding's keys, which no query reads before
  the row's next tokens overwrite them (causality by slot)."""
  model = _model(graphdef, params)
  c = tokens_BxC.shape[1]
  positions_BxC = pos_B[:, None] + jnp.arange(c)[None]
  h_BxCxD, cache = model.hidden(tokens_BxC, positions_BxT=positions_BxC, cache=cache,
                                cache_start=pos_B)
  last_BxD = jnp.take_along_axis(h_BxCxD, jnp.maximum(len_B - 1, 0)[:, None, None], 1)[:, 0]
  logits_BxV = jnp.where((len_B > 0)[:, None], model.logits(last_BxD), logits_BxV)
  return cache, logits_BxV


@functools.partial(jax.jit, static_argnames=("graphdef", "cfg", "turn_tokens", "stop_ids"),
                   donate_argnames=("cache",))
def decode_turn(graphdef, params, cache, logits_BxV, pos_B, live_B, room_B, key, *,
                cfg: sampler.SamplingConfig, turn_tokens: int, stop_ids: tuple):
  """One turn for the rows in `live_B`: at most min(turn_tokens, room_B) tokens each, a
  row stopping after EOS or the `stop_ids` sequence; row b's tokens go to slots
  pos_B[b] + 0... Returns (tokens, written mask, sampler log-probs, entropies [B, T],
  tokens written [B], cache, logits)."""
  model = _model(graphdef, params)
  b, k = live_B.shape[0], len(stop_ids)
  stop_K = jnp.asarray(stop_ids, jnp.int32)
  zeros_BxT = jnp.zeros((b, turn_tokens), jnp.float32)
  st = _TurnState(t=jnp.array(0, jnp.int32), cache=cache, logits_BxV=logits_BxV,
                  live_B=live_B & (room_B > 0),
                  n_B=jnp.zeros((b,), jnp.int32), tail_BxK=jnp.full((b, k), -1, jnp.int32),
                  tokens_BxT=jnp.full((b, turn_tokens), cfg.pad_id, jnp.int32),
                  written_BxT=zeros_BxT, logp_BxT=zeros_BxT, ent_BxT=zeros_BxT)

  def body(st: _TurnState):
    tok_B, logp_B, ent_B = selection.select(jax.random.fold_in(key, st.t), st.logits_BxV, cfg)
    live = st.live_B
    tok_B = jnp.where(live, tok_B, cfg.pad_id)
    # A stopped row writes its padding at its next slot, which its next tokens overwrite.
    slot_B = pos_B + st.n_B
    h_Bx1xD, cache = model.hidden(tok_B[:, None], positions_BxT=slot_B[:, None],
                                  cache=st.cache, cache_start=slot_B)
    logits = jnp.where(live[:, None], model.logits(h_Bx1xD[:, 0]), st.logits_BxV)
    n_B = st.n_B + live
    tail = jnp.where(live[:, None], jnp.concatenate([st.tail_BxK[:, 1:], tok_B[:, None]], 1),
                     st.tail_BxK)
    stopped = (tok_B == cfg.eos_id) | jnp.all(tail == stop_K[None], axis=1)
    return _TurnState(
        t=st.t + 1, cache=cache, logits_BxV=logits,
        live_B=live & ~stopped & (n_B < room_B), n_B=n_B, tail_BxK=tail,
        tokens_BxT=st.tokens_BxT.at[:, st.t].set(tok_B),
        written_BxT=st.written_BxT.at[:, st.t].set(live.astype(jnp.float32)),
        logp_BxT=st.logp_BxT.at[:, st.t].set(jnp.where(live, logp_B, 0.0)),
        ent_BxT=st.ent_BxT.at[:, st.t].set(jnp.where(live, ent_B, 0.0)))

  st = jax.lax.while_loop(lambda s: (s.t < turn_tokens) & jnp.any(s.live_B), body, st)
  return (st.tokens_BxT, st.written_BxT, st.logp_BxT, st.ent_BxT, st.n_B, st.cache,
          st.logits_BxV)


@dataclasses.dataclass
class _Row:
  """One trajectory's host-side record while it runs."""

  env: base.Env
  seed: int
  ids: list = dataclasses.field(default_factory=list)
  model: list = dataclasses.field(default_factory=list)
  logp: list = dataclasses.field(default_factory=list)
  ent: list = dataclasses.field(default_factory=list)
  turn: list = dataclasses.field(default_factory=list)
  texts: list = dataclasses.field(default_factory=list)
  infos: list = dataclasses.field(default_factory=list)
  observations: list = dataclasses.field(default_factory=list)
  reward: float = 0.0
  done: bool = False           # no more turns
  ended: bool = False          # the episode ended (environment done, or the model's EOS)
  reset_fault: str = ""

  def extend(self, ids, model=0.0, logp=None, ent=None, turn=-1):
    self.ids += ids
    self.model += [model] * len(ids)
    self.logp += list(logp) if logp is not None else [0.0] * len(ids)
    self.ent += list(ent) if ent is not None else [0.0] * len(ids)
    self.turn += [turn] * len(ids)


def rollout(graphdef, params, make_env: Callable[[], base.Env], seeds: Sequence[int],
            group_size: int, tokenizer, key, *, cfg: MultiTurnConfig,
            sampling: sampler.SamplingConfig,
            observation_text: Callable[[str], str] = turns.observation_text,
            parse_action: Callable[[str], str | None] = turns.action_of) -> MultiTurnBatch:
  """G trajectories per seed (row q*G + g is trajectory g of seed q); module docstring.

  observation_text formats what the model reads of an observation (the first one is the
  prompt); parse_action finds the action in a turn's text (None: no action, an invalid
  turn, the environment is not stepped).
  """
  stop_ids = tuple(tokenizer.encode_texts([turns.ACTION_CLOSE])[0])
  rows = [_Row(make_env(), s) for s in seeds for _ in range(group_size)]
  b, n = len(rows), cfg.max_tokens
  first = []
  for r in rows:
    obs, r.reset_fault = base.guarded_reset(r.env, r.seed, cfg.timeout_s)
    r.done = r.ended = bool(r.reset_fault)  # no turns: its row has no model tokens
    r.observations.append(obs)
    first.append(obs)
  prompt_BxP, prompt_mask_BxP = tokenizer.encode_prompts(
      [observation_text(o) for o in first], cfg.prompt_tokens)
  # A row's prompt tokens at slots [0, its length): the left padding rolled to the end.
  len_B = prompt_mask_BxP.sum(1).astype(np.int32)
  right_BxP = np.stack([np.roll(p, -(cfg.prompt_tokens - l)) for p, l in zip(prompt_BxP, len_B)])
  model_cfg = nnx.merge(graphdef, params).cfg
  cache = KVCache.zeros(model_cfg, b, cfg.cache_slots, jnp.dtype(model_cfg.dtype))
  logits = jnp.zeros((b, model_cfg.vocab_size), jnp.float32)
  pos_B = np.zeros((b,), np.int32)
  cache, logits = prefill_chunk(graphdef, params, cache, logits, jnp.asarray(right_BxP),
                                jnp.asarray(len_B), jnp.asarray(pos_B))
  pos_B += len_B
  for k in range(cfg.max_turns):
    live_B = np.array([not r.done for r in rows])
    if not live_B.any():
      break
    room_B = np.array([n - len(r.ids) for r in rows], np.int32)
    *out, cache, logits = decode_turn(
        graphdef, params, cache, logits, jnp.asarray(pos_B), jnp.asarray(live_B),
        jnp.asarray(room_B), jax.random.fold_in(key, k), cfg=sampling,
        turn_tokens=cfg.turn_tokens, stop_ids=stop_ids)
    tokens, written, logp, ent, n_B = jax.device_get(out)
    pos_B += n_B
    going = []
    for i, r in enumerate(rows):
      if not live_B[i]:
        continue
      m = written[i] > 0
      ids = tokens[i][m].tolist()
      r.extend(ids, 1.0, logp[i][m], ent[i][m], turn=k)
      text = tokenizer.decode_completions(np.asarray([ids]))[0]
      r.texts.append(text)
      step = _act(r, parse_action(text), cfg.timeout_s)
      r.infos.append(step.info)
      r.observations.append(step.observation)
      r.reward += step.reward
      ended_eos = sampling.eos_id in ids
      room = n - len(r.ids)
      r.ended = step.done or ended_eos
      r.done = r.ended or k == cfg.max_turns - 1 or room <= 0
      if not r.done:
        going.append(i)
    obs_ids, obs_len = _observations(rows, going, tokenizer, observation_text, cfg,
                                     sampling.pad_id)
    if obs_len.any():
      cache, logits = prefill_chunk(graphdef, params, cache, logits, jnp.asarray(obs_ids),
                                    jnp.asarray(obs_len), jnp.asarray(pos_B))
    pos_B += obs_len
  return _batch(rows, prompt_BxP, prompt_mask_BxP, n, sampling.pad_id)


def _observations(rows, going, tokenizer, observation_text, cfg: MultiTurnConfig,
                  pad_id: int):
  """([B, O] ids, [B] lengths) of the continuing rows' (`going`) last observations, each
  cut to O and to its row's room and appended to its row; tokenised in one call."""
  ids_BxO = np.full((len(rows), cfg.obs_tokens), pad_id, np.int32)
  len_B = np.zeros((len(rows),), np.int32)
  texts = [observation_text(rows[i].observations[-1]) for i in going]
  for i, ids in zip(going, tokenizer.encode_texts(texts) if texts else []):
    r = rows[i]
    ids = ids[:min(cfg.obs_tokens, cfg.max_tokens - len(r.ids))]
    ids_BxO[i, :len(ids)] = ids
    len_B[i] = len(ids)
    r.extend(ids)
    r.done = len(r.ids) >= cfg.max_tokens
  return ids_BxO, len_B


def _act(row: _Row, action: str | None, timeout_s: float) -> base.Step:
  if action is None:
    return base.Step(episodes.NO_ACTION, 0.0, False, base.StepInfo(valid=False))
  return base.guarded_step(row.env, action, timeout_s=timeout_s)


def _batch(rows, prompt_BxP, prompt_mask_BxP, n: int, pad_id: int) -> MultiTurnBatch:
  b = len(rows)
  tokens = np.full((b, n), pad_id, np.int32)
  arrays = {k: np.zeros((b, n), np.float32) for k in ("model", "logp", "ent")}
  turn = np.full((b, n), -1, np.int32)
  eps = []
  for i, r in enumerate(rows):
    m = len(r.ids)
    tokens[i, :m] = r.ids
    for k in arrays:
      arrays[k][i, :m] = getattr(r, k)
    turn[i, :m] = r.turn
    eps.append(episodes.Episode(r.seed, tuple(r.texts), tuple(r.infos), tuple(r.observations),
                                r.reward, any(x.success for x in r.infos), truncated=not r.ended,
                                reset_fault=r.reset_fault))
  return MultiTurnBatch(prompt_BxP=jnp.asarray(prompt_BxP), prompt_mask_BxP=jnp.asarray(prompt_mask_BxP),
                        tokens_BxN=jnp.asarray(tokens), model_mask_BxN=jnp.asarray(arrays["model"]),
                        logp_BxN=jnp.asarray(arrays["logp"]), entropy_BxN=jnp.asarray(arrays["ent"]),
                        turn_BxN=jnp.asarray(turn), episodes=tuple(eps))
