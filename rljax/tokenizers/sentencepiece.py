"""The testbed's tokenizer: a sentencepiece BPE with the conventions of `BatchTokenizer`.

The testbed's `Tokenizer` is a sentencepiece BPE trained in-process. Ids 0..3
are fixed: pad 0, eos 1, bos 2, unk 3. Digits are always single tokens
(`split_digits`), so arithmetic is learnable digit by digit; BPE merges only the
punctuation that co-occurs (e.g. `;#`). Hugging Face / GGUF tokenizers are in
`rljax.tokenizers.hf`.
"""

from __future__ import annotations

import io
from typing import Iterable, Sequence

import sentencepiece as spm

from rljax.tokenizers.base import BatchTokenizer

PAD_ID, EOS_ID, BOS_ID, UNK_ID = 0, 1, 2, 3


def train_sentencepiece(texts: Iterable[str], vocab_size: int,
                        symbols: Sequence[str] = ()) -> bytes:
  """Trains a BPE model on `texts`; returns its serialized proto. `symbols` are kept
  whole as single pieces (sentencepiece's user-defined symbols), e.g. an agent's tags."""
  out = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(texts), model_writer=out, vocab_size=vocab_size,
      model_type="bpe", split_digits=True, add_dummy_prefix=False,
      remove_extra_whitespaces=False, character_coverage=1.0,
      hard_vocab_limit=False, pad_id=PAD_ID, eos_id=EOS_ID, bos_id=BOS_ID,
      unk_id=UNK_ID, num_threads=1, minloglevel=2, user_defined_symbols=list(symbols))
  return out.getvalue()


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
