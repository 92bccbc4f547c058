"""Losses against the hand-derived vectors of docs/algorithms.md §T3, §T4, §T5, §T6/§T16, §T7."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.rl import losses
from rljax.rl.logprobs import entropy_from_logits

# §T3: L = [[1,2,3,.],[4,.,.,.]], mask [[1,1,1,0],[1,0,0,0]], T = 4.
L3 = jnp.array([[1., 2., 3., 9.], [4., 9., 9., 9.]])
M3 = jnp.array([[1., 1., 1., 0.], [1., 0., 0., 0.]])


def pl(name, logp, old, adv, mask, *, rng=None, offpolicy=None, **hparams):
  """`losses.policy_loss` on arrays: LossConfig's defaults, `hparams` overriding them."""
  return losses.policy_loss(name, losses.LossInputs(logp, old, adv, mask, offpolicy, rng),
                            **hparams)


@pytest.mark.parametrize("mode,expected", [
    ("token-mean", 2.5),               # (1+2+3+4)/4
    ("seq-mean-token-sum", 5.0),       # (6+4)/2
    ("seq-mean-token-mean", 3.0),      # (6/3 + 4/1)/2
    ("seq-mean-token-sum-norm", 1.25), # (6+4)/2/T
])
def test_aggregation_t3(mode, expected):
  np.testing.assert_allclose(losses.aggregate(L3, M3, mode), expected, rtol=1e-6)
  # A fully masked third row changes nothing (B' counts non-empty rows).
  l = jnp.concatenate([L3, jnp.full((1, 4), 7.)])
  m = jnp.concatenate([M3, jnp.zeros((1, 4))])
  np.testing.assert_allclose(losses.aggregate(l, m, mode), expected, rtol=1e-6)


def test_aggregation_norm_constant_and_unknown():
  np.testing.assert_allclose(
      losses.aggregate(L3, M3, "seq-mean-token-sum-norm", norm_constant=10.0), 0.5)
  with pytest.raises(ValueError, match="token-mean"):
    losses.aggregate(L3, M3, "sum")


@pytest.mark.parametrize("kind,value,grad", [
    ("k1", 0.5, 1.0), ("abs", 0.5, 1.0), ("k2", 0.125, 0.5),
    ("k3", np.exp(-0.5) + 0.5 - 1, 1 - np.exp(-0.5)),
    ("k1+", 0.5, 0.5), ("k3+", np.exp(-0.5) + 0.5 - 1, 0.5)])
def test_kl_estimators_t4(kind, value, grad):
  # log pi = -1.0, log pi_ref = -1.5, delta = 0.5.
  f = lambda lp: losses.kl_penalty(lp, jnp.array(-1.5), kind)
  np.testing.assert_allclose(f(jnp.array(-1.0)), value, rtol=1e-6)
  np.testing.assert_allclose(jax.grad(f)(jnp.array(-1.0)), grad, rtol=1e-6)


def test_kl_unknown_lists_valid():
  with pytest.raises(ValueError, match="k3"):
    losses.kl_penalty(jnp.zeros(2), jnp.zeros(2), "k4")


def test_entropy_t5():
  np.testing.assert_allclose(entropy_from_logits(jnp.array([1., 2., 3.])), 0.8323956, rtol=1e-6)
  np.testing.assert_allclose(entropy_from_logits(jnp.array([1., 2., 3.]) / 0.6), 0.5567490,
                             rtol=3e-6)  # float32


def t6_batch():
  """§T6: 3 sequences x 5 tokens, the third with 3 valid tokens; A = [+2, -1, -1]."""
  logp = jnp.array([[-0.1, -0.2, -3.0, -0.05, -2.5],
                    [-0.3, -4.0, -0.1, -0.2, -1.0],
                    [-0.2, -0.1, -5.0, 0.0, 0.0]])
  old = logp.at[0, 2].set(-3.4).at[1, 1].set(-3.5)
  mask = jnp.array([[1.] * 5, [1.] * 5, [1., 1., 1., 0., 0.]])
  adv = jnp.array([2., -1., -1.])[:, None] * mask
  return logp, old, adv, mask


def test_ppo_t16_values_and_metrics():
  logp, old, adv, mask = t6_batch()
  loss, m = pl("ppo", logp, old, adv, mask, agg="token-mean",
                               eps_low=0.2, eps_high=0.28, dual_clip_c=3.0)
  np.testing.assert_allclose(loss, -0.212308, atol=1e-6)
  np.testing.assert_allclose(m["clipfrac"], 0.153846, atol=1e-6)   # 2 of 13 tokens
  np.testing.assert_allclose(m["ppo_kl"], 0.007692, atol=1e-6)
  loss, _ = pl("ppo", logp, old, adv, mask, agg="seq-mean-token-mean",
                               eps_low=0.2, eps_high=0.28, dual_clip_c=3.0)
  np.testing.assert_allclose(loss, -0.050667, atol=1e-6)


