"""The whole pipeline on a tiny config: a two-step run, resume == uninterrupted, no recompiles."""

import json
import os

import chex
import numpy as np
import pytest

from rljax import pipeline, trainer
from rljax.checkpoint import Checkpointer
from rljax.config import from_config_dict
from rljax.metrics import read_rows
from tests.config_test import load


def tiny_config(rl_steps, **rl):
  c = load("runlocal")
  c.model.preset = "tiny"
  c.task.tiers = (2,)
  c.task.eval_per_cell = 2
  c.prompt_len = 12
  c.completion_len = 24
  c.sampling.max_new_tokens = 24
  c.pretrain.update(clean_max_steps=2, noisy_steps=2, log_every=1, batch_size=8)
  c.rl.update(steps=rl_steps, prompts_per_step=4, group_size=4, eval_every=2, eval_samples=2,
              checkpoint_every=1, **rl)
  c.eval.n_samples = 4
  c.eval.batch_rollouts = 16
  return from_config_dict(c)


def test_two_step_run_writes_summary_and_metrics(tmp_path):
  summary = pipeline.run(tiny_config(2, minibatches=2, epochs=2), str(tmp_path))
  for key in ("base_pass@1", "base_pass@4", "final_pass@1", "final_pass@4", "initial_entropy",
              "final_entropy", "steps", "wall_time_s"):
    assert key in summary
  assert summary["steps"] == 2
  rows = read_rows(os.path.join(tmp_path, "metrics.jsonl"))
  assert [r["step"] for r in rows] == [1, 2]
  for key in ("reward_mean", "reward_std", "accuracy", "entropy", "kl", "clipfrac",
              "response_length", "zero_var_frac", "step_time_s", "tokens_per_s"):
    assert key in rows[0] and rows[0][key] is not None
  assert "eval/pass@1" in rows[1]
  assert os.listdir(os.path.join(tmp_path, "tensorboard", "metrics"))
  with open(os.path.join(tmp_path, "summary.json")) as f:
    assert json.load(f)["steps"] == 2


def test_resume_matches_uninterrupted_run(tmp_path):
  straight, split = str(tmp_path / "straight"), str(tmp_path / "split")
  pipeline.run(tiny_config(4), straight)
  pipeline.run(tiny_config(2), split)
  # Simulate a crash after step 3's checkpoint: a row past it must be dropped on resume.
  pipeline.run(tiny_config(3), split)
  with open(os.path.join(split, "metrics.jsonl"), "a") as f:
    f.write(json.dumps({"step": 4, "reward_mean": 123.0}) + "\n")
  pipeline.run(tiny_config(4), split)
  a = Checkpointer(os.path.join(straight, "checkpoints")).read_flat(4)
  b = Checkpointer(os.path.join(split, "checkpoints")).read_flat(4)
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  rows_a = read_rows(os.path.join(straight, "metrics.jsonl"))
  rows_b = read_rows(os.path.join(split, "metrics.jsonl"))
  drop = ("step_time_s", "tokens_per_s")
  strip = lambda rows: [{k: v for k, v in r.items() if k not in drop} for r in rows]
  assert strip(rows_a) == strip(rows_b)


def test_update_step_traces_once(tmp_path, monkeypatch):
  """Steps 2.. reuse the compiled update and sampler (no recompilation)."""
  monkeypatch.setattr(trainer, "rl_update", chex.assert_max_traces(trainer.rl_update, n=1))
  pipeline.run(tiny_config(3, minibatches=2), str(tmp_path))
