"""`model.forward_chains` (`logprobs.in_chains`) changes the program, not the function:
each row's log-probs, entropies and the gradients equal one chain's; the chains are
independent computations; and a batch split over devices stays on its devices."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rljax import sharding
from rljax.config import ModelSection
from rljax.model.config import ModelConfig, get_preset
from rljax.model.transformer import init_model
from rljax.rl.logprobs import completion_logp_entropy, in_chains, row_chains
from tests.shared_prompt_test import G, _batch, _logp_and_grads


def test_row_chains_split_each_devices_groups_evenly():
  # (rows, group, devices, most) -> chains: whole groups per device, equal runs.
  assert row_chains(64, 8, 1, 2) == 2       # 8 groups: 4 + 4
  assert row_chains(64, 8, 2, 2) == 2       # 4 groups a device: 2 + 2
  assert row_chains(24, 8, 1, 2) == 1       # 3 groups do not halve
  assert row_chains(24, 8, 1, 4) == 3       # ... but split in three
  assert row_chains(8, 8, 1, 2) == 1        # one group
  assert row_chains(6, 1, 1, 4) == 3        # the largest divisor of 6 up to 4
  assert row_chains(10, 1, 4, 2) == 1       # rows the devices do not divide
  assert row_chains(64, 8, 1, 1) == 1


def test_in_chains_keeps_row_order_and_device_runs():
  # Part c takes the c-th run of each device's rows; outputs return in row order.
  seen = []
  def fn(x_B, none):
    assert none is None
    seen.append(np.asarray(x_B))
    return (x_B * 10,)
  x_B = jnp.arange(8)
  (y_B,) = in_chains(fn, 2, 2, x_B, None)
  assert [s.tolist() for s in seen] == [[0, 1, 4, 5], [2, 3, 6, 7]]
  np.testing.assert_array_equal(y_B, np.arange(8) * 10)


@pytest.mark.parametrize("group,kw", [(G, {}), (1, dict(position_offset_B=np.arange(6) % 4))],
                         ids=["groups", "rows"])
def test_chains_give_one_chains_logprobs_and_gradients(group, kw):
  batch = _batch()  # 2 prompts x 3 rows: 2 chains of groups, 3 of rows
  one, chains = (get_preset("tiny", forward_chains=c) for c in (1, 4))
  (want_logp, want_ent), want_g = _logp_and_grads(one, group, batch, **kw)
  (logp, ent), g = _logp_and_grads(chains, group, batch, **kw)
  np.testing.assert_allclose(logp, want_logp, atol=2e-6, rtol=1e-5)
  np.testing.assert_allclose(ent, want_ent, atol=2e-6, rtol=1e-5)
  # The weight gradients sum over rows in another order (one sum per chain, then theirs).
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-4), g, want_g)


def _lowered(cfg, batch, group, mesh=None):
  graphdef, state = nnx.split(init_model(cfg, seed=4), nnx.Param)
  fn = lambda p, *b: completion_logp_entropy(nnx.merge(graphdef, p), *b, group=group)
  if mesh is None:
    return jax.jit(fn).lower(nnx.to_pure_dict(state), *batch)
  rows = [jax.device_put(x, sharding.batch_sharding(mesh, 2)) for x in batch]
  params = jax.device_put(nnx.to_pure_dict(state), sharding.replicated(mesh))
  with jax.set_mesh(mesh):
    return jax.jit(fn).lower(params, *rows)


def test_each_chain_is_a_forward_of_its_own():
  # Two chains: every product of the forward appears twice, at half the rows.
  batch = _batch(q=4)
  dots = {c: _lowered(get_preset("tiny", forward_chains=c), batch, G).as_text()
          .count("stablehlo.dot_general") for c in (1, 2)}
  assert dots[2] == 2 * dots[1] > 0


def test_a_batch_split_over_devices_stays_on_its_devices():
  # 8 groups on 4 devices, two chains: each device's chains are its own rows, so the
  # forward moves no rows between devices (a plain halving of the batch would).
  mesh = sharding.make_mesh(data=4, devices=jax.devices()[:4])
  batch = _batch(q=8)
  hlo = _lowered(get_preset("tiny", forward_chains=2), batch, G, mesh).compile().as_text()
  assert not [op for op in ("all-to-all", "collective-permute", "all-gather", "all-reduce")
              if op in hlo]


def test_forward_chains_is_checked_and_reaches_the_model():
  with pytest.raises(ValueError, match="forward_chains must be >= 1"):
    ModelSection(forward_chains=0)
  with pytest.raises(ValueError, match="forward_chains must be >= 1"):
    dataclasses.replace(get_preset("tiny"), forward_chains=0)
  assert ModelSection(forward_chains=2).layout()["forward_chains"] == 2
  assert isinstance(get_preset("tiny", **ModelSection(forward_chains=2).layout()), ModelConfig)
