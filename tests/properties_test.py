"""Property-based tests (hypothesis): every loss and advantage estimator is finite on finite
input and ignores masked tokens; the testbed's verifiers never raise and answer quickly."""

import time

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rljax.rl import advantages, losses
from rljax.tasks import testbed

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
B, T = 4, 5


def _floats(lo, hi):
  return st.floats(lo, hi, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def loss_inputs(draw):
  logp = draw(hnp.arrays(np.float32, (B, T), elements=_floats(-30, 0)))
  old = draw(hnp.arrays(np.float32, (B, T), elements=_floats(-30, 0)))
  ref = draw(hnp.arrays(np.float32, (B, T), elements=_floats(-30, 0)))
  ent = draw(hnp.arrays(np.float32, (B, T), elements=_floats(0, 10)))
  adv = draw(hnp.arrays(np.float32, (B,), elements=_floats(-10, 10)))
  mask = draw(hnp.arrays(np.float32, (B, T), elements=st.sampled_from([0.0, 1.0])))
  mask[0, 0] = 1.0  # at least one token
  offpolicy = draw(hnp.arrays(np.float32, (B,), elements=st.sampled_from([0.0, 1.0])))
  return logp, old, ref, ent, adv, mask, offpolicy


@SETTINGS
@given(inputs=loss_inputs(), name=st.sampled_from(sorted(losses.POLICY_LOSSES)),
       agg=st.sampled_from(list(losses.AGG_MODES)), kl=st.sampled_from(["k1", "k2", "k3"]))
def test_objective_finite_and_blind_to_masked_tokens(inputs, name, agg, kl):
  logp, old, ref, ent, adv, mask, offpolicy = inputs
  cfg = losses.LossConfig(policy_loss=name, agg=agg, entropy_coef=0.01, kl_coef=0.1,
                          kl_estimator=kl)

  def loss(lp, garbage):
    # Masked positions hold arbitrary (finite) values: they must not reach the loss.
    lp = jnp.where(mask > 0, lp, garbage)
    x = losses.LossInputs(lp, old, adv[:, None] * mask, mask, offpolicy[:, None] * mask,
                          jax.random.key(0))
    return losses.grpo_objective(cfg, x, ref, ent, cfg.entropy_coef, cfg.kl_coef)[0]

  value, grad = jax.value_and_grad(loss)(jnp.asarray(logp), jnp.zeros_like(logp))
  assert np.isfinite(value) and np.isfinite(grad).all()
  assert (np.asarray(grad)[mask == 0] == 0).all()
  other = loss(jnp.asarray(logp), jnp.full_like(logp, -25.0))
  np.testing.assert_allclose(value, other, rtol=1e-5, atol=1e-6)


@SETTINGS
@given(data=st.data(), name=st.sampled_from(sorted(advantages.ESTIMATORS)),
       g=st.integers(2, 6), q=st.integers(1, 4))
def test_advantages_finite(data, name, g, q):
  rewards = data.draw(hnp.arrays(np.float32, (q * g,), elements=_floats(-100, 100)))
  hp = {"passk": {"k": data.draw(st.integers(1, g))},
        "reinforce_pp_baseline": {"lengths_B": np.full(q * g, 3.0, np.float32)},
        "rlplus": {"offpolicy_B": np.zeros(q * g, np.float32)}}.get(name, {})
  adv = np.asarray(advantages.compute(name, jnp.asarray(rewards), g, **hp))
  assert adv.shape == (q * g,) and np.isfinite(adv).all()


ADVERSARIAL = ["#" + "9" * 100_000, "(" * 50_000 + "1" + ")" * 50_000, "#1e999999999",
               "9" * 10**6 + "**" + "9" * 10**6, "\x00\udcff#12", ";#" * 50_000,
               "=" * 10_000 + "#-1", "12+3=15;" * 20_000 + "#15"]


def _check_verifiers(problem, text):
  t0 = time.perf_counter()
  assert isinstance(testbed.is_correct(problem, text), bool)
  assert isinstance(testbed.steps_verify(problem, text), bool)
  answer = testbed.extract_answer(text)
  assert answer is None or 0 <= answer < 100
  assert time.perf_counter() - t0 < 0.5


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200) | st.from_regex(r"[0-9+\-=;#]{0,60}", fullmatch=True))
def test_verifiers_never_raise_on_random_text(text):
  problem = testbed.eval_split(testbed.TestbedConfig(eval_per_cell=1))[0]
  _check_verifiers(problem, text)


def test_verifiers_on_adversarial_strings():
  problem = testbed.eval_split(testbed.TestbedConfig(eval_per_cell=1))[0]
  for text in ADVERSARIAL:
    _check_verifiers(problem, text)


@settings(max_examples=40, deadline=None)
@given(text=st.text(max_size=300) | st.builds(lambda s: f"so \\boxed{{{s}}}", st.text(max_size=60))
       | st.from_regex(r"[0-9^{}()\\+*/.=#a-z ]{0,80}", fullmatch=True))
def test_math_verifier_never_raises_and_answers_quickly(text):
  from rljax.rewards.math_answers import extract_answer, math_reward  # pylint: disable=import-outside-toplevel

  class _P:
    answer = "\\frac{1}{2}"

  t0 = time.perf_counter()
  assert extract_answer(text) is None or isinstance(extract_answer(text), str)
  assert math_reward(_P, text) in (0.0, 1.0)
  assert time.perf_counter() - t0 < 10.0  # math-verify's own limits (2 s each) hold
