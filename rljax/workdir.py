"""A run's working directory: what every command on it needs, cached there.

`prepare(cfg, workdir)` gives a `Setup`: the mesh, the task, the tokenizer and the
base model. For the testbed the tokenizer is trained and the base model
pretrained here on first use (both cached in the workdir, pretraining resumable);
for a real checkpoint (`model.checkpoint`: Hugging Face directory or GGUF) both
are loaded. Also here: the workdir's atomic JSON files.

Layout of a workdir: tokenizer.model, base/ (pretrained base model, orbax),
pretrain_metrics.jsonl, base_eval.json, checkpoints/ (RL, orbax), metrics.jsonl,
tensorboard/, traces/, one_shot.json, eval/, config.json, summary.json.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import numpy as np
from flax import nnx

from rljax import distributed, prng, sharding
from rljax.analysis.evaluation import Samples, sample_counts, summarize
from rljax.checkpoint import Checkpointer
from rljax.config import ExperimentConfig, check_mesh
from rljax.metrics import MetricsWriter
from rljax.model import gguf_io, hf
from rljax.model.config import get_preset
from rljax.rewards.sandbox import RewardGuard
from rljax.rl import train_state
from rljax.rl.sft import make_sft_step, pretrain
from rljax.tasks.base import Task
from rljax.tasks.testbed_task import TestbedTask, build_tokenizer, sft_batch_fn
from rljax.tasks.text_task import TextTask
from rljax.tokenizers.base import BatchTokenizer
from rljax.tokenizers.hf import HFTokenizer
from rljax.tokenizers.sentencepiece import Tokenizer


def write_json(obj, path):
  """Atomic JSON write: a crash leaves the old file or the new one, never half of one.
  Process 0 writes; the others (multi-process runs) hold the same object and skip."""
  if not distributed.is_main():
    return
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True)
  os.replace(tmp, path)


def read_json(path):
  with open(path) as f:
    return json.load(f)


def _tokenizer(task, cfg, workdir) -> Tokenizer:
  path = os.path.join(workdir, "tokenizer.model")
  if not os.path.exists(path) and distributed.is_main():
    build_tokenizer(task, cfg.tokenizer_vocab).save(path)
  distributed.barrier("tokenizer")  # the others load what process 0 trained
  return Tokenizer.load(path)


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
    batches = sft_batch_fn(task, tok, cfg.pretrain.batch_size, cfg.prompt_len, cfg.completion_len,
                           cfg.pretrain.max_position_offset)
    writer = MetricsWriter(workdir, "pretrain_metrics", resume_step=int(state.step))
    save = lambda s, i, switch: ckpt.save(i, s, {"done": False, "clean_steps": switch})
    state, switch = pretrain(state, make_sft_step(graphdef, optimizer, sh, mesh), batches,
                             cfg.pretrain, writer, switch=meta["clean_steps"], save=save)
    writer.close()
    ckpt.save(int(state.step), state, {"done": True, "clean_steps": switch})
  ckpt.close()
  return graphdef, state.params


@dataclasses.dataclass
class Setup:
  """What every command on a workdir needs: mesh, task, tokenizer, models, evaluator.

  Attributes:
    cfg: the run's config, its sampling EOS / pad ids set from the tokenizer.
    mesh: the update's device mesh (enter it with `jax.set_mesh(setup.mesh)`).
    rollout_mesh: the sampler's (`sharding.train_and_rollout_meshes`); `evaluate`
      samples on it.
    task, tok: the task and its tokenizer.
    model_cfg, graphdef, base_params: the base model.
    verifier: the held-out verifier's sandbox, started on first use.
  """

  cfg: ExperimentConfig
  mesh: object
  rollout_mesh: object
  task: Task
  tok: BatchTokenizer
  model_cfg: object
  graphdef: object
  base_params: dict
  verifier: RewardGuard | None = None

  def evaluate(self, params, n: int, tag: str, sampling=None, problems=None, observe=None):
    """`Samples` (right answers and right answers with verified steps per held-out
    problem, mean token entropy) from n samples each, with the run's sampling settings
    unless `sampling` is given; of the held-out split, or of `problems`. `observe`:
    see `rljax.analysis.evaluation.sample_counts`.

    The task's verifier runs in a `RewardGuard` (a time limit per call, failures score 0).
    """
    if self.verifier is None:
      self.verifier = RewardGuard(self.task.reward, self.cfg.rl.reward_timeout_s,
                                  name="verifier")
    problems = self.task.eval_problems if problems is None else problems
    return sample_counts(self.graphdef, params, problems, self.tok, n=n,
                         prompt_len=self.cfg.prompt_len,
                         sampling=self.cfg.sampling if sampling is None else sampling,
                         key=prng.eval_key(self.cfg.seed, tag),
                         batch_rollouts=self.cfg.eval.batch_rollouts,
                         verify=lambda calls: self.verifier.score(calls)[0],
                         steps_verify=self.task.steps_verify, observe=observe,
                         mesh=self.rollout_mesh)

  def greedy_counts(self, params, tag: str) -> np.ndarray:
    """Per held-out problem, whether greedy decoding (top-k 1, i.e. temperature 0) is
    right: on a base whose every step's mode is right, sampled pass@1 alone hides that
    RL only sharpens."""
    greedy = dataclasses.replace(self.cfg.sampling, top_k=1)
    return self.evaluate(params, 1, f"{tag}-greedy", sampling=greedy).counts

  def greedy_accuracy(self, params, tag: str) -> float:
    return float(self.greedy_counts(params, tag).mean())

  def summarize(self, samples: Samples, n: int) -> dict:
    return summarize(self.task.eval_problems, samples.counts, n, self.task.eval_tags,
                     cot_counts=samples.cot_counts, entropy_sums=samples.entropy_sums,
                     tokens=samples.tokens)

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


def check_overlong_buffer(cfg: ExperimentConfig, task: Task, tok: BatchTokenizer) -> None:
  """DAPO's overlong penalty must start after the task's longest correct completion:
  otherwise every full solution is penalised and skipping steps is rewarded."""
  buffer = cfg.intervention.overlong_buffer
  longest = task.longest_solution_tokens(tok) if buffer else None
  if longest is not None and cfg.completion_len - buffer < longest:
    raise ValueError(
        f"intervention.overlong_buffer={buffer} starts the overlong penalty at token "
        f"{cfg.completion_len - buffer}, before the task's longest correct completion "
        f"({longest} tokens with EOS): raise completion_len to at least {longest + buffer} "
        f"or shrink the buffer to at most {cfg.completion_len - longest}")


def _with_special_ids(cfg: ExperimentConfig, tok: BatchTokenizer) -> ExperimentConfig:
  sampling = dataclasses.replace(cfg.sampling, eos_id=tok.eos_id, pad_id=tok.pad_id)
  return dataclasses.replace(cfg, sampling=sampling)


def prepare(cfg: ExperimentConfig, workdir: str) -> Setup:
  """Mesh, task, tokenizer and base model of `workdir` (trained there if not cached).

  Call inside `with jax.set_mesh(setup.mesh)` for everything that follows; the
  mesh is also entered here for the base model.
  """
  os.makedirs(workdir, exist_ok=True)
  mesh, rollout_mesh = sharding.train_and_rollout_meshes(
      cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.model, cfg.mesh.train_devices)
  check_mesh(cfg, sharding.batch_devices(mesh))
  if cfg.model.checkpoint:
    return _prepare_checkpoint(cfg, mesh, rollout_mesh)
  task = TestbedTask(cfg.task, cfg.seed)
  tok = _tokenizer(task, cfg, workdir)
  check_overlong_buffer(cfg, task, tok)
  model_cfg = get_preset(cfg.model.preset, vocab_size=tok.vocab_size, dtype=cfg.model.dtype,
                         max_seq_len=cfg.prompt_len + cfg.completion_len,
                         **cfg.model.layout())
  sharding.check_model_fits_mesh(model_cfg, mesh)
  cfg = _with_special_ids(cfg, tok)
  with jax.set_mesh(mesh):
    graphdef, base_params = _base_params(cfg, model_cfg, task, tok, mesh, workdir)
  return Setup(cfg, mesh, rollout_mesh, task, tok, model_cfg, graphdef, base_params)


def _prepare_checkpoint(cfg: ExperimentConfig, mesh, rollout_mesh) -> Setup:
  """A real model (HF directory or GGUF file) on a real dataset: no pretraining."""
  path = cfg.model.checkpoint
  path = gguf_io.smollm2_path() if path == "smollm2" else path
  seq = cfg.prompt_len + cfg.completion_len
  with jax.set_mesh(mesh):
    if path.endswith(".gguf"):
      model = gguf_io.load(path, mesh, cfg.model.dtype, max_seq_len=seq, **cfg.model.layout())
      tok = HFTokenizer.from_gguf(path)
    else:
      model = hf.load(path, mesh, cfg.model.dtype, max_seq_len=seq, **cfg.model.layout())
      tok = HFTokenizer.from_dir(path)
  graphdef, state = nnx.split(model, nnx.Param)
  task = TextTask(cfg.data, tok, cfg.seed, cfg.prompt_len)
  check_overlong_buffer(cfg, task, tok)
  return Setup(_with_special_ids(cfg, tok), mesh, rollout_mesh, task, tok, model.cfg, graphdef,
               nnx.to_pure_dict(state))
