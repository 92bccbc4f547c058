"""Reference values from verl 0.9.1 (PyTorch), run in the oracle environment.

  python tests/oracle/verl_reference.py INPUT.npz OUTPUT.npz

Reads random inputs written by tests/verl_oracle_test.py and writes verl's loss
values and d loss / d log_prob for each policy loss, KL estimator, aggregation
mode and advantage estimator. Not imported by rljax; only by the oracle test.
"""

import sys

import numpy as np
import torch
from verl.trainer.config import AlgoConfig
from verl.trainer.ppo import core_algos as ca
from verl.workers.config import ActorConfig, PolicyLossConfig


def actor(loss_mode, eps_low=0.2, eps_high=0.28, **policy):
  return ActorConfig(strategy="fsdp", rollout_n=1, ppo_mini_batch_size=4,
                     ppo_micro_batch_size_per_gpu=1, clip_ratio=0.2, clip_ratio_low=eps_low,
                     clip_ratio_high=eps_high, clip_ratio_c=3.0, tau_pos=1.0, tau_neg=1.05,
                     policy_loss=PolicyLossConfig(loss_mode=loss_mode, **policy))


POLICY_CASES = {
    "vanilla": actor("vanilla"),
    "gspo": actor("gspo", 3e-4, 4e-4),
    "cispo": actor("cispo"),
    "sapo": actor("sapo"),
    "geo_mean": actor("geo_mean", 0.4, 0.4),
    "gpg": actor("gpg"),
    "clip_cov": actor("clip_cov", 0.2, 0.28, clip_cov_ratio=1.0, clip_cov_lb=-10.0,
                      clip_cov_ub=0.5),
    "kl_cov": actor("kl_cov", kl_cov_ratio=0.2, ppo_kl_coef=1.0),
}
AGG = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm")


def main(src, dst):
  d = np.load(src)
  t = lambda k: torch.tensor(d[k], dtype=torch.float64)
  out = {}
  for name, cfg in POLICY_CASES.items():
    for mode in AGG:
      logp = t("logp").clone().requires_grad_(True)
      fn = ca.get_policy_loss_fn(name)
      loss, _ = fn(old_log_prob=t("old_logp"), log_prob=logp, advantages=t("adv"),
                   response_mask=t("mask"), loss_agg_mode=mode, config=cfg)
      loss.backward()
      out[f"{name}|{mode}|value"] = loss.detach().numpy()
      out[f"{name}|{mode}|grad"] = logp.grad.numpy()
  for kind in ("k1", "abs", "k2", "k3", "k1+", "k3+"):
    logp = t("logp").clone().requires_grad_(True)
    kl = ca.kl_penalty(logp, t("ref_logp"), kind)
    (kl * t("mask")).sum().backward()
    out[f"kl|{kind}|value"] = kl.detach().numpy()
    out[f"kl|{kind}|grad"] = logp.grad.numpy()
  for mode in AGG:
    out[f"agg|{mode}"] = ca.agg_loss(t("loss_mat"), t("mask"), mode).numpy()
  scores = torch.zeros_like(t("mask"))
  last = t("mask").sum(1).long() - 1
  scores[torch.arange(len(last)), last] = t("rewards")
  index = d["index"]
  for name, fn, kw in (
      ("grpo", ca.compute_grpo_outcome_advantage, dict(norm_adv_by_std_in_grpo=True)),
      ("drgrpo", ca.compute_grpo_outcome_advantage, dict(norm_adv_by_std_in_grpo=False)),
      ("rloo", ca.compute_rloo_outcome_advantage, {}),
      ("reinforce_pp_baseline", ca.compute_reinforce_plus_plus_baseline_outcome_advantage, {}),
      ("grpo_passk", ca.compute_grpo_passk_outcome_advantage,
       dict(config=AlgoConfig(norm_adv_by_std_in_grpo=False))),
      ("gpg", ca.compute_gpg_outcome_advantage, {})):
    adv, _ = fn(token_level_rewards=scores, response_mask=t("mask"), index=index, **kw)
    out[f"adv|{name}"] = adv.numpy()
  np.savez(dst, **out)


if __name__ == "__main__":
  torch.manual_seed(0)
  main(sys.argv[1], sys.argv[2])
