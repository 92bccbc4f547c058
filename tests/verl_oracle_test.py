"""rljax's losses, KL estimators, aggregation modes and advantages == verl 0.9.1 (PyTorch).

verl runs in its own environment (`make oracle` builds `.venv-oracle`; RLJAX_ORACLE_PYTHON
overrides the interpreter) through tests/oracle/verl_reference.py; values and gradients
with respect to the log-probs must agree to 1e-5 relative on random inputs.
"""

import os
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.rl import advantages, losses

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORACLE = os.environ.get("RLJAX_ORACLE_PYTHON", os.path.join(ROOT, ".venv-oracle/bin/python"))
AGG = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm")
B, T, G = 8, 9, 4

# rljax name and hyperparameters for each verl loss mode (matching verl's ActorConfig).
POLICY = {
    "vanilla": ("ppo", dict(eps_low=0.2, eps_high=0.28, dual_clip_c=3.0)),
    "gspo": ("gspo", dict(eps_low=3e-4, eps_high=4e-4)),
    "cispo": ("cispo", dict(eps_low=0.2, eps_high=0.28)),
    "sapo": ("sapo", dict(tau_pos=1.0, tau_neg=1.05)),
    "geo_mean": ("gmpo", dict(eps_low=0.4, eps_high=0.4)),
    "gpg": ("gpg", {}),
    "clip_cov": ("clip_cov", dict(eps_low=0.2, eps_high=0.28, clip_cov_ratio=1.0,
                                  clip_cov_lb=-10.0, clip_cov_ub=0.5)),
    "kl_cov": ("kl_cov", dict(kl_cov_ratio=0.2, kl_cov_coef=1.0)),
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  if not os.path.exists(ORACLE):
    pytest.fail(f"oracle interpreter {ORACLE} missing: run `make oracle` (make test does)")
  rng = np.random.default_rng(0)
  lengths = rng.integers(1, T + 1, B)
  mask = (np.arange(T)[None] < lengths[:, None]).astype(np.float64)
  logp = -rng.exponential(1.0, (B, T))
  inputs = dict(
      logp=logp, old_logp=logp + rng.normal(0, 0.3, (B, T)),
      ref_logp=logp + rng.normal(0, 0.5, (B, T)),
      adv=rng.normal(0, 1, (B, 1)) * mask, mask=mask, loss_mat=rng.normal(0, 1, (B, T)),
      rewards=rng.integers(0, 2, B).astype(np.float64) * rng.uniform(0.5, 1, B),
      index=np.repeat(np.arange(B // G), G))
  d = tmp_path_factory.mktemp("oracle")
  np.savez(d / "in.npz", **inputs)
  subprocess.run([ORACLE, os.path.join(ROOT, "tests/oracle/verl_reference.py"),
                  str(d / "in.npz"), str(d / "out.npz")], check=True, timeout=600)
  return inputs, dict(np.load(d / "out.npz"))


def _close(actual, expected):
  np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("verl_name", sorted(POLICY))
@pytest.mark.parametrize("agg", AGG)
def test_policy_loss_value_and_gradient(reference, verl_name, agg):
  x, ref = reference
  name, hp = POLICY[verl_name]
  f = lambda lp: losses.policy_loss(
      name, losses.LossInputs(lp, jnp.asarray(x["old_logp"], jnp.float32),
                              jnp.asarray(x["adv"], jnp.float32),
                              jnp.asarray(x["mask"], jnp.float32), rng=jax.random.key(0)),
      agg=agg, **hp)[0]
  lp = jnp.asarray(x["logp"], jnp.float32)
  _close(f(lp), ref[f"{verl_name}|{agg}|value"])
  _close(jax.grad(f)(lp), ref[f"{verl_name}|{agg}|grad"])


@pytest.mark.parametrize("kind", ["k1", "abs", "k2", "k3", "k1+", "k3+"])
def test_kl_estimators(reference, kind):
  x, ref = reference
  m = jnp.asarray(x["mask"], jnp.float32)
  f = lambda lp: losses.kl_penalty(lp, jnp.asarray(x["ref_logp"], jnp.float32), kind)
  lp = jnp.asarray(x["logp"], jnp.float32)
  _close(f(lp), ref[f"kl|{kind}|value"])
  _close(jax.grad(lambda v: (f(v) * m).sum())(lp), ref[f"kl|{kind}|grad"])


@pytest.mark.parametrize("agg", AGG)
def test_aggregation(reference, agg):
  x, ref = reference
  _close(losses.aggregate(jnp.asarray(x["loss_mat"], jnp.float32),
                          jnp.asarray(x["mask"], jnp.float32), agg), ref[f"agg|{agg}"])


@pytest.mark.parametrize("name", ["grpo", "drgrpo", "rloo", "reinforce_pp_baseline",
                                  "grpo_passk", "gpg"])
def test_advantages(reference, name):
  x, ref = reference
  hp = {"reinforce_pp_baseline": {"lengths_B": x["mask"].sum(1)}}.get(name, {})
  adv = advantages.compute(name, x["rewards"].astype(np.float32), G, **hp)
  _close(np.asarray(adv)[:, None] * x["mask"], ref[f"adv|{name}"])
