"""Faults injected into runs: rewards that raise, hang or return NaN; a full disk; corrupt
checkpoints and tokenizers; bad reward names. The run finishes or fails clearly, losing nothing."""

import errno
import os

import numpy as np
import pytest
from orbax.checkpoint._src.handlers import json_checkpoint_handler

from rljax import experiment
from rljax.workdir import prepare
from rljax.checkpoint import CheckpointError, Checkpointer
from rljax.metrics import read_rows
from rljax.rewards.sandbox import RewardGuard, check_score
from tests import faulty_rewards
from tests.trainer_test import tiny_config


def test_guard_scores_and_counts_each_failure_kind():
  calls = [(None, t) for t in ("ab", "raise", "sleep", "nan", "text", "exit", "abc")]
  with RewardGuard(faulty_rewards.by_text, timeout_s=1.0, failure_score=-1.0) as guard:
    scores, failures = guard.score(calls)
  assert scores == [2.0, -1.0, -1.0, -1.0, -1.0, -1.0, 3.0]
  assert failures == dict(raised=1, timeout=1, crashed=1, nonfinite=1, not_a_number=1)


def test_check_score():
  assert check_score(True) == (1.0, None) and check_score(np.float32(0.5)) == (0.5, None)
  assert check_score(float("inf"))[1] == "nonfinite"
  assert check_score(None)[1] == check_score("1")[1] == check_score([1])[1] == "not_a_number"


@pytest.mark.parametrize("fn,kind", [
    pytest.param("raises", "raised", marks=pytest.mark.slow), ("hangs", "timeout"),
    pytest.param("returns_nan", "nonfinite", marks=pytest.mark.slow)])
def test_faulty_reward_does_not_stop_the_run(tmp_path, fn, kind):
  cfg = tiny_config(3, reward_fn=f"tests.faulty_rewards:{fn}", reward_timeout_s=0.5)
  summary = experiment.run(cfg, str(tmp_path))
  rows = read_rows(os.path.join(tmp_path, "metrics.jsonl"))
  assert [r["step"] for r in rows] == [1, 2, 3]  # no step lost
  counts = [r[f"reward_failures/{kind}"] for r in rows]
  assert sum(counts) > 0 and summary["reward_failures"][kind] == sum(counts)
  assert sum(summary["reward_failures"].values()) == sum(counts)  # nothing else failed
  assert all(np.isfinite(r["loss"]) and np.isfinite(r["reward_mean"]) for r in rows)


def test_unknown_reward_function_fails_at_config_time():
  with pytest.raises(ValueError, match="cannot be imported"):
    tiny_config(1, reward_fn="tests.faulty_rewards:nope")
  with pytest.raises(ValueError, match="module:function"):
    tiny_config(1, reward_fn="not a path")


@pytest.mark.slow  # two runs
def test_full_disk_fails_loudly_and_keeps_older_checkpoints(tmp_path, monkeypatch):
  cfg = tiny_config(4, checkpoint_every=1, max_to_keep=2)
  save = json_checkpoint_handler.JsonCheckpointHandler.async_save

  async def full_disk(self, directory, *args, **kwargs):
    if "checkpoints" in str(directory) and "/3." in str(directory):
      raise OSError(errno.ENOSPC, "No space left on device")
    return await save(self, directory, *args, **kwargs)

  monkeypatch.setattr(json_checkpoint_handler.JsonCheckpointHandler, "async_save", full_disk)
  with pytest.raises(CheckpointError, match=r"step 3 .*No space left.*\[1, 2\] are intact"):
    experiment.run(cfg, str(tmp_path))
  monkeypatch.undo()
  ckpt = Checkpointer(os.path.join(tmp_path, "checkpoints"))
  assert ckpt.latest_step() == 2 and len(ckpt.read_flat(2)) > 0
  # The run resumes from step 2 once the disk has room, and max_to_keep is honoured.
  experiment.run(cfg, str(tmp_path))
  ckpt = Checkpointer(os.path.join(tmp_path, "checkpoints"))
  assert list(ckpt.manager.all_steps()) == [3, 4]
  assert [r["step"] for r in read_rows(os.path.join(tmp_path, "metrics.jsonl"))] == [1, 2, 3, 4]


def _corrupt_dir(path):
  for root, _, files in os.walk(path):
    for name in files:
      with open(os.path.join(root, name), "wb") as f:
        f.write(b"\\x00garbage")


@pytest.mark.slow  # two runs
def test_corrupt_checkpoint_gives_a_clear_message(tmp_path):
  experiment.run(tiny_config(2, checkpoint_every=1), str(tmp_path))
  _corrupt_dir(os.path.join(tmp_path, "checkpoints", "2"))
  with pytest.raises(CheckpointError, match=r"step 2 .* delete .*checkpoints/2 to resume"):
    experiment.run(tiny_config(3, checkpoint_every=1), str(tmp_path))


def test_corrupt_tokenizer_and_missing_step_give_clear_messages(tmp_path):
  experiment.run(tiny_config(1), str(tmp_path))
  tok = os.path.join(tmp_path, "tokenizer.model")
  with open(tok, "wb") as f:
    f.write(b"not a sentencepiece model")
  with pytest.raises(ValueError, match="cannot load sentencepiece model"):
    prepare(tiny_config(1), str(tmp_path))
  os.remove(tok)
  with pytest.raises(CheckpointError, match="no checkpoint step 7"):
    Checkpointer(os.path.join(tmp_path, "checkpoints")).restore(None, 7)