@pytest.mark.parametrize("r,a,value,grad", [
    (1.5, 1., -1.28, 0.0),     # clipped above: value -(1+eps_high) A, no gradient
    (0.5, -1., 0.80, 0.0),     # clipped below for A < 0
    (1.1, 1., -1.10, -1.10),   # inside the range: -A r
    (0.5, 1., -0.50, -0.50),   # A > 0 and r < 1 - eps: not clipped
    (12., -1., 3.0, 0.0),      # dual clip at c = 3: -A c, no gradient
])
def test_ppo_per_token_t7(r, a, value, grad):
  def f(lp):
    loss, _ = pl("ppo", lp, jnp.zeros((1, 1)), jnp.full((1, 1), a),
                                 jnp.ones((1, 1)), eps_low=0.2, eps_high=0.28, dual_clip_c=3.0)
    return loss
  lp = jnp.full((1, 1), np.log(r))
  np.testing.assert_allclose(f(lp), value, atol=1e-5)
  np.testing.assert_allclose(jax.grad(f)(lp)[0, 0], grad, atol=1e-5)


def test_policy_loss_errors_name_valid_choices():
  logp, old, adv, mask = t6_batch()
  with pytest.raises(ValueError, match="ppo"):
    pl("nope", logp, old, adv, mask)
  with pytest.raises(ValueError, match="eps_high"):
    pl("ppo", logp, old, adv, mask, eps_hi=0.3)


def test_grpo_objective_entropy_sign_and_kl():
  logp, old, adv, mask = t6_batch()
  ent = jnp.full(logp.shape, 2.0)
  base = losses.LossConfig(eps_low=0.2, eps_high=0.28)
  x = losses.LossInputs(logp, old, jnp.array([2., -1., -1.])[:, None] * mask, mask)
  l0, _ = losses.grpo_objective(base, x, old, ent, base.entropy_coef, base.kl_coef)
  cfg = losses.LossConfig(eps_low=0.2, eps_high=0.28, entropy_coef=0.1, kl_coef=0.5,
                          kl_estimator="k1")
  l1, m = losses.grpo_objective(cfg, x, old, ent, cfg.entropy_coef, cfg.kl_coef)
  # A positive entropy coefficient lowers the loss by coef * H; KL(k1) = mean(logp - old).
  kl = float(losses.aggregate(logp - old, mask, "token-mean"))
  np.testing.assert_allclose(l1, l0 - 0.1 * 2.0 + 0.5 * kl, rtol=1e-6)
  np.testing.assert_allclose(m["kl_loss"], kl, rtol=1e-6)


# §T16: every policy loss on the §T6 batch, eps 0.2 / 0.28 unless stated.
@pytest.mark.parametrize("name,hp,token_mean,seq_mean,metric", [
    ("gspo", dict(eps_low=3e-4, eps_high=4e-4), -0.154269, -0.000367, ("clipfrac", 0.769231)),
    ("cispo", dict(eps_low=0.2, eps_high=0.28), 0.252308, -0.016889, ("clipfrac", 0.153846)),
    ("sapo", dict(tau_pos=1.0, tau_neg=1.05), -0.153642, -0.153642, None),
    ("gmpo", dict(eps_low=0.2, eps_high=0.28), -0.051469, -0.051469, ("clipfrac", 0.076923)),
    ("gpg", {}, 0.061538, -0.182222, None),
])
def test_t16_policy_losses(name, hp, token_mean, seq_mean, metric):
  logp, old, adv, mask = t6_batch()
  loss, m = pl(name, logp, old, adv, mask, agg="token-mean", **hp)
  np.testing.assert_allclose(loss, token_mean, atol=2e-6)
  if metric:
    np.testing.assert_allclose(m[metric[0]], metric[1], atol=1e-6)
  loss, _ = pl(name, logp, old, adv, mask, agg="seq-mean-token-mean", **hp)
  np.testing.assert_allclose(loss, seq_mean, atol=2e-6)


def test_gmpo_lower_clipfrac():
  logp, old, adv, mask = t6_batch()
  _, m = pl("gmpo", logp, old, adv, mask, eps_low=0.2, eps_high=0.28)
  np.testing.assert_allclose(m["clipfrac_lower"], 0.076923, atol=1e-6)


def test_clip_cov_t6():
  """Exactly one of the 4 eligible tokens (0,0), (0,1), (0,3), (2,2) is zeroed."""
  logp, old, adv, mask = t6_batch()
  seen = set()
  for seed in range(40):
    loss, m = pl("clip_cov", logp, old, adv, mask, rng=jax.random.key(seed),
                                 eps_low=0.2, eps_high=0.28)
    np.testing.assert_allclose(m["clipfrac"], 1 / 13, atol=1e-6)
    seen.add(round(float(loss), 5))
  # -0.0584615 when a row-0 token is dropped, -0.2892308 when (2, 2) is.
  assert seen == {round(-0.0584615, 5), round(-0.2892308, 5)}
  with pytest.raises(ValueError, match="rng"):
    pl("clip_cov", logp, old, adv, mask)


