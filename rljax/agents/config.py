"""The agent run's configuration (`configs/agent.py`), frozen dataclasses built at the edge.

One run: a tokenizer and a cold-started base agent (supervised on the oracle's tagged
trajectories, RLVMR's cold start), then multi-turn RL with the outcome-only GRPO
advantage (`method="grpo"`) or RLVMR's episode + step advantage (`method="rlvmr"`),
on the same budget; success and the agent instruments on seen and unseen layouts
before and after.
"""

from __future__ import annotations

import dataclasses

from rljax.config import MeshConfig, ModelSection, OptimConfig
from rljax.dataclass_build import build
from rljax.envs.keys_doors import WorldConfig
from rljax.rewards.meta_reasoning import MetaRewardConfig
from rljax.rl.losses import LossConfig
from rljax.rl.multi_turn import MultiTurnConfig
from rljax.rl.sampler import SamplingConfig

METHODS = ("grpo", "rlvmr")  # the keys of `rljax.agents.credit.METHODS` (tested)


@dataclasses.dataclass(frozen=True)
class ColdStartConfig:
  """Supervised training on the oracle explorer's tagged trajectories (training layouts).

  Attributes:
    demos: trajectories generated (one per draw of a training layout and the oracle's rng).
    noise: the oracle's share of random actions: a weak but non-trivial base agent.
    steps, batch_size, optim: the supervised run (token-mean NLL on the agent's tokens).
    log_every: loss logging period.
  """

  demos: int = 2048
  noise: float = 0.3
  steps: int = 300
  batch_size: int = 32
  optim: OptimConfig = OptimConfig(lr=3e-3, warmup_steps=50, weight_decay=0.01, b2=0.99)
  log_every: int = 50

  def __post_init__(self):
    if not 0.0 <= self.noise < 1.0:
      raise ValueError(f"cold_start.noise must be in [0, 1), got {self.noise}")


@dataclasses.dataclass(frozen=True)
class AgentRLConfig:
  """The multi-turn RL loop.

  Attributes:
    method: grpo (outcome-only advantage) | rlvmr (episode + weighted step advantage,
      `rljax.rewards.meta_reasoning`).
    steps: RL steps; each plays `envs_per_step` training layouts x `group_size`.
    train_layouts: the pool of training layout seeds (0 .. train_layouts-1): "seen".
    kl_coef: k3 KL to the cold-started reference (0: no reference forward).
    entropy_coef: entropy bonus.
    eval_every: evaluation period in steps (0: only before and after).
    checkpoint_every: checkpoint period (the last step is always saved).
    trace_every: save whole trajectories every this many steps (0: never).
  """

  method: str = "grpo"
  steps: int = 40
  envs_per_step: int = 8
  group_size: int = 8
  train_layouts: int = 512
  optim: OptimConfig = OptimConfig(lr=3e-4)
  kl_coef: float = 0.0
  entropy_coef: float = 0.0
  eval_every: int = 10
  checkpoint_every: int = 10
  trace_every: int = 10

  def __post_init__(self):
    if self.method not in METHODS:
      raise ValueError(f"rl.method {self.method!r} is unknown; valid: {list(METHODS)}")
    if self.group_size < 2:
      raise ValueError(f"rl.group_size must be >= 2 (group advantages), got {self.group_size}")
    if self.train_layouts < self.envs_per_step:
      raise ValueError(f"rl.train_layouts ({self.train_layouts}) must be at least "
                       f"rl.envs_per_step ({self.envs_per_step})")


@dataclasses.dataclass(frozen=True)
class AgentEvalConfig:
  """Seen layouts: the first `seen` training layouts; unseen: `unseen` layouts from
  `unseen_seed` on whose canonical layout is not among the training layouts."""

  seen: int = 64
  unseen: int = 64
  samples: int = 2
  unseen_seed: int = 1_000_000


@dataclasses.dataclass(frozen=True)
class AgentConfig:
  """One agent run (`configs/agent.py` lays the sections out).

  Attributes:
    pipeline: "agent" (launch.train reads it to pick this pipeline).
    seed: seeds the oracle's demonstrations, the model init and every PRNG key.
    tokenizer_vocab: sentencepiece vocabulary of the agent's tokenizer (tags and action
      delimiters are single user-defined pieces, so a turn's stop is one token).
  """

  pipeline: str = "agent"
  seed: int = 0
  tokenizer_vocab: int = 160
  # The testbed v2's model section (configs/agent.py takes configs/testbed.py's): two
  # forward chains, as the testbed's tiny model runs fastest on a CPU host.
  model: ModelSection = ModelSection(forward_chains=2)
  world: WorldConfig = WorldConfig(rooms=5, locks=2)
  multi_turn: MultiTurnConfig = MultiTurnConfig(max_tokens=320, prompt_tokens=32,
                                                obs_tokens=32)
  sampling: SamplingConfig = SamplingConfig(max_new_tokens=32)
  cold_start: ColdStartConfig = ColdStartConfig()
  rl: AgentRLConfig = AgentRLConfig()
  loss: LossConfig = LossConfig()
  meta: MetaRewardConfig = MetaRewardConfig()
  eval: AgentEvalConfig = AgentEvalConfig()
  mesh: MeshConfig = MeshConfig()

  def __post_init__(self):
    if self.pipeline != "agent":
      raise ValueError(f"pipeline must be 'agent' for an AgentConfig, got {self.pipeline!r}")
    if self.model.checkpoint:
      raise ValueError("the agent pipeline trains its own tiny model: model.checkpoint "
                       "must be empty")
    if self.sampling.max_new_tokens != self.multi_turn.turn_tokens:
      raise ValueError("sampling.max_new_tokens must equal multi_turn.turn_tokens "
                       f"({self.sampling.max_new_tokens} != {self.multi_turn.turn_tokens})")


def from_config_dict(cd) -> AgentConfig:
  values = cd.to_dict() if hasattr(cd, "to_dict") else dict(cd)
  return build(AgentConfig, values, "")
