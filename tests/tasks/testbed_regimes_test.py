"""Testbed v2's families and regime dials: every generator and verifier, by hand and at
scale; the pretraining corpus hides what each regime says it hides; held-out problems
stay out of training by canonical solution."""

import numpy as np
import pytest

from rljax.tasks import testbed
from rljax.tasks import testbed_families as tf
from rljax.tasks.testbed_task import TestbedTask

V2 = testbed.TestbedConfig(families=testbed.FAMILIES, tiers=(2, 4, 6), digits=4,
                           pretrain_tiers=(2, 4), unseen_families=("mul",), eval_per_cell=8)


def _problem(family, prompt_numbers, ops, digits=4):
  p = tf.Problem(family, len(ops), "", 0, tuple(prompt_numbers), tuple(ops), digits)
  value = prompt_numbers[0]
  for op, b in zip(ops, prompt_numbers[1:]):
    value = tf.apply(value, op, b, 10 ** digits)
  tail = "".join(f"{o}{b}" for o, b in zip(ops, prompt_numbers[1:]))
  mark = tf.STRATEGY_MARK if family == "strategy" else ""
  return tf.Problem(family, p.steps, f"{mark}{prompt_numbers[0]:04d}{tail}=?", value,
                    p.numbers, p.ops, digits)


def test_hand_worked_traces():
  arith = _problem("arith", (3705, 8, 5), ("+", "-"))
  assert tf.trace(arith) == "3705+8=3713;3713-5=3708;#3708"
  mul = _problem("mul", (3705, 3, 7), ("*", "*"))
  assert mul.answer == 7805 and tf.trace(mul) == "3705*3=1115;1115*7=7805;#7805"
  s = _problem("strategy", (2995, 8, 5, 9), ("+", "-", "+"))
  assert tf.strategy_is_hard(s) and s.answer == 3007
  assert tf.trace(s, strategy="S") == "S;995+8=003;003-5=998;998+9=007;#2007"  # wrong
  assert tf.trace(s, strategy="N") == "N;+8-5+9=+12;2995+12=3007;#3007"
  assert tf.steps_verify(s, "N;+8-5+9=+12;2995+12=3007;#3007")
  assert not tf.steps_verify(s, "S;995+8=003;003-5=998;998+9=007;#3007")  # wraps: wrong steps
  assert not tf.steps_verify(s, "N;+8-5+9=+11;2995+11=3006;#3007")
  # arith's full-width procedure is a third one (pretraining never shows it there)
  assert tf.steps_verify(s, "2995+8=3003;3003-5=2998;2998+9=3007;#3007")
  assert not tf.steps_verify(s, "2995+8=3003;3003-5=2999;2999+9=3008;#3007")
  assert not tf.steps_verify(s, "2995+8=3003;#3007")
  back = _problem("strategy", (4000, 4, 7), ("-", "+"))  # out of the window and back
  assert not tf.strategy_is_hard(back) and not tf.window_fits(back)
  s_back = tf.trace(back, strategy="S")
  assert s_back == "S;000-4=996;996+7=003;#4003"
  assert testbed.is_correct(back, s_back) and not tf.steps_verify(back, s_back)  # a shortcut
  easy = _problem("strategy", (2905, 8, 5), ("+", "-"))
  assert not tf.strategy_is_hard(easy)
  assert tf.trace(easy, strategy="S") == "S;905+8=913;913-5=908;#2908"
  assert tf.steps_verify(easy, "S;905+8=913;913-5=908;#2908")
  cancel = _problem("cancel", (3705, 4, 7, 7), ("+", "+", "-"))
  assert tf.trace(cancel) == "3705+4=3709;3709+7=3716;3716-7=3709;#3709"
  short = tf.trace(cancel, shortcut=True)
  assert short == "3705+4=3709;#3709"
  assert testbed.is_correct(cancel, short) and not tf.steps_verify(cancel, short)
  assert TestbedTask.answer_space(arith) == 10 ** 4


