"""Device mesh from the config and logical-axis rules for parameters, batches and caches.

Mesh axes: `data` (pure data parallel), `fsdp` (data parallel with parameters
sharded), `model` (tensor parallel over heads, MLP width and vocab). Every weight
carries logical axis names (see `rljax.model.layers.param`); a rules table maps
each onto a mesh axis. There are two tables:

* `TRAIN_RULES`: weights split over fsdp x model. The update gathers each layer's
  weights once per forward and reduce-scatters its gradients (ZeRO-3).
* `SAMPLE_RULES`: the same without fsdp. A decode step reads every weight for one
  token per row; gathering FSDP shards at every decoded token would cost more than
  the step, so the sampler gathers them once per call, before its loop (the weights
  then live replicated over data x fsdp and split over model).

Batches (prompts, rollouts, KV caches) are split over data x fsdp on their rollout
axis. `check_model_fits_mesh` refuses, at setup, a mesh whose model axis does not
divide the heads, MLP width or vocab, or whose fsdp axis does not divide the width;
KV heads fewer than the model axis are replicated (the usual GQA layout).
"""

from __future__ import annotations

import contextlib

import jax
import numpy as np
from flax import nnx
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp", "model")
BATCH_AXES = ("data", "fsdp")

TRAIN_RULES = {
    "vocab": "model",
    "embed": "fsdp",
    "mlp": "model",
    "q_heads": "model",
    "kv_heads": "model",
    "head_dim": None,
}
SAMPLE_RULES = {**TRAIN_RULES, "embed": None}


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


def train_and_rollout_meshes(data: int, fsdp: int, model: int, train_devices: int = -1,
                             devices=None):
  """(the update's mesh, the sampler's mesh) of a config's `mesh` section.

  train_devices = -1: one mesh over every device for both. n: the update's (data, fsdp,
  model) mesh over the first n devices, and the sampler's over every device, the
  rollouts split over its data axis and the model axis as the update's. One process
  only: the parameters move between the two within this process (`onto`).
  """
  devices = jax.devices() if devices is None else devices
  if train_devices == -1 or train_devices == len(devices):
    mesh = make_mesh(data, fsdp, model, devices)
    return mesh, mesh
  if train_devices > len(devices):
    raise ValueError(f"mesh.train_devices = {train_devices}, but only {len(devices)} "
                     f"devices are available")
  if jax.process_count() > 1:
    raise ValueError(f"mesh.train_devices = {train_devices} needs one process; this run "
                     f"has {jax.process_count()} (use -1: every device)")
  return (make_mesh(data, fsdp, model, devices[:train_devices]),
          make_mesh(-1, 1, model, devices))


def onto(mesh, tree):
  """`tree`'s arrays on `mesh`, replicated, where they live on other devices (the
  parameters of an update on fewer devices than the rollout mesh: `mesh.train_devices`).
  Arrays already on the mesh's devices stay as they are (the sampler lays its weights
  out itself), and everything stays for mesh None."""
  if mesh is None:
    return tree
  target, devices = replicated(mesh), set(mesh.devices.flat)
  def one(x):
    on_mesh = not isinstance(x, jax.Array) or set(x.sharding.device_set) == devices
    return x if on_mesh else jax.device_put(x, target)
  return jax.tree.map(one, tree)


@contextlib.contextmanager
def entered(mesh, tree):
  """Runs the block on `mesh` (`jax.set_mesh`; for None the ambient mesh stays) and
  yields `tree` moved onto it (`onto`): how a sampling call reaches the rollout mesh."""
  with contextlib.nullcontext() if mesh is None else jax.set_mesh(mesh):
    yield onto(mesh, tree)


def batch_devices(mesh) -> int:
  """How many ways a batch is split: the data x fsdp axes."""
  return mesh.shape["data"] * mesh.shape["fsdp"]


