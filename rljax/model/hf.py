"""Hugging Face checkpoints in and out: Qwen2 / Qwen2.5 / Qwen3 / Llama-3 (safetensors).

`load(path, mesh=None)` reads `config.json` into a `ModelConfig` and the
safetensors weights (one file or a sharded `model.safetensors.index.json`) into
the parameter tree one tensor at a time, each placed straight onto its mesh
sharding (or the default device). The result is an `nnx` Transformer: calling it
on int tokens [B, T] gives logits [B, T, V]. `save(model, path)` writes a
directory `transformers` loads (config.json + model.safetensors). No pickle is
ever read: `.bin` / `.pt` checkpoints are refused.

Layout: HF stores projections as [out, in] matrices; rljax keeps heads explicit
(q: [D, N, H], o: [N, H, D]) and stores [in, out]. The maps below convert both ways.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os

import jax
import numpy as np
from flax import nnx

from rljax import sharding
from rljax.model import safetensors_io
from rljax.model.config import ModelConfig, RopeScaling
from rljax.model.transformer import Transformer, unstack_blocks

FAMILIES = ("qwen2", "qwen3", "llama")


def _rope(hf: dict) -> tuple[float, RopeScaling | None]:
  """(theta, llama3 scaling) from either `rope_theta`/`rope_scaling` or the newer
  `rope_parameters` of transformers 5."""
  params = hf.get("rope_parameters") or {}
  theta = float(hf.get("rope_theta", params.get("rope_theta", 10_000.0)))
  scaling = hf.get("rope_scaling") or (params if params.get("rope_type") == "llama3" else None)
  if not scaling or scaling.get("rope_type", scaling.get("type")) in (None, "default"):
    return theta, None
  kind = scaling.get("rope_type", scaling.get("type"))
  if kind != "llama3":
    raise ValueError(f"rope scaling {kind!r} is not supported (only 'llama3')")
  return theta, RopeScaling(factor=float(scaling["factor"]),
                            low_freq_factor=float(scaling["low_freq_factor"]),
                            high_freq_factor=float(scaling["high_freq_factor"]),
                            original_max_position=int(
                                scaling["original_max_position_embeddings"]))


def config_from_hf(hf: dict, dtype: str = "float32", max_seq_len: int | None = None
                   ) -> ModelConfig:
  """`ModelConfig` from a `config.json` dict (clear errors for other architectures)."""
  family = hf.get("model_type")
  if family not in FAMILIES:
    raise ValueError(f"model_type {family!r} is not supported; valid: {list(FAMILIES)}")
  theta, scaling = _rope(hf)
  heads = hf["num_attention_heads"]
  return ModelConfig(
      vocab_size=hf["vocab_size"], d_model=hf["hidden_size"],
      n_layers=hf["num_hidden_layers"], n_heads=heads,
      n_kv_heads=hf.get("num_key_value_heads", heads),
      head_dim=hf.get("head_dim") or hf["hidden_size"] // heads,
      mlp_dim=hf["intermediate_size"], rope_theta=theta, rope_scaling=scaling,
      norm_eps=hf.get("rms_norm_eps", 1e-6),
      qkv_bias=family == "qwen2" or bool(hf.get("attention_bias", False)),
      qk_norm=family == "qwen3", tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
      max_seq_len=max_seq_len or hf.get("max_position_embeddings", 2048), dtype=dtype)


def infer_family(cfg: ModelConfig) -> str:
  """The checkpoint family a model's own config implies: QK-norm is Qwen3's, a QKV bias
  without it Qwen2's, neither Llama's."""
  if cfg.qk_norm and cfg.qkv_bias:
    raise ValueError("no checkpoint family has both a QKV bias and QK-norm (qwen2 has the "
                     "bias, qwen3 the norm): this model cannot be exported")
  if cfg.qk_norm:
    return "qwen3"
  return "qwen2" if cfg.qkv_bias else "llama"


def _check_family(cfg: ModelConfig, family: str) -> None:
  """An explicit family must match the tensors: a loader fills what the config promises
  and the file lacks (biases, norms) at random."""
  ok = {"qwen2": cfg.qkv_bias and not cfg.qk_norm, "qwen3": cfg.qk_norm and not cfg.qkv_bias,
        "llama": not cfg.qk_norm}[family]
  if not ok:
    raise ValueError(f"family {family!r} contradicts the model (qkv_bias={cfg.qkv_bias}, "
                     f"qk_norm={cfg.qk_norm}); its config implies {infer_family(cfg)!r}")


def config_to_hf(cfg: ModelConfig, family: str) -> dict:
  """The `config.json` of `cfg` as `family` (qwen2 | qwen3 | llama)."""
  if family not in FAMILIES:
    raise ValueError(f"family {family!r} unknown; valid: {list(FAMILIES)}")
  arch = {"qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM",
          "llama": "LlamaForCausalLM"}[family]
  out = {"architectures": [arch], "model_type": family, "vocab_size": cfg.vocab_size,
         "hidden_size": cfg.d_model, "num_hidden_layers": cfg.n_layers,
         "num_attention_heads": cfg.n_heads, "num_key_value_heads": cfg.n_kv_heads,
         "head_dim": cfg.head_dim, "intermediate_size": cfg.mlp_dim,
         "rope_theta": cfg.rope_theta, "rms_norm_eps": cfg.norm_eps,
         "tie_word_embeddings": cfg.tie_embeddings, "hidden_act": "silu",
         "max_position_embeddings": cfg.max_seq_len, "torch_dtype": "float32"}
  if cfg.rope_scaling is not None:
    s = cfg.rope_scaling
    out["rope_scaling"] = {"rope_type": "llama3", "factor": s.factor,
                           "low_freq_factor": s.low_freq_factor,
                           "high_freq_factor": s.high_freq_factor,
                           "original_max_position_embeddings": s.original_max_position}
  if family == "llama":
    out["attention_bias"] = cfg.qkv_bias
  return out


def _layer_map(i: int, cfg: ModelConfig) -> dict:
  """{HF name: (rljax path, to_rljax(array), to_hf(array))} of decoder layer i."""
  d, n, k, h = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
  pre, blk = f"model.layers.{i}.", ("blocks", i)
  proj_in = lambda heads: (lambda w: w.T.reshape(d, heads, h), lambda w: w.reshape(d, -1).T)
  same = (lambda w: w, lambda w: w)
  out = {
      pre + "self_attn.q_proj.weight": (blk + ("attn", "q"), *proj_in(n)),
      pre + "self_attn.k_proj.weight": (blk + ("attn", "k"), *proj_in(k)),
      pre + "self_attn.v_proj.weight": (blk + ("attn", "v"), *proj_in(k)),
      pre + "self_attn.o_proj.weight": (blk + ("attn", "o"), lambda w: w.T.reshape(n, h, d),
                                        lambda w: w.reshape(n * h, d).T),
      pre + "mlp.gate_proj.weight": (blk + ("mlp", "gate"), np.transpose, np.transpose),
      pre + "mlp.up_proj.weight": (blk + ("mlp", "up"), np.transpose, np.transpose),
      pre + "mlp.down_proj.weight": (blk + ("mlp", "down"), np.transpose, np.transpose),
      pre + "input_layernorm.weight": (blk + ("attn_norm", "scale"), *same),
      pre + "post_attention_layernorm.weight": (blk + ("mlp_norm", "scale"), *same),
  }
  if cfg.qkv_bias:
    for name, heads in (("q", n), ("k", k), ("v", k)):
      out[pre + f"self_attn.{name}_proj.bias"] = (
          blk + ("attn", f"{name}_bias"), lambda b, m=heads: b.reshape(m, h),
          lambda b: b.reshape(-1))
  if cfg.qk_norm:
    out[pre + "self_attn.q_norm.weight"] = (blk + ("attn", "q_norm", "scale"), *same)
    out[pre + "self_attn.k_norm.weight"] = (blk + ("attn", "k_norm", "scale"), *same)
  return out


def weight_map(cfg: ModelConfig) -> dict:
  """{HF tensor name: (rljax param path, to_rljax, to_hf)} for the whole model."""
  out = {"model.embed_tokens.weight": (("embed",), lambda w: w, lambda w: w),
         "model.norm.weight": (("final_norm", "scale"), lambda w: w, lambda w: w)}
  if not cfg.tie_embeddings:
    out["lm_head.weight"] = (("lm_head",), np.transpose, np.transpose)
  for i in range(cfg.n_layers):
    out.update(_layer_map(i, cfg))
  return out


def _tensor_readers(path: str) -> dict:
  """{tensor name: its open SafetensorsFile} from model.safetensors or a sharded index."""
  index = os.path.join(path, "model.safetensors.index.json")
  if os.path.exists(index):
    with open(index) as f:
      files = json.load(f)["weight_map"]
    readers = {f: safetensors_io.SafetensorsFile(os.path.join(path, f))
               for f in set(files.values())}
    return {name: readers[f] for name, f in files.items()}
  files = sorted(glob.glob(os.path.join(path, "*.safetensors")))
  if not files:
    pickles = glob.glob(os.path.join(path, "*.bin")) + glob.glob(os.path.join(path, "*.pt"))
    hint = " (only pickle checkpoints, which rljax never loads)" if pickles else ""
    raise FileNotFoundError(f"no safetensors weights in {path}{hint}")
  readers = [safetensors_io.SafetensorsFile(f) for f in files]
  return {name: r for r in readers for name in r.names()}


def _set(tree: dict, path: tuple, value) -> None:
  for key in path[:-1]:
    tree = tree[key]
  tree[path[-1]] = value


def _get(tree: dict, path: tuple):
  for key in path:
    tree = tree[key]
  return tree


def load(path: str, mesh=None, dtype: str = "float32", max_seq_len: int | None = None,
         **layout):
  """The model of a Hugging Face directory, its parameters placed on `mesh` (see module doc).

  `layout`: execution fields of `ModelConfig` (`scan_layers`, `remat`)."""
  config_path = os.path.join(path, "config.json")
  if not os.path.exists(config_path):
    raise FileNotFoundError(f"no config.json in {path}")
  with open(config_path) as f:
    cfg = dataclasses.replace(config_from_hf(json.load(f), dtype, max_seq_len), **layout)
  readers = _tensor_readers(path)  # each file's header is read once

  def tensor(name):
    if name not in readers:
      raise ValueError(f"{path}: tensor {name} is missing from the checkpoint")
    return readers[name].get(name)

  return build(cfg, tensor, mesh, source=path)


def build(cfg: ModelConfig, tensor, mesh=None, source: str = "checkpoint"):
  """A Transformer whose parameters come from `tensor(HF name) -> np.ndarray`, fetched one
  at a time, converted to rljax's layout and placed on its mesh sharding (or device 0)."""
  from rljax.rl.train_state import abstract_model  # pylint: disable=import-outside-toplevel
  graphdef, abs_state = abstract_model(cfg)
  shapes = nnx.to_pure_dict(abs_state)
  if mesh is None:
    shardings = jax.tree.map(lambda _: jax.devices()[0], shapes)
  else:
    sharding.check_model_fits_mesh(cfg, mesh)  # before a single tensor is read
    shardings = sharding.param_shardings(abs_state, mesh)
  params = jax.tree.map(lambda _: None, shapes)
  stacking = {}  # scanned layout: path -> host buffer [L, ...], placed once its last layer is in
  for name, (target, to_rljax, _) in weight_map(cfg).items():
    raw = tensor(name)
    value = to_rljax(np.asarray(raw, np.float32))
    layer = None
    if cfg.scan_layers and target[0] == "blocks":
      target, layer = ("layers", *target[2:]), target[1]
    want = _get(shapes, target).shape[0 if layer is None else 1:]
    if value.shape != tuple(want):
      raise ValueError(f"{source}: tensor {name} has shape {raw.shape}; the config "
                       f"implies {tuple(want)} after conversion")
    if layer is None:
      _set(params, target, jax.device_put(value, _get(shardings, target)))
      continue
    buffer = stacking.setdefault(target, np.empty(_get(shapes, target).shape, np.float32))
    buffer[layer] = value
    if layer == cfg.n_layers - 1:
      _set(params, target, jax.device_put(stacking.pop(target), _get(shardings, target)))
  nnx.replace_by_pure_dict(abs_state, params)
  return nnx.merge(graphdef, abs_state)


