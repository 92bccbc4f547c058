"""Real reasoning data as a task: GSM8K, MATH-500, any JSON-lines / parquet set, TFDS,
and reasoning-gym's procedural tasks, all scored through the same reward path.

Rows become `TextProblem`s whose `prompt` is rendered with the model's prompt
template (its chat template, Qwen2.5-Math's system prompt, or a plain
question/answer format for base models). The training stream is a seeded
permutation of the training rows, epoch after epoch, so a run's data position is
its step and a resumed run sees exactly the data it would have seen.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
from tqdm.auto import tqdm

from rljax import prng
from rljax.tasks import jsonl
from rljax.rewards.math_answers import extract_answer, last_boxed, math_reward

SOURCES = ("gsm8k", "math500", "jsonl", "parquet", "tfds", "reasoning_gym")
TEMPLATES = {
    "chat": "Solve the problem step by step. Put the final answer in \\boxed{}.",
    "qwen_math": "Please reason step by step, and put your final answer within \\boxed{}.",
    "plain": "Question: {question}\nAnswer: Let's think step by step.",
}
_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "third_party", "data")


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Where a real task's problems come from and how they are prompted.

  Attributes:
    source: one of SOURCES ("" keeps the built-in testbed).
    train_path, eval_path: files for gsm8k / math500 / jsonl / parquet ("" : the
      copies in third_party/data), or "split" names for tfds (e.g. "gsm8k/main:train").
    question_field, answer_field: row fields of jsonl / parquet / tfds sources.
    reasoning_gym_task: dataset name for source "reasoning_gym".
    train_size: reasoning-gym problems generated for training.
    eval_size: held-out problems used (0: all).
    prompt_template: one of TEMPLATES.
    skip_bad_rows: malformed rows are skipped and counted instead of stopping.
  """

  source: str = ""
  train_path: str = ""
  eval_path: str = ""
  question_field: str = "question"
  answer_field: str = "answer"
  reasoning_gym_task: str = "basic_arithmetic"
  train_size: int = 2000
  eval_size: int = 0
  prompt_template: str = "chat"
  skip_bad_rows: bool = False

  def __post_init__(self):
    if self.source and self.source not in SOURCES:
      raise ValueError(f"data.source {self.source!r} is unknown; valid: {list(SOURCES)}")
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


def _gsm8k_answer(text: str) -> str:
  return text.rsplit("####", 1)[-1].strip().replace(",", "")


def _rows(cfg: DataConfig, path: str, split: str) -> list[dict]:
  """{question, answer, tag, solution} dicts of one split."""
  if cfg.source in ("gsm8k", "math500"):
    default = {"gsm8k": f"{split}.jsonl", "math500": "test.jsonl"}[cfg.source]
    path = path or os.path.join(_DATA, cfg.source, default)
    q, a = ("question", "answer") if cfg.source == "gsm8k" else ("problem", "answer")
    rows, _ = jsonl.read_jsonl(path, (q, a), q, skip_bad=cfg.skip_bad_rows)
    if cfg.source == "gsm8k":
      return [{"question": r[q], "answer": _gsm8k_answer(r[a]), "tag": "gsm8k",
               "solution": r[a].rsplit("####", 1)[0] + f"\\boxed{{{_gsm8k_answer(r[a])}}}"}
              for r in rows]
    return [{"question": r[q], "answer": r[a], "solution": r.get("solution"),
             "tag": f"level{r.get('level', '?')}"} for r in rows]
  if cfg.source == "jsonl":
    rows, _ = jsonl.read_jsonl(path, (cfg.question_field, cfg.answer_field),
                               cfg.question_field, skip_bad=cfg.skip_bad_rows)
  elif cfg.source == "parquet":
    try:
      import pyarrow.parquet as pq  # pylint: disable=import-outside-toplevel
    except ImportError as e:
      raise ValueError("data.source 'parquet' needs pyarrow: pip install pyarrow") from e
    rows = pq.read_table(path).to_pylist()
  else:  # tfds
    try:
      import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    except ImportError as e:
      raise ValueError("data.source 'tfds' needs tensorflow-datasets: "
                       "pip install 'rljax[tfds]'") from e
    name, _, tsplit = path.partition(":")
    rows = [{k: v.decode() if isinstance(v, bytes) else v for k, v in ex.items()}
            for ex in tfds.as_numpy(tfds.load(name, split=tsplit or split))]
  return [{"question": str(r[cfg.question_field]), "answer": str(r[cfg.answer_field]),
           "tag": cfg.source} for r in rows]


def _reasoning_gym(cfg: DataConfig, size: int, seed: int) -> list[dict]:
  import reasoning_gym  # pylint: disable=import-outside-toplevel
  ds = reasoning_gym.create_dataset(cfg.reasoning_gym_task, size=size, seed=seed)
  return [{"question": e["question"], "answer": str(e["answer"]),
           "tag": cfg.reasoning_gym_task, "entry": dict(e)} for e in ds]


def render(template: str, question: str, tokenizer) -> str:
  """The prompt text of `question` under `template` (see TEMPLATES)."""
  if template == "plain":
    return TEMPLATES["plain"].format(question=question)
  return tokenizer.chat([{"role": "system", "content": TEMPLATES[template]},
                         {"role": "user", "content": question}])


def reasoning_gym_reward(problem: TextProblem, completion: str) -> float:
  """reasoning-gym's own scorer on the completion's final (boxed) answer."""
  import reasoning_gym  # pylint: disable=import-outside-toplevel
  answer = extract_answer(completion)
  if answer is None:
    return 0.0
  entry = problem.entry
  return float(reasoning_gym.get_score_answer_fn(entry["metadata"]["source_dataset"])(
      answer, entry))


class TextTask:
  """Training stream, held-out split and verifier of a real dataset (see module doc).

  Implements `rljax.tasks.base.Task`; free-form solutions have no checkable steps.
  """

  steps_verify = None

  def __init__(self, cfg: DataConfig, tokenizer, seed: int, prompt_len: int):
    self.cfg, self.seed = cfg, seed
    if cfg.source == "reasoning_gym":
      train = _reasoning_gym(cfg, cfg.train_size, seed)
      held = _reasoning_gym(cfg, cfg.eval_size or 200, prng.heldout_data_seed(seed))
    else:
      train = _rows(cfg, cfg.train_path, "train") if cfg.source != "math500" else None
      held = _rows(cfg, cfg.eval_path, "test")
      if train is None:  # MATH-500 is a test set: train on all but the held-out part
        n = cfg.eval_size or len(held) // 5
        train, held = held[n:], held[:n]
    held = held[:cfg.eval_size] if cfg.eval_size else held
    self.train = self._problems(train, tokenizer, prompt_len)
    self.eval_problems = self._problems(held, tokenizer, prompt_len)
    if not self.train or not self.eval_problems:
      raise ValueError(f"data.source {cfg.source!r}: no problems fit prompt_len {prompt_len}")
    self.reward = reasoning_gym_reward if cfg.source == "reasoning_gym" else math_reward

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
    """Problems index*size .. of the seeded stream (a fresh permutation each epoch)."""
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
  def well_formed(completion: str) -> bool:
    return last_boxed(completion) is not None

  @staticmethod
  def matches_wrong_label(problem: TextProblem, completion: str) -> bool:
    del problem, completion
    return False  # no wrong-label control for real data

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
  def demonstration(problem: TextProblem) -> str:
    if problem.solution is None:
      raise ValueError("this dataset has no reference solutions for demonstrations")
    return problem.solution