def check_model_fits_mesh(model_cfg, mesh) -> None:
  """Raises ValueError naming every model dimension the mesh cannot split."""
  model, fsdp = mesh.shape["model"], mesh.shape["fsdp"]
  bad = [f"{name} = {dim} is not divisible by the mesh's {axis} axis ({size})"
         for name, dim, axis, size in (
             ("n_heads", model_cfg.n_heads, "model", model),
             ("mlp_dim", model_cfg.mlp_dim, "model", model),
             ("vocab_size", model_cfg.vocab_size, "model", model),
             ("d_model", model_cfg.d_model, "fsdp", fsdp))
         if dim % size]
  if model_cfg.n_kv_heads >= model and model_cfg.n_kv_heads % model:
    bad.append(f"n_kv_heads = {model_cfg.n_kv_heads} is neither fewer than nor divisible "
               f"by the mesh's model axis ({model})")
  if bad:
    raise ValueError("config.mesh does not fit the model: " + "; ".join(bad))


def logical_to_spec(axes, shape, mesh, rules=TRAIN_RULES) -> P:
  """PartitionSpec for a weight with logical `axes`, replicating non-divisible dims."""
  out = []
  for name, dim in zip(axes, shape):
    mesh_axis = rules.get(name)
    if mesh_axis is not None and dim % mesh.shape[mesh_axis] == 0:
      out.append(mesh_axis)
    else:
      out.append(None)
  return P(*out)


def _param_specs(params: nnx.State, mesh, rules) -> dict:
  """PartitionSpecs (a pure dict like `nnx.to_pure_dict(params)`) from `out_sharding` names."""
  def one(var):
    shape = var.get_value().shape
    axes = var.get_metadata().get("out_sharding") or (None,) * len(shape)
    return var.replace(logical_to_spec(axes, shape, mesh, rules))
  return nnx.to_pure_dict(jax.tree.map(one, params, is_leaf=lambda x: isinstance(x, nnx.Variable)))


def param_shardings(params: nnx.State, mesh, rules=TRAIN_RULES) -> dict:
  """NamedShardings (a pure dict like `nnx.to_pure_dict(params)`) under `rules`."""
  return jax.tree.map(lambda spec: NamedSharding(mesh, spec), _param_specs(params, mesh, rules),
                      is_leaf=lambda x: isinstance(x, P))


def batch_sharding(mesh, ndim: int) -> NamedSharding:
  """Leading (rollout) axis split over data x fsdp, the rest replicated."""
  return NamedSharding(mesh, batch_spec(ndim))


def batch_spec(ndim: int) -> P:
  return P(BATCH_AXES, *([None] * (ndim - 1)))


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def ambient_mesh():
  """The mesh entered with `jax.set_mesh`, or None (then nothing is constrained)."""
  mesh = jax.sharding.get_abstract_mesh()
  return None if mesh.empty or set(mesh.axis_names) != set(MESH_AXES) else mesh


def constrain_params(graphdef, params: dict, rules) -> dict:
  """Inside jit: `params` laid out by `rules` on the ambient mesh (a no-op without one)."""
  mesh = ambient_mesh()
  if mesh is None:
    return params
  state = nnx.state(nnx.merge(graphdef, params), nnx.Param)
  specs = _param_specs(state, mesh, rules)
  return jax.tree.map(jax.lax.with_sharding_constraint, params, specs)


def rows_to_split(n: int) -> int:
  """The smallest count >= n that the ambient mesh's data x fsdp axes divide (n without a
  mesh). A sampler pads its prompts to it, so that a batch the mesh does not divide is
  split over the devices, each computing ceil(n / devices) rows, rather than computed
  whole on every device (`constrain_batch` leaves such a batch unconstrained)."""
  mesh = ambient_mesh()
  if mesh is None:
    return n
  return -(-n // batch_devices(mesh)) * batch_devices(mesh)


def constrain_batch(x):
  """Inside jit: the leading axis split over data x fsdp when it divides (else as is)."""
  mesh = ambient_mesh()
  if mesh is None or x.shape[0] % batch_devices(mesh):
    return x
  return jax.lax.with_sharding_constraint(x, batch_spec(x.ndim))


def cache_spec(n_kv_heads: int, mesh) -> P:
  """KV cache k [L, B, K, H, S], v [L, B, K, S, H]: rows over data x fsdp, KV heads over
  model when they divide."""
  heads = "model" if n_kv_heads % mesh.shape["model"] == 0 else None
  return P(None, BATCH_AXES, heads, None, None)
