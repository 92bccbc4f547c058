"""JSON-lines datasets with row-level validation: bad rows are reported by file and line.

A malformed row (invalid JSON, not an object, a missing or non-string field, an
empty prompt, a prompt over the length limit) raises `DatasetError` naming
`path:line` and the reason, or, with `skip_bad=True`, is skipped and counted by
reason (the first few are reported). With a `Shard`, only that shard's rows are
parsed and validated (one process's part of a multi-host run).
"""

from __future__ import annotations

import collections
import json

from tqdm.auto import tqdm

from rljax.distributed import Shard


class DatasetError(ValueError):
  """A dataset file or row cannot be used; the message names the file and line."""


def _problem(row, fields, prompt_field, too_long) -> str | None:
  """The reason `row` cannot be used, or None."""
  if not isinstance(row, dict):
    return f"expected a JSON object, got {type(row).__name__}"
  for name in fields:
    if name not in row:
      return f"missing field {name!r} (has {sorted(row)[:8]})"
    if not isinstance(row[name], str):
      return f"field {name!r} is a {type(row[name]).__name__}, not a string"
  if not row[prompt_field].strip():
    return f"empty prompt ({prompt_field!r})"
  if too_long is not None:
    return too_long(row[prompt_field])
  return None


def read_jsonl(path: str, fields: tuple[str, ...], prompt_field: str, *, too_long=None,
               skip_bad: bool = False, report_first: int = 5,
               shard: Shard | None = None) -> tuple[list[dict], dict]:
  """(rows, {reason kind: count of skipped rows}) of a JSON-lines file.

  `too_long(prompt) -> str | None` returns why a prompt is over the limit (e.g. its
  token count), or None when it fits. `shard`: read only its rows, numbered by
  non-blank line (a counting pass first; lines of other shards are never parsed).
  """
  try:
    f = open(path, encoding="utf-8")
  except OSError as e:
    raise DatasetError(f"cannot open dataset {path}: {e.strerror}") from e
  rows, skipped, reported = [], collections.Counter(), 0
  with f:
    wanted = None
    if shard is not None:
      wanted = shard.rows(sum(1 for line in f if line.strip()))
      f.seek(0)
    row_no = -1
    for line_no, line in enumerate(f, 1):
      if not line.strip():
        continue
      row_no += 1
      if wanted is not None and row_no not in wanted:
        if row_no >= wanted.stop:
          break
        continue
      try:
        row = json.loads(line)
        reason = _problem(row, fields, prompt_field, too_long)
      except json.JSONDecodeError as e:
        reason = f"invalid JSON ({e.msg} at column {e.colno})"
      if reason is None:
        rows.append(row)
        continue
      if not skip_bad:
        raise DatasetError(f"{path}:{line_no}: {reason}")
      skipped[reason.split(" (")[0].split(" '")[0]] += 1
      if reported < report_first:
        reported += 1
        tqdm.write(f"skipping {path}:{line_no}: {reason}")
  if not rows:
    where = "" if shard is None else f" in {shard.describe(len(wanted))}"
    raise DatasetError(f"{path} has no usable rows{where} (skipped: {dict(skipped)})")
  return rows, dict(skipped)
