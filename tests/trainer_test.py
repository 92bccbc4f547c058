"""The whole pipeline on a tiny config: a two-step run, resume == uninterrupted, no recompiles."""

import dataclasses
import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rljax import experiment
from rljax.rl import sampler, trainer, update
from rljax.rl.train_state import TrainState, apply_if_finite, make_optimizer
from rljax.analysis import traces
from rljax.checkpoint import Checkpointer
from rljax.config import MeshConfig, OptimConfig, from_config_dict
from rljax.metrics import read_rows
from rljax.tasks import testbed
from tests.config_test import load


def shrink(c):
  """A testbed ConfigDict cut down to seconds: tiny model, one tier, short sequences."""
  c.model.preset = "tiny"
  c.task.tiers = (2,)
  c.task.eval_per_cell = 2
  c.prompt_len = 12
  c.completion_len = 24
  c.sampling.max_new_tokens = 24
  c.pretrain.update(clean_max_steps=2, noisy_steps=2, log_every=1, batch_size=8)
  c.rl.update(prompts_per_step=4, group_size=4, eval_every=2, eval_samples=2,
              checkpoint_every=1)
  c.eval.n_samples = 4
  c.eval.batch_rollouts = 16
  return c


def tiny_config(rl_steps, intervention=None, loss=None, **rl):
  """The validated tiny config with `rl_steps` steps and the given overrides (on the v1
  testbed: 2-digit prompts fit `shrink`'s 12 tokens)."""
  c = shrink(load("v1,runlocal"))
  c.intervention.update(intervention or {})
  c.loss.update(loss or {})
  c.rl.update(steps=rl_steps, **rl)
  return from_config_dict(c)


def test_two_step_run_writes_summary_and_metrics(tmp_path):
  summary = experiment.run(tiny_config(2, minibatches=2, epochs=2, trace_every=2,
                                    trace_rollouts=5), str(tmp_path))
  for key in ("base_pass@1", "base_pass@4", "final_pass@1", "final_pass@4", "initial_entropy",
              "final_entropy", "steps", "wall_time_s"):
    assert key in summary
  assert summary["steps"] == 2
  rows = read_rows(os.path.join(tmp_path, "metrics.jsonl"))
  assert [r["step"] for r in rows] == [1, 2]
  for key in ("reward_mean", "reward_std", "accuracy", "entropy", "kl", "clipfrac",
              "response_length", "zero_var_frac", "step_time_s", "tokens_per_s",
              "cov_mean", "cov_p99", "distinct_answers", "passG_minus_pass1", "compute_flops",
              "semantic_entropy", "shortcut_frac", "reward_failures/timeout"):
    assert key in rows[0] and rows[0][key] is not None
  assert "eval/pass@1" in rows[1]
  assert 0 < rows[0]["compute_flops"] < rows[1]["compute_flops"]
  assert os.listdir(os.path.join(tmp_path, "tensorboard", "metrics"))
  # The tiers partition the rollouts: the step's entropy is a weighted mean of theirs.
  tiers = [v for k, v in rows[0].items() if k.startswith("entropy/tier")]
  assert tiers and min(tiers) - 1e-6 <= rows[0]["entropy"] <= max(tiers) + 1e-6
  assert {g: v["initial"] for g, v in summary["rollout_entropy"].items()} == {
      k.split("/", 1)[1]: v for k, v in rows[0].items() if k.startswith("entropy/")}
  with open(os.path.join(tmp_path, "summary.json")) as f:
    assert json.load(f)["steps"] == 2
  dumped = traces.read(str(tmp_path))
  assert list(dumped) == [2] and len(dumped[2]) == 5
  for row in dumped[2]:
    assert row["shortcut"] == (row["verified"] > 0 and not row["steps_verify"])
    assert set(row) >= {"prompt", "completion", "reward", "answer", "tag"}