def save(model: Transformer, path: str, family: str | None = None,
         tokenizer_dir: str | None = None) -> None:
  """Writes config.json + model.safetensors (float32) that `transformers` loads; copies the
  tokenizer files of `tokenizer_dir` when given. The family (qwen2 | qwen3 | llama) is
  the model's own (`infer_family`); an explicit one that contradicts it is refused."""
  cfg = model.cfg
  if family is None:
    family = infer_family(cfg)
  if family not in FAMILIES:
    raise ValueError(f"family {family!r} unknown; valid: {list(FAMILIES)}")
  _check_family(cfg, family)
  os.makedirs(path, exist_ok=True)
  params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  if cfg.scan_layers:
    params = unstack_blocks(params)
  tensors = {name: np.asarray(to_hf(np.asarray(jax.device_get(_get(params, target)),
                                               np.float32)))
             for name, (target, _, to_hf) in weight_map(cfg).items()}
  safetensors_io.save(tensors, os.path.join(path, "model.safetensors"), {"format": "pt"})
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump(config_to_hf(cfg, family), f, indent=2)
  if tokenizer_dir:
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                 "generation_config.json"):
      src = os.path.join(tokenizer_dir, name)
      if os.path.exists(src):
        with open(src, "rb") as fin, open(os.path.join(path, name), "wb") as fout:
          fout.write(fin.read())
