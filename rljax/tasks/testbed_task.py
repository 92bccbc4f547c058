"""The testbed as a task the trainer consumes: prompts, rewards, tags, SFT batches.

Everything is a pure function of (seed, index), so the data position of a run is
just its step and a resumed run sees exactly the data it would have seen.
"""

from __future__ import annotations

import numpy as np

from rljax import prng
from rljax.tasks import testbed, testbed_families
from rljax.tasks.base import share_of_stream
from rljax.tokenizers.sentencepiece import Tokenizer, train_sentencepiece


class TestbedTask:
  """Training stream, held-out split and verifier of the built-in testbed.

  Implements `rljax.tasks.base.Task`, with step verification.
  """

  __test__ = False  # not a pytest test class, despite the name

  def __init__(self, cfg: testbed.TestbedConfig, seed: int):
    self.cfg = cfg
    self.eval_problems = testbed.eval_split(cfg)
    self.stream = testbed.ProblemStream(cfg, seed,
                                        {testbed.canonical(p) for p in self.eval_problems})

  def train_batch(self, index: int, size: int) -> list[testbed.Problem]:
    # Procedural: every process can draw the whole batch and keep its share.
    return share_of_stream(self.stream.batch, index, size)

  @staticmethod
  def reward(problem: testbed.Problem, completion: str) -> float:
    """1.0 for the exact answer, else 0.0 (binary verifiable reward).

    A plain function (no instance state) so the reward worker process gets it by name.
    """
    return float(testbed.is_correct(problem, completion))

  @staticmethod
  def steps_verify(problem: testbed.Problem, completion: str) -> bool:
    """Every step of the trace is one of the problem's steps, computed correctly."""
    return testbed.steps_verify(problem, completion)

  @staticmethod
  def reference_answer(problem: testbed.Problem) -> str:
    """The reference outcome DRO teacher-forces after a chain of thought."""
    return f";#{problem.answer:0{problem.digits}d}"

  @staticmethod
  def chain_of_thought(completion: str) -> str:
    """The reasoning part of a completion (its own final answer removed)."""
    return completion.rsplit(";#", 1)[0] if ";#" in completion else completion

  @staticmethod
  def demonstration(problem: testbed.Problem) -> str:
    """An external, correct solution (RL-PLUS's off-policy data)."""
    return testbed.make_trace(problem)

  def longest_solution_tokens(self, tok) -> int:
    """The longest correct trace in tokens, EOS included: traces have one fixed format
    per (family, tier, procedure), so the held-out problems of the longest tier have it."""
    longest = max(self.cfg.tiers)
    traces = [testbed.make_trace(p, **kw) for p in self.eval_problems if p.steps == longest
              for kw in ([{"strategy": s} for s in testbed_families.STRATEGIES]
                         if p.family == "strategy" else [{}])]
    return max(tok.lengths(traces)) + 1

  @staticmethod
  def answer_space(problem: testbed.Problem) -> int:
    """10^digits: every answer has `digits` digits."""
    return 10 ** problem.digits

  def final_answer(self, completion: str):
    return testbed.extract_answer(completion, self.cfg.digits)

  def format_ok(self, completion: str) -> bool:
    """The format reward's surface property: an answer can be read off and its last digit
    is even. The base writes well-formed traces almost always (99.6% measured), so
    well-formedness alone would reward everything; the even last digit, independent of
    correctness, holds for about half of its answers (48.6%)."""
    answer = self.final_answer(completion)
    return answer is not None and answer % 2 == 0

  @staticmethod
  def canonical(problem: testbed.Problem) -> str:
    return testbed.canonical(problem)

  @staticmethod
  def planning_mask(pieces: list[str]) -> list[float]:
    """1 on the plan of each step (its operation and operand), 0 on results and answer.

    In `37+8=45;45-5=40;#40` the left operand continues from the previous result,
    the `+8` / `-5` choose the next move, and `=45` executes it. A strategy trace's
    first token (`S` or `N`) chooses the procedure: a plan token too.
    """
    out, in_plan, seen_op = [], False, False
    for i, piece in enumerate(pieces):
      if i == 0 and piece.lstrip("\u2581")[:1] in testbed_families.STRATEGIES:
        out.append(1.0)
        continue
      if piece in ("+", "-", "*"):
        in_plan, seen_op = True, True
      elif "=" in piece or "#" in piece or ";" in piece:
        in_plan = False
      out.append(1.0 if in_plan and seen_op else 0.0)
    return out

  @staticmethod
  def tag(problem: testbed.Problem) -> str:
    return f"tier{problem.steps}"

  def eval_tags(self, problem: testbed.Problem) -> list[str]:
    """Held-out groups a problem is reported in: its tier, its (family, tier) cell and its
    regime (`testbed.regime`)."""
    return [f"tier{problem.steps}", f"{problem.family}_tier{problem.steps}",
            f"regime_{testbed.regime(problem, self.cfg)}"]

  def noisy_traces(self, index: int, size: int, noise: float | None = None):
    """(problems, noisy traces) for pretraining batch `index`, all of one tier.

    One tier per batch (cycling) keeps padding short: a batch is only as long
    as its tier's traces. Pretraining draws from indices offset from the RL
    stream's so the two phases do not see the same problem sequence.
    """
    cfg = self.cfg
    tier = cfg.seen_tiers[index % len(cfg.seen_tiers)]
    problems = self.stream.batch(prng.PRETRAIN_POSITION + index, size, tier=tier,
                                 families=cfg.seen_families)
    rng = self.stream.rng_for(prng.PRETRAIN_POSITION + index)
    noise = cfg.step_noise if noise is None else noise
    traces = [testbed.make_trace(p, rng, noise, cfg.max_offset, **self._procedure(p, rng))
              for p in problems]
    return problems, traces

  def _procedure(self, problem: testbed.Problem, rng) -> dict:
    """How a pretraining trace solves `problem`: the strategy family's procedure (N with
    probability strategy_rare), the cancel family's shortcut (probability shortcut_rate)."""
    if problem.family == "strategy":
      return {"strategy": "N" if rng.random() < self.cfg.strategy_rare else "S"}
    if problem.family == "cancel":
      return {"shortcut": bool(rng.random() < self.cfg.shortcut_rate)}
    return {}

  def tokenizer_corpus(self, size: int = 4000):
    problems, traces = self.noisy_traces(-1, size)
    # Prompts of the families pretraining never shows, so their symbols (`*`) are tokens.
    unseen = self.cfg.unseen_families and self.stream.batch(
        prng.PRETRAIN_POSITION - 2, size // 10, families=self.cfg.unseen_families)
    return [p.prompt for p in problems] + traces + [p.prompt for p in unseen or []]


def build_tokenizer(task: TestbedTask, vocab_size: int) -> Tokenizer:
  return Tokenizer(train_sentencepiece(task.tokenizer_corpus(), vocab_size))


def sft_batch_fn(task: TestbedTask, tokenizer: Tokenizer, batch_size: int,
                 prompt_len: int, completion_len: int, max_position_offset: int = 0):
  """batches(i, clean) -> numpy batch for pretraining step i, correct or noisy traces.

  With `max_position_offset`, each sequence's RoPE positions start at a random offset
  (up to the limit, and so that it still ends within prompt_len + completion_len):
  randomized positions (Ruoss et al. 2023, arXiv 2305.16843), so the positions that
  deeper (headroom) tiers reach are seen in pretraining, with shallower content.
  """
  def batches(index: int, clean: bool) -> dict:
    problems, traces = task.noisy_traces(index, batch_size, noise=0.0 if clean else None)
    prompt, prompt_mask = tokenizer.encode_prompts([p.prompt for p in problems], prompt_len)
    tokens, mask = tokenizer.encode_completions(traces, completion_len)
    # Trim the padding down to a multiple of 8: one or two shapes per tier.
    p = min(prompt_len, -(-int(prompt_mask.sum(1).max()) // 8) * 8)
    t = min(completion_len, -(-int(mask.sum(1).max()) // 8) * 8)
    room_B = prompt_len + completion_len - prompt_mask.sum(1) - mask.sum(1)
    limit_B = np.minimum(max_position_offset, np.maximum(room_B, 0))
    rng = np.random.default_rng((task.stream.seed, index, 2))  # apart from the noise draws
    offset_B = (rng.integers(0, limit_B + 1) if max_position_offset
                else np.zeros(len(problems), np.int64))
    return {"prompt": prompt[:, -p:], "prompt_mask": prompt_mask[:, -p:],
            "tokens": tokens[:, :t], "mask": mask[:, :t],
            "position_offset": offset_B.astype(np.int32)}
  return batches
