r"""The testbed with one exploration intervention switched on.

  python -m launch.train --config configs/interventions.py:method=clip_cov --workdir DIR
  python -m launch.train --config configs/interventions.py:method=kl_cov,runlocal --workdir DIR
  python -m launch.train --config configs/interventions.py:method=clip_cov,v2 --workdir DIR

The methods run on the original testbed (`configs/testbed.py:v1`) unless `v2` is given:
the README's intervention study was measured there, and settings such as DAPO's
overlong buffer are sized to its 52-token completions.

Methods (each the published recipe's settings, scaled to the testbed where noted):
  grpo            plain GRPO (the baseline every study compares against)
  drgrpo          Dr. GRPO: no std in the advantage, constant length normaliser
  clip_higher     DAPO clip-higher, eps 0.2 / 0.28
  dapo            clip-higher + dynamic sampling + overlong shaping (buffer 12 of 64 tokens)
  clip_cov        Clip-Cov; eps 1 / 1 as in the recipe; ratio 2e-2 (recipe 2e-4 is
                  sized for 32k-token micro-batches: on ~7k testbed tokens it selects 1)
  kl_cov          KL-Cov, coef 1; ratio 2e-2 (same scaling); acts once the policy moves
                  within a step, so all methods here use 4 minibatches
  gppo            GPPO with beta1 = 0.25 (README), dual clip 10, SFT coef 0.1
  entropy_bonus   constant entropy bonus 1e-3 (One-Shot RLVR's setting)
  entropy_adaptive  bonus steered to half the initial rollout entropy
  forking_tokens  train on the top-20% entropy tokens only
  kl_loss         k3 KL to the reference in the loss, coef 1e-3
  kl_reward       k1 KL subtracted from the reward, coef 1e-3
  prorl           k2 KL 1e-4 (ProRLv2) + reference reset every 25 steps + clip-higher 0.2/0.4
  hicra           HICRA alpha 0.2 on the testbed's planning tokens
  rlplus          RL-PLUS, 1 demonstration in each group of 8
  passk           pass@k training advantages, k = 4
  gspo | cispo | gmpo | sapo | gpg   the alternative surrogates of docs/algorithms.md §17
  random_reward | format_reward | wrong_label   spurious-reward controls
  one_shot        one-shot RLVR (pool 64, 15 history steps)
  dro             DRO reasoning-reflection reward with variance filtering
"""

from configs import testbed


METHODS = {
    "grpo": {},
    "drgrpo": {"rl.advantage": "drgrpo", "loss.agg": "seq-mean-token-sum-norm",
               "loss.norm_constant": 52.0},
    "clip_higher": {"loss.eps_high": 0.28},
    # Room for the buffer: the longest correct trace (6 steps) is 51 tokens with EOS, so
    # the penalty starts after it (at 64 - 12 = 52) and never hits a full solution.
    "dapo": {"loss.eps_high": 0.28, "intervention.dynamic_sampling": True,
             "intervention.overlong_buffer": 12, "completion_len": 64,
             "sampling.max_new_tokens": 64},
    "clip_cov": {"loss.policy_loss": "clip_cov", "loss.eps_low": 1.0, "loss.eps_high": 1.0,
                 "loss.clip_cov_ratio": 2e-2},
    "kl_cov": {"loss.policy_loss": "kl_cov", "loss.kl_cov_ratio": 2e-2, "loss.kl_cov_coef": 1.0},
    "gppo": {"loss.policy_loss": "gppo", "loss.eps_high": 0.28, "loss.dual_clip_c": 10.0,
             "loss.gppo_beta1": 0.25, "intervention.sft_coef": 0.1},
    "entropy_bonus": {"loss.entropy_coef": 1e-3},
    "entropy_adaptive": {"intervention.entropy_schedule": "adaptive", "loss.entropy_coef": 1e-3},
    "forking_tokens": {"intervention.forking_top_frac": 0.2},
    "kl_loss": {"loss.kl_coef": 1e-3, "loss.kl_estimator": "k3"},
    "kl_reward": {"intervention.kl_in_reward": True, "intervention.kl_reward_coef": 1e-3},
    "prorl": {"loss.kl_coef": 1e-4, "loss.kl_estimator": "k2", "loss.eps_high": 0.4,
              "intervention.reset_every": 25},
    "hicra": {"intervention.hicra_alpha": 0.2},
    "rlplus": {"loss.policy_loss": "rlplus", "rl.advantage": "rlplus",
               "intervention.rlplus_demos": 1, "loss.entropy_coef": 1e-3},
    "passk": {"rl.advantage": "passk", "rl.passk_k": 4},
    "gspo": {"loss.policy_loss": "gspo", "loss.eps_low": 3e-4, "loss.eps_high": 4e-4},
    "cispo": {"loss.policy_loss": "cispo", "loss.eps_low": 1.0, "loss.eps_high": 4.0},
    "gmpo": {"loss.policy_loss": "gmpo", "loss.eps_low": 0.4, "loss.eps_high": 0.4},
    "sapo": {"loss.policy_loss": "sapo"},
    "gpg": {"loss.policy_loss": "gpg", "rl.advantage": "gpg"},
    "random_reward": {"intervention.reward_mode": "random"},
    "format_reward": {"intervention.reward_mode": "format"},
    "wrong_label": {"intervention.reward_mode": "wrong_label"},
    "one_shot": {"intervention.one_shot_pool": 64, "intervention.one_shot_history_steps": 15},
    "dro": {"intervention.reward_mode": "dro", "intervention.dro_filter_threshold": 1e-3},
}


def get_config(arg: str = ""):
  opts = dict(kv.split("=", 1) if "=" in kv else (kv, "1")
              for kv in (arg.split(",") if arg else []))
  method = opts.pop("method", "grpo")
  if method not in METHODS:
    raise ValueError(f"Unknown method {method!r}; valid: {sorted(METHODS)}")
  if not opts.pop("v2", None):
    opts["v1"] = "1"
  c = testbed.get_config(",".join(k if v == "1" else f"{k}={v}" for k, v in opts.items()))
  c.rl.minibatches = 4   # KL-Cov needs the policy to move within a step; same for all
  for key, value in METHODS[method].items():
    if "." in key:
      section, field = key.split(".")
      c[section][field] = value
    else:  # a top-level field (completion_len)
      c[key] = value
  return c