@pytest.mark.parametrize("digits", [2, 4])
def test_every_family_generates_verifiable_problems(digits):
  rng = np.random.default_rng(digits)
  hard = 0
  for family in testbed.FAMILIES:
    for steps in (2, 3, 6):
      for _ in range(200):
        p = tf.make(rng, family, steps, digits, strategy_hard=0.3)
        assert len(p.prompt) and p.digits == digits and 0 <= p.answer < 10 ** digits
        full = tf.trace(p)  # canonical: the full trace (N for strategy)
        assert testbed.is_correct(p, full) and tf.steps_verify(p, full), (p, full)
        if family == "strategy":
          s = tf.trace(p, strategy="S")
          # S's answer is right exactly when the net change stays in its window; its
          # steps verify exactly when every step does.
          assert testbed.is_correct(p, s) == (not tf.strategy_is_hard(p)), (p, s)
          assert tf.steps_verify(p, s) == tf.window_fits(p), (p, s)
          assert tf.window_fits(p) <= (not tf.strategy_is_hard(p))
          hard += tf.strategy_is_hard(p)
        noisy = tf.trace(p, np.random.default_rng(1), step_noise=1.0, max_offset=9)
        assert not tf.steps_verify(p, noisy)  # every result off: no step verifies
  assert abs(hard / 600 - 0.3) < 0.06  # strategy_hard is the share of hard problems


def test_regimes_and_what_pretraining_hides():
  task = TestbedTask(V2, 0)
  regimes = {testbed.regime(p, V2) for p in task.eval_problems}
  assert regimes == set(testbed.REGIMES)
  assert testbed.regime(_problem("mul", (1, 2), ("*",)), V2) == "absent"
  assert testbed.regime(_problem("arith", (1, 2, 3, 4, 5, 6, 7), ("+",) * 6), V2) == "headroom"
  assert testbed.regime(_problem("arith", (1, 2, 3), ("+", "+")), V2) == "latent"
  tags = task.eval_tags(task.eval_problems[0])
  assert tags[-1].startswith("regime_")
  procedures, shortcuts, seen = set(), [], set()
  for i in range(6):
    problems, traces = task.noisy_traces(i, 64)
    for p, t in zip(problems, traces):
      seen.add((p.family, p.steps))
      assert p.family != "mul" and "*" not in t      # absent skill: never shown
      assert p.steps in V2.pretrain_tiers             # headroom tiers: never shown
      # The mark opens exactly the strategy prompts, and pretraining answers it with a
      # plan token: arith's trace never follows the mark.
      assert p.prompt.startswith(tf.STRATEGY_MARK) == (p.family == "strategy")
      if p.family == "strategy":
        procedures.add(t[0])
      if p.family == "cancel":
        shortcuts.append(t.count(";") < p.steps)
  assert procedures == {"S", "N"} and 0.1 < np.mean(shortcuts) < 0.5
  assert {f for f, _ in seen} == {"arith", "solve", "cancel", "strategy"}
  # The tokenizer corpus still has the unseen family's symbols (in prompts only).
  corpus = task.tokenizer_corpus(200)
  assert any("*" in line for line in corpus)


def test_held_out_solutions_never_appear_in_training():
  task = TestbedTask(V2, 0)
  held = {testbed.canonical(p) for p in task.eval_problems}
  drawn = [p for i in range(30) for p in task.train_batch(i, 64)]
  assert {p.family for p in drawn} == set(testbed.FAMILIES)
  assert not held & {testbed.canonical(p) for p in drawn}
  assert {p.steps for p in drawn} == {2, 4, 6}  # RL sees the headroom tier


def test_strategy_plan_token_is_a_planning_token():
  mask = TestbedTask.planning_mask(["N", ";", "+", "8", "=", "+", "8", ";", "29", "+", "8"])
  assert mask[0] == 1.0 and mask[2:4] == [1.0, 1.0] and mask[4] == 0.0


def test_bad_dials_are_refused():
  for bad in (dict(digits=1), dict(pretrain_tiers=(9,)), dict(unseen_families=("arith", "solve")),
              dict(families=("cancel",), tiers=(1, 2)), dict(strategy_hard=1.5)):
    with pytest.raises(ValueError, match="task\\."):
      testbed.TestbedConfig(**bad)