# Controllers whose state must survive a restart: adaptive entropy, resets, dynamic sampling.
RESUME_INTERVENTIONS = dict(entropy_schedule="adaptive", reset_every=2, dynamic_sampling=True,
                            max_gen_rounds=3)


@pytest.mark.slow  # ~1 min; kill_resume_test covers resume too
def test_resume_matches_uninterrupted_run(tmp_path):
  straight, split = str(tmp_path / "straight"), str(tmp_path / "split")
  cfg = lambda n: tiny_config(n, RESUME_INTERVENTIONS, dict(entropy_coef=0.01))
  experiment.run(cfg(4), straight)
  experiment.run(cfg(2), split)
  # Simulate a crash after step 3's checkpoint: a row past it must be dropped on resume.
  experiment.run(cfg(3), split)
  with open(os.path.join(split, "metrics.jsonl"), "a") as f:
    f.write(json.dumps({"step": 4, "reward_mean": 123.0}) + "\n")
  experiment.run(cfg(4), split)
  a = Checkpointer(os.path.join(straight, "checkpoints")).read_flat(4)
  b = Checkpointer(os.path.join(split, "checkpoints")).read_flat(4)
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  rows_a = read_rows(os.path.join(straight, "metrics.jsonl"))
  rows_b = read_rows(os.path.join(split, "metrics.jsonl"))
  drop = ("step_time_s", "tokens_per_s")
  strip = lambda rows: [{k: v for k, v in r.items() if k not in drop} for r in rows]
  assert strip(rows_a) == strip(rows_b)


def test_update_and_sampler_trace_once_per_shape(tmp_path, monkeypatch):
  """A 6-step run (two periodic evaluations) compiles the update once and the sampler
  once per shape: the step's rollouts, the periodic and the final evaluation's n."""
  monkeypatch.setattr(update, "rl_update", chex.assert_max_traces(update.rl_update, n=1))
  monkeypatch.setattr(sampler, "_generate", chex.assert_max_traces(sampler._generate, n=3))
  experiment.run(tiny_config(6, minibatches=2, eval_every=3), str(tmp_path))
  assert len(read_rows(os.path.join(tmp_path, "metrics.jsonl"))) == 6


def test_interventions_run_and_are_logged(tmp_path):
  intervention = dict(entropy_schedule="adaptive", entropy_target=5.0, forking_top_frac=0.5,
                      kl_coef_end=0.1, kl_in_reward=True, kl_reward_coef=0.01, reset_every=2,
                      dynamic_sampling=True, max_gen_rounds=2, overlong_buffer=4,
                      mask_truncated=True, sft_coef=0.1, hicra_alpha=0.2,
                      planning_phrases=("+",), reward_mode="random", random_reward_p=0.5)
  loss = dict(policy_loss="clip_cov", entropy_coef=0.01, eps_low=1.0, eps_high=1.0)
  experiment.run(tiny_config(3, intervention, loss), str(tmp_path))
  rows = read_rows(os.path.join(tmp_path, "metrics.jsonl"))
  assert [r["step"] for r in rows] == [1, 2, 3]
  assert [r["reference_reset"] for r in rows] == [0.0, 1.0, 0.0]
  assert all(1 <= r["gen_rounds"] <= 2 for r in rows)
  # Entropy far below the 5-nat target: the adaptive coefficient rises each step.
  coefs = [r["entropy_coef"] for r in rows]
  assert coefs[0] < coefs[1] < coefs[2]
  assert rows[0]["kl_coef"] < rows[2]["kl_coef"]
  for r in rows:
    assert np.isfinite(r["loss"]) and r["skipped"] == 0.0


def test_rlplus_mixes_demonstrations(tmp_path):
  experiment.run(tiny_config(2, dict(rlplus_demos=1), dict(policy_loss="rlplus"),
                           advantage="rlplus"), str(tmp_path))
  rows = read_rows(os.path.join(tmp_path, "metrics.jsonl"))
  assert all(r["offpolicy_frac"] > 0 and np.isfinite(r["loss"]) for r in rows)


