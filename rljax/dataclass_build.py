"""Nested frozen dataclasses built from plain values (a ConfigDict's `to_dict()`), typed.

`build(cls, values, path)` checks every field's name and type against the dataclass
(Optional / Union, tuples, nested dataclasses; ints are accepted for floats, bools are
not ints) before constructing it, so a misspelt field or a wrong type fails at once
with the field's dotted path and the valid names; the dataclasses' own
`__post_init__` checks then run with that path in their message.
"""

from __future__ import annotations

import dataclasses
import types
import typing


def _check_type(value, tp, path):
  origin = typing.get_origin(tp)
  if origin in (typing.Union, types.UnionType):
    errors = []
    for arm in typing.get_args(tp):
      try:
        return _check_type(value, arm, path)
      except (TypeError, ValueError) as e:
        errors.append(str(e))
    raise TypeError(f"{path}: {value!r} does not match {tp}")
  if tp is type(None):
    if value is not None:
      raise TypeError(f"{path}: expected None, got {value!r}")
    return None
  if origin is tuple:
    if not isinstance(value, (tuple, list)):
      raise TypeError(f"{path}: expected a tuple, got {type(value).__name__} {value!r}")
    (arm, *_) = typing.get_args(tp)
    return tuple(_check_type(v, arm, f"{path}[{i}]") for i, v in enumerate(value))
  if dataclasses.is_dataclass(tp):
    return build(tp, value, path)
  if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
    return float(value)
  if tp in (int, str, bool) and isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
    return value
  raise TypeError(f"{path}: expected {tp.__name__}, got {type(value).__name__} {value!r}")


def build(cls, values, path: str = ""):
  if dataclasses.is_dataclass(values):
    return values
  if not hasattr(values, "items"):
    raise TypeError(f"{path}: expected a section (dict), got {values!r}")
  hints = typing.get_type_hints(cls)
  fields = {f.name for f in dataclasses.fields(cls)}
  kwargs = {}
  for key, value in values.items():
    if key not in fields:
      raise ValueError(f"unknown config field {path + '.' if path else ''}{key}; "
                       f"valid fields of {path or 'the config'}: {sorted(fields)}")
    kwargs[key] = _check_type(value, hints[key], f"{path + '.' if path else ''}{key}")
  try:
    return cls(**kwargs)
  except ValueError as e:
    msg = str(e)
    raise ValueError(msg if path and f"{path}." in msg else f"{path or 'config'}: {msg}") from None
