"""Malformed dataset rows: each reported with file and line, or skipped and counted."""

import json

import pytest

from rljax.tasks.jsonl import DatasetError, read_jsonl

GOOD = {"question": "What is 2+2?", "answer": "#### 4"}
BAD = [("{not json", "invalid JSON"), ("[1, 2]", "expected a JSON object"),
       (json.dumps({"question": "q"}), "missing field 'answer'"),
       (json.dumps({"question": 3, "answer": "a"}), "field 'question' is a int"),
       (json.dumps({"question": "  ", "answer": "a"}), "empty prompt"),
       (json.dumps({"question": "x" * 50, "answer": "a"}), "50 characters > 20")]


def _write(tmp_path, lines):
  path = tmp_path / "data.jsonl"
  path.write_text("\n".join(lines) + "\n")
  return str(path)


def _too_long(prompt):
  return f"{len(prompt)} characters > 20" if len(prompt) > 20 else None


@pytest.mark.parametrize("line,message", BAD)
def test_bad_row_names_file_and_line(tmp_path, line, message):
  path = _write(tmp_path, [json.dumps(GOOD), "", line])
  with pytest.raises(DatasetError, match=rf"data.jsonl:3: {message}"):
    read_jsonl(path, ("question", "answer"), "question", too_long=_too_long)


def test_bad_rows_skipped_and_counted(tmp_path):
  path = _write(tmp_path, [json.dumps(GOOD)] + [line for line, _ in BAD] + [json.dumps(GOOD)])
  rows, skipped = read_jsonl(path, ("question", "answer"), "question", too_long=_too_long,
                             skip_bad=True)
  assert rows == [GOOD, GOOD]
  assert sum(skipped.values()) == len(BAD) and skipped["invalid JSON"] == 1


def test_missing_and_empty_files(tmp_path):
  with pytest.raises(DatasetError, match="cannot open dataset"):
    read_jsonl(str(tmp_path / "nope.jsonl"), ("q",), "q")
  with pytest.raises(DatasetError, match="no usable rows"):
    read_jsonl(_write(tmp_path, ["{bad"]), ("q",), "q", skip_bad=True)