def test_rlplus_config_must_be_consistent():
  with pytest.raises(ValueError, match="rlplus"):
    tiny_config(2, dict(rlplus_demos=1))


def test_dro_reward_without_verifier(tmp_path):
  experiment.run(tiny_config(2, dict(reward_mode="dro", dro_filter_threshold=1e-4,
                                   dynamic_sampling=True, max_gen_rounds=2)), str(tmp_path))
  rows = read_rows(os.path.join(tmp_path, "metrics.jsonl"))
  for r in rows:
    assert 0.0 <= r["reward_mean"] <= 1.0 and "dro_filtered_groups" in r
    assert np.isfinite(r["loss"])


def test_one_shot_rlvr_selects_by_variance(tmp_path):
  experiment.run(tiny_config(2, dict(one_shot_pool=8, one_shot_history_steps=4)), str(tmp_path))
  with open(os.path.join(tmp_path, "one_shot.json")) as f:
    chosen = json.load(f)
  stds = {int(k): np.std(v) for k, v in chosen["history"].items()}
  assert stds[chosen["index"]] == max(stds.values())
  assert len(read_rows(os.path.join(tmp_path, "metrics.jsonl"))) == 2


def test_apply_if_finite_steps_or_leaves_the_state_bit_for_bit():
  """A finite step is optax's own; a NaN or inf in one gradient leaf, a NaN loss or a
  gradient norm beyond float32's range leaves params and optimizer state unchanged."""
  opt = make_optimizer(OptimConfig(lr=0.1, grad_clip=1.0), 10)
  params = {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.ones(3)}
  state = TrainState(step=jnp.array(0), params=params, opt_state=opt.init(params),
                     ref_params=None, rng=jax.random.key(0))
  state, _ = apply_if_finite(opt, state, jax.tree.map(jnp.ones_like, params), 1.0)  # m, v != 0
  grads = {"w": jnp.full((2, 3), 0.5), "b": jnp.array([1.0, -2.0, 3.0])}
  new, ok = jax.jit(apply_if_finite, static_argnums=0)(opt, state, grads, 2.0)
  updates, opt_state = opt.update(grads, state.opt_state, state.params)
  assert bool(ok)
  chex.assert_trees_all_close((new.params, new.opt_state),
                              (optax.apply_updates(state.params, updates), opt_state))
  bad = [({**grads, "b": grads["b"].at[1].set(np.nan)}, 2.0),
         ({**grads, "w": grads["w"].at[0, 0].set(np.inf)}, 2.0),
         (grads, np.float32("nan")),
         ({**grads, "w": grads["w"].at[1, 2].set(3e19)}, 2.0)]  # finite, its square is not
  for g, loss in bad:
    new, ok = jax.jit(apply_if_finite, static_argnums=0)(opt, state, g, loss)
    assert not bool(ok)
    chex.assert_trees_all_equal((new.params, new.opt_state), (state.params, state.opt_state))


def test_non_finite_updates_are_skipped_then_stop(tmp_path, monkeypatch):
  objective = update.grpo_objective

  def nan_objective(*args, **kwargs):  # a loss that overflowed: NaN loss and gradients
    loss, metrics = objective(*args, **kwargs)
    return loss * np.float32("nan"), metrics

  monkeypatch.setattr(update, "grpo_objective", nan_objective)
  with pytest.raises(trainer.NonFiniteError, match="step 3: 3 consecutive steps"):
    experiment.run(tiny_config(5, checkpoint_every=10), str(tmp_path))
  rows = read_rows(os.path.join(tmp_path, "metrics.jsonl"))
  assert [r["skipped"] for r in rows] == [1.0, 1.0]
  assert not os.path.exists(os.path.join(tmp_path, "checkpoints", "3"))


