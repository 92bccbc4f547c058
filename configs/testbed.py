r"""The built-in reasoning testbed: pretrain a tiny base model, then GRPO, on a CPU.

Launch (the README's demo command runs this):

  python -m launch.train --config configs/testbed.py --workdir /tmp/rljax_testbed

Variants after the colon, comma separated:

  --config configs/testbed.py:runlocal      a ~2-minute version of the same pipeline
  --config configs/testbed.py:seed=1        another seed
  --config configs/testbed.py:size=s        the small (or l: large) testbed model
  --config configs/testbed.py:v1            the original testbed: two families, answers
                                            mod 100, every step's mode right (RL can only
                                            sharpen); the intervention study's testbed

The default is testbed v2: five families, 4-digit answers, a regime for each side of
the "does RL create or elicit reasoning" debate (rljax/tasks/testbed.py, `_v2` below).
The values written in the sections are the v1 testbed's and the dataclasses' defaults
(one source of truth, tests/config_test.py); `_v2` overrides the ones v2 changes.

Any field can be overridden, e.g. --config.rl.optim.lr=5e-5 --config.loss.entropy_coef=0.001
(fields that default to None are typed placeholders: --config.loss.dual_clip_c=3.0 works).
"""

import ml_collections
from ml_collections.config_dict import placeholder


