"""Layout splits and the cold start's token rows."""

import pytest

from rljax.agents import demos
from rljax.envs import keys_doors, turns
from rljax.rl.multi_turn import MultiTurnConfig
from rljax.tokenizers.sentencepiece import Tokenizer, train_sentencepiece

WORLD = keys_doors.WorldConfig(rooms=5, locks=2)


def test_unseen_layouts_are_excluded_by_canonical_layout():
  small = keys_doors.WorldConfig(rooms=3, locks=0)  # few distinct trees: seeds collide
  pool = {keys_doors.generate(s, small).canonical() for s in range(4)}
  start = 100
  collide = [s for s in range(start, start + 50) if keys_doors.generate(s, small).canonical() in pool]
  assert collide, "the case must contain seeds whose layout is a training layout"
  unseen = demos.unseen_seeds(small, 5, start, 4)
  assert not set(unseen) & set(collide)
  assert all(keys_doors.generate(s, small).canonical() not in pool for s in unseen)
  with pytest.raises(ValueError, match="too few distinct layouts"):
    demos.unseen_seeds(keys_doors.WorldConfig(rooms=2, locks=0), 1, 100, 10)


def test_demonstration_rows_train_the_turns_and_mask_the_observations():
  eps = demos.demonstrations(WORLD, 16, 8, 0.3, 0, 12)
  assert {e.seed for e in eps} == set(range(8))
  tok = Tokenizer(train_sentencepiece(demos.corpus(eps), 128, turns.delimiters()))
  for piece in turns.delimiters():
    assert len(tok.encode_texts([piece])[0]) == 1
  cfg = MultiTurnConfig(max_turns=12, max_tokens=320, prompt_tokens=32, obs_tokens=32)
  rows = demos.encode(eps, tok, cfg)
  assert rows["tokens"].shape == (16, 320) and rows["prompt"].shape == (16, 32)
  e, tokens, mask = eps[0], rows["tokens"][0], rows["mask"][0]
  n = int((tokens != tok.pad_id).sum())
  # Split the row into runs of trained / masked tokens: turn, observation, turn, ...
  runs, start = [], 0
  for i in range(1, n + 1):
    if i == n or mask[i] != mask[start]:
      runs.append((mask[start], tokens[start:i]))
      start = i
  assert [m for m, _ in runs] == [1.0, 0.0] * (len(e.turn_texts) - 1) + [1.0]
  for k, (_, ids) in enumerate(runs[0::2]):
    assert tok.decode_completions(ids[None])[0] == e.turn_texts[k]
  for k, (_, ids) in enumerate(runs[1::2]):
    assert list(ids) == tok.encode_texts([turns.observation_text(e.observations[k + 1])])[0]
  prompt = rows["prompt"][0][rows["prompt_mask"][0] > 0]
  assert tok.decode_completions(prompt[None])[0].strip() == e.observations[0]
  short = demos.encode(eps[:1], tok, MultiTurnConfig(max_tokens=40, prompt_tokens=32))
  assert (short["tokens"][0] != tok.pad_id).sum() == 40  # cut at the budget
