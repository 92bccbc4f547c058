"""Observation tokens carry no loss and no gradient in the agent's update."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rljax.agents import credit, pipeline
from rljax.rewards.meta_reasoning import MetaRewardConfig
from rljax.rl import multi_turn, update
from rljax.rl.losses import LossConfig, LossInputs, grpo_objective
from rljax.rl.train_state import TrainState
from tests.multi_turn_test import Echo, _run

CFG = multi_turn.MultiTurnConfig(max_turns=4, max_tokens=64, prompt_tokens=8, turn_tokens=8,
                                 obs_tokens=10)


@functools.lru_cache(maxsize=1)  # one rollout for both tests
def _minibatch():
  graphdef, params, batch = _run(Echo, CFG, seeds=(0, 1), group_size=2, key=1)
  adv, _ = credit.rlvmr(batch, 2, MetaRewardConfig())
  adv = adv + np.asarray(batch.model_mask_BxN)  # nonzero on every model token
  return graphdef, params, batch, pipeline.minibatch(batch, adv, batch.logp_BxN)


def test_the_loss_mask_is_the_model_token_mask():
  _, _, batch, mb = _minibatch()
  model = np.asarray(batch.model_mask_BxN)
  obs = (np.asarray(batch.tokens_BxN) != 0) & (model == 0)
  assert obs.sum() > 10 and model.sum() > 10  # observations between the turns
  np.testing.assert_array_equal(mb["mask"], model)
  assert np.all(mb["adv"][model == 0] == 0)


def test_observation_tokens_get_no_gradient_and_change_nothing():
  graphdef, params, batch, mb = _minibatch()
  model = np.asarray(batch.model_mask_BxN)
  # d loss / d log pi(token) and d loss / d H(token): zero on observation tokens.
  x = lambda logp: LossInputs(logp_BxT=logp, old_logp_BxT=jax.lax.stop_gradient(logp),
                              adv_BxT=mb["adv"] * mb["mask"], mask_BxT=mb["mask"],
                              offpolicy_BxT=jnp.zeros_like(logp))
  loss = lambda logp, ent: grpo_objective(LossConfig(kl_coef=0.1), x(logp), mb["ref_logp"], ent,
                                          entropy_coef=0.01, kl_coef=0.1)[0]
  logp0 = jnp.asarray(np.where(model > 0, np.asarray(batch.logp_BxN), -3.0), jnp.float32)
  g_logp, g_ent = jax.grad(loss, argnums=(0, 1))(logp0, jnp.ones_like(logp0))
  assert np.all(np.asarray(g_logp)[model == 0] == 0) and np.all(np.asarray(g_ent)[model == 0] == 0)
  assert np.all(np.asarray(g_logp)[model > 0] != 0)
  # The whole update: garbage in the advantages, reference and old log-probs of
  # observation tokens leaves the loss and the new parameters exactly as they were.
  opt = optax.adam(1e-2)
  state = TrainState(step=jnp.int32(0), params=params, opt_state=opt.init(params),
                     ref_params=params, rng=jax.random.PRNGKey(0))
  coefs = {"entropy": 0.01, "kl": 0.1, "sft": 0.0}
  run = lambda b: update.rl_update(graphdef, opt, LossConfig(), 1.0, True, False, False, 1, state, b,
                                   jax.random.PRNGKey(1), coefs)
  garbage = {k: np.where(model > 0, mb[k], 7.0).astype(np.float32)
             for k in ("adv", "ref_logp", "old_logp")}
  (new_a, m_a), (new_b, m_b) = run(mb), run(dict(mb, **garbage))
  assert float(m_a["loss"]) == float(m_b["loss"]) and float(m_a["grad_norm"]) > 0
  jax.tree.map(np.testing.assert_array_equal, new_a.params, new_b.params)
