"""Keys and doors: a procedural text world with partial observability and a solver.

A layout (a pure function of its seed) is a tree of rooms on a grid: each room has
exits among n/s/e/w; some passages on the way to the gem are closed by coloured
doors, and each door's key lies somewhere reachable before that door (side rooms
included), so every layout is solvable by construction and `solve` finds the
shortest action sequence by breadth-first search over (room, keys held, doors open).
The agent sees only the room it stands in:

  find the gem. room 0: exits n, e red door; items none
  <explore>new room n</explore><action>go n</action>
  room 1: exits s; items red key

Actions: `go D`, `open D` (a closed door, holding its colour's key), `take ITEM`
(`red key`, ..., `gem`: taking the gem succeeds and ends the episode, reward 1),
`look`. Anything else, or an action the room does not allow, is invalid: nothing
changes and the answer says so. Exploring, backtracking and remembering which key
opens what are the long-horizon parts; going back and forth is what the
repetitive-action rate counts.

`Explorer` is the oracle under the same partial observability (depth-first over
what it has seen, keys taken when found, doors opened when their key is held); its
turns carry RLVMR's tags, and a `noise` share of random actions makes it the weak
but non-trivial agent a tiny base model is pretrained on.
"""

from __future__ import annotations

import collections
import dataclasses
import random

from rljax.envs import base, turns

DIRS = {"n": (0, 1), "s": (0, -1), "e": (1, 0), "w": (-1, 0)}
OPPOSITE = {"n": "s", "s": "n", "e": "w", "w": "e"}
COLORS = ("red", "blue", "green", "gold")
GOAL = "find the gem."


@dataclasses.dataclass(frozen=True)
class WorldConfig:
  """Layout sizes. rooms: rooms in the tree; locks: doors on the way to the gem
  (at most one per passage of that path and at most len(COLORS))."""

  rooms: int = 6
  locks: int = 2

  def __post_init__(self):
    if self.rooms < 2:
      raise ValueError(f"a layout needs at least 2 rooms, got rooms={self.rooms}")
    if not 0 <= self.locks <= len(COLORS):
      raise ValueError(f"locks must be in [0, {len(COLORS)}], got {self.locks}")


@dataclasses.dataclass(frozen=True)
class Layout:
  """exits[r]: direction -> room; doors: (room, room) with room < room -> colour;
  keys[r]: colours lying in room r; the gem lies in room `gem`; the agent starts in 0."""

  exits: tuple
  doors: dict
  keys: tuple
  gem: int

  def canonical(self) -> str:
    """The layout as text (held-out exclusion compares layouts, not seeds)."""
    exits = ";".join(",".join(f"{d}{r}" for d, r in sorted(e.items())) for e in self.exits)
    doors = ",".join(f"{a}-{b}:{c}" for (a, b), c in sorted(self.doors.items()))
    keys = ",".join(f"{r}:{c}" for r, cs in enumerate(self.keys) for c in cs)
    return f"{exits}|{doors}|{keys}|{self.gem}"


def _edge(a: int, b: int) -> tuple[int, int]:
  return (min(a, b), max(a, b))


def _reachable(exits, closed: set) -> set:
  seen, todo = {0}, [0]
  while todo:
    r = todo.pop()
    for nxt in exits[r].values():
      if nxt not in seen and _edge(r, nxt) not in closed:
        seen.add(nxt)
        todo.append(nxt)
  return seen


def _path(exits, goal: int) -> list[int]:
  parent, todo = {0: None}, collections.deque([0])
  while todo:
    r = todo.popleft()
    for nxt in exits[r].values():
      if nxt not in parent:
        parent[nxt] = r
        todo.append(nxt)
  path = [goal]
  while parent[path[-1]] is not None:
    path.append(parent[path[-1]])
  return path[::-1]


