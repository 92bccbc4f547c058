"""A sentencepiece tokenizer, trained in-process, and batch encoding helpers.

Ids 0..3 are fixed: pad 0, eos 1, bos 2, unk 3. Digits are always single
tokens (`split_digits`), so arithmetic is learnable digit by digit; BPE merges
only the punctuation that co-occurs (e.g. `;#`).
"""

from __future__ import annotations

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


class Tokenizer:
  """Wraps a sentencepiece model with the prompt/completion conventions of rljax."""

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

  def encode_prompts(self, prompts: Sequence[str], length: int):
    """Left-padded [BOS] + prompt ids: (tokens [N, length] int32, mask [N, length])."""
    tokens = np.full((len(prompts), length), PAD_ID, np.int32)
    mask = np.zeros((len(prompts), length), np.int32)
    for i, ids in enumerate(self.sp.encode(list(prompts))):
      ids = [BOS_ID] + ids
      if len(ids) > length:
        raise ValueError(f"prompt {prompts[i]!r} has {len(ids)} tokens; "
                         f"the prompt length limit is {length}")
      tokens[i, length - len(ids):] = ids
      mask[i, length - len(ids):] = 1
    return tokens, mask

  def encode_completions(self, texts: Sequence[str], length: int):
    """Right-padded completion ids + EOS: (tokens [N, length], mask [N, length])."""
    tokens = np.full((len(texts), length), PAD_ID, np.int32)
    mask = np.zeros((len(texts), length), np.float32)
    for i, ids in enumerate(self.sp.encode(list(texts))):
      ids = ids + [EOS_ID]
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
    tokens = np.full((len(firsts), length), PAD_ID, np.int32)
    mask = np.zeros((len(firsts), length), np.float32)
    ref_mask = np.zeros((len(firsts), length), np.float32)
    for i, (a, b) in enumerate(zip(self.sp.encode(list(firsts)), self.sp.encode(list(reference)))):
      if len(b) + 1 > length:
        raise ValueError(f"reference {reference[i]!r} does not fit in {length} tokens")
      a = a[max(0, len(a) + len(b) + 1 - length):]
      ids = a + b + [EOS_ID]
      tokens[i, :len(ids)] = ids
      mask[i, :len(ids)] = 1.0
      ref_mask[i, len(a):len(a) + len(b)] = 1.0
    return tokens, mask, ref_mask

  def decode_completions(self, tokens_BxT: np.ndarray) -> list[str]:
    """Text of each row up to (not including) its first EOS."""
    out = []
    for row in np.asarray(tokens_BxT).tolist():
      if EOS_ID in row:
        row = row[:row.index(EOS_ID)]
      out.append(self.sp.decode([t for t in row if t != PAD_ID]))
    return out
