"""Sizing before paying: per-device memory of a run, from abstract shapes only.

`python -m launch.train --config C --workdir D --dry_run` builds the model's abstract
state (`jax.eval_shape`: nothing is allocated), lays it out on the configured mesh
(real or simulated devices) with the training and the sampling rules
(`rljax.sharding`), and adds up what each device holds: the policy, Adam's two
moments, the reference, and the larger of the update's activations and the
sampler's working set (its weights gathered over fsdp, the KV cache of a step's
rollouts, the logits). No weights are read: a checkpoint's config.json is used when
it is on disk, the preset otherwise, so a run can be sized before downloading.

Activations are an estimate: per layer and token the inputs the backward keeps
(norms, Q/K/V, attention output, MLP gate/up/product; attention scores are not
kept, `rljax.model.attention` is blockwise), for one minibatch, plus the chunked
LM head's float32 logits. With `model.remat`, only each layer's input is kept and
one layer is recomputed at a time.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import numpy as np
from flax import nnx

from rljax import sharding
from rljax.config import ExperimentConfig, check_mesh
from rljax.model import hf
from rljax.model.config import ModelConfig, get_preset
from rljax.rl import train_state
from rljax.rl.sampler import cast_for_sampling

_GIB = 1024 ** 3
_HEAD_CHUNK = 128  # `rljax.rl.logprobs.completion_logp_entropy`'s default chunk


def model_config(cfg: ExperimentConfig) -> ModelConfig:
  """The run's architecture without reading weights: config.json if present, else the preset."""
  seq = cfg.prompt_len + cfg.completion_len
  path = os.path.join(cfg.model.checkpoint, "config.json") if cfg.model.checkpoint else ""
  if path and os.path.exists(path):
    with open(path) as f:
      m = hf.config_from_hf(json.load(f), cfg.model.dtype, max_seq_len=seq)
    return dataclasses.replace(m, **cfg.model.layout())
  return get_preset(cfg.model.preset, dtype=cfg.model.dtype, max_seq_len=seq,
                    **cfg.model.layout())


def _per_device_bytes(abstract_tree, shardings_tree) -> int:
  leaves = jax.tree.leaves(abstract_tree)
  shs = jax.tree.leaves(shardings_tree, is_leaf=lambda x: isinstance(x, jax.sharding.Sharding))
  return int(sum(np.prod(sh.shard_shape(a.shape)) * a.dtype.itemsize
                 for a, sh in zip(leaves, shs)))


def activation_bytes(m: ModelConfig, rows: int, seq: int, completion: int, model_axis: int) -> int:
  """Estimated bytes the update's backward keeps for `rows` sequences of length `seq`."""
  act = np.dtype(m.dtype).itemsize
  tokens = rows * seq
  heads = m.n_heads // model_axis
  kv = max(1, m.n_kv_heads // model_axis)
  mlp = m.mlp_dim // model_axis
  per_token_layer = (4 * m.d_model + 2 * heads * m.head_dim + 2 * kv * m.head_dim + 3 * mlp)
  remat = m.remat != "none"
  layers = 1 if remat else m.n_layers
  kept = tokens * per_token_layer * act * layers
  if remat:
    kept += tokens * m.d_model * act * m.n_layers
  head = rows * min(_HEAD_CHUNK, completion) * (m.vocab_size // model_axis) * 4 * 3
  return int(kept + head)


def plan(cfg: ExperimentConfig, mesh) -> dict:
  """Per-device bytes of each part of the run on `mesh` (see the module docstring)."""
  m = model_config(cfg)
  sharding.check_model_fits_mesh(m, mesh)
  bd = sharding.batch_devices(mesh)
  check_mesh(cfg, bd)
  graphdef, abs_state = train_state.abstract_model(m)
  optimizer = train_state.make_optimizer(cfg.rl.optim, cfg.rl.steps)
  sh = train_state.state_shardings(graphdef, abs_state, optimizer, mesh, with_reference=True)
  abs_params = nnx.to_pure_dict(abs_state)
  abs_opt = jax.eval_shape(optimizer.init, abs_params)
  sample_sh = sharding.param_shardings(abs_state, mesh, sharding.SAMPLE_RULES)

  seq = cfg.prompt_len + cfg.completion_len
  rollouts = cfg.rl.prompts_per_step * cfg.rl.group_size
  act = np.dtype(m.dtype).itemsize
  kv_heads = m.n_kv_heads // mesh.shape["model"] if (
      m.n_kv_heads % mesh.shape["model"] == 0) else m.n_kv_heads
  kv_cache = 2 * m.n_layers * (rollouts // bd) * seq * kv_heads * m.head_dim * act
  params = _per_device_bytes(abs_params, sh.params)
  out = {
      "parameters": params,
      "optimizer state": _per_device_bytes(abs_opt, sh.opt_state),
      "reference": params,
      "sampling weights (gathered over fsdp)": _per_device_bytes(
          jax.eval_shape(lambda p: cast_for_sampling(p, m.dtype), abs_params), sample_sh),
      "KV cache": kv_cache,
      "sampler logits": (rollouts // bd) * m.vocab_size * 4 * 2,
      "update activations (estimate)": activation_bytes(
          m, rollouts // cfg.rl.minibatches // bd, seq, cfg.completion_len,
          mesh.shape["model"]),
  }
  sampler = (out["sampling weights (gathered over fsdp)"] + out["KV cache"]
             + out["sampler logits"])
  out["total (peak of update and sampling)"] = (
      out["parameters"] + out["optimizer state"] + out["reference"]
      + max(out["update activations (estimate)"], sampler))
  return {"model": m, "mesh": dict(mesh.shape), "num_params": m.num_params(),
          "per_device_bytes": out, "device_bytes": device_memory()}


def device_memory() -> int | None:
  """Bytes one device can hold: the runtime's limit (TPU/GPU), or host RAM split over
  the local devices (CPU, simulated devices included); None if unknown."""
  stats = jax.local_devices()[0].memory_stats() or {}
  if "bytes_limit" in stats:
    return int(stats["bytes_limit"])
  try:
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  except (ValueError, OSError):
    return None
  return ram // jax.local_device_count()


def format_plan(p: dict) -> str:
  """The per-device table `--dry_run` prints."""
  m = p["model"]
  lines = [f"model: {m.n_layers} layers, width {m.d_model}, {m.n_heads}/{m.n_kv_heads} heads, "
           f"vocab {m.vocab_size}, {p['num_params'] / 1e9:.3f}B parameters, {m.dtype}",
           f"mesh: {p['mesh']} ({int(np.prod(list(p['mesh'].values())))} devices)",
           f"{'per device':<40}{'GiB':>10}"]
  for name, b in p["per_device_bytes"].items():
    lines.append(f"{name:<40}{b / _GIB:>10.3f}")
  if p["device_bytes"]:
    total = p["per_device_bytes"]["total (peak of update and sampling)"]
    lines.append(f"{'device memory':<40}{p['device_bytes'] / _GIB:>10.3f}")
    verdict = "fits" if total <= p["device_bytes"] else "DOES NOT FIT"
    lines.append(f"{verdict}: {100 * total / p['device_bytes']:.0f}% of one device")
  return "\n".join(lines)