def get_config(arg: str = ""):
  opts = dict(kv.split("=", 1) if "=" in kv else (kv, "1")
              for kv in (arg.split(",") if arg else []))
  runlocal = "runlocal" in opts

  c = ml_collections.ConfigDict()
  c.seed = int(opts.get("seed", 0))
  c.prompt_len = 18        # BOS + longest prompt: x+3-9+5-7+1-2=66 is 17 tokens
  c.completion_len = 52    # 6 steps x 7 tokens + 5 ";" + ";#" + 2 digits + EOS = 51
  c.tokenizer_vocab = 24   # 22 symbols + specials; BPE merges the rest

  c.model = ml_collections.ConfigDict()
  c.model.preset = "testbed"
  c.model.checkpoint = ""            # real weights (HF dir / .gguf / "smollm2"): see configs/gsm8k_*.py
  c.model.dtype = "float32"
  c.model.scan_layers = False        # True: one lax.scan over stacked blocks (deep models)
  c.model.remat = "none"             # none | full | dots: what the backward keeps per block
  c.model.attention = "rljax"        # rljax | xla | cudnn (NVIDIA GPU, bfloat16 flash attention)
  c.model.forward_chains = 1         # the training forwards' rows as N independent programs (CPU)

  c.task = ml_collections.ConfigDict()
  c.task.families = ("arith", "solve")
  c.task.tiers = (2, 4, 6)           # steps per tier; 6 steps leaves headroom
  c.task.step_noise = 0.5            # P(step result wrong) in pretraining traces
  c.task.max_offset = 9
  c.task.eval_per_cell = 50          # held-out problems per (family, tier)
  c.task.eval_seed = 1234
  # Regime dials (rljax/tasks/testbed.py; the defaults keep the original testbed).
  c.task.digits = 2                  # values mod 10^digits: the guessing rate is 10^-digits
  c.task.pretrain_tiers = ()         # tiers pretraining shows (empty: all); others: headroom
  c.task.unseen_families = ()        # families pretraining never shows: absent skill
  c.task.strategy_rare = 0.2         # share of the N procedure in pretraining's strategy traces
  c.task.strategy_hard = 0.3         # share of strategy problems the S procedure fails
  c.task.shortcut_rate = 0.3         # share of pretraining's cancel traces skipping the pair

  c.pretrain = ml_collections.ConfigDict()
  c.pretrain.batch_size = 128
  # Correct traces until the arithmetic is learned (loss < target) or the cap,
  # then noisy traces: a base model that has the skill but samples imperfectly.
  c.pretrain.clean_max_steps = 1000
  c.pretrain.clean_target_loss = 0.05
  c.pretrain.noisy_steps = 500
  c.pretrain.log_every = 50
  c.pretrain.checkpoint_every = 200     # a multiple of log_every
  c.pretrain.max_position_offset = 0    # random RoPE start per sequence (headroom tiers)
  c.pretrain.optim = ml_collections.ConfigDict(dict(
      lr=3e-3, schedule="constant", warmup_steps=50, weight_decay=0.01, grad_clip=1.0,
      b1=0.9, b2=0.99))

  c.rl = ml_collections.ConfigDict()
  c.rl.steps = 100
  c.rl.prompts_per_step = 32
  c.rl.group_size = 8
  c.rl.epochs = 1
  c.rl.minibatches = 1
  c.rl.advantage = "grpo"            # see rljax.rl.advantages.ESTIMATORS
  c.rl.passk_k = 4                   # k of the "passk" estimator
  c.rl.grpo_passk_norm = False
  # 1e-4 was stable from weak and strong bases; 3e-4 collapsed a weak one.
  c.rl.optim = ml_collections.ConfigDict(dict(
      lr=1e-4, schedule="constant", warmup_steps=0, weight_decay=0.0, grad_clip=1.0,
      b1=0.9, b2=0.999))
  c.rl.eval_every = 10              # held-out points of the entropy law and the sigmoid
  c.rl.eval_samples = 4
  c.rl.checkpoint_every = 25
  c.rl.max_to_keep = 2
  c.rl.trace_every = 25              # sampled completions + rewards -> workdir/traces/
  c.rl.trace_rollouts = 64
  c.rl.max_skipped_steps = 3         # non-finite updates in a row before the run stops
  # Rewards run in a worker process, each call under a time limit; a call that raises,
  # hangs, crashes or returns NaN scores reward_failure_score and is counted.
  c.rl.reward_fn = ""                # "module:function" (problem, completion) -> float
  c.rl.reward_timeout_s = 10.0
  c.rl.reward_failure_score = 0.0
  # The ratio's old log-probs are the training forward's; the sampler's (truncated by
  # top-k / top-p, decode path) only feed the mismatch metrics and this correction.
  c.rl.rollout_correction = "none"   # none | token_tis | seq_mask
  c.rl.rollout_correction_cap = 2.0

  c.sampling = ml_collections.ConfigDict(dict(
      max_new_tokens=c.completion_len, temperature=1.0, top_k=0, top_p=1.0,
      eos_id=1, pad_id=0))

  # policy_loss: ppo | clip_cov | kl_cov | gppo | gspo | cispo | gmpo | sapo | gpg | rlplus;
  # each reads the hyperparameters below that it accepts (rljax/rl/policy_losses.py);
  # these are their only defaults.
  c.loss = ml_collections.ConfigDict(dict(
      policy_loss="ppo", agg="token-mean", norm_constant=placeholder(float), eps_low=0.2, eps_high=0.2,
      dual_clip_c=placeholder(float), clip_cov_ratio=2e-4, clip_cov_lb=1.0, clip_cov_ub=5.0,
      kl_cov_ratio=2e-4, kl_cov_coef=1.0, gppo_beta1=1.0, gppo_beta2=1.0,
      gppo_only_high=False, tau_pos=1.0, tau_neg=1.05, rlplus_gamma=0.5, rlplus_clip=False,
      rlplus_seq_sum=True,
      entropy_coef=0.0, kl_coef=0.0, kl_estimator="k3"))

  # Exploration interventions, all off by default (rljax/rl/interventions.py documents each).
  c.intervention = ml_collections.ConfigDict(dict(
      entropy_schedule="constant",      # constant | linear | adaptive
      entropy_coef_end=0.0, entropy_target=placeholder(float), entropy_target_frac=0.5,
      entropy_adapt_rate=0.005, entropy_coef_max=0.1,
      forking_top_frac=1.0,             # 0.2 trains on the top-20% entropy tokens only
      kl_coef_end=placeholder(float), kl_in_reward=False, kl_reward_coef=0.0, kl_reward_estimator="k1",
      reset_every=0, reset_kl_threshold=0.0, reset_patience=0, reset_optimizer=True,
      dynamic_sampling=False, dynamic_sampling_filter="auto", max_gen_rounds=10,
      overlong_buffer=0, overlong_factor=1.0, mask_truncated=False,
      sft_coef=0.0, rlplus_demos=0, hicra_alpha=0.0, planning_phrases=(),
      reward_mode="verifier",           # verifier | random | format | wrong_label | dro
      random_reward_p=0.5, wrong_label_samples=8,
      one_shot_pool=0, one_shot_history_steps=20, one_shot_index=-1,
      dro_temperature=0.1, dro_certainty="prob", dro_filter_threshold=0.0))

  # Real datasets (model.checkpoint set): see rljax/tasks/text_task.py DataConfig.
  c.data = ml_collections.ConfigDict(dict(
      source="", train_path="", eval_path="", question_field="question",
      answer_field="answer", tfds_data_dir="", reasoning_gym_task="basic_arithmetic", train_size=2000,
      eval_size=0, prompt_template="chat", skip_bad_rows=False, last_number_fallback=False))

  # train_devices: the update on the first N devices (-1 all), sampling on all; on a CPU
  # host as one device per core (`--cpu_devices -1`), `make demo` sets 1.
  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, model=1, train_devices=-1))
  c.eval = ml_collections.ConfigDict(dict(n_samples=16, batch_rollouts=1024))

  if "v1" not in opts:
    _v2(c)
  if "size" in opts:
    sizes = {"s": "testbed-s", "m": "testbed", "l": "testbed-l"}
    if opts["size"] not in sizes:
      raise ValueError(f"Unknown size {opts['size']!r}; valid: {sorted(sizes)}")
    c.model.preset = sizes[opts["size"]]
  if runlocal:
    c.pretrain.clean_max_steps = 150
    c.pretrain.noisy_steps = 100
    c.rl.steps = 10
    c.rl.prompts_per_step = 16
    c.rl.eval_every = 5
    c.rl.checkpoint_every = 5
    c.task.eval_per_cell = 10 if "v1" in opts else 4   # 60 held-out problems either way
  return c


