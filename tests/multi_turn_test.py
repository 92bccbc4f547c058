"""Multi-turn rollouts: cache continuation equals the full forward, masks, budgets, faults."""

import jax
import numpy as np
from flax import nnx

from rljax.envs import base, turns
from rljax.model.config import ModelConfig
from rljax.model.transformer import init_model
from rljax.rl import logprobs, multi_turn, sampler
from rljax.tokenizers.base import BatchTokenizer

# A character tokenizer whose action delimiters are single tokens, so a random model
# closes turns often; pad 0, EOS 1, BOS 2.
PIECES = ["<pad>", "<eos>", "<bos>", turns.ACTION_OPEN, turns.ACTION_CLOSE] + list("abcdefghijklmnopqrstuvwxyz .\n")


class CharTokenizer(BatchTokenizer):
  pad_id, eos_id, bos_id, vocab_size = 0, 1, 2, len(PIECES)

  def _ids(self, texts):
    out = []
    for text in texts:
      ids, i = [], 0
      while i < len(text):
        for j, piece in enumerate(PIECES[3:5], start=3):
          if text.startswith(piece, i):
            ids.append(j)
            i += len(piece)
            break
        else:
          ids.append(PIECES.index(text[i]))
          i += 1
      out.append(ids)
    return out

  def _text(self, ids):
    return "".join(PIECES[i] for i in ids if i > 2)

  def piece(self, token_id):
    return PIECES[token_id]


class Echo:
  """Answers ok. , ok.. , ...; done (reward 1) when the action is ab."""

  def reset(self, seed):
    self.turn = 0
    return "bo" * (1 + seed % 3)

  def step(self, action):
    self.turn += 1
    done = action == "ab"
    return base.Step("ok" + "." * self.turn, float(done), done,
                     base.StepInfo(valid=bool(action), success=done, state=self.turn))


class Broken(Echo):
  def reset(self, seed):
    if seed == 1:
      raise KeyError("no layout 1")
    return super().reset(seed)

  def step(self, action):
    raise RuntimeError("env bug")


def _model():
  cfg = ModelConfig(vocab_size=len(PIECES), d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                    head_dim=8, mlp_dim=64)
  return nnx.split(init_model(cfg, 0), nnx.Param)


SAMPLING = sampler.SamplingConfig(max_new_tokens=8, eos_id=1, pad_id=0)


def _run(make_env, cfg, seeds=(0, 1, 2), group_size=2, key=0, **kwargs):
  graphdef, params = _model()
  return graphdef, params, multi_turn.rollout(
      graphdef, params, make_env, seeds, group_size, CharTokenizer(), jax.random.key(key),
      cfg=cfg, sampling=SAMPLING, **kwargs)


def test_continuing_from_the_cache_gives_the_full_forwards_log_probs():
  cfg = multi_turn.MultiTurnConfig(max_turns=5, max_tokens=96, prompt_tokens=8,
                                   turn_tokens=8, obs_tokens=10)
  graphdef, params, batch = _run(Echo, cfg)
  model = nnx.merge(graphdef, params)
  logp, ent = logprobs.completion_logp_entropy(model, batch.prompt_BxP, batch.prompt_mask_BxP,
                                               batch.tokens_BxN)
  mask = np.asarray(batch.model_mask_BxN)
  turns_per_row = [len(e.turn_texts) for e in batch.episodes]
  assert max(turns_per_row) >= 3 and mask.sum() > 40  # several turns, observations between
  np.testing.assert_allclose(np.asarray(logp) * mask, np.asarray(batch.logp_BxN), atol=2e-5)
  np.testing.assert_allclose(np.asarray(ent) * mask, np.asarray(batch.entropy_BxN), atol=2e-5)


