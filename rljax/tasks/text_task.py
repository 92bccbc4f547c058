"""Real reasoning data as a task: GSM8K, MATH-500, any JSON-lines / parquet set, TFDS,
and reasoning-gym's procedural tasks, all scored through the same reward path.

Rows become `TextProblem`s whose `prompt` is rendered with the model's prompt
template (its chat template, Qwen2.5-Math's system prompt, or a plain
question/answer format for base models). The training stream is a seeded
permutation of the training rows, epoch after epoch, so a run's data position is
its step and a resumed run sees exactly the data it would have seen. In a
multi-host run each process holds only its shard of the training rows
(`rljax.distributed.Shard`), and its stream permutes that shard.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from tqdm.auto import tqdm

from rljax.distributed import Shard
from rljax.rewards.math_answers import (extract_answer, last_boxed, math_reward,
                                        math_reward_last_number)
from rljax.tasks.sources import SOURCES

TEMPLATES = {
    "chat": "Solve the problem step by step. Put the final answer in \\boxed{}.",
    "qwen_math": "Please reason step by step, and put your final answer within \\boxed{}.",
    "plain": "Question: {question}\nAnswer: Let's think step by step.",
}


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Where a real task's problems come from and how they are prompted.

  Attributes:
    source: a name in `rljax.tasks.sources.SOURCES` ("" keeps the built-in testbed).
    train_path, eval_path: files for gsm8k / math500 / jsonl / parquet ("" : the
      copies in third_party/data), or "name[:split]" for tfds (e.g. "gsm8k/main:train").
    tfds_data_dir: where tfds finds prepared datasets ("" : its default, TFDS_DATA_DIR).
    question_field, answer_field: row fields of jsonl / parquet / tfds sources.
    reasoning_gym_task: dataset name for source "reasoning_gym".
    train_size: reasoning-gym problems generated for training.
    eval_size: held-out problems used (0: all).
    prompt_template: one of TEMPLATES.
    skip_bad_rows: malformed rows are skipped and counted instead of stopping.
    last_number_fallback: math answers without \\boxed{} or #### are read as the last
      number of the completion (off: such a completion has no answer).
  """

  source: str = ""
  train_path: str = ""
  eval_path: str = ""
  question_field: str = "question"
  answer_field: str = "answer"
  tfds_data_dir: str = ""
  reasoning_gym_task: str = "basic_arithmetic"
  train_size: int = 2000
  eval_size: int = 0
  prompt_template: str = "chat"
  skip_bad_rows: bool = False
  last_number_fallback: bool = False

  def __post_init__(self):
    if self.source and self.source not in SOURCES:
      raise ValueError(f"data.source {self.source!r} is unknown; valid: {sorted(SOURCES)}")
    if self.prompt_template not in TEMPLATES:
      raise ValueError(f"data.prompt_template {self.prompt_template!r} is unknown; "
                       f"valid: {sorted(TEMPLATES)}")
    if self.source in ("jsonl", "parquet", "tfds") and not (self.train_path and self.eval_path):
      raise ValueError(f"data.source {self.source!r} needs data.train_path and data.eval_path")


@dataclasses.dataclass(frozen=True)
class TextProblem:
  """One problem: its rendered prompt, reference answer, tag, and optional solution."""

  prompt: str
  question: str
  answer: str
  tag: str
  solution: str | None = None
  entry: dict | None = None  # a reasoning-gym entry, for its own scorer


def render(template: str, question: str, tokenizer) -> str:
  """The prompt text of `question` under `template` (see TEMPLATES)."""
  if template == "plain":
    return TEMPLATES["plain"].format(question=question)
  return tokenizer.chat([{"role": "system", "content": TEMPLATES[template]},
                         {"role": "user", "content": question}])


class TextTask:
  """Training stream, held-out split and verifier of a real dataset (see module doc).

  Implements `rljax.tasks.base.Task`; free-form solutions have no checkable steps.
  """

  steps_verify = None

  def __init__(self, cfg: DataConfig, tokenizer, seed: int, prompt_len: int,
               shard: Shard | None = None):
    """`shard`: the part of the training rows this task holds (default: this process's)."""
    self.cfg, self.seed = cfg, seed
    shard = Shard.of_process() if shard is None else shard
    train, held = SOURCES[cfg.source].load(cfg, seed, shard)
    if shard.count > 1:
      tqdm.write(f"data: {cfg.source} shard {shard.index} of {shard.count}: "
                 f"{len(train)} training rows")
    held = held[:cfg.eval_size] if cfg.eval_size else held
    self.train = self._problems(train, tokenizer, prompt_len)
    self.eval_problems = self._problems(held, tokenizer, prompt_len)
    if not self.train or not self.eval_problems:
      raise ValueError(f"data.source {cfg.source!r}: no problems fit prompt_len {prompt_len}")
    self.reward = SOURCES[cfg.source].reward
    if cfg.last_number_fallback and self.reward is math_reward:
      self.reward = math_reward_last_number

  def _problems(self, rows, tokenizer, prompt_len):
    out, too_long = [], 0
    prompts = [render(self.cfg.prompt_template, r["question"], tokenizer) for r in rows]
    lengths = tokenizer.lengths(prompts)
    for r, prompt, n in zip(rows, prompts, lengths):
      if n + 1 > prompt_len:  # + BOS
        too_long += 1
        continue
      out.append(TextProblem(prompt=prompt, question=r["question"], answer=r["answer"],
                             tag=r["tag"], solution=r.get("solution"), entry=r.get("entry")))
    if too_long:
      tqdm.write(f"data: skipped {too_long} problems longer than prompt_len={prompt_len} tokens")
    return out

  def train_batch(self, index: int, size: int) -> list[TextProblem]:
    """Problems index*size .. of the seeded stream of this shard's rows (a fresh
    permutation each epoch): this process's share of batch `index`."""
    n, out = len(self.train), []
    for k in range(index * size, (index + 1) * size):
      epoch, i = divmod(k, n)
      perm = np.random.default_rng((self.seed, epoch)).permutation(n)
      out.append(self.train[perm[i]])
    return out

  @staticmethod
  def tag(problem: TextProblem) -> str:
    return problem.tag

  @staticmethod
  def eval_tags(problem: TextProblem) -> list[str]:
    return [problem.tag]

  @staticmethod
  def final_answer(completion: str):
    return extract_answer(completion)

  @staticmethod
  def format_ok(completion: str) -> bool:
    """The format reward's property: the answer is in \\boxed{} (Shao et al.'s format
    reward; instruct models meet it only sometimes)."""
    return last_boxed(completion) is not None

  @staticmethod
  def canonical(problem: TextProblem) -> str:
    return " ".join(problem.question.split()).lower()

  @staticmethod
  def planning_mask(pieces: list[str]) -> list[float]:
    return [0.0] * len(pieces)  # planning tokens come from intervention.planning_phrases

  @staticmethod
  def reference_answer(problem: TextProblem) -> str:
    return f"\\boxed{{{problem.answer}}}"

  @staticmethod
  def chain_of_thought(completion: str) -> str:
    i = completion.rfind("\\boxed")
    return completion[:i] if i >= 0 else completion

  @staticmethod
  def answer_space(problem: TextProblem) -> None:
    del problem
    return None  # free-form answers: no bounded space to guess from

  @staticmethod
  def longest_solution_tokens(tok) -> None:
    del tok
    return None  # free-form solutions have no known longest length

  @staticmethod
  def demonstration(problem: TextProblem) -> str:
    if problem.solution is None:
      raise ValueError("this dataset has no reference solutions for demonstrations")
    return problem.solution