def generate(seed: int, cfg: WorldConfig) -> Layout:
  """The layout of `seed`: a random tree grown on the grid, the gem in a deepest room,
  `cfg.locks` doors on its path, each key before its door."""
  rng = random.Random(seed)
  cells, exits = {(0, 0): 0}, [{}]
  where = [(0, 0)]
  while len(exits) < cfg.rooms:
    parent = rng.randrange(len(exits))
    x, y = where[parent]
    free = [d for d, (dx, dy) in DIRS.items() if (x + dx, y + dy) not in cells]
    if not free:
      continue
    d = rng.choice(free)
    room = len(exits)
    cell = (x + DIRS[d][0], y + DIRS[d][1])
    cells[cell] = room
    where.append(cell)
    exits.append({})
    exits[parent][d] = room
    exits[room][OPPOSITE[d]] = parent
  depth = {r: len(_path(exits, r)) for r in range(len(exits))}
  deepest = max(depth.values())
  gem = rng.choice([r for r in range(len(exits)) if depth[r] == deepest])
  path = _path(exits, gem)
  passages = [_edge(a, b) for a, b in zip(path, path[1:])]
  locked = sorted(rng.sample(range(len(passages)), min(cfg.locks, len(passages))))
  colors = rng.sample(COLORS, len(locked))
  doors, keys = {}, [[] for _ in exits]
  for i, (p, color) in enumerate(zip(locked, colors)):
    # The key lies where the agent can walk with the earlier doors open: before its door.
    region = _reachable(exits, {passages[q] for q in locked[i:]})
    choices = sorted(region - {0}) or [0]
    keys[rng.choice(choices)].append(color)
    doors[passages[p]] = color
  return Layout(tuple(exits), doors, tuple(tuple(k) for k in keys), gem)


@dataclasses.dataclass(frozen=True)
class State:
  room: int
  held: frozenset
  opened: frozenset


def _items(layout: Layout, state: State) -> list[str]:
  items = [f"{c} key" for c in layout.keys[state.room] if c not in state.held]
  if state.room == layout.gem:
    items.append("gem")
  return items


def describe(layout: Layout, state: State) -> str:
  """What the agent sees: the room, its exits (closed doors with their colour), items."""
  exits = []
  for d, nxt in sorted(layout.exits[state.room].items()):
    e = _edge(state.room, nxt)
    closed = e in layout.doors and e not in state.opened
    exits.append(f"{d} {layout.doors[e]} door" if closed else d)
  return (f"room {state.room}: exits {', '.join(exits)}; "
          f"items {', '.join(_items(layout, state)) or 'none'}")


def transition(layout: Layout, state: State, action: str):
  """(next state, valid, success) of `action` in `state`; invalid actions change nothing."""
  words = action.strip().lower().split()
  if words == ["look"]:
    return state, True, False
  if len(words) == 2 and words[0] in ("go", "open") and words[1] in layout.exits[state.room]:
    nxt = layout.exits[state.room][words[1]]
    e = _edge(state.room, nxt)
    closed = e in layout.doors and e not in state.opened
    if words[0] == "go" and not closed:
      return dataclasses.replace(state, room=nxt), True, False
    if words[0] == "open" and closed and layout.doors[e] in state.held:
      return dataclasses.replace(state, opened=state.opened | {e}), True, False
    return state, False, False
  if words[:1] == ["take"]:
    item = " ".join(words[1:])
    if item in _items(layout, state):
      if item == "gem":
        return state, True, True
      return dataclasses.replace(state, held=state.held | {item.split()[0]}), True, False
  return state, False, False


def _actions(layout: Layout, state: State) -> list[str]:
  moves = [f"{verb} {d}" for d in sorted(layout.exits[state.room]) for verb in ("go", "open")]
  return moves + [f"take {item}" for item in _items(layout, state)]


def solve(layout: Layout) -> list[str] | None:
  """A shortest action sequence that takes the gem (BFS over states), None if none."""
  start = State(0, frozenset(), frozenset())
  parent, todo = {start: None}, collections.deque([start])
  while todo:
    state = todo.popleft()
    for action in _actions(layout, state):
      nxt, valid, success = transition(layout, state, action)
      if success:
        plan = [action]
        while parent[state] is not None:
          state, a = parent[state]
          plan.append(a)
        return plan[::-1]
      if valid and nxt not in parent:
        parent[nxt] = (state, action)
        todo.append(nxt)
  return None


