"""The `Task` protocol: everything the trainer, the evaluator and the report ask of a task.

A task is a training stream of problems, a held-out split, a verifier and the
few text operations the interventions need. The built-in testbed
(`rljax.tasks.testbed_task.TestbedTask`) and real datasets
(`rljax.tasks.text_task.TextTask`) implement it; a new task family implements
these members and nothing else. A problem is any object with a `prompt` string.

Optional capabilities are declared, not probed: `steps_verify` is None for a
task that cannot check a solution's intermediate steps.

In a multi-host run `train_batch` is this process's share of a batch (a task over
files holds only its shard of them); `global_batch` gathers the whole batch.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol, Sequence

from rljax import distributed


class Task(Protocol):
  """A source of verifiable problems.

  Attributes:
    eval_problems: the held-out split (never in the training stream).
    steps_verify: (problem, completion) -> whether every step of the completion's
      reasoning is right, or None when the task has no step structure. It tells
      right answers reached through wrong steps (shortcuts) apart.
  """

  eval_problems: Sequence[Any]
  steps_verify: Callable[[Any, str], bool] | None

  def train_batch(self, index: int, size: int) -> list:
    """This process's `size` problems of training batch `index` (the whole batch with
    one process; a pure function of the index: exact resume)."""

  def reward(self, problem, completion: str) -> float:
    """The verifier's score (1.0 right, 0.0 wrong). Runs in the reward sandbox's worker,
    so it must be picklable by reference (a module-level function or a staticmethod)."""

  def final_answer(self, completion: str):
    """The answer a completion commits to (None if it gives none)."""

  def format_ok(self, completion: str) -> bool:
    """The format reward's property: a surface property of the output that the base
    meets only sometimes (each task documents which)."""

  def canonical(self, problem) -> str:
    """The problem's canonical form (per-problem caches, held-out exclusion)."""

  def tag(self, problem) -> str:
    """The group a training problem's accuracy is logged under (e.g. its tier)."""

  def eval_tags(self, problem) -> list[str]:
    """The held-out groups a problem is reported in."""

  def planning_mask(self, pieces: list[str]) -> list[float]:
    """1.0 on a completion's planning tokens (HICRA, semantic entropy), given its token
    strings in order; 0.0 everywhere for a task with no known plan structure."""

  def demonstration(self, problem) -> str:
    """A correct reference solution (RL-PLUS's off-policy data)."""

  def reference_answer(self, problem) -> str:
    """The reference outcome DRO teacher-forces after a chain of thought."""

  def chain_of_thought(self, completion: str) -> str:
    """The reasoning part of a completion, its own final answer removed."""

  def longest_solution_tokens(self, tok) -> int | None:
    """Tokens (EOS included) of the longest correct completion under `tok`, or None
    when solutions are free-form; setup refuses an overlong buffer that would cut it."""

  def answer_space(self, problem) -> int | None:
    """How many answers the problem's format allows (uniform guessing is right with
    probability 1 / that), or None when unbounded or unknown."""


def global_batch(task: Task, index: int, size: int) -> list:
  """Batch `index` of `size` problems, whole and in the same order on every process:
  each process draws its share and the shares are gathered in process order."""
  return distributed.gather_objects(task.train_batch(index, distributed.local_count(size)))


def share_of_stream(batch: Callable[[int, int], list], index: int, size: int) -> list:
  """This process's `size` problems of batch `index` of a stream every process can draw
  whole (procedural, or replicated): the global batch of size x processes, cut, so a
  run computes the same batches whatever its process count."""
  n = size * distributed.process_count()
  return batch(index, n)[distributed.share(n)]


@dataclasses.dataclass(frozen=True)
class Restreamed:
  """`task` with its training stream replaced (one-shot RLVR's pool and single example).

  Attributes:
    task: the task whose verifier, held-out split and text operations are kept.
    problems: the new stream cycles through these problems in order.
  """

  task: Task
  problems: tuple

  @property
  def eval_problems(self):
    return self.task.eval_problems

  @property
  def steps_verify(self):
    return self.task.steps_verify

  def train_batch(self, index: int, size: int) -> list:
    return share_of_stream(self._cycle, index, size)

  def _cycle(self, index: int, size: int) -> list:
    n = len(self.problems)
    return [self.problems[(index * size + k) % n] for k in range(size)]

  @property
  def reward(self):
    # The wrapped task's own function, so the reward worker receives it by reference.
    return self.task.reward

  def final_answer(self, completion: str):
    return self.task.final_answer(completion)

  def format_ok(self, completion: str) -> bool:
    return self.task.format_ok(completion)

  def canonical(self, problem) -> str:
    return self.task.canonical(problem)

  def tag(self, problem) -> str:
    return self.task.tag(problem)

  def eval_tags(self, problem) -> list[str]:
    return self.task.eval_tags(problem)

  def planning_mask(self, pieces: list[str]) -> list[float]:
    return self.task.planning_mask(pieces)

  def demonstration(self, problem) -> str:
    return self.task.demonstration(problem)

  def reference_answer(self, problem) -> str:
    return self.task.reference_answer(problem)

  def chain_of_thought(self, completion: str) -> str:
    return self.task.chain_of_thought(completion)

  def longest_solution_tokens(self, tok) -> int | None:
    return self.task.longest_solution_tokens(tok)

  def answer_space(self, problem) -> int | None:
    return self.task.answer_space(problem)
