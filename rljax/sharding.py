"""Device mesh from the config and logical-axis rules for parameters and batches.

Mesh axes: `data` (pure data parallel), `fsdp` (data parallel with parameters
sharded), `model` (tensor parallel over heads and MLP width). Every weight
carries logical axis names (see `rljax.model.layers.param`); `LOGICAL_RULES`
maps each onto a mesh axis. A dimension that the mesh axis does not divide is
replicated instead (e.g. 2 KV heads on a 4-way model axis).
"""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp", "model")
BATCH_AXES = ("data", "fsdp")

LOGICAL_RULES = {
    "vocab": "model",
    "embed": "fsdp",
    "mlp": "model",
    "q_heads": "model",
    "kv_heads": "model",
    "head_dim": None,
}


def make_mesh(data: int = -1, fsdp: int = 1, model: int = 1, devices=None) -> jax.sharding.Mesh:
  """A (data, fsdp, model) mesh over `devices` (default all); one -1 takes the rest."""
  devices = jax.devices() if devices is None else devices
  shape = [data, fsdp, model]
  if shape.count(-1) > 1:
    raise ValueError(f"mesh: at most one axis may be -1, got {dict(zip(MESH_AXES, shape))}")
  known = int(np.prod([s for s in shape if s != -1]))
  if -1 in shape:
    if len(devices) % known:
      raise ValueError(f"mesh: {len(devices)} devices are not divisible by {known}")
    shape[shape.index(-1)] = len(devices) // known
  if int(np.prod(shape)) != len(devices):
    raise ValueError(f"mesh {dict(zip(MESH_AXES, shape))} needs {int(np.prod(shape))} "
                     f"devices, {len(devices)} available")
  return jax.make_mesh(tuple(shape), MESH_AXES, axis_types=(AxisType.Auto,) * 3,
                       devices=devices)


def logical_to_spec(axes, shape, mesh) -> P:
  """PartitionSpec for a weight with logical `axes`, replicating non-divisible dims."""
  out = []
  for name, dim in zip(axes, shape):
    mesh_axis = LOGICAL_RULES.get(name)
    if mesh_axis is not None and dim % mesh.shape[mesh_axis] == 0:
      out.append(mesh_axis)
    else:
      out.append(None)
  return P(*out)


def param_shardings(params: nnx.State, mesh) -> dict:
  """NamedShardings (a pure dict like `nnx.to_pure_dict(params)`) from `out_sharding` names."""
  def one(var):
    shape = var.get_value().shape
    axes = var.get_metadata().get("out_sharding") or (None,) * len(shape)
    return var.replace(NamedSharding(mesh, logical_to_spec(axes, shape, mesh)))
  return nnx.to_pure_dict(jax.tree.map(one, params, is_leaf=lambda x: isinstance(x, nnx.Variable)))


def batch_sharding(mesh, ndim: int) -> NamedSharding:
  """Leading (rollout) axis split over data x fsdp, the rest replicated."""
  return NamedSharding(mesh, P(BATCH_AXES, *([None] * (ndim - 1))))


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())
