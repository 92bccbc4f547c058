"""Sharding on 8 fake CPU devices: logical rules, born-sharded state, sharded update."""

import jax
import numpy as np
import pytest

from rljax import sharding
from rljax.rl import train_state
from rljax.config import MeshConfig, OptimConfig
from rljax.model.config import get_preset
from rljax.rl.sft import make_sft_step


def test_mesh_shapes_and_errors():
  assert jax.device_count() == 8
  mesh = sharding.make_mesh(data=-1, fsdp=2, model=2)
  assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "model": 2}
  with pytest.raises(ValueError, match="needs 16 devices"):
    sharding.make_mesh(data=4, fsdp=2, model=2)
  with pytest.raises(ValueError, match="at most one"):
    sharding.make_mesh(data=-1, fsdp=-1)


def test_update_and_rollout_meshes_and_moving_params_onto_the_rollout_mesh():
  same = sharding.train_and_rollout_meshes(-1, 2, 2)
  assert same[0] is same[1] and same[0].devices.size == 8
  train, rollout = sharding.train_and_rollout_meshes(-1, 1, 2, train_devices=2)
  assert dict(train.shape) == {"data": 1, "fsdp": 1, "model": 2}
  assert list(train.devices.flat) == jax.devices()[:2]
  assert dict(rollout.shape) == {"data": 4, "fsdp": 1, "model": 2}  # every device
  with pytest.raises(ValueError, match="train_devices = 9, but only 8 devices"):
    sharding.train_and_rollout_meshes(-1, 1, 1, train_devices=9)
  with pytest.raises(ValueError, match="train_devices must be -1"):
    MeshConfig(train_devices=0)

  x = jax.device_put(np.arange(8.0), sharding.replicated(train))
  on_rollout = jax.device_put(np.ones(8), sharding.batch_sharding(rollout, 1))
  moved = sharding.onto(rollout, {"w": x, "b": on_rollout, "n": np.zeros(2)})
  assert moved["w"].sharding.device_set == set(jax.devices())
  assert moved["w"].sharding.is_fully_replicated
  np.testing.assert_array_equal(moved["w"], np.arange(8.0))
  assert moved["b"] is on_rollout and isinstance(moved["n"], np.ndarray)  # left as they are
  assert x.sharding.device_set == set(jax.devices()[:2])                 # a copy
  assert sharding.onto(None, x) is x


def test_born_sharded_state_and_sharded_step():
  cfg = get_preset("tiny")
  mesh = sharding.make_mesh(data=2, fsdp=2, model=2)
  with jax.set_mesh(mesh):
    graphdef, abs_state = train_state.abstract_model(cfg)
    opt = train_state.make_optimizer(OptimConfig(lr=1e-3), 10)
    sh = train_state.state_shardings(graphdef, abs_state, opt, mesh, with_reference=False)
    params = train_state.init_params(cfg, 0, sh.params)
    q = params["blocks"][0]["attn"]["q"]
    assert q.sharding.spec == jax.P("fsdp", "model", None)   # embed -> fsdp, q_heads -> model
    assert params["embed"].sharding.spec == jax.P("model", "fsdp")
    state = train_state.new_state(params, opt, sh, 0, with_reference=False)
    step = make_sft_step(graphdef, opt, sh, mesh)
    rng = np.random.default_rng(0)
    batch = {"prompt": rng.integers(4, 60, (8, 4)).astype(np.int32),
             "prompt_mask": np.ones((8, 4), np.int32),
             "tokens": rng.integers(4, 60, (8, 6)).astype(np.int32),
             "mask": np.ones((8, 6), np.float32),
             "position_offset": np.arange(8, dtype=np.int32)}
    losses = []
    for _ in range(5):
      state, m = step(state, batch, np.float32(1.0))
      losses.append(float(m["loss"]))
    assert losses[-1] < losses[0]
    assert state.params["blocks"][0]["attn"]["q"].sharding.spec == jax.P("fsdp", "model", None)


def test_non_divisible_dims_are_replicated():
  mesh = sharding.make_mesh(data=1, fsdp=1, model=8)
  # 2 KV heads cannot be split 8 ways.
  assert sharding.logical_to_spec(("embed", "kv_heads", "head_dim"), (32, 2, 8), mesh) == \
      jax.P("fsdp", None, None)
