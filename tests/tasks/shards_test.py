"""Per-host data: each process reads only its shard of the training rows (JSON-lines,
parquet, TFDS, the shipped sets), shards are disjoint and cover the data, and the
held-out split is whole everywhere."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rljax.distributed import Shard
from rljax.tasks import sources, text_task
from rljax.tasks.jsonl import DatasetError, read_jsonl
from tests.tasks.text_task_test import _CharTokenizer


@pytest.mark.parametrize("n,k", [(10, 3), (7473, 4), (2, 4), (12, 1)])
def test_shards_are_contiguous_disjoint_and_cover(n, k):
  rows = [list(Shard(p, k).rows(n)) for p in range(k)]
  assert sum(rows, []) == list(range(n))
  assert max(map(len, rows)) - min(map(len, rows)) <= 1


def test_jsonl_shard_parses_only_its_lines(tmp_path):
  path = tmp_path / "d.jsonl"
  lines = [json.dumps({"question": f"q{i}", "answer": str(i)}) for i in range(10)]
  lines[8] = "{broken"  # row 8: in shard 1 of 2 (rows 5..9) only
  path.write_text("\n".join(lines[:3] + [""] + lines[3:]) + "\n")  # a blank line: no row
  read = lambda shard: read_jsonl(str(path), ("question", "answer"), "question", shard=shard)
  rows, _ = read(Shard(0, 2))  # never parses line 10, the broken row
  assert [r["question"] for r in rows] == [f"q{i}" for i in range(5)]
  with pytest.raises(DatasetError, match=r"d.jsonl:10: invalid JSON"):
    read(Shard(1, 2))
  rows, skipped = read_jsonl(str(path), ("question", "answer"), "question", skip_bad=True,
                             shard=Shard(1, 2))
  assert [r["question"] for r in rows] == ["q5", "q6", "q7", "q9"] and skipped


def test_parquet_shard_reads_only_its_row_groups(tmp_path, monkeypatch):
  train, held = tmp_path / "train.parquet", tmp_path / "held.parquet"
  table = lambda n: pa.table({"question": [f"q{i}" for i in range(n)],
                              "answer": [str(i) for i in range(n)], "extra": list(range(n))})
  pq.write_table(table(10), train, row_group_size=3)  # row groups [0,3) [3,6) [6,9) [9,10)
  pq.write_table(table(4), held)
  opened = []
  read_group = pq.ParquetFile.read_row_group

  def spy(self, i, **kw):
    opened.append((self.metadata.num_rows, i))
    return read_group(self, i, **kw)
  monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
  cfg = text_task.DataConfig(source="parquet", train_path=str(train), eval_path=str(held))
  parts = []
  for p in range(3):  # rows [0,3) [3,6) [6,10)
    opened.clear()
    rows, held_rows = sources.SOURCES["parquet"].load(cfg, 0, Shard(p, 3))
    parts.append([r["question"] for r in rows])
    assert [r["question"] for r in held_rows] == ["q0", "q1", "q2", "q3"]  # whole
    assert [i for n, i in opened if n == 10] == [[0], [1], [2, 3]][p]
  assert parts == [["q0", "q1", "q2"], ["q3", "q4", "q5"], ["q6", "q7", "q8", "q9"]]


def test_text_task_shards_gsm8k_and_keeps_the_held_out_split_whole():
  tasks = [text_task.TextTask(text_task.DataConfig(source="gsm8k"), _CharTokenizer(), 0, 2000,
                              shard=Shard(p, 2)) for p in range(2)]
  a, b = ({p.question for p in t.train} for t in tasks)
  assert not a & b and len(a) + len(b) == 7473
  assert tasks[0].eval_problems == tasks[1].eval_problems and len(tasks[0].eval_problems) == 1319
  # Each stream draws from its own shard only.
  assert {p.question for p in tasks[1].train_batch(2, 64)} <= b
