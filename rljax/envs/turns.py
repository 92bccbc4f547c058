"""An agent turn's text: one meta-reasoning tag, then the action (RLVMR, arXiv 2507.22844).

  <explore>new room n</explore><action>go n</action>

The tags are RLVMR's: `planning`, `explore`, `reflection`, `monitor`. The action is
the text inside the first `<action>...</action>`; a turn without one has no action
(the environment is not stepped with it, and it counts as invalid).
"""

from __future__ import annotations

import re

TAGS = ("planning", "explore", "reflection", "monitor")
ACTION_OPEN, ACTION_CLOSE = "<action>", "</action>"
_ACTION = re.compile(r"<action>(.*?)</action>", re.S)


def observation_text(observation: str) -> str:
  """What the agent reads of an observation (the first one is its prompt): rollouts and
  the cold start's demonstrations format it alike, so both see the same tokens."""
  return observation + "\n"


def delimiters() -> tuple[str, ...]:
  """The tags and the action delimiters: single pieces of the agent's tokenizer, so a
  turn's stop (`</action>`) is one token however the text around it merges."""
  return tuple(f"<{c}{t}>" for t in TAGS + ("action",) for c in ("", "/"))


def format_turn(tag: str, thought: str, action: str) -> str:
  if tag not in TAGS:
    raise ValueError(f"Unknown tag {tag!r}; valid: {list(TAGS)}")
  return f"<{tag}>{thought}</{tag}>{ACTION_OPEN}{action}{ACTION_CLOSE}"


def action_of(text: str) -> str | None:
  """The turn's action (stripped), None when it has no `<action>...</action>`."""
  m = _ACTION.search(text)
  return m.group(1).strip() if m else None


def tags_of(text: str) -> list[str]:
  """The tags a turn opens, in TAGS order (the share-of-tags instrument counts these)."""
  return [t for t in TAGS if f"<{t}>" in text]