class KeysDoors:
  """The `Env` over `generate(seed, cfg)` layouts."""

  def __init__(self, cfg: WorldConfig = WorldConfig()):
    self.cfg = cfg
    self.layout = None
    self.state = None

  def reset(self, seed: int) -> str:
    self.layout = generate(seed, self.cfg)
    self.state = State(0, frozenset(), frozenset())
    return f"{GOAL} {describe(self.layout, self.state)}"

  def step(self, action: str) -> base.Step:
    if self.layout is None:
      raise RuntimeError("step before reset")
    before = self.state
    self.state, valid, success = transition(self.layout, before, action)
    info = base.StepInfo(valid=valid, success=success, state=before)
    if success:
      return base.Step("you take the gem.", 1.0, True, info)
    text = describe(self.layout, self.state)
    return base.Step(text if valid else f"nothing happens. {text}", 0.0, False, info)


class Explorer:
  """The oracle agent: sees what the agent sees, explores depth-first, returns tagged turns.

  Called as an agent, `explorer(observation, last_step)` (`episodes.play`); it reads the
  room it stands in from the environment it was given and keeps its own map of the
  rooms it has stood in. With probability `noise` a turn is a random action from
  the room's action words (often invalid); the turn after an invalid one is tagged
  reflection.
  """

  def __init__(self, env: KeysDoors, rng: random.Random, noise: float = 0.0):
    self.env, self.rng, self.noise = env, rng, noise
    self.seen_exits = {}      # room -> its exits (direction -> room), once stood in
    self.closed = {}          # (room, direction) -> colour of a closed door seen there
    self.turn = 0
    self.last_invalid = False

  def _route(self, room: int, wanted) -> str | None:
    """First direction of a shortest known route from `room` to a room with `wanted`."""
    first, todo = {room: None}, collections.deque([room])
    while todo:
      r = todo.popleft()
      if r != room and wanted(r):
        return first[r]
      for d, nxt in sorted(self.seen_exits.get(r, {}).items()):
        if nxt not in first and (r, d) not in self.closed:
          first[nxt] = first[r] or d
          todo.append(nxt)
    return None

  def _unexplored(self, r: int) -> bool:
    return any(nxt not in self.seen_exits and (r, d) not in self.closed
               for d, nxt in self.seen_exits.get(r, {}).items())

  def __call__(self, observation: str, last: base.Step | None) -> str:
    """The next turn's text (tag, thought, action) given the last step (None at reset)."""
    del observation  # the same facts, read from the room itself
    env, state = self.env, self.env.state
    room = state.room
    self.seen_exits[room] = dict(env.layout.exits[room])
    for d, nxt in env.layout.exits[room].items():
      e = _edge(room, nxt)
      if e in env.layout.doors and e not in state.opened:
        self.closed[(room, d)] = env.layout.doors[e]
      else:
        self.closed.pop((room, d), None)
    invalid_before = last is not None and not last.info.valid
    self.turn += 1
    if self.turn > 1 and self.rng.random() < self.noise:
      verb = self.rng.choice(("go", "open", "take"))
      arg = self.rng.choice(sorted(DIRS) + [f"{c} key" for c in COLORS] + ["gem"])
      return turns.format_turn("monitor", "try something", f"{verb} {arg}")
    tag, thought, action = self._plan(room, state)
    if self.turn == 1:
      tag, thought = "planning", "explore, take keys, open doors, take the gem"
    elif invalid_before:
      tag, thought = "reflection", "that did nothing"
    return turns.format_turn(tag, thought, action)

  def _plan(self, room: int, state: State) -> tuple[str, str, str]:
    items = _items(self.env.layout, state)
    if "gem" in items:
      return "monitor", "the gem is here", "take gem"
    if items:
      return "monitor", f"a {items[0]}", f"take {items[0]}"
    for (r, d), color in sorted(self.closed.items()):
      if r == room and color in state.held:
        return "monitor", f"i have the {color} key", f"open {d}"
    for d, nxt in sorted(self.seen_exits[room].items()):
      if nxt not in self.seen_exits and (room, d) not in self.closed:
        return "explore", f"new room {d}", f"go {d}"
    openable = lambda r: any(rr == r and c in state.held for (rr, _), c in self.closed.items())
    d = self._route(room, lambda r: self._unexplored(r) or openable(r))
    if d is None:  # nothing left to try: look (a wasted turn, as a lost agent's)
      return "monitor", "stuck", "look"
    return "monitor", "go back", f"go {d}"
