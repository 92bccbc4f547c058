"""The play loop's budget and faults, and the agent instruments on hand-counted episodes."""

import math
import time

from rljax.envs import base, episodes, keys_doors as kd, turns
from tests.envs.keys_doors_test import HAND


class HandEnv(kd.KeysDoors):
  def reset(self, seed):
    self.layout, self.state = HAND, kd.State(0, frozenset(), frozenset())
    return kd.describe(self.layout, self.state)


def scripted(*turn_texts):
  it = iter(turn_texts)
  return lambda observation, last: next(it)


def t(action, tag="monitor"):
  return turns.format_turn(tag, "", action)


def test_back_and_forth_is_counted_as_repetition_and_the_budget_cuts_cleanly():
  # 0 -> 1 -> 0 -> 1 -> 0 : turns 3 and 4 repeat (state, action) pairs of turns 1 and 2;
  # turn 5 ("dance") is invalid. The budget of 5 turns ends the episode unfinished.
  agent = scripted(t("go n", "explore"), t("go s"), t("go n"), t("go s"), t("dance"), t("go n"))
  ep = episodes.play(HandEnv(), agent, seed=0, max_turns=5)
  assert len(ep.turn_texts) == 5 and len(ep.observations) == 6
  assert ep.truncated and not ep.success
  m = episodes.metrics([ep])
  assert m["repetitive_action_rate"] == 2 / 5
  assert m["invalid_action_rate"] == 1 / 5
  assert m["success_rate"] == 0 and math.isnan(m["turns_to_success"])
  assert m["tag_share/explore"] == 1 / 5 and m["tag_share/monitor"] == 4 / 5


def test_success_ends_the_episode_and_turns_to_success_averages_the_winners():
  win = episodes.play(HandEnv(), scripted(*[t(a) for a in kd.solve(HAND)]), 0, max_turns=12)
  assert win.success and not win.truncated and win.reward == 1.0
  assert len(win.turn_texts) == 5
  # Taking the same key twice is invalid the second time: invalid, not repetitive
  # (the state changed: the key is held).
  lose = episodes.play(HandEnv(), scripted(t("take red key"), t("take red key"), "no tags"),
                       0, max_turns=3)
  assert lose.observations[-1] == episodes.NO_ACTION
  m = episodes.metrics([win, lose])
  assert m["success_rate"] == 0.5 and m["turns_to_success"] == 5
  assert m["repetitive_action_rate"] == 0 and m["invalid_action_rate"] == 2 / 8


class Raising(HandEnv):
  def step(self, action):
    raise KeyError("broken")


class Hanging(HandEnv):
  def step(self, action):
    time.sleep(30)


class Malformed(HandEnv):
  def step(self, action):
    return "room 1"


def test_an_environment_that_raises_hangs_or_answers_garbage_is_scored_and_counted():
  for env, fault in [(Raising(), "KeyError"), (Hanging(), "timeout"), (Malformed(), "str")]:
    start = time.monotonic()
    ep = episodes.play(env, scripted(t("go n"), t("go s")), 0, max_turns=2, timeout_s=0.2)
    assert time.monotonic() - start < 5
    assert (ep.reward, ep.success, ep.truncated, len(ep.turn_texts)) == (0.0, False, False, 1)
    assert fault in ep.infos[0].fault
    assert episodes.metrics([ep])["env_faults"] == 1
  env = HandEnv()
  env.reset(0)
  ok = base.guarded_step(env, "look", timeout_s=1.0)
  assert ok.info.fault == "" and ok.info.valid


class BadReset(HandEnv):
  def reset(self, seed):
    raise ValueError("no such layout")


def test_a_reset_that_raises_is_an_episode_without_turns_counted_as_a_fault():
  ep = episodes.play(BadReset(), scripted(t("go n")), 0, max_turns=3, timeout_s=1.0)
  assert ep.turn_texts == () and ep.reward == 0 and not ep.success and not ep.truncated
  assert "ValueError: no such layout" in ep.reset_fault
  assert episodes.metrics([ep])["env_faults"] == 1
