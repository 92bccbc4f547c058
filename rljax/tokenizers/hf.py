"""Hugging Face `tokenizers` tokenizers (tokenizer.json or rebuilt from a GGUF) + chat templates.

`HFTokenizer` gives the batch conventions of `rljax.tokenizers.base.BatchTokenizer`
to a `tokenizers.Tokenizer`; `chat(messages)` renders the model's Jinja chat
template (from tokenizer_config.json or the GGUF metadata), the prompt format an
instruct model was trained on.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

from rljax.tokenizers.base import BatchTokenizer


class HFTokenizer(BatchTokenizer):
  """A `tokenizers.Tokenizer` with explicit eos / pad / bos ids and a chat template."""

  def __init__(self, tokenizer_json: str, *, eos_id: int, pad_id: int | None = None,
               bos_id: int | None = None, chat_template: str | None = None):
    from tokenizers import Tokenizer as _Tok  # pylint: disable=import-outside-toplevel
    try:
      self.tok = _Tok.from_str(tokenizer_json)
    except Exception as e:  # pylint: disable=broad-except  # tokenizers raises Exception
      raise ValueError(f"cannot build the tokenizer: {e}") from e
    self.eos_id, self.bos_id = eos_id, bos_id
    self.pad_id = eos_id if pad_id is None else pad_id
    self.chat_template = chat_template
    self.json = tokenizer_json

  @classmethod
  def from_dir(cls, path: str) -> "HFTokenizer":
    """tokenizer.json + tokenizer_config.json (eos, pad, bos tokens and chat template)."""
    tj = os.path.join(path, "tokenizer.json")
    if not os.path.exists(tj):
      raise FileNotFoundError(f"no tokenizer.json in {path}")
    with open(tj) as f:
      text = f.read()
    conf = {}
    if os.path.exists(os.path.join(path, "tokenizer_config.json")):
      with open(os.path.join(path, "tokenizer_config.json")) as f:
        conf = json.load(f)
    try:
      vocab = {t["content"]: t["id"] for t in json.loads(text).get("added_tokens", [])}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
      raise ValueError(f"cannot build the tokenizer from {tj}: {e}") from e
    tok_id = lambda key: _token_id(conf.get(key), vocab, text)
    eos = tok_id("eos_token")
    if eos is None:
      raise ValueError(f"{path}: tokenizer_config.json names no eos_token")
    return cls(text, eos_id=eos, pad_id=tok_id("pad_token"),
               bos_id=tok_id("bos_token") if conf.get("add_bos_token") else None,
               chat_template=conf.get("chat_template"))

  @classmethod
  def from_gguf(cls, path: str) -> "HFTokenizer":
    """The tokenizer a GGUF file carries (vocab, merges, special ids, chat template)."""
    from rljax.model import gguf_io  # pylint: disable=import-outside-toplevel
    meta = gguf_io.metadata(path)
    eos = int(meta["tokenizer.ggml.eos_token_id"])
    pad = meta.get("tokenizer.ggml.padding_token_id")
    bos = meta.get("tokenizer.ggml.bos_token_id") if meta.get(
        "tokenizer.ggml.add_bos_token") else None
    return cls(gguf_io.tokenizer_json(path), eos_id=eos,
               pad_id=None if pad is None else int(pad), bos_id=None if bos is None else int(bos),
               chat_template=meta.get("tokenizer.chat_template"))

  @property
  def vocab_size(self) -> int:
    return self.tok.get_vocab_size()

  def _ids(self, texts: Sequence[str]) -> list[list[int]]:
    return [e.ids for e in self.tok.encode_batch(list(texts), add_special_tokens=False)]

  def _text(self, ids: list[int]) -> str:
    return self.tok.decode(ids, skip_special_tokens=True)

  def piece(self, token_id: int) -> str:
    return self.tok.decode([token_id], skip_special_tokens=False)

  def chat(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
    """The chat template applied to [{"role": ..., "content": ...}, ...]."""
    if not self.chat_template:
      raise ValueError("this tokenizer has no chat template; use a plain prompt template")
    from jinja2 import sandbox  # pylint: disable=import-outside-toplevel
    env = sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(self.chat_template).render(
        messages=messages, add_generation_prompt=add_generation_prompt,
        bos_token="", eos_token="")


def _token_id(token, added: dict, tokenizer_json: str) -> int | None:
  """The id of a token given as a string or an AddedToken dict."""
  if token is None:
    return None
  content = token["content"] if isinstance(token, dict) else token
  if content in added:
    return added[content]
  return json.loads(tokenizer_json)["model"]["vocab"].get(content)
