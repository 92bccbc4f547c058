"""Two local processes x 4 CPU devices (jax.distributed on localhost, gloo) train like
one process with 8 devices, across a checkpoint save and restore; each process reads
only its shard of a dataset and draws only its share of the prompts, and every process
sees the whole step; a missing process fails fast with a message that names it."""

import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The testbed's quick config, cut down to seconds (tests/trainer_test.py's `shrink`).
OVERRIDES = {
    "model.preset": "tiny", "task.tiers": "(2,)", "task.eval_per_cell": 2,
    "prompt_len": 12, "completion_len": 24, "sampling.max_new_tokens": 24,
    "pretrain.clean_max_steps": 2, "pretrain.noisy_steps": 2, "pretrain.log_every": 1,
    "pretrain.batch_size": 8, "rl.prompts_per_step": 4, "rl.group_size": 4,
    "rl.minibatches": 2, "rl.eval_every": 2, "rl.eval_samples": 2,
    "rl.checkpoint_every": 1, "rl.trace_every": 1, "rl.trace_rollouts": 4,
    "eval.n_samples": 4, "eval.batch_rollouts": 16,
}
CONTINUOUS = ("reward_mean", "accuracy", "entropy", "kl", "loss", "grad_norm", "clipfrac",
              "response_length", "cov_mean", "log_ratio_abs_max", "mismatch/logp_abs_mean")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _command(workdir, steps, extra=()):
  args = [sys.executable, "-m", "launch.train", "--config", "configs/testbed.py:v1,runlocal",
          "--workdir", str(workdir), f"--config.rl.steps={steps}"]
  args += [f"--config.{k}={v}" for k, v in OVERRIDES.items()]
  return args + list(extra)


def _env(devices: int) -> dict:
  return dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu",
              XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")


def _single(workdir, steps):
  proc = subprocess.run(_command(workdir, steps), cwd=ROOT, env=_env(8), capture_output=True,
                        text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]


def _pair(workdir, steps, processes=(0, 1), timeout_s=60):
  port = _free_port()
  procs = [subprocess.Popen(
      _command(workdir, steps, ["--distributed", f"--coordinator_address=localhost:{port}",
                                "--num_processes=2", f"--process_id={i}",
                                f"--join_timeout_s={timeout_s}"]),
      cwd=ROOT, env=_env(4), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for i in processes]
  outs = [p.communicate(timeout=900) for p in procs]
  return [(p.returncode, err) for p, (_, err) in zip(procs, outs)]


def _rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f if line.strip()]


@pytest.mark.slow
def test_two_processes_train_like_one_across_a_restore(tmp_path):
  one, two = tmp_path / "one", tmp_path / "two"
  _single(one, 3)
  # The same base model (pretrained once): the two-process run restores it.
  os.makedirs(two)
  for name in ("base", "tokenizer.model"):
    src = one / name
    (shutil.copytree if src.is_dir() else shutil.copy)(src, two / name)

  for rc, err in _pair(two, 2):  # stops after step 2 with a checkpoint ...
    assert rc == 0, err[-3000:]
  assert [r["step"] for r in _rows(two)] == [1, 2]
  for rc, err in _pair(two, 3):  # ... and a second launch resumes it to step 3
    assert rc == 0, err[-3000:]

  a, b = _rows(one), _rows(two)
  assert [r["step"] for r in b] == [1, 2, 3]  # written once, by process 0
  for ra, rb in zip(a, b):
    for k in CONTINUOUS:
      np.testing.assert_allclose(rb[k], ra[k], atol=1e-3, rtol=1e-3,
                                 err_msg=f"{k} step {ra['step']}")
    assert rb.get("eval/pass@1") == ra.get("eval/pass@1")  # held-out, sharded verification
  sa, sb = (json.load(open(d / "summary.json")) for d in (one, two))
  for k in ("base_pass@1", "base_greedy_pass@1", "final_pass@1", "final_greedy_pass@1"):
    assert abs(sa[k] - sb[k]) <= 1e-6, k
  assert sorted(os.listdir(two / "checkpoints")) == sorted(os.listdir(one / "checkpoints"))


