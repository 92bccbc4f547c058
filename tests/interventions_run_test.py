"""Every intervention of configs/interventions.py, run two steps on a tiny testbed, changes
what it should relative to plain GRPO on the same seed, data and base model.

The reward is a stand-in verifier (even completion length) so that a random tiny model's
groups carry signal; the interventions act on rewards, advantages and tokens whatever
the verifier is. Step 1 of a method that changes neither sampling nor rewards sees
exactly GRPO's rollouts (same reward_mean), so a different loss there is the method's.
"""

import json
import os
import shutil

import numpy as np
import pytest

from configs import interventions as icfg
from rljax import experiment
from rljax.config import from_config_dict
from rljax.metrics import read_rows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def tiny(method, steps=2):
  c = icfg.get_config(f"method={method},runlocal")
  c.model.preset = "tiny"
  c.task.tiers = (2,)
  c.task.eval_per_cell = 2
  c.prompt_len, c.completion_len, c.sampling.max_new_tokens = 12, 24, 24
  c.pretrain.update(clean_max_steps=2, noisy_steps=2, log_every=1, batch_size=8)
  c.rl.update(steps=steps, prompts_per_step=4, group_size=4, eval_every=0, checkpoint_every=2,
              minibatches=2, reward_fn="tests.faulty_rewards:length_parity")
  c.rl.optim.lr = 3e-3  # the policy moves within a step, so clipping-based methods act
  c.eval.update(n_samples=4, batch_rollouts=16)
  if method == "prorl":
    c.intervention.reset_every = 1
  if method == "one_shot":
    c.intervention.update(one_shot_pool=8, one_shot_history_steps=2)
  if method == "drgrpo":
    c.loss.norm_constant = 24.0
  if method == "dapo":
    c.intervention.overlong_buffer = 4
  if method == "entropy_adaptive":
    c.intervention.entropy_target_frac = 2.0  # target above the entropy: the bonus acts
  return from_config_dict(c)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
  """A tiny base model trained once; each method's run reuses it like a second demo run."""
  d = str(tmp_path_factory.mktemp("base"))
  experiment.run(tiny("grpo", steps=0), d)
  return d


def _same_rollouts_other_loss(rows, ref):
  return (rows[0]["reward_mean"] == ref[0]["reward_mean"]
          and rows[0]["pg_loss"] != pytest.approx(ref[0]["pg_loss"], rel=1e-4, abs=1e-7))


def _loss_is(rows, extra):
  """loss = pg_loss + extra(row) in every row (metrics are minibatch means: linear)."""
  return all(r["loss"] == pytest.approx(r["pg_loss"] + extra(r), abs=1e-5) for r in rows)


