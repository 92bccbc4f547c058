"""Batch encoding conventions shared by every tokenizer, and the testbed's sentencepiece one.

`BatchTokenizer` turns texts into the padded arrays the sampler and trainer use
(left-padded prompts, right-padded completions ending in EOS) on top of two
methods a concrete tokenizer provides: `_ids(texts)` and `_text(ids)`.

The testbed's `Tokenizer` is a sentencepiece BPE trained in-process. Ids 0..3
are fixed: pad 0, eos 1, bos 2, unk 3. Digits are always single tokens
(`split_digits`), so arithmetic is learnable digit by digit; BPE merges only the
punctuation that co-occurs (e.g. `;#`). Hugging Face / GGUF tokenizers are in
`rljax.tokenizers.hf`.
"""

from __future__ import annotations

import abc
import io
from typing import Iterable, Sequence

import numpy as np
import sentencepiece as spm

PAD_ID, EOS_ID, BOS_ID, UNK_ID = 0, 1, 2, 3


def train_sentencepiece(texts: Iterable[str], vocab_size: int) -> bytes:
  """Trains a BPE model on `texts`; returns its serialized proto."""
  out = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(texts), model_writer=out, vocab_size=vocab_size,
      model_type="bpe", split_digits=True, add_dummy_prefix=False,
      remove_extra_whitespaces=False, character_coverage=1.0,
      hard_vocab_limit=False, pad_id=PAD_ID, eos_id=EOS_ID, bos_id=BOS_ID,
      unk_id=UNK_ID, num_threads=1, minloglevel=2)
  return out.getvalue()


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


class Tokenizer(BatchTokenizer):
  """The testbed's sentencepiece model with the conventions of `BatchTokenizer`."""

  def __init__(self, model_proto: bytes):
    self.proto = model_proto
    self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
    if self.sp.pad_id() != PAD_ID or self.sp.eos_id() != EOS_ID:
      raise ValueError("tokenizer model must use pad id 0 and eos id 1")

  @classmethod
  def load(cls, path: str) -> "Tokenizer":
    try:
      with open(path, "rb") as f:
        return cls(f.read())
    except (OSError, RuntimeError) as e:
      raise ValueError(f"cannot load sentencepiece model {path!r}: {e}") from e

  def save(self, path: str) -> None:
    with open(path, "wb") as f:
      f.write(self.proto)

  @property
  def vocab_size(self) -> int:
    return self.sp.vocab_size()

  pad_id, eos_id, bos_id = PAD_ID, EOS_ID, BOS_ID

  def _ids(self, texts: Sequence[str]) -> list[list[int]]:
    return self.sp.encode(list(texts))

  def _text(self, ids: list[int]) -> str:
    return self.sp.decode(ids)

  def piece(self, token_id: int) -> str:
    return self.sp.id_to_piece(token_id)
