"""The testbed: traces verify, noise breaks them, held-out split never trains, tokenizer."""

import numpy as np
import pytest

from rljax.tasks import testbed
from rljax.tasks.testbed_task import TestbedTask, build_tokenizer, sft_batch_fn
from rljax.tokenizers.sentencepiece import Tokenizer


def test_clean_traces_are_correct_and_verify():
  rng = np.random.default_rng(0)
  for family in ("arith", "solve", "cancel", "mul"):
    for steps in (1, 2, 5) if family in ("arith", "solve") else (2, 5):
      for _ in range(50):
        p = testbed.make_problem(rng, family, steps)
        trace = testbed.make_trace(p)
        assert testbed.is_correct(p, trace) and testbed.steps_verify(p, trace), (p, trace)
        assert trace.count(";") == steps


def test_examples_by_hand():
  p = testbed.Problem("arith", 2, "37+8-5=?", 40, (37, 8, 5), ("+", "-"))
  assert testbed.make_trace(p) == "37+8=45;45-5=40;#40"
  q = testbed.Problem("solve", 2, "x+8-5=40", 37, (37, 8, 5), ("+", "-"))
  assert testbed.make_trace(q) == "40+5=45;45-8=37;#37"
  assert testbed.steps_verify(q, "40+5=45;45-8=37;#37")
  # Right answer, wrong steps: a shortcut the verifier must flag.
  assert testbed.is_correct(q, "40+5=44;44-8=37;#37")
  assert not testbed.steps_verify(q, "40+5=44;44-8=37;#37")
  assert not testbed.steps_verify(q, "#37")
  assert testbed.extract_answer("garbage") is None
  assert testbed.extract_answer("1+2=3;#999") is None


def test_noise_rate():
  rng = np.random.default_rng(1)
  p = testbed.make_problem(rng, "arith", 1)
  ok = np.mean([testbed.is_correct(p, testbed.make_trace(p, rng, 0.5)) for _ in range(2000)])
  assert 0.45 < ok < 0.55


def test_eval_split_is_held_out_and_distinct():
  cfg = testbed.TestbedConfig(eval_per_cell=20)
  task = TestbedTask(cfg, seed=0)
  held = {p.prompt for p in task.eval_problems}
  assert len(held) == len(task.eval_problems) == 20 * 2 * 3
  # Short tiers collide often (x+d-d=yy has ~16k variants): exclusion must hold there too.
  small = testbed.TestbedConfig(tiers=(1,), eval_per_cell=500)
  held = {testbed.canonical(p) for p in testbed.eval_split(small)}
  drawn = {testbed.canonical(p) for i in range(50)
           for p in testbed.ProblemStream(small, 0, held).batch(i, 64)}
  assert not held & drawn


def test_prompts_of_both_families_share_a_canonical_solution():
  arith = testbed.Problem("arith", 2, "37+8-5=?", 40, (37, 8, 5), ("+", "-"))
  solve = testbed.Problem("solve", 2, "x+5-8=37", 40, (40, 5, 8), ("+", "-"))
  assert arith.prompt != solve.prompt
  assert testbed.canonical(arith) == testbed.canonical(solve) == "37+8=45;45-5=40;#40"
  # Excluding the held-out arith problem excludes the solve problem with its solution.
  stream = testbed.ProblemStream(testbed.TestbedConfig(), 0, {testbed.canonical(arith)})
  assert all(testbed.canonical(p) != testbed.canonical(solve)
             for i in range(20) for p in stream.batch(i, 64))


def test_no_held_out_solution_in_any_training_stream():
  """Over everything the default run draws: the tokenizer corpus, all of pretraining,
  RL (with every dynamic-sampling round) and the one-shot pool."""
  from configs import testbed as testbed_config  # pylint: disable=import-outside-toplevel
  from rljax import prng  # pylint: disable=import-outside-toplevel
  from rljax.config import from_config_dict  # pylint: disable=import-outside-toplevel
  cfg = from_config_dict(testbed_config.get_config())
  task = TestbedTask(cfg.task, cfg.seed)
  held = {testbed.canonical(p) for p in task.eval_problems}
  pre = cfg.pretrain.clean_max_steps + cfg.pretrain.noisy_steps
  drawn = [p for p, _ in [task.noisy_traces(i, cfg.pretrain.batch_size) for i in range(-1, pre)]
           for p in p]
  drawn += [p for i in range(cfg.rl.steps * cfg.intervention.max_gen_rounds)
            for p in task.train_batch(i, cfg.rl.prompts_per_step)]
  drawn += task.train_batch(prng.ONE_SHOT_POOL_POSITION, 64)
  assert len(drawn) == ((pre + 1) * cfg.pretrain.batch_size + 64 + cfg.rl.steps
                        * cfg.intervention.max_gen_rounds * cfg.rl.prompts_per_step)
  assert not held & {testbed.canonical(p) for p in drawn}


def test_stream_is_a_pure_function_of_index():
  task = TestbedTask(testbed.TestbedConfig(), seed=3)
  assert task.train_batch(7, 16) == task.train_batch(7, 16)
  assert task.train_batch(7, 16) != task.train_batch(8, 16)


def test_tokenizer_roundtrip_and_limits(tmp_path):
  task = TestbedTask(testbed.TestbedConfig(), seed=0)
  tok = build_tokenizer(task, 24)
  path = str(tmp_path / "tok.model")
  tok.save(path)
  tok = Tokenizer.load(path)
  texts = ["37+8=45;45-5=40;#40", "x+8-5=40"]
  ids, mask = tok.encode_completions(texts, 24)
  assert tok.decode_completions(ids) == texts
  assert (ids[np.arange(2), mask.sum(1).astype(int) - 1] == tok.eos_id).all()
  prompts, pmask = tok.encode_prompts(["37+8=?"], 10)
  assert prompts[0, -int(pmask.sum())] == tok.bos_id and pmask[0, 0] == 0
  with pytest.raises(ValueError, match="prompt length limit"):
    tok.encode_prompts(["37+8-5+1-2+3-4=?"], 5)
  with pytest.raises(ValueError, match="cannot load"):
    Tokenizer.load(str(tmp_path / "missing.model"))


def test_sft_batches_are_single_tier_and_trimmed():
  task = TestbedTask(testbed.TestbedConfig(), seed=0)
  tok = build_tokenizer(task, 24)
  fn = sft_batch_fn(task, tok, 16, 18, 52)
  b0 = fn(0, True)
  assert b0["tokens"].shape[1] % 8 == 0 and b0["tokens"].shape[1] <= 52
  assert b0["tokens"].shape[1] < fn(2, True)["tokens"].shape[1]  # tier 2 shorter than tier 6
  texts = tok.decode_completions(b0["tokens"])
  problems, _ = task.noisy_traces(0, 16)
  assert all(testbed.steps_verify(p, t) for p, t in zip(problems, texts))  # clean phase