def test_a_missing_process_fails_fast_and_says_so(tmp_path):
  (rc, err), = _pair(tmp_path / "alone", 1, processes=(0,), timeout_s=5)
  assert rc != 0
  assert "process 0 of 2" in err and "could not join the run within 5 s" in err
  assert "--worker=all" in err


def _write_jsonl(path, questions):
  with open(path, "w") as f:
    f.writelines(json.dumps({"question": q, "answer": "1"}) + "\n" for q in questions)


def test_each_process_reads_its_shard_and_sees_the_whole_step(tmp_path):
  train = [f"What is {i} + 0?" for i in range(12)]
  _write_jsonl(tmp_path / "train.jsonl", train)
  _write_jsonl(tmp_path / "eval.jsonl", ["What is 100 + 0?", "What is 101 + 0?"])
  port = _free_port()
  procs = [subprocess.Popen([sys.executable, "-m", "tests.scale.shard_driver", str(port), str(i),
                             str(tmp_path)], cwd=ROOT, env=_env(4), stderr=subprocess.PIPE,
                            text=True) for i in range(2)]
  for p in procs:
    assert p.wait(timeout=300) == 0, p.stderr.read()[-3000:]
  a, b = (json.load(open(tmp_path / f"process_{i}.json")) for i in range(2))
  assert a["train"] == train[:6] and b["train"] == train[6:]  # disjoint shards, all rows
  assert a["eval"] == b["eval"] and len(a["eval"]) == 2       # the held-out split whole
  for sa, sb in zip(a["steps"], b["steps"]):
    # Each process drew two prompts from its own shard; both hold all four, in process order.
    assert set(sa["local"]) <= set(train[:6]) and set(sb["local"]) <= set(train[6:])
    assert sa["questions"] == sb["questions"] == sa["local"] + sb["local"]
    assert sa["prompt_ids"] == sb["prompt_ids"] and sa["prompt_mask"] == sb["prompt_mask"]
  assert a["pool"] == b["pool"] and len(set(a["pool"])) == 6


@pytest.mark.slow
def test_two_processes_train_on_their_own_shards_of_a_dataset(tmp_path):
  """A real-data recipe (tiny random Qwen2, JSON-lines data) on 2 processes: each reads
  half the rows, and a step's rollouts come from both halves."""
  from tests.real_model_test import _tiny_qwen_dir  # pylint: disable=import-outside-toplevel
  ckpt, run = tmp_path / "qwen", tmp_path / "run"
  _tiny_qwen_dir(str(ckpt))
  train = [f"Add {i} and one." for i in range(16)]
  _write_jsonl(tmp_path / "train.jsonl", train)
  _write_jsonl(tmp_path / "eval.jsonl", ["Add 100 and one.", "Add 101 and one."])
  port = _free_port()
  args = [sys.executable, "-m", "launch.train", "--config",
          f"configs/gsm8k_qwen2p5_0p5b.py:runlocal,checkpoint={ckpt}", "--workdir", str(run),
          "--config.rl.steps=2", "--config.rl.prompts_per_step=4", "--config.rl.trace_rollouts=16",
          "--config.data.source=jsonl",
          f"--config.data.train_path={tmp_path / 'train.jsonl'}",
          f"--config.data.eval_path={tmp_path / 'eval.jsonl'}", "--config.data.eval_size=2",
          "--config.completion_len=16", "--config.sampling.max_new_tokens=16",
          "--distributed", f"--coordinator_address=localhost:{port}", "--num_processes=2"]
  procs = [subprocess.Popen(args + [f"--process_id={i}"], cwd=ROOT, env=_env(4),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for i in range(2)]
  outs = [p.communicate(timeout=900) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  for i, (out, _) in enumerate(outs):
    assert f"data: jsonl shard {i} of 2: 8 training rows" in out
  assert [r["step"] for r in _rows(run)] == [1, 2]
  with open(run / "traces" / "step_000001.jsonl") as f:
    prompts = [json.loads(line)["prompt"] for line in f]
  drawn = {q for q in train for p in prompts if q in p}
  assert len(drawn) == 4 and drawn & set(train[:8]) and drawn & set(train[8:])
