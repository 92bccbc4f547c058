"""Batch encoding conventions shared by every tokenizer.

`BatchTokenizer` turns texts into the padded arrays the sampler and trainer use
(left-padded prompts, right-padded completions ending in EOS) on top of two
methods a concrete tokenizer provides: `_ids(texts)` and `_text(ids)`. The
testbed's sentencepiece tokenizer is `rljax.tokenizers.sentencepiece`; Hugging
Face / GGUF tokenizers are `rljax.tokenizers.hf`.
"""

from __future__ import annotations

import abc
from typing import Sequence

import numpy as np


class BatchTokenizer(abc.ABC):
  """Padded batch encoding on top of `_ids(texts) -> ids lists` and `_text(ids) -> str`.

  Subclasses set `pad_id`, `eos_id`, `bos_id` (None: no BOS) and `vocab_size`, and
  give `piece(id)`, the token's surface string (used to find planning tokens).
  """

  pad_id: int
  eos_id: int
  bos_id: int | None

  @abc.abstractmethod
  def _ids(self, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text (no special tokens added)."""

  @abc.abstractmethod
  def _text(self, ids: list[int]) -> str:
    """The text of token ids."""

  def encode_texts(self, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, no special tokens (multi-turn rollouts append these)."""
    return self._ids(texts)

  def lengths(self, texts: Sequence[str]) -> list[int]:
    """Token count of each text (no special tokens), in one batched call."""
    return [len(ids) for ids in self._ids(texts)]

  def encode_prompts(self, prompts: Sequence[str], length: int):
    """Left-padded [BOS] (when the tokenizer has one) + prompt ids: (tokens [N, length] int32, mask [N, length])."""
    tokens = np.full((len(prompts), length), self.pad_id, np.int32)
    mask = np.zeros((len(prompts), length), np.int32)
    for i, ids in enumerate(self._ids(prompts)):
      ids = ([self.bos_id] if self.bos_id is not None else []) + ids
      if len(ids) > length:
        raise ValueError(f"prompt {prompts[i]!r} has {len(ids)} tokens; "
                         f"the prompt length limit is {length}")
      tokens[i, length - len(ids):] = ids
      mask[i, length - len(ids):] = 1
    return tokens, mask

  def encode_completions(self, texts: Sequence[str], length: int):
    """Right-padded completion ids + EOS: (tokens [N, length], mask [N, length])."""
    tokens = np.full((len(texts), length), self.pad_id, np.int32)
    mask = np.zeros((len(texts), length), np.float32)
    for i, ids in enumerate(self._ids(texts)):
      ids = ids + [self.eos_id]
      if len(ids) > length:
        raise ValueError(f"completion {texts[i]!r} has {len(ids)} tokens; "
                         f"the completion length limit is {length}")
      tokens[i, :len(ids)] = ids
      mask[i, :len(ids)] = 1.0
    return tokens, mask

  def encode_with_reference(self, firsts: Sequence[str], reference: Sequence[str], length: int):
    """first ids + reference ids + EOS, encoded apart (no merge across the seam).

    Returns (tokens [N, length], mask [N, length], reference_mask [N, length]); a
    first part too long to fit is cut from the left, the reference is kept whole.
    """
    tokens = np.full((len(firsts), length), self.pad_id, np.int32)
    mask = np.zeros((len(firsts), length), np.float32)
    ref_mask = np.zeros((len(firsts), length), np.float32)
    for i, (a, b) in enumerate(zip(self._ids(firsts), self._ids(reference))):
      if len(b) + 1 > length:
        raise ValueError(f"reference {reference[i]!r} does not fit in {length} tokens")
      a = a[max(0, len(a) + len(b) + 1 - length):]
      ids = a + b + [self.eos_id]
      tokens[i, :len(ids)] = ids
      mask[i, :len(ids)] = 1.0
      ref_mask[i, len(a):len(a) + len(b)] = 1.0
    return tokens, mask, ref_mask

  def decode_completions(self, tokens_BxT: np.ndarray) -> list[str]:
    """Text of each row up to (not including) its first EOS."""
    out = []
    for row in np.asarray(tokens_BxT).tolist():
      if self.eos_id in row:
        row = row[:row.index(self.eos_id)]
      out.append(self._text([t for t in row if t != self.pad_id]))
    return out
