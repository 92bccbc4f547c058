"""Real data: GSM8K and MATH-500 load from third_party, math-verify accepts all 500 MATH-500
reference answers, reasoning-gym goes through the same guarded reward path."""

import dataclasses
import json
import os

import pytest

from rljax.rewards.sandbox import RewardGuard
from rljax.tasks import text_task
from rljax.rewards.math_answers import extract_answer, last_boxed, math_reward
from rljax.tokenizers.base import BatchTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _CharTokenizer(BatchTokenizer):
  """One token per character, and a trivial chat format: enough to render prompts."""
  pad_id, eos_id, bos_id, vocab_size = 0, 1, None, 256

  def _ids(self, texts):
    return [[min(ord(ch), 255) for ch in t] for t in texts]

  def _text(self, ids):
    return "".join(map(chr, ids))

  def chat(self, messages):
    return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"


@dataclasses.dataclass
class _P:
  answer: str


def test_gsm8k_loads_with_reference_answers():
  task = text_task.TextTask(text_task.DataConfig(source="gsm8k"), _CharTokenizer(), 0, 2000)
  assert len(task.train) == 7473 and len(task.eval_problems) == 1319
  first = task.eval_problems[0]
  assert first.answer == "18" and "Janet" in first.prompt and first.prompt.startswith("<system>")
  assert math_reward(first, first.solution) == 1.0  # the worked solution, answer boxed
  # The stream is a seeded permutation: deterministic, and every row once per epoch.
  a, b = task.train_batch(3, 5), task.train_batch(3, 5)
  assert a == b and len({p.question for p in task.train_batch(0, 7473)}) == 7473


def test_math500_every_reference_answer_verifies():
  task = text_task.TextTask(text_task.DataConfig(source="math500", eval_size=100),
                            _CharTokenizer(), 0, 4000)
  assert len(task.eval_problems) == 100 and len(task.train) == 400
  rows = [json.loads(line) for line in open(f"{ROOT}/third_party/data/math500/test.jsonl")]
  assert len(rows) == 500
  for r in rows:  # both the boxed reference and the worked solution score 1
    assert math_reward(_P(r["answer"]), f"so the answer is \\boxed{{{r['answer']}}}") == 1.0
    assert math_reward(_P(r["answer"]), r["solution"]) == 1.0, r["answer"]


@pytest.mark.parametrize("text,answer", [
    ("x \\boxed{\\frac{1}{2}} y", "\\frac{1}{2}"), ("a \\boxed{1} then \\boxed{{2}}", "{2}"),
    ("so #### 1,234\nmore", "1234"), ("it is 3 or maybe 4.5", None), ("none", None),
    ("\\boxed{unclosed", None)])
def test_extract_answer(text, answer):
  assert extract_answer(text) == answer


def test_last_number_fallback_is_an_option():
  assert extract_answer("it is 3 or maybe 4.5", last_number=True) == "4.5"
  assert extract_answer("\\boxed{2} or 4.5", last_number=True) == "2"


def test_math_reward_equivalences_and_mismatches():
  assert math_reward(_P("\\frac{1}{2}"), "\\boxed{0.5}") == 1.0
  assert math_reward(_P("72"), "#### 72") == 1.0
  assert math_reward(_P("72"), "\\boxed{73}") == 0.0
  assert math_reward(_P("72"), "I do not know") == 0.0
  assert last_boxed("\\fbox{x}") == "x"


def test_pathological_answers_stay_within_the_time_limit():
  evil = ["\\boxed{9^{9^{9^{9^{9}}}}}", "\\boxed{" + "(" * 5000 + "1" + ")" * 5000 + "}",
          "\\boxed{10^{10^{100}}}", "\\boxed{" + "1+" * 20000 + "1}"]
  with RewardGuard(math_reward, timeout_s=10.0) as guard:
    scores, failures = guard.score([(_P("1"), t) for t in evil])
  assert all(s in (0.0, 1.0) for s in scores)
  assert sum(failures.values()) <= len(evil)  # a failure scores 0; the guard never hangs


def test_reasoning_gym_through_the_guarded_reward_path():
  cfg = text_task.DataConfig(source="reasoning_gym", reasoning_gym_task="basic_arithmetic",
                             train_size=20, eval_size=10)
  task = text_task.TextTask(cfg, _CharTokenizer(), 0, 4000)
  problems = task.eval_problems
  right = [(p, f"The result is \\boxed{{{p.answer}}}.") for p in problems]
  wrong = [(p, "The result is \\boxed{not a number}.") for p in problems]
  with RewardGuard(task.reward, timeout_s=10.0) as guard:
    good, f1 = guard.score(right)
    bad, f2 = guard.score(wrong)
  assert good == [1.0] * len(problems) and max(bad) < 1.0
  assert sum(f1.values()) == sum(f2.values()) == 0


def test_bad_data_config():
  with pytest.raises(ValueError, match="valid: \\['gsm8k'"):
    text_task.DataConfig(source="gsm9k")
  with pytest.raises(ValueError, match="train_path"):
    text_task.DataConfig(source="jsonl")
  with pytest.raises(ValueError, match="prompt_template"):
    text_task.DataConfig(source="gsm8k", prompt_template="fancy")


def test_corrupt_tokenizer_files_give_clear_messages(tmp_path):
  from rljax.tokenizers.hf import HFTokenizer  # pylint: disable=import-outside-toplevel
  with pytest.raises(FileNotFoundError, match="no tokenizer.json"):
    HFTokenizer.from_dir(str(tmp_path))
  (tmp_path / "tokenizer.json").write_text("{not json")
  with pytest.raises(ValueError, match="cannot build the tokenizer from .*tokenizer.json"):
    HFTokenizer.from_dir(str(tmp_path))
  with pytest.raises(ValueError, match="cannot build the tokenizer"):
    HFTokenizer('{"model": {"type": "nonsense"}}', eos_id=0)


def test_reasoning_gym_training_drops_questions_the_held_out_set_repeats(monkeypatch):
  from rljax.tasks import sources  # pylint: disable=import-outside-toplevel
  from rljax.tasks.text_task import DataConfig  # pylint: disable=import-outside-toplevel
  rows = lambda qs: [{"question": q, "answer": "1", "tag": "t"} for q in qs]
  made = {}

  def fake(cfg, size, seed):
    made[seed] = size
    return rows(["1 + 1 = ?", "2+2 =  ?"]) if len(made) == 1 else rows(
        ["1 + 1 = ?", "3 + 3 = ?", "2 + 2 = ?", " 2+2 = ? "])
  monkeypatch.setattr(sources, "_reasoning_gym_rows", fake)
  train, held = sources.SOURCES["reasoning_gym"].load(
      DataConfig(source="reasoning_gym", train_size=4, eval_size=2), seed=0)
  assert [r["question"] for r in held] == ["1 + 1 = ?", "2+2 =  ?"]
  # Whitespace and case are normalised; "2 + 2 = ?" differs in spacing inside tokens.
  assert [r["question"] for r in train] == ["3 + 3 = ?", "2 + 2 = ?"]