def test_clip_cov_zeroes_gradient_of_selected_token():
  logp, old, adv, mask = t6_batch()
  grad = jax.grad(lambda lp: pl(
      "clip_cov", lp, old, adv, mask, rng=jax.random.key(0), eps_low=0.2, eps_high=0.28,
      clip_cov_ratio=0.3)[0])(logp)
  # ratio 0.3: floor(3.9) = 3 of the 4 eligible tokens lose their gradient.
  eligible = [(0, 0), (0, 1), (0, 3), (2, 2)]
  assert sum(float(grad[i, j]) == 0.0 for i, j in eligible) == 3


@pytest.mark.parametrize("ratio,expected", [(2e-4, -0.2597784), (0.2, -0.2213168)])
def test_kl_cov_t6(ratio, expected):
  logp, old, adv, mask = t6_batch()
  loss, m = pl("kl_cov", logp, old, adv, mask, kl_cov_ratio=ratio,
                               kl_cov_coef=1.0)
  np.testing.assert_allclose(loss, expected, atol=1e-6)
  np.testing.assert_allclose(m["ppo_kl"], 0.0692308, atol=1e-6)


@pytest.mark.parametrize("r,a,beta1,only_high,value,grad", [
    (1.5, 1., 1.0, False, -1.28, -1.28),   # §T7: PPO would give 0 gradient
    (0.5, -1., 1.0, False, 0.80, 0.80),
    (0.5, -1., 0.25, False, 0.20, 0.20),   # beta scales value and gradient
    (0.5, -1., 1.0, True, 0.80, 0.0),      # only_high: ordinary clip on the low side
    (1.1, 1., 1.0, False, -1.10, -1.10),
    (0.5, 1., 1.0, False, -0.50, -0.50),
    (12., -1., 1.0, False, 10.0, 0.0),     # dual clip c = 10
])
def test_gppo_t7(r, a, beta1, only_high, value, grad):
  def f(lp):
    return pl("gppo", lp, jnp.zeros((1, 1)), jnp.full((1, 1), a),
                              jnp.ones((1, 1)), eps_low=0.2, eps_high=0.28, dual_clip_c=10.0,
                              gppo_beta1=beta1, gppo_only_high=only_high)[0]
  lp = jnp.full((1, 1), np.log(r))
  np.testing.assert_allclose(f(lp), value, atol=1e-5)
  np.testing.assert_allclose(jax.grad(f)(lp)[0, 0], grad, atol=1e-5)


def test_sapo_gradient_at_ratio_one_is_minus_a():
  f = lambda lp: pl("sapo", lp, jnp.zeros((1, 1)), jnp.full((1, 1), 0.7),
                                    jnp.ones((1, 1)))[0]
  np.testing.assert_allclose(f(jnp.zeros((1, 1))), -2 * 0.7, atol=1e-6)
  np.testing.assert_allclose(jax.grad(f)(jnp.zeros((1, 1)))[0, 0], -0.7, atol=1e-6)


def test_loss_config_passes_only_accepted_hparams():
  cfg = losses.LossConfig(policy_loss="kl_cov", kl_cov_ratio=0.2)
  assert set(cfg.hparams()) == {"kl_cov_ratio", "kl_cov_coef", "agg", "norm_constant"}
  with pytest.raises(ValueError, match="clip_cov"):
    losses.LossConfig(policy_loss="clipcov")


@pytest.mark.parametrize("p_old,p_theta,r_mis,a_c", [
    (0.2, 0.25, 0.625, 0.866025), (0.9, 0.95, 1.027027, 0.223607),
    (0.01, 0.02, 0.077670, 0.989949)])
def test_rlplus_offpolicy_token_t10(p_old, p_theta, r_mis, a_c):
  lp, old = jnp.log(jnp.full((1, 1), p_theta)), jnp.log(jnp.full((1, 1), p_old))
  ones = jnp.ones((1, 1))
  loss, _ = pl("rlplus", lp, old, ones, ones, offpolicy=ones)
  np.testing.assert_allclose(loss, -r_mis * a_c, atol=1e-5)
  # On-policy tokens are the unclipped -A r of the published script.
  loss_on, _ = pl("rlplus", lp, old, ones, ones, offpolicy=0 * ones)
  np.testing.assert_allclose(loss_on, -p_theta / p_old, rtol=1e-5)


def test_rlplus_aggregates_per_sequence_sum_by_default():
  lp = jnp.log(jnp.array([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]))
  mask = jnp.array([[1., 1., 1.], [1., 0., 0.]])
  adv = jnp.array([[1.] * 3, [1.] * 3]) * mask
  x = losses.LossInputs(lp, lp, adv, mask, jnp.zeros((2, 3)))
  seq_sum, _ = losses.policy_loss("rlplus", x)   # on-policy tokens: -A r = -1 each
  np.testing.assert_allclose(seq_sum, -(3 / 3 + 1 / 3) / 2, rtol=1e-6)   # sum / T, mean
  token_mean, _ = losses.policy_loss("rlplus", x, rlplus_seq_sum=False)
  np.testing.assert_allclose(token_mean, -1.0, rtol=1e-6)