def _v2(c):
  """Testbed v2: every regime in one mix. Values have 4 digits (a uniform guess is right
  with probability 1e-4: pass@1024 of 9.7%); tier 6 is never pretrained (headroom, its
  positions seen through randomized RoPE starts); mul never appears (absent skill)."""
  c.task.families = ("arith", "solve", "cancel", "mul", "strategy")
  c.task.digits = 4
  c.task.tiers = (2, 4, 6)
  c.task.pretrain_tiers = (2, 4)
  c.task.unseen_families = ("mul",)
  c.task.eval_per_cell = 20           # 5 families x 3 tiers x 20 = 300 held-out problems
  c.prompt_len = 24                   # BOS + x+3-9+5-7+1-2=6666 (19), BPE only shortens
  c.completion_len = 80               # 6 steps x 11 + 5 ";" + ";#6666" + EOS = 78
  c.tokenizer_vocab = 40              # 21 symbols (@ included) + specials; BPE merges the rest
  c.pretrain.max_position_offset = 32  # tier 6 is ~24 tokens past tier 4
  c.sampling.max_new_tokens = c.completion_len
  # The recipe, calibrated on seed 0 (README, "Testbed v2"): pretraining traces whose
  # steps are right 70% of the time after clean training to loss 0.05 (stopping clean
  # training at 0.08 left the arithmetic too weak to sharpen in 50 steps), and a
  # learning rate that sharpens in 50 steps (1e-4 for 100 steps gained 8 points).
  c.task.step_noise = 0.3
  c.pretrain.noisy_steps = 300
  c.rl.steps = 50
  c.rl.optim.lr = 3e-4
  # The forwards of pretraining, scoring and the update in two independent chains: on a
  # CPU host, where XLA runs a device's ops one at a time, this 0.15M model's small ops
  # then keep both cores busy (`logprobs.in_chains`; the README's demo figures).
  c.model.forward_chains = 2