def test_the_cache_holds_one_rows_budget_not_a_block_per_turn(monkeypatch):
  """Turns and observations are written where the row's last token ends, so the cache
  needs the row's budget, P + N slots (here 8 + 40), not P + turns x (T + O) (8 +
  12 x 18), and a row's log-probs are still its full forward's."""
  lengths, zeros = [], multi_turn.KVCache.zeros
  monkeypatch.setattr(multi_turn.KVCache, "zeros", classmethod(
      lambda cls, *a, **k: lengths.append(a[2]) or zeros(*a, **k)))
  cfg = multi_turn.MultiTurnConfig(max_turns=12, max_tokens=40, prompt_tokens=8,
                                   turn_tokens=8, obs_tokens=10)
  graphdef, params, batch = _run(Echo, cfg)
  assert lengths == [48] == [cfg.cache_slots]
  logp, _ = logprobs.completion_logp_entropy(nnx.merge(graphdef, params), batch.prompt_BxP,
                                             batch.prompt_mask_BxP, batch.tokens_BxN)
  mask = np.asarray(batch.model_mask_BxN)
  assert (mask.sum(1) > 0).all() and (np.asarray(batch.tokens_BxN)[:, -1] != 0).any()
  np.testing.assert_allclose(np.asarray(logp) * mask, np.asarray(batch.logp_BxN), atol=2e-5)


def test_observation_tokens_are_the_environments_answers_and_carry_no_mask():
  cfg = multi_turn.MultiTurnConfig(max_turns=4, max_tokens=80, prompt_tokens=8,
                                   turn_tokens=8, obs_tokens=10)
  _, _, batch = _run(Echo, cfg)
  tok = CharTokenizer()
  for i, ep in enumerate(batch.episodes):
    ids = np.asarray(batch.tokens_BxN[i]).tolist()
    mask = np.asarray(batch.model_mask_BxN[i])
    turn = np.asarray(batch.turn_BxN[i])
    # The row is turn 0, answer 1, turn 1, ..., the last turn: each turn's tokens under
    # the mask (tagged with its index), each answer tokenised and cut to obs_tokens.
    expected, expected_mask = [], []
    for k, text in enumerate(ep.turn_texts):
      turn_ids = [t for t, kk in zip(ids, turn) if kk == k]
      assert tok._text(turn_ids) == text.replace("<eos>", "") or tok.eos_id in turn_ids
      expected += turn_ids
      expected_mask += [1.0] * len(turn_ids)
      if k < len(ep.turn_texts) - 1:
        obs = tok.encode_texts([ep.observations[k + 1] + "\n"])[0][:cfg.obs_tokens]
        expected += obs
        expected_mask += [0.0] * len(obs)
    n = len(expected)
    assert ids[:n] == expected and (np.asarray(ids[n:]) == tok.pad_id).all()
    np.testing.assert_array_equal(mask[:n], expected_mask)
    assert (mask[n:] == 0).all() and (turn[mask == 0] == -1).all()
    assert (np.asarray(batch.logp_BxN[i])[mask == 0] == 0).all()


def test_the_turn_budget_cuts_cleanly_and_a_broken_env_is_scored_and_counted():
  # Every turn's whole text is its action here, so the environment is always stepped.
  cfg = multi_turn.MultiTurnConfig(max_turns=2, max_tokens=64, prompt_tokens=8,
                                   turn_tokens=6, obs_tokens=8)
  _, _, batch = _run(Echo, cfg, key=3, parse_action=lambda text: text)
  for i, ep in enumerate(batch.episodes):
    mask = np.asarray(batch.model_mask_BxN[i])
    ids = np.asarray(batch.tokens_BxN[i])
    assert 1 <= len(ep.turn_texts) <= 2 and len(ep.infos) == len(ep.turn_texts)
    assert np.asarray(batch.turn_BxN[i]).max() == len(ep.turn_texts) - 1
    # The episode ended (EOS or the environment) or the budget cut it after turn 2; no
    # observation follows the last turn.
    assert ep.truncated == (len(ep.turn_texts) == 2 and not ep.success
                            and CharTokenizer.eos_id not in ids.tolist())
    assert (ids[np.nonzero(mask)[0].max() + 1:] == 0).all()
  assert sum(e.truncated for e in batch.episodes) >= 1
  _, _, broken = _run(Broken, cfg, key=3, parse_action=lambda text: text)
  for i, ep in enumerate(broken.episodes):
    if ep.seed == 1:  # the reset raised: no turns, no model tokens, the fault recorded
      assert ep.turn_texts == () and "KeyError" in ep.reset_fault
      assert float(broken.model_mask_BxN[i].sum()) == 0
      continue
    # The first step raises: the episode ends there, scored 0, the fault recorded.
    assert len(ep.turn_texts) == 1 and ep.reward == 0 and not ep.truncated
    assert "RuntimeError: env bug" in ep.infos[0].fault