def test_eval_command_compares_with_base(tmp_path):
  from rljax.analysis import evaluate_workdir
  # The update on one device, the rollouts, evaluations and probes on all 8.
  cfg = dataclasses.replace(tiny_config(2), mesh=MeshConfig(train_devices=1))
  experiment.run(cfg, str(tmp_path))
  report = evaluate_workdir.evaluate(cfg, str(tmp_path), "latest", n=8, compare_to="base",
                                 probe_n=2)
  assert set(report["models"]) == {"step2", "base"}
  c = report["comparison"]
  with open(os.path.join(tmp_path, "eval", "step2_n8.json")) as f:
    counts = json.load(f)["counts"]
  assert len(counts) == 4 and all(0 <= x <= 8 for x in counts)   # 2 families x 1 tier x 2
  assert c["only_step2"] + c["only_base"] + c["both"] + c["neither"] == len(counts)
  assert os.path.exists(os.path.join(tmp_path, "eval", "passk_step2_vs_base_n8.png"))
  # The boundary instruments: intervals around every estimate, CoT counts within the
  # right answers (the testbed verifies steps), a solvable-set table per tier.
  with open(os.path.join(tmp_path, "eval", "step2_n8.json")) as f:
    cot = json.load(f)["cot_counts"]
  assert all(0 <= d <= c for d, c in zip(cot, counts))
  for name in ("step2", "base"):
    for group, t in report["boundary"][name].items():
      for curve in ("pass@k", "cot_pass@k"):
        assert all(r["lo"] <= r["mean"] <= r["hi"] for r in t[curve].values()), (name, group)
  assert report["boundary"]["step2"]["all"]["pass@k"][8]["mean"] == c["step2_curve"][8]
  base_all = report["boundary"]["base"]["all"]
  assert base_all["greedy"] == report["models"]["base"]["greedy_pass@1"]
  assert base_all["guess@n"] == pytest.approx(1 - 0.99 ** 8)  # answers mod 100, n = 8
  cells = report["solvable_sets"]["all"]
  assert sum(cell["count"] for cell in cells.values()) == 4
  assert set(report["crossover"]) == set(report["solvable_sets"]) and "all" in report["crossover"]
  # Per-group entropy: with one tier, the tier's entropy is the whole evaluation's.
  for m in report["models"].values():
    (tier,) = {k for k in m if k.startswith("tier") and k.endswith("/entropy")}
    assert m[tier] == pytest.approx(m["entropy"]) and m[tier] > 0
  text = evaluate_workdir.format_report(report, 8)
  assert "cot_pass@8" in text and "crossover k* (all)" in text
  p = report["probes"]
  assert 0 <= p["frac_outside_base_top1"] <= 1 and p["frac_outside_base_top5"] <= \
      p["frac_outside_base_top1"]
  assert [r["threshold"] for r in p["hybrid"]] == [0.1, 0.3, 0.6, 1.0]
  assert all(0 <= r["routed_frac"] <= 1 for r in p["hybrid"])
  assert os.path.exists(os.path.join(tmp_path, "eval", "probes_step2_n2.json"))


@pytest.mark.slow  # ~2 min on 2 busy cores: v2's 80-token completions, five families
def test_the_default_testbed_v2_runs_end_to_end(tmp_path):
  """The demo's default (v2: five families, a never-pretrained tier and family) through
  the whole pipeline on a tiny model: every regime is evaluated before and after RL."""
  c = load("runlocal")
  c.model.preset = "tiny"
  c.task.eval_per_cell = 1
  c.pretrain.update(clean_max_steps=2, noisy_steps=2, log_every=1, batch_size=8)
  c.rl.update(steps=1, prompts_per_step=4, group_size=2, eval_every=0)
  c.eval.update(n_samples=2, batch_rollouts=16)
  summary = experiment.run(from_config_dict(c), str(tmp_path))
  assert summary["steps"] == 1
  groups = {k.split("/")[0] for k in summary["tiers"]}
  assert {f"regime_{r}" for r in testbed.REGIMES} <= groups
  assert {f"{f}_tier{t}" for f in c.task.families for t in c.task.tiers} <= groups
