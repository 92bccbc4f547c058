"""The TextArena adapter: a BFS player wins generated FrozenLake maps through it; rejected
moves are invalid actions; a tiny model plays it end to end through multi-turn rollouts
and one update."""

import collections
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from rljax.agents import credit, pipeline
from rljax.envs import episodes, turns
from rljax.envs.textarena_env import TextArena
from rljax.model.config import ModelConfig
from rljax.model.transformer import init_model
from rljax.rewards.meta_reasoning import MetaRewardConfig
from rljax.rl import multi_turn, sampler, update
from rljax.rl.losses import LossConfig
from rljax.rl.train_state import TrainState
from rljax.tokenizers.sentencepiece import Tokenizer, train_sentencepiece

GAME = "FrozenLake-v0-raw"
MOVES = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}


def _grid(text):
  """The last board in `text` as rows of cells ('P', 'H', 'G' or '')."""
  rows = [line for line in text.splitlines() if line.startswith("|")]
  n = len(rows[0].strip("|").split("|"))
  return [[c.strip() for c in r.strip("|").split("|")] for r in rows[-n:]]


def _bfs_move(text):
  grid = _grid(text)
  cells = {(i, j): c for i, row in enumerate(grid) for j, c in enumerate(row)}
  start = next(p for p, c in cells.items() if c == "P")
  first, todo = {start: None}, collections.deque([start])
  while todo:
    p = todo.popleft()
    if cells[p] == "G":
      while first[p] is not None and first[p][0] != start:
        p = first[p][0]
      return first[p][1]
    for name, (di, dj) in MOVES.items():
      q = (p[0] + di, p[1] + dj)
      if q in cells and cells[q] != "H" and q not in first:
        first[q] = (p, name)
        todo.append(q)
  raise AssertionError(f"no path on {grid}")


def test_a_bfs_player_wins_generated_maps_through_the_adapter():
  layouts = set()
  for seed in range(3):
    env = TextArena(GAME)
    agent = lambda obs, last: turns.format_turn("planning", "shortest path", _bfs_move(obs))
    ep = episodes.play(env, agent, seed, max_turns=20)
    assert ep.success and ep.reward == 1.0 and not ep.truncated
    assert all(i.valid for i in ep.infos)
    layouts.add(str(_grid(ep.observations[0])))
  assert len(layouts) > 1  # the seed generates the map


def test_rejected_moves_are_invalid_and_the_board_is_the_state():
  env = TextArena(GAME)
  first = env.reset(0)
  assert "Current Board" in first and _grid(first)[0][0] == "P"
  s = env.step("up")  # the player starts in the top-left corner: a wall
  assert not s.info.valid and not s.done and s.info.state == env.board
  s = env.step(_bfs_move(first))
  assert s.info.valid and s.reward == 0.0 and re.search(r"position \(\d, \d\)", s.observation)


@pytest.mark.slow
def test_a_tiny_model_plays_it_end_to_end():
  texts = []
  for seed in range(4):
    env = TextArena(GAME)
    texts.append(env.reset(seed))
    texts += [env.step(m).observation for m in ("down", "right", "left")]
  texts += [turns.format_turn(t, "go", m) for t in turns.TAGS for m in MOVES]
  tok = Tokenizer(train_sentencepiece(texts, 200, turns.delimiters()))
  model_cfg = ModelConfig(vocab_size=tok.vocab_size, d_model=32, n_layers=2, n_heads=4,
                          n_kv_heads=2, head_dim=8, mlp_dim=64, max_seq_len=1024)
  graphdef, params = nnx.split(init_model(model_cfg, 0), nnx.Param)
  params = nnx.to_pure_dict(params)
  cfg = multi_turn.MultiTurnConfig(max_turns=3, max_tokens=400, prompt_tokens=400,
                                   turn_tokens=8, obs_tokens=96)
  sampling = sampler.SamplingConfig(max_new_tokens=8, eos_id=tok.eos_id, pad_id=tok.pad_id)
  # A random model rarely closes its action: every turn's text picks a move, so the game
  # is stepped each turn.
  pick = lambda text: list(MOVES)[len(text) % 4]
  batch = multi_turn.rollout(graphdef, params, lambda: TextArena(GAME), [0, 1], 2, tok,
                             jax.random.key(0), cfg=cfg, sampling=sampling, parse_action=pick)
  assert all(len(e.turn_texts) >= 1 and not e.reset_fault for e in batch.episodes)
  assert sum(len(e.turn_texts) for e in batch.episodes) > 4
  obs = (np.asarray(batch.tokens_BxN) != tok.pad_id) & (np.asarray(batch.model_mask_BxN) == 0)
  assert obs.sum() > 0  # the game's answers are in the rows, masked
  adv, _ = credit.outcome(batch, 2, MetaRewardConfig())
  mb = pipeline.minibatch(batch, adv + np.asarray(batch.model_mask_BxN), batch.logp_BxN)
  opt = optax.adam(1e-3)
  state = TrainState(step=jnp.int32(0), params=params, opt_state=opt.init(params),
                     ref_params=params, rng=jax.random.PRNGKey(0))
  _, m = update.rl_update(graphdef, opt, LossConfig(), 1.0, True, False, False, 1, state, mb,
                          jax.random.PRNGKey(1), {"entropy": 0.0, "kl": 0.0, "sft": 0.0})
  assert np.isfinite(float(m["loss"])) and float(m["grad_norm"]) > 0
