"""rljax's side of `benchmarks.run`: one case of the workload, timed, as one JSON line.

  .venv/bin/python -m benchmarks.rljax_side {decode64,decode256,step,train,large,matmul}
      [--cpu_devices N] [--train_devices N] [--forward_chains N] [--prompts Q]
  (decode64_scan, step_scan, train_scan: the same with `model.scan_layers = True`)

Every case builds the workload's model (`workload.json`) with rljax's own code and
times the library's own jitted functions: `sampler.sample` (decode), the trainer's
step functions `make_step_fns` (update, scoring) composed as a step of
`rl/rollouts.py` + `rl/trainer.py` does it on this workload (sample, reward, group
advantages, the reference's training-forward log-probs, one on-policy update whose
forward also gives the old log-probs: `trainer.scores_before_update`), on a mesh whose
data axis spans this process's devices: the one CPU device JAX makes of a host, or with
`--cpu_devices -1` one per core (`rljax.cpu_devices`, as the launch commands' flag).
`--train_devices 1` (as `mesh.train_devices`): the update and the scorings on the first
device, the sampling on all (`sharding.train_and_rollout_meshes`), the parameters moved
onto the rollout mesh at every sampling call, as the trainer does. `--forward_chains N`
(as `model.forward_chains`): the update's and scorings' rows in N independent chains
(`logprobs.in_chains`). `--prompts Q` (the
decodes): Q prompts instead of the workload's 8 (e.g. a count the devices do not divide).
Each figure is the median of `--repeats` runs after one warm-up run (which also
compiles: its time is reported as the first-step time).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.workload import LARGE_BATCH, LARGE_MODEL, WORKLOAD, grpo_update_flops
from rljax import cpu_devices, host_memory, sharding
from rljax.config import OptimConfig
from rljax.model.config import ModelConfig
from rljax.rl import advantages, sampler, train_state
from rljax.rl.losses import LossConfig
from rljax.rl.update import make_step_fns

G = WORKLOAD["grpo"]
TRAIN_DEVICES = [-1]  # `--train_devices`, as `mesh.train_devices`: read by `Setup`
PROMPTS = [G["num_prompts"]]  # `--prompts`: the decodes' prompt count
FORWARD_CHAINS = [1]  # `--forward_chains`, as `model.forward_chains`: read by `model_config`


def model_config(m: dict, max_seq_len: int, dtype: str = "float32",
                 scan_layers: bool = False, attention: str = "rljax") -> ModelConfig:
  return ModelConfig(vocab_size=m["vocab_size"], d_model=m["hidden_size"],
                     n_layers=m["num_hidden_layers"], n_heads=m["num_attention_heads"],
                     n_kv_heads=m["num_key_value_heads"], head_dim=m["head_dim"],
                     mlp_dim=m["intermediate_size"], rope_theta=m.get("rope_theta", 1e4),
                     norm_eps=m.get("rms_norm_eps", 1e-6), qkv_bias=True,
                     tie_embeddings=True, max_seq_len=max_seq_len, dtype=dtype,
                     scan_layers=scan_layers, attention=attention,
                     forward_chains=FORWARD_CHAINS[0])


def timed(fn, repeats: int) -> dict:
  """fn() once (compile + run), then `repeats` times; seconds, and the page faults of a
  repeat (fresh pages the kernel zeroes: `rljax.host_memory`)."""
  t0 = time.perf_counter()
  jax.block_until_ready(fn())
  first = time.perf_counter() - t0
  times, faults = [], _minor_faults()
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return {"first_s": first, "times_s": times, "median_s": float(np.median(times)),
          "page_faults_per_repeat": (_minor_faults() - faults) // repeats}


def _minor_faults() -> int:
  return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class Setup:
  """The workload's state, step functions and prompts on this process's meshes."""

  def __init__(self, m: dict, max_new: int, dtype: str = "float32", scan_layers: bool = False,
               prompts: int = G["num_prompts"], attention: str = "rljax"):
    self.cfg = model_config(m, G["prompt_length"] + max_new, dtype, scan_layers, attention)
    # The batch split over every device (the update's over the first TRAIN_DEVICES).
    self.mesh, self.rollout_mesh = sharding.train_and_rollout_meshes(
        -1, 1, 1, train_devices=TRAIN_DEVICES[0])
    o = WORKLOAD["optimizer"]
    opt = train_state.make_optimizer(OptimConfig(lr=o["lr"], grad_clip=o["max_grad_norm"],
                                                 b1=o["betas"][0], b2=o["betas"][1],
                                                 weight_decay=o["weight_decay"]), 10)
    with jax.set_mesh(self.mesh):
      self.graphdef, abs_state = train_state.abstract_model(self.cfg)
      sh = train_state.state_shardings(self.graphdef, abs_state, opt, self.mesh,
                                       with_reference=True)
      params = train_state.init_params(self.cfg, WORKLOAD["seeds"]["model_init"], sh.params)
      self.state = train_state.new_state(params, opt, sh, 0, with_reference=True)
      loss = LossConfig(eps_low=G["clip_eps"], eps_high=G["clip_eps"], agg="token-mean",
                        kl_coef=G["beta_kl"], kl_estimator="k3")
      self.fns = make_step_fns(self.graphdef, opt, sh, self.mesh, loss, G["temperature"],
                               False, on_policy=True, weighted=False, with_scores=True,
                               group_size=G["num_generations"])
    rng = np.random.default_rng(WORKLOAD["seeds"]["prompts"])
    lo, hi = WORKLOAD["tokens"]["prompt_token_range"]
    self.prompt = rng.integers(lo, hi, (prompts, G["prompt_length"])).astype(np.int32)
    self.pmask = np.ones_like(self.prompt)
    # EOS is never emitted (an id outside the vocabulary), so every completion has
    # exactly max_new tokens, as min_new_tokens does for the peers.
    self.sampling = sampler.SamplingConfig(max_new_tokens=max_new, temperature=G["temperature"],
                                           eos_id=m["vocab_size"], pad_id=0)
    self.coefs = {"entropy": np.float32(0.0), "kl": np.float32(G["beta_kl"]),
                  "sft": np.float32(0.0)}
    self.calls = 0

  def sample(self):
    self.calls += 1
    with sharding.entered(self.rollout_mesh, self.state.params) as params:
      return sampler.sample(self.graphdef, params, self.prompt, self.pmask,
                            jax.random.key(WORKLOAD["seeds"]["sampling"] + self.calls),
                            cfg=self.sampling, group_size=G["num_generations"])

  def batch(self, rollout) -> dict:
    tokens = np.asarray(rollout.tokens)
    mask = np.asarray(rollout.mask)
    reward_B = ((tokens % 2 == 0) * mask).sum(1) / mask.sum(1)  # the workload's reward
    adv_B = np.asarray(advantages.compute("grpo", reward_B, G["num_generations"]))
    g = G["num_generations"]
    return {"prompt": np.repeat(self.prompt, g, 0), "prompt_mask": np.repeat(self.pmask, g, 0),
            "tokens": tokens, "mask": mask, "adv": (adv_B[:, None] * mask).astype(np.float32),
            "sft_mask": np.zeros(len(tokens), np.float32),
            "offpolicy": np.zeros(len(tokens), np.float32),
            "is_weight": np.ones_like(mask)}

  def score(self, params, b: dict):
    seqs = {k: b[k] for k in ("prompt", "prompt_mask", "tokens", "mask")}
    with jax.set_mesh(self.mesh):
      return jax.block_until_ready(self.fns.score(params, seqs))

  def update(self, b: dict):
    with jax.set_mesh(self.mesh):
      self.state, m, scores = self.fns.update(self.state, b, jax.random.key(0), self.coefs)
    return jax.block_until_ready((m, scores))


def case_decode(max_new: int, repeats: int, scan_layers: bool = False) -> dict:
  s = Setup(WORKLOAD["model"], max_new, scan_layers=scan_layers, prompts=PROMPTS[0])
  r = timed(s.sample, repeats)
  tokens = PROMPTS[0] * G["num_generations"] * max_new
  return {"new_tokens": max_new, "prompts": PROMPTS[0], "tokens_per_s": tokens / r["median_s"],
          "tokens_per_s_all": [tokens / t for t in r["times_s"]], **r}


def case_step(repeats: int, scan_layers: bool = False) -> dict:
  """The full GRPO step and its split (sampling, the two scorings, the update)."""
  s = Setup(WORKLOAD["model"], G["max_new_tokens"], scan_layers=scan_layers)
  split = {"sample_s": [], "score_reference_s": [], "update_s": [], "host_s": []}

  def step(record: bool):
    t = [time.perf_counter()]
    rollout = jax.block_until_ready(s.sample())
    t.append(time.perf_counter())
    b = s.batch(rollout)
    b["old_logp"] = np.zeros_like(b["mask"])  # on-policy: the update's forward gives them
    t.append(time.perf_counter())
    b["ref_logp"], _ = s.score(s.state.ref_params, b)
    t.append(time.perf_counter())
    s.update(b)
    t.append(time.perf_counter())
    if record:
      d = np.diff(t)
      for k, v in zip(("sample_s", "host_s", "score_reference_s", "update_s"), d):
        split[k].append(float(v))
    return t[-1] - t[0]

  first = step(False)
  faults = _minor_faults()
  times = [step(True) for _ in range(repeats)]
  faults = (_minor_faults() - faults) // repeats
  # Compiles after the first step would show as a slow later step; count them directly.
  compiles = _compile_count(lambda: step(False))
  return {"first_s": first, "times_s": times, "median_s": float(np.median(times)),
          "split_median_s": {k: float(np.median(v)) for k, v in split.items()},
          "compiles_after_first_step": compiles, "page_faults_per_repeat": faults}


_COMPILES = [0]


def _on_event(event, *_, **__):
  if event == "/jax/core/compile/backend_compile_duration":
    _COMPILES[0] += 1


jax.monitoring.register_event_duration_secs_listener(_on_event)


def _compile_count(fn) -> int:
  before = _COMPILES[0]
  fn()
  return _COMPILES[0] - before


def train_run(m: dict, n_seq: int, completion: int, with_reference: bool,
              dtype: str = "float32", scan_layers: bool = False):
  """(run, model FLOPs of a run): one policy forward + backward + AdamW (and the
  reference's forward) on a fixed batch of random tokens; `dtype` is the compute dtype
  (bfloat16: float32 master weights and optimizer)."""
  s = Setup(m, completion, dtype, scan_layers)
  rng = np.random.default_rng(0)
  tokens = rng.integers(2, m["vocab_size"], (n_seq, completion)).astype(np.int32)
  mask = np.ones_like(tokens, np.float32)
  prompt = rng.integers(2, m["vocab_size"], (n_seq, G["prompt_length"])).astype(np.int32)
  b = {"prompt": prompt, "prompt_mask": np.ones_like(prompt), "tokens": tokens, "mask": mask,
       "adv": rng.standard_normal((n_seq, 1)).astype(np.float32) * mask,
       "sft_mask": np.zeros(n_seq, np.float32), "offpolicy": np.zeros(n_seq, np.float32),
       "is_weight": np.ones_like(mask)}
  b["old_logp"], _ = s.score(s.state.params, b)
  b["ref_logp"] = b["old_logp"]

  def run():
    if with_reference:
      s.score(s.state.ref_params, b)
    return s.update(b)

  flops = grpo_update_flops(m, n_seq, G["prompt_length"], completion)
  return run, flops["total"] if with_reference else flops["policy_fwd_bwd"]


def case_train(m: dict, n_seq: int, repeats: int, completion: int,
               with_reference: bool, dtype: str = "float32", scan_layers: bool = False) -> dict:
  """`train_run`, timed."""
  run, work = train_run(m, n_seq, completion, with_reference, dtype, scan_layers)
  r = timed(run, repeats)
  return {"sequences": n_seq, "tokens_per_sequence": G["prompt_length"] + completion,
          "model_flops": work, "flops_per_s": work / r["median_s"], **r}


def case_matmul(repeats: int = 10, dtype=jnp.float32) -> dict:
  """Peak matmul: a jitted 2048 x 2048 product (float32, or bfloat16 for the extra row),
  median of 10."""
  x = jax.random.normal(jax.random.key(0), (2048, 2048), dtype)
  # float32 accumulation: the product rljax's bfloat16 layers run (`layers.project`).
  f = jax.jit(lambda a: jnp.dot(a, a, preferred_element_type=jnp.float32))
  r = timed(lambda: f(x), repeats)
  return {"flops_per_s": 2 * 2048 ** 3 / r["median_s"], **r}


def _train_case(m, n_seq, completion, with_reference, **kw):
  return lambda repeats: case_train(m, n_seq, repeats, completion, with_reference, **kw)


_WORKLOAD_TRAIN = (WORKLOAD["model"], G["batch_sequences"], G["max_new_tokens"], True)
CASES = {
    "decode64": lambda repeats: case_decode(64, repeats),
    "decode256": lambda repeats: case_decode(256, repeats),
    "step": case_step,
    "train": _train_case(*_WORKLOAD_TRAIN),
    "large": _train_case(LARGE_MODEL, LARGE_BATCH["sequences"],
                         LARGE_BATCH["completion_length"], False),
    "matmul": lambda repeats: case_matmul(),
    "train_bf16": _train_case(*_WORKLOAD_TRAIN, dtype="bfloat16"),
    "matmul_bf16": lambda repeats: case_matmul(dtype=jnp.bfloat16),
    # The same with the layers scanned (`model.scan_layers`).
    "decode64_scan": lambda repeats: case_decode(64, repeats, scan_layers=True),
    "step_scan": lambda repeats: case_step(repeats, scan_layers=True),
    "train_scan": _train_case(*_WORKLOAD_TRAIN, scan_layers=True),
}


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("case", choices=list(CASES))
  ap.add_argument("--repeats", type=int, default=WORKLOAD["timing"]["repeats"])
  ap.add_argument("--cpu_devices", type=int, default=0,
                  help="as the launch commands' flag: -1 one CPU device per core, 0 JAX's own")
  ap.add_argument("--train_devices", type=int, default=-1,
                  help="as mesh.train_devices: the update on the first N devices, -1 all")
  ap.add_argument("--forward_chains", type=int, default=1,
                  help="as model.forward_chains: the training forwards' independent row chains")
  ap.add_argument("--prompts", type=int, default=G["num_prompts"],
                  help="the decodes' prompt count (the workload's: 8)")
  args = ap.parse_args(argv)
  # As the launch commands do (`launch.cli.start_host`; RLJAX_KEEP_FREED_MEMORY=0: not).
  host_memory.keep_freed_memory()
  if args.cpu_devices:
    cpu_devices.use(args.cpu_devices)
  TRAIN_DEVICES[0] = args.train_devices
  PROMPTS[0] = args.prompts
  FORWARD_CHAINS[0] = args.forward_chains
  out = CASES[args.case](args.repeats)
  out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  print(json.dumps({"side": "rljax", "case": args.case, "cpu_devices": len(jax.devices()),
                    "train_devices": args.train_devices, "forward_chains": args.forward_chains,
                    **out}))


if __name__ == "__main__":
  main()
