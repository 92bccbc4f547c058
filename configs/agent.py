r"""Agents: multi-turn RL on the keys-and-doors world, outcome-only GRPO or RLVMR, on a CPU.

Launch:

  python -m launch.train --config configs/agent.py --workdir /tmp/rljax_agent

Variants after the colon, comma separated:

  --config configs/agent.py:method=rlvmr    RLVMR's episode + step advantage (arXiv 2507.22844)
  --config configs/agent.py:seed=1          another seed
  --config configs/agent.py:runlocal        a ~2-minute version of the same pipeline

The pipeline (rljax/agents/pipeline.py): a tokenizer with the tags as single pieces,
RLVMR's cold start (supervised on the oracle explorer's tagged, noisy trajectories:
a weak but non-trivial base agent), then RL with `rl.method`'s credit, success and
the agent instruments on seen and unseen layouts before and after. Every value the
dataclasses default to is written here (tests/agent_test.py checks it); the loss
section is the testbed's (configs/testbed.py).
"""

import ml_collections

from configs import testbed


def get_config(arg: str = ""):
  opts = dict(kv.split("=", 1) if "=" in kv else (kv, "1")
              for kv in (arg.split(",") if arg else []))
  c = ml_collections.ConfigDict()
  c.pipeline = "agent"
  c.seed = int(opts.get("seed", 0))
  c.tokenizer_vocab = 160            # words of the world + tags; BPE merges the rest

  c.model = testbed.get_config().model   # the testbed's model section (0.15M parameters)

  c.world = ml_collections.ConfigDict()
  c.world.rooms = 5                  # oracle 96% / its noisy demos 30% success in 12 turns
  c.world.locks = 2

  c.multi_turn = ml_collections.ConfigDict()
  c.multi_turn.max_turns = 12
  c.multi_turn.max_tokens = 320      # turns + observations after the prompt (the oracle's
                                     # noisy demos: 258 on average, 99th percentile 289)
  c.multi_turn.prompt_tokens = 32    # the longest first observation is 23 tokens
  c.multi_turn.turn_tokens = 32      # the oracle's longest turn is 18 tokens
  c.multi_turn.obs_tokens = 32       # its longest observation 25
  c.multi_turn.timeout_s = 5.0

  c.sampling = ml_collections.ConfigDict()
  c.sampling.max_new_tokens = 32     # = multi_turn.turn_tokens
  c.sampling.temperature = 1.0
  c.sampling.top_k = 0
  c.sampling.top_p = 1.0
  c.sampling.eos_id = 1
  c.sampling.pad_id = 0

  c.cold_start = ml_collections.ConfigDict()
  c.cold_start.demos = 2048
  c.cold_start.noise = 0.3           # share of the oracle's random (mostly invalid) actions
  c.cold_start.steps = 300
  c.cold_start.batch_size = 32
  c.cold_start.log_every = 50
  c.cold_start.optim = ml_collections.ConfigDict(dict(
      lr=3e-3, schedule="constant", warmup_steps=50, weight_decay=0.01, grad_clip=1.0,
      b1=0.9, b2=0.99))

  c.rl = ml_collections.ConfigDict()
  c.rl.method = opts.get("method", "grpo")   # grpo (outcome only) | rlvmr
  c.rl.steps = 40
  c.rl.envs_per_step = 8
  c.rl.group_size = 8
  c.rl.train_layouts = 512
  c.rl.kl_coef = 0.0
  c.rl.entropy_coef = 0.0
  c.rl.eval_every = 10
  c.rl.checkpoint_every = 10
  c.rl.trace_every = 10
  c.rl.optim = ml_collections.ConfigDict(dict(
      lr=3e-4, schedule="constant", warmup_steps=0, weight_decay=0.0, grad_clip=1.0,
      b1=0.9, b2=0.999))

  c.loss = testbed.get_config().loss

  c.meta = ml_collections.ConfigDict()   # RLVMR's meta-rewards (docs/algorithms.md §16)
  c.meta.planning_reward = 1.0
  c.meta.exploration_reward = 1.0
  c.meta.reflection_reward = 1.0
  c.meta.invalid_penalty = 0.1
  c.meta.step_advantage_w = 1.0
  c.meta.mode = "mean_std_norm"

  c.eval = ml_collections.ConfigDict()
  c.eval.seen = 64                   # the first training layouts
  c.eval.unseen = 64                 # held out by canonical layout
  c.eval.samples = 2
  c.eval.unseen_seed = 1_000_000

  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, model=1, train_devices=-1))

  if "runlocal" in opts:
    c.cold_start.demos = 256
    c.cold_start.steps = 120
    c.cold_start.batch_size = 16
    c.rl.steps = 3
    c.rl.envs_per_step = 4
    c.rl.group_size = 4
    c.rl.train_layouts = 64
    c.rl.eval_every = 2
    c.rl.checkpoint_every = 2
    c.rl.trace_every = 2
    c.eval.seen = 8
    c.eval.unseen = 8
    c.eval.samples = 1
  return c
