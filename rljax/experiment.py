"""A run end to end: tokenizer -> base model -> GRPO -> held-out summary.

The base model is the testbed's, pretrained here (cached in the workdir), or a
real checkpoint (`model.checkpoint`: Hugging Face directory or GGUF) on a real
dataset (`data.source`).

Each stage leaves its result in the workdir and is skipped when it is already
there, so a second run reuses the base model and a stopped run resumes RL from
its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import zlib

import jax
from flax import nnx
from tqdm.auto import tqdm

from rljax.rl import one_shot
from rljax import sharding
from rljax.rl import train_state
from rljax.checkpoint import Checkpointer
from rljax.config import ExperimentConfig, check_mesh
from rljax.analysis.evaluation import sample_counts, summarize
from rljax.metrics import MetricsWriter, read_rows
from rljax.model import gguf_io, hf
from rljax.model.config import get_preset
from rljax.rewards.sandbox import FAILURE_KINDS, RewardGuard
from rljax.rl.sft import make_sft_step, pretrain
from rljax.tasks.testbed_task import TestbedTask, build_tokenizer, sft_batch_fn
from rljax.tokenizers.hf import HFTokenizer
from rljax.tasks.text_task import TextTask
from rljax.tokenizers.sentencepiece import Tokenizer
from rljax.rl.trainer import RLTrainer


def write_json(obj, path):
  """Atomic JSON write: a crash leaves the old file or the new one, never half of one."""
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True)
  os.replace(tmp, path)


def _tokenizer(task, cfg, workdir) -> Tokenizer:
  path = os.path.join(workdir, "tokenizer.model")
  if os.path.exists(path):
    return Tokenizer.load(path)
  tok = build_tokenizer(task, cfg.tokenizer_vocab)
  tok.save(path)
  return tok


def _base_params(cfg, model_cfg, task, tok, mesh, workdir):
  """Pretrained base parameters, from `workdir/base` when already trained."""
  graphdef, abs_state = train_state.abstract_model(model_cfg)
  optimizer = train_state.make_optimizer(
      cfg.pretrain.optim, cfg.pretrain.clean_max_steps + cfg.pretrain.noisy_steps)
  sh = train_state.state_shardings(graphdef, abs_state, optimizer, mesh, with_reference=False)
  params = train_state.init_params(model_cfg, cfg.seed, sh.params)
  state = train_state.new_state(params, optimizer, sh, cfg.seed, with_reference=False)
  ckpt = Checkpointer(os.path.join(workdir, "base"), max_to_keep=1)
  meta = {"done": False, "clean_steps": None}
  if ckpt.latest_step() is not None:
    state, meta = ckpt.restore(state)
  if not meta.get("done", True):  # absent in base models written before resumable pretraining
    batches = sft_batch_fn(task, tok, cfg.pretrain.batch_size, cfg.prompt_len, cfg.completion_len)
    writer = MetricsWriter(workdir, "pretrain_metrics", resume_step=int(state.step))
    save = lambda s, i, switch: ckpt.save(i, s, {"done": False, "clean_steps": switch})
    state, switch = pretrain(state, make_sft_step(graphdef, optimizer, sh, mesh), batches,
                             cfg.pretrain, writer, switch=meta["clean_steps"], save=save)
    writer.close()
    ckpt.save(int(state.step), state, {"done": True, "clean_steps": switch})
  ckpt.close()
  return graphdef, state.params


def _one_shot_task(cfg, graphdef, optimizer, sh, mesh, task, tok, workdir, new_state):
  """One-shot RLVR: the selected pool example (cached in `workdir/one_shot.json`)."""
  pool = task.train_batch(2_000_000, cfg.intervention.one_shot_pool)
  path = os.path.join(workdir, "one_shot.json")
  if os.path.exists(path):
    with open(path) as f:
      chosen = json.load(f)["index"]
  elif cfg.intervention.one_shot_index >= 0:
    chosen = cfg.intervention.one_shot_index
    write_json({"index": chosen, "prompt": pool[chosen].prompt, "history": None}, path)
  else:
    hist_dir = os.path.join(workdir, "one_shot_history")
    writer = MetricsWriter(hist_dir, "metrics")
    trainer = RLTrainer(cfg, graphdef, optimizer, sh, mesh, one_shot.PoolTask(task, pool), tok,
                        hist_dir, writer)
    history = one_shot.collect_history(trainer, new_state(), pool,
                                       cfg.intervention.one_shot_history_steps)
    writer.close()
    chosen = one_shot.rank_by_historical_variance(history)[0]
    write_json({"index": chosen, "prompt": pool[chosen].prompt,
                "history": {str(k): v for k, v in history.items()}}, path)
  tqdm.write(f"one-shot RLVR on pool example {chosen}: {pool[chosen].prompt}")
  return one_shot.OneShotTask(task, pool[chosen])


@dataclasses.dataclass
class Setup:
  """What every command on a testbed workdir needs: mesh, task, tokenizer, models, evaluator."""

  cfg: ExperimentConfig
  mesh: object
  task: TestbedTask
  tok: Tokenizer
  model_cfg: object
  graphdef: object
  base_params: dict
  verifier: RewardGuard | None = None

  def evaluate(self, params, n: int, tag: str):
    """(correct counts per held-out problem, mean token entropy) from n samples each.

    The task's verifier runs in a `RewardGuard` (a time limit per call, failures score 0).
    """
    key = jax.random.fold_in(jax.random.PRNGKey(self.cfg.seed), 999_983)
    if self.verifier is None:
      self.verifier = RewardGuard(self.task.reward, self.cfg.rl.reward_timeout_s,
                                  name="verifier")
    return sample_counts(self.graphdef, params, self.task.eval_problems, self.tok, n=n,
                         prompt_len=self.cfg.prompt_len, sampling=self.cfg.sampling,
                         key=jax.random.fold_in(key, zlib.crc32(tag.encode())),
                         batch_rollouts=self.cfg.eval.batch_rollouts,
                         verify=lambda calls: self.verifier.score(calls)[0])

  def summarize(self, counts, n: int) -> dict:
    return summarize(self.task.eval_problems, counts, n, self.task.eval_tags)

  def rl_state(self):
    """(optimizer, state shardings, a fresh RL TrainState around the base parameters)."""
    cfg = self.cfg
    optimizer = train_state.make_optimizer(cfg.rl.optim, cfg.rl.steps * cfg.rl.epochs
                                           * cfg.rl.minibatches)
    _, abs_state = train_state.abstract_model(self.model_cfg)
    sh = train_state.state_shardings(self.graphdef, abs_state, optimizer, self.mesh,
                                     with_reference=True)
    return optimizer, sh, train_state.new_state(self.base_params, optimizer, sh, cfg.seed,
                                                with_reference=True)


def prepare(cfg: ExperimentConfig, workdir: str) -> Setup:
  """Mesh, task, tokenizer and base model of `workdir` (trained there if not cached).

  Call inside `with jax.set_mesh(setup.mesh)` for everything that follows; the
  mesh is also entered here for the base model.
  """
  os.makedirs(workdir, exist_ok=True)
  mesh = sharding.make_mesh(cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.model)
  check_mesh(cfg, mesh.shape["data"] * mesh.shape["fsdp"])
  if cfg.model.checkpoint:
    return _prepare_checkpoint(cfg, mesh)
  task = TestbedTask(cfg.task, cfg.seed)
  tok = _tokenizer(task, cfg, workdir)
  model_cfg = get_preset(cfg.model.preset, vocab_size=tok.vocab_size, dtype=cfg.model.dtype,
                         max_seq_len=cfg.prompt_len + cfg.completion_len)
  sampling = dataclasses.replace(cfg.sampling, eos_id=tok.eos_id, pad_id=tok.pad_id)
  cfg = dataclasses.replace(cfg, sampling=sampling)
  with jax.set_mesh(mesh):
    graphdef, base_params = _base_params(cfg, model_cfg, task, tok, mesh, workdir)
  return Setup(cfg, mesh, task, tok, model_cfg, graphdef, base_params)


def _prepare_checkpoint(cfg: ExperimentConfig, mesh) -> Setup:
  """A real model (HF directory or GGUF file) on a real dataset: no pretraining."""
  path = cfg.model.checkpoint
  path = gguf_io.smollm2_path() if path == "smollm2" else path
  seq = cfg.prompt_len + cfg.completion_len
  with jax.set_mesh(mesh):
    if path.endswith(".gguf"):
      model = gguf_io.load(path, mesh, cfg.model.dtype, max_seq_len=seq)
      tok = HFTokenizer.from_gguf(path)
    else:
      model = hf.load(path, mesh, cfg.model.dtype, max_seq_len=seq)
      tok = HFTokenizer.from_dir(path)
  graphdef, state = nnx.split(model, nnx.Param)
  task = TextTask(cfg.data, tok, cfg.seed, cfg.prompt_len)
  sampling = dataclasses.replace(cfg.sampling, eos_id=tok.eos_id, pad_id=tok.pad_id)
  cfg = dataclasses.replace(cfg, sampling=sampling)
  return Setup(cfg, mesh, task, tok, model.cfg, graphdef, nnx.to_pure_dict(state))


def run(cfg: ExperimentConfig, workdir: str) -> dict:
  """Runs the whole testbed pipeline; returns (and writes) `workdir/summary.json`."""
  t0 = time.time()
  os.makedirs(workdir, exist_ok=True)
  write_json(json.loads(json.dumps(dataclasses.asdict(cfg), default=str)),
             os.path.join(workdir, "config.json"))
  setup = prepare(cfg, workdir)
  cfg, mesh, task, tok = setup.cfg, setup.mesh, setup.task, setup.tok
  graphdef, base_params = setup.graphdef, setup.base_params
  evaluate = setup.evaluate

  with jax.set_mesh(mesh):
    base_eval_path = os.path.join(workdir, "base_eval.json")
    if os.path.exists(base_eval_path):
      with open(base_eval_path) as f:
        base = json.load(f)
    else:
      counts, ent = evaluate(base_params, cfg.eval.n_samples, "base")
      base = dict(setup.summarize(counts, cfg.eval.n_samples), entropy=ent,
                  counts=counts.tolist())
      write_json(base, base_eval_path)
    tqdm.write(f"base model: pass@1 {base['pass@1']:.3f}  "
               f"pass@{cfg.eval.n_samples} {base[f'pass@{cfg.eval.n_samples}']:.3f}")

    optimizer, sh, state = setup.rl_state()

    def periodic_eval(params, n, step):
      counts, _ = evaluate(params, n, f"rl{step}")
      return {f"eval/{k}": v for k, v in setup.summarize(counts, n).items()
              if "/" not in k}

    train_task = task
    if cfg.intervention.one_shot_pool:
      make = lambda: train_state.new_state(base_params, optimizer, sh, cfg.seed, True)
      train_task = _one_shot_task(cfg, graphdef, optimizer, sh, mesh, task, tok, workdir, make)
    ckpt_step = Checkpointer(os.path.join(workdir, "checkpoints")).latest_step() or 0
    writer = MetricsWriter(workdir, "metrics", resume_step=ckpt_step)
    trainer = RLTrainer(cfg, graphdef, optimizer, sh, mesh, train_task, tok, workdir, writer,
                        evaluate=periodic_eval)
    state = trainer.restore_or(state)
    state = trainer.run(state)
    writer.close()
    if trainer.stopped:  # preempted: the checkpoint is saved; rerun the command to resume
      tqdm.write(f"stopped at step {int(state.step)} by a signal; checkpoint saved in "
                 f"{workdir}/checkpoints; run the same command again to resume")
      return {"steps": int(state.step), "stopped": True}

    counts, ent = evaluate(state.params, cfg.eval.n_samples, "final")
    final = setup.summarize(counts, cfg.eval.n_samples)

  metrics_path = os.path.join(workdir, "metrics.jsonl")
  rows = read_rows(metrics_path) if os.path.exists(metrics_path) else []
  n = cfg.eval.n_samples
  summary = {
      "base_pass@1": base["pass@1"], f"base_pass@{n}": base[f"pass@{n}"],
      "final_pass@1": final["pass@1"], f"final_pass@{n}": final[f"pass@{n}"],
      "initial_entropy": rows[0]["entropy"] if rows else None,
      "final_entropy": rows[-1]["entropy"] if rows else None,
      "base_eval_entropy": base["entropy"], "final_eval_entropy": ent,
      "steps": int(state.step), "wall_time_s": time.time() - t0,
      "tiers": {k: {"base": base[k], "final": final[k]} for k in sorted(final) if "/" in k},
      "base_curve": {k: v for k, v in base.items() if k.startswith("pass@")},
      "final_curve": {k: v for k, v in final.items() if k.startswith("pass@")},
      "final_counts": counts.tolist(),
      "reward_failures": {k: int(sum(r.get(f"reward_failures/{k}", 0) for r in rows))
                          for k in FAILURE_KINDS},
  }
  write_json(summary, os.path.join(workdir, "summary.json"))
  return summary