# method -> what it changes, given its rows, GRPO's rows and its workdir.
CHANGES = {
    "grpo": lambda rows, ref, d: _strip(rows) == _strip(ref),   # deterministic
    "drgrpo": lambda rows, ref, d: _same_rollouts_other_loss(rows, ref),
    # Same first rollouts: the tokens clipped above 1.28 are a subset of those above 1.2;
    # over the run, fewer.
    "clip_higher": lambda rows, ref, d: (
        rows[0]["clipfrac_high"] <= ref[0]["clipfrac_high"]
        and sum(r["clipfrac_high"] for r in rows) < sum(r["clipfrac_high"] for r in ref)),
    # Dynamic sampling: no zero-variance group unless the rounds ran out; overlong
    # shaping: rewards below the verifier's score for long completions.
    "dapo": lambda rows, ref, d: all(r["zero_var_frac"] == 0 or r["gen_rounds"] == 10
                                     for r in rows)
            and any(r["reward_mean"] < r["accuracy"] for r in rows),
    "clip_cov": lambda rows, ref, d: all(r["clipfrac"] > 0 for r in rows)
                and _same_rollouts_other_loss(rows, ref),
    "kl_cov": lambda rows, ref, d: all(r["clipfrac"] > 0 for r in rows)
              and _same_rollouts_other_loss(rows, ref),
    "gppo": lambda rows, ref, d: all(r["sft_loss"] > 0 for r in rows)
            and _loss_is(rows, lambda r: 0.1 * r["sft_loss"]),
    "entropy_bonus": lambda rows, ref, d: [r["entropy_coef"] for r in rows]
                     == pytest.approx([1e-3] * 2)
                     and _loss_is(rows, lambda r: -1e-3 * r["entropy_loss"]),
    # Adaptive: the bonus acts below target and the coefficient steps up by 0.005.
    "entropy_adaptive": lambda rows, ref, d: [r["entropy_coef"] for r in rows]
                        == pytest.approx([1e-3, 6e-3]),
    "forking_tokens": lambda rows, ref, d: _same_rollouts_other_loss(rows, ref),
    "kl_loss": lambda rows, ref, d: _loss_is(rows, lambda r: 1e-3 * r["kl_loss"])
               and rows[1]["kl_loss"] > 0,
    "kl_reward": lambda rows, ref, d: rows[1]["reward_mean"] != rows[1]["accuracy"]
                 and ref[1]["reward_mean"] == ref[1]["accuracy"],
    "prorl": lambda rows, ref, d: [r["reference_reset"] for r in rows] == [1.0, 1.0]
             and [r["reference_reset"] for r in ref] == [0.0, 0.0]
             and _loss_is(rows, lambda r: 1e-4 * r["kl_loss"]),
    "hicra": lambda rows, ref, d: _same_rollouts_other_loss(rows, ref),
    "rlplus": lambda rows, ref, d: all(r["offpolicy_frac"] > 0 for r in rows)
              and "offpolicy_frac" not in ref[0],
    "passk": lambda rows, ref, d: _same_rollouts_other_loss(rows, ref),
    # GSPO's 3e-4 band clips once the policy moved (the second minibatch).
    "gspo": lambda rows, ref, d: rows[0]["clipfrac"] > ref[0]["clipfrac"],
    "cispo": lambda rows, ref, d: _same_rollouts_other_loss(rows, ref),
    "gmpo": lambda rows, ref, d: _same_rollouts_other_loss(rows, ref),
    "sapo": lambda rows, ref, d: _same_rollouts_other_loss(rows, ref),
    "gpg": lambda rows, ref, d: _same_rollouts_other_loss(rows, ref),
    # The controls ignore the verifier: their rewards are not its scores (a random model
    # never gives the wrong label, so that reward is 0 while the verifier's is not).
    "random_reward": lambda rows, ref, d: any(r["reward_mean"] != r["accuracy"] for r in rows),
    "format_reward": lambda rows, ref, d: any(r["reward_mean"] != r["accuracy"] for r in rows),
    "wrong_label": lambda rows, ref, d: all(r["reward_mean"] == 0 < r["accuracy"]
                                            for r in rows),
    "one_shot": lambda rows, ref, d: _one_shot_chosen(d),
    # DRO's R3 is a weighted certainty in (0, 1), not the verifier's 0/1.
    "dro": lambda rows, ref, d: all(0 < r["reward_mean"] < 1 and r["reward_mean"]
                                    != r["accuracy"] for r in rows),
}


def _strip(rows):
  return [{k: v for k, v in r.items() if k not in ("step_time_s", "tokens_per_s")}
          for r in rows]


def _one_shot_chosen(workdir):
  with open(os.path.join(workdir, "one_shot.json")) as f:
    chosen = json.load(f)
  stds = {int(k): np.std(v) for k, v in chosen["history"].items()}
  return len(stds) == 8 and stds[chosen["index"]] == max(stds.values())


def _run(method, base_dir, workdir):
  for name in ("tokenizer.model", "base_eval.json"):
    shutil.copy(os.path.join(base_dir, name), os.path.join(workdir, name))
  shutil.copytree(os.path.join(base_dir, "base"), os.path.join(workdir, "base"))
  summary = experiment.run(tiny(method), str(workdir))
  rows = read_rows(os.path.join(workdir, "metrics.jsonl"))
  assert [r["step"] for r in rows] == [1, 2] and summary["steps"] == 2
  return rows


@pytest.fixture(scope="module")
def grpo_rows(base_dir, tmp_path_factory):
  return _run("grpo", base_dir, tmp_path_factory.mktemp("grpo"))


def test_every_method_has_a_check():
  assert set(CHANGES) == set(icfg.METHODS)


@pytest.mark.parametrize("method", sorted(icfg.METHODS))
def test_method_changes_what_it_should(method, base_dir, grpo_rows, tmp_path):
  rows = _run(method, base_dir, tmp_path)
  for r in rows:
    assert np.isfinite(r["loss"]) and r["skipped"] == 0.0
  assert CHANGES[method](rows, grpo_rows, str(tmp_path)), (method, rows, grpo_rows)
