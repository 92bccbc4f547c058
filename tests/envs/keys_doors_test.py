"""The keys-and-doors world: layouts, rules, the solver and the oracle explorer."""

import random

import pytest

from rljax.envs import episodes, keys_doors as kd, turns

# Hand-made: 0 -n- 1 -e- 2, a red door between 1 and 2, the red key in room 0, the gem
# in room 2. The shortest plan is take key, go n, open e, go e, take gem (5 actions).
HAND = kd.Layout(exits=({"n": 1}, {"s": 0, "e": 2}, {"w": 1}), doors={(1, 2): "red"},
                 keys=(("red",), (), ()), gem=2)
START = kd.State(0, frozenset(), frozenset())


@pytest.mark.parametrize("rooms,locks", [(2, 1), (6, 2), (9, 3), (12, 4)])
def test_every_layout_is_solvable_with_each_key_before_its_door(rooms, locks):
  cfg = kd.WorldConfig(rooms=rooms, locks=locks)
  for seed in range(60):
    layout = kd.generate(seed, cfg)
    assert len(layout.exits) == rooms
    path = kd._path(layout.exits, layout.gem)
    assert len(layout.doors) == min(locks, len(path) - 1)
    assert layout.gem == max(range(rooms), key=lambda r: len(kd._path(layout.exits, r))) or \
        len(kd._path(layout.exits, layout.gem)) == max(
            len(kd._path(layout.exits, r)) for r in range(rooms))
    for edge, color in layout.doors.items():
      # With this door and every door of the same path still closed, its key is reachable.
      closed = set(layout.doors)
      key_room = next(r for r, ks in enumerate(layout.keys) if color in ks)
      order = [kd._edge(a, b) for a, b in zip(path, path[1:]) if kd._edge(a, b) in closed]
      before = set(order[:order.index(edge)])
      assert key_room in kd._reachable(layout.exits, closed - before)
    plan = kd.solve(layout)
    assert plan is not None and plan[-1] == "take gem"
    # Replaying the plan succeeds on its last action and never before.
    state = START
    for i, action in enumerate(plan):
      state, valid, success = kd.transition(layout, state, action)
      assert valid and success == (i == len(plan) - 1)


def test_layouts_are_a_pure_function_of_the_seed_and_differ_across_seeds():
  cfg = kd.WorldConfig()
  assert kd.generate(3, cfg).canonical() == kd.generate(3, cfg).canonical()
  assert len({kd.generate(s, cfg).canonical() for s in range(100)}) > 90


def test_the_solver_finds_the_hand_derived_shortest_plan():
  assert kd.solve(HAND) == ["take red key", "go n", "open e", "go e", "take gem"]


def test_invalid_actions_change_nothing():
  for action in ["go e", "go w", "open n", "take gem", "take blue key", "dance", "", "go"]:
    state, valid, success = kd.transition(HAND, START, action)
    assert (state, valid, success) == (START, False, False), action
  in_1 = kd.State(1, frozenset(), frozenset())
  assert kd.transition(HAND, in_1, "go e")[1:] == (False, False)   # the door is closed
  assert kd.transition(HAND, in_1, "open e")[1:] == (False, False)  # no red key
  assert kd.transition(HAND, START, "look") == (START, True, False)
  assert kd.transition(HAND, START, " Take Red Key ")[0].held == {"red"}


def test_the_env_answers_with_the_room_and_says_when_nothing_happens():
  env = kd.KeysDoors()
  env.layout, env.state = HAND, START
  assert kd.describe(HAND, START) == "room 0: exits n; items red key"
  step = env.step("go e")
  assert step.observation == "nothing happens. room 0: exits n; items red key"
  assert (step.reward, step.done, step.info.valid) == (0.0, False, False)
  env.step("take red key")
  assert env.step("go n").observation == "room 1: exits e red door, s; items none"
  env.step("open e")
  assert env.step("go n").info.valid is False
  assert env.step("go e").observation == "room 2: exits w; items gem"
  win = env.step("take gem")
  assert (win.reward, win.done, win.info.success) == (1.0, True, True)


def test_the_explorer_solves_every_layout_under_partial_observation():
  env = kd.KeysDoors(kd.WorldConfig(rooms=8, locks=3))
  for seed in range(40):
    ep = episodes.play(env, kd.Explorer(env, random.Random(seed)), seed, max_turns=80)
    assert ep.success and not ep.truncated, seed
    assert len(ep.turn_texts) >= len(kd.solve(env.layout))
    assert turns.tags_of(ep.turn_texts[0]) == ["planning"]
    assert all(i.valid for i in ep.infos)


def test_a_noisy_explorer_reflects_after_each_invalid_turn():
  env = kd.KeysDoors()
  reflections = 0
  for seed in range(30):
    ep = episodes.play(env, kd.Explorer(env, random.Random(seed), noise=0.3), seed, 60)
    for prev, text in zip(ep.infos, ep.turn_texts[1:]):
      if not prev.valid and "try something" not in text:
        assert turns.tags_of(text) == ["reflection"]
        reflections += 1
  assert reflections > 10