def test_pretraining_positions_reach_the_headroom_tiers():
  """Randomized RoPE starts: pretraining sequences (tiers 2, 4) are placed so that the
  positions a headroom (tier 6) trace uses are seen, and never past the model's length."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from rljax.rl.logprobs import sequence_inputs  # pylint: disable=import-outside-toplevel
  from rljax.tasks.testbed_task import build_tokenizer, sft_batch_fn  # pylint: disable=import-outside-toplevel
  task = TestbedTask(V2, 0)
  tok = build_tokenizer(task, 40)
  fn = sft_batch_fn(task, tok, 64, 24, 96, max_position_offset=64)
  reach = []
  for i in range(4):
    b = fn(i, clean=False)
    ends = b["prompt_mask"].sum(1) + b["mask"].sum(1) + b["position_offset"]
    assert (b["position_offset"] >= 0).all() and (ends <= 24 + 96).all()
    reach.append(ends.max())
    _, pos, _ = sequence_inputs(jnp.asarray(b["prompt"]), jnp.asarray(b["prompt_mask"]),
                                jnp.asarray(b["tokens"]), jnp.asarray(b["position_offset"]))
    first = np.argmax(b["prompt_mask"], axis=1)
    np.testing.assert_array_equal(np.asarray(pos)[np.arange(64), first], b["position_offset"])
  six = [testbed.make_trace(p) for p in task.eval_problems if p.steps == 6]
  longest = max(tok.lengths(six)) + max(tok.lengths([p.prompt for p in task.eval_problems]))
  assert max(reach) >= longest  # the deepest tier's positions were trained on
  assert (fn(0, clean=True)["position_offset"] == 0).sum() < 64
  assert not sft_batch_fn(task, tok, 8, 24, 96)(0, clean=True)["position_offset"].any()


def test_strategy_mix_tallies_procedures_on_hard_and_easy_problems():
  from types import SimpleNamespace  # pylint: disable=import-outside-toplevel
  from rljax.analysis import regimes  # pylint: disable=import-outside-toplevel
  hard = _problem("strategy", (2995, 8, 5, 9), ("+", "-", "+"))
  easy = _problem("strategy", (2905, 8, 5), ("+", "-"))
  texts = {hard: ["S;995+8=003;#2007", "N;+8-5+9=+12;2995+12=3007;#3007",
                  "2995+8=3003;3003-5=2998;2998+9=3007;#3007", "junk"],
           easy: ["S;905+8=913;913-5=908;#2908"] * 3 + ["N;+8-5=+3;2905+3=2908;#2908"]}

  def evaluate(params, n, tag, problems, observe):
    del params, tag
    for p in problems:
      observe(p, texts[p][:n], np.array([testbed.is_correct(p, t) for t in texts[p][:n]]))
  setup = SimpleNamespace(task=SimpleNamespace(eval_problems=[hard, easy, _problem(
      "arith", (1, 2), ("+",))]), evaluate=evaluate)
  mix = regimes.strategy_mix(setup, None, 4)
  assert mix["hard"] == {"problems": 1, "samples": 4, "solved": 1, "share_S": 0.25,
                         "share_N": 0.25, "share_plain": 0.25, "share_other": 0.25,
                         "right_S": 0.0, "right_N": 1.0, "right_plain": 1.0}
  assert mix["easy"]["share_S"] == 0.75 and mix["easy"]["right_S"] == 1.0


def test_the_start_alone_does_not_reveal_a_hard_strategy_problem():
  """Hard and easy strategy problems start equally close to a window edge."""
  rng = np.random.default_rng(3)
  problems = [tf.make(rng, "strategy", 4, 4, strategy_hard=0.5) for _ in range(600)]
  edge = lambda p: min(p.numbers[0] % 1000, 1000 - p.numbers[0] % 1000)
  hard = [edge(p) for p in problems if tf.strategy_is_hard(p)]
  easy = [edge(p) for p in problems if not tf.strategy_is_hard(p)]
  assert 0.4 < len(hard) / 600 < 0.6
  assert max(hard + easy) <= 12
  # Independent by construction: the distance's distribution is the same for both kinds.
  assert abs(np.mean(hard) - np.mean(easy)) < 1.0
  assert abs(np.mean(np.array(hard) < 4) - np.mean(np.array(easy) < 4)) < 0.1
