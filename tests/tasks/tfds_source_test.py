"""The tfds source on a dataset the test builds (ArrayRecord: read without TensorFlow)."""

import pytest
import tensorflow_datasets as tfds  # in the test extras (optional for users: rljax[tfds])

from rljax.distributed import Shard
from rljax.tasks.sources import SOURCES
from rljax.tasks.text_task import DataConfig


class RljaxTestArith(tfds.core.GeneratorBasedBuilder):
  """Six training and three held-out sums, with a GSM8K-like answer field."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        "query": tfds.features.Text(), "target": tfds.features.Text()}))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"train": self._generate_examples(0, 6), "test": self._generate_examples(100, 3)}

  def _generate_examples(self, start, n):
    for i in range(start, start + n):
      yield i, {"query": f"What is {i} + 1?", "target": str(i + 1)}


def test_tfds_source_reads_a_prepared_dataset(tmp_path):
  RljaxTestArith(data_dir=str(tmp_path), file_format="array_record").download_and_prepare()
  cfg = DataConfig(source="tfds", train_path="rljax_test_arith", eval_path="rljax_test_arith:test",
                   question_field="query", answer_field="target", tfds_data_dir=str(tmp_path))
  source = SOURCES["tfds"]
  train, held = source.load(cfg, 0)
  assert sorted(r["question"] for r in train) == [f"What is {i} + 1?" for i in range(6)]
  assert sorted(r["answer"] for r in held) == ["101", "102", "103"]
  assert all(r["tag"] == "tfds" for r in train + held)
  # Per-host reading: two shards split the training records, and both hold all held-out ones.
  parts = [source.load(cfg, 0, Shard(p, 2)) for p in range(2)]
  assert [len(t) for t, _ in parts] == [3, 3]
  assert sorted(r["question"] for t, _ in parts for r in t) == sorted(r["question"] for r in train)
  assert all(h == held for _, h in parts)


def test_tfds_source_names_a_missing_dataset(tmp_path):
  cfg = DataConfig(source="tfds", train_path="no_such_dataset_xyz", eval_path="x:test",
                   tfds_data_dir=str(tmp_path))
  with pytest.raises(Exception, match="no_such_dataset_xyz"):
    SOURCES["tfds"].load(cfg, 0)
