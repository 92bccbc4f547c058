"""Wrong labels the model actually produces, for Shao et al.'s incorrect-label control.

Rewarding a fixed wrong answer per problem (Shao et al. 2025, arXiv 2506.10947) only
tests anything if the model sometimes gives that answer: a made-up label it never
produces rewards nothing. So a problem's wrong label is the base model's most
frequent wrong answer among `samples` samples of it (ties: the first seen), computed
once per problem and cached by the task's canonical form. A problem whose samples
contain no wrong answer has no label (its wrong-label reward is 0) and is counted.
The cache is stored in checkpoints, so a resumed run rewards the same labels. The
extra cost is one base-model sampling call per `batch` new problems, at most one per
new problem, logged as `wrong_label/new_problems`.

Axis letters: Q problems per sampling call, K samples per problem.
"""

from __future__ import annotations

import collections

import numpy as np

from rljax import distributed, prng, sharding
from rljax.rl import sampler as sampler_lib


class WrongLabels:
  """Per-problem wrong labels from the base model (see module doc)."""

  def __init__(self, task, tok, graphdef, base_params, sampling, prompt_len: int,
               samples: int, batch: int, seed: int, verify, mesh=None):
    """`verify([(problem, completion), ...]) -> scores`: the run's (sandboxed) verifier;
    `mesh`: the mesh to sample on (the run's rollout mesh; None: the ambient one)."""
    self.task, self.tok, self.graphdef, self.mesh = task, tok, graphdef, mesh
    self.base_params = sharding.onto(mesh, base_params)
    self.sampling, self.prompt_len, self.samples, self.batch = sampling, prompt_len, samples, batch
    self.seed, self.verify = seed, verify
    self.cache: dict[str, object] = {}   # canonical form -> label (None: none found)

  def _label(self, problem, completions) -> object:
    scores = self.verify([(problem, t) for t in completions])
    wrong = [self.task.final_answer(t) for t, s in zip(completions, scores) if s <= 0]
    wrong = [a for a in wrong if a is not None]
    return collections.Counter(wrong).most_common(1)[0][0] if wrong else None

  def labels(self, problems) -> tuple[list, dict]:
    """(label of each problem, metrics of the labels computed by this call)."""
    new = list({self.task.canonical(p): p for p in problems
                if self.task.canonical(p) not in self.cache}.items())
    for start in range(0, len(new), self.batch):
      chunk = new[start:start + self.batch]
      padded = chunk + [chunk[-1]] * (self.batch - len(chunk))  # one shape: no recompiles
      prompt_QxP, pmask_QxP = self.tok.encode_prompts([p.prompt for _, p in padded],
                                                      self.prompt_len)
      # Deterministic given the run's problem order; checkpoints keep the cache.
      key = prng.wrong_label_key(self.seed, chunk[0][0])
      with sharding.entered(self.mesh, key) as key:
        out = distributed.to_host(sampler_lib.sample(
            self.graphdef, self.base_params, prompt_QxP, pmask_QxP, key, cfg=self.sampling,
            group_size=self.samples))
      texts = self.tok.decode_completions(np.asarray(out.tokens))
      k = self.samples
      for q, (canon, problem) in enumerate(chunk):
        self.cache[canon] = self._label(problem, texts[q * k:(q + 1) * k])
    labels = [self.cache[self.task.canonical(p)] for p in problems]
    return labels, {"wrong_label/new_problems": float(len(new)),
                    "wrong_label/unlabelled_frac": float(np.mean([x is None for x in labels]))}
