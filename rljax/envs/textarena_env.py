"""TextArena's single-player games behind the `Env` protocol (optional: `pip install rljax[textarena]`).

TextArena (github.com/LeonGuertler/TextArena, pure Python) ships procedurally seeded
text games: FrozenLake, TowerOfHanoi, GuessTheNumber, Sudoku, Minesweeper, ... An
agent turn's action (`turns.action_of`, e.g. `down`) is sent in the game's bracket
syntax (`[down]`, `action_format`); the observation is every message the game added
since the last one (its rules and board at reset; the move's outcome and the new
board after a step), the player's own echo left out. A move the game rejects
(TextArena's `state.error_count` of consecutive rejected moves grows; the game
ends after its error allowance) is an invalid action; the state of the repetitive-action rate is the last
board the game showed. The reward is the player's at the end (TextArena's: 1 win,
0 or -1 otherwise), 0 before; success is a positive final reward.
"""

from __future__ import annotations

from rljax.envs import base


def _textarena():
  try:
    import textarena  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError("the TextArena adapter needs the textarena package: "
                      "pip install 'rljax[textarena]'") from e
  return textarena


class TextArena:
  """One TextArena game id (e.g. "FrozenLake-v0-raw"), reset by seed."""

  def __init__(self, env_id: str, action_format: str = "[{}]"):
    self.ta = _textarena()
    self.env_id, self.action_format = env_id, action_format
    self.env = None
    self.board = None

  def reset(self, seed: int) -> str:
    self.env = self.ta.make(self.env_id)
    self.env.reset(num_players=1, seed=seed)
    return self._news()

  def _news(self) -> str:
    """The messages since the last call (the player's echo dropped); updates the board."""
    _, messages = self.env.get_observation()
    kinds = self.ta.ObservationType
    texts = []
    for _, text, kind in messages:
      if kind == kinds.PLAYER_ACTION:
        continue
      if kind == kinds.GAME_BOARD:
        self.board = text
      texts.append(text.strip())
    return "\n".join(texts)

  def step(self, action: str) -> base.Step:
    if self.env is None:
      raise RuntimeError("step before reset")
    before, errors = self.board, self.env.state.error_count
    done, _ = self.env.step(action=self.action_format.format(action))
    if done:
      rewards, game_info = self.env.close()
      info = game_info.get(0, {})
      reward = float(rewards.get(0, 0.0))
      valid = not info.get("invalid_move", False)
      text = "\n".join(t for t in (self._news(), str(info.get("reason", ""))) if t)
      return base.Step(text, reward, True,
                       base.StepInfo(valid=valid, success=reward > 0, state=before))
    # TextArena counts consecutive rejected moves (a good one resets the count to 0).
    valid = self.env.state.error_count <= errors
    return base.Step(self._news(), 0.0, False, base.StepInfo(valid=valid, state=before))
