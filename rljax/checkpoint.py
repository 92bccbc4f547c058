"""Checkpoints: a thin wrapper over orbax's CheckpointManager.

A checkpoint holds the whole `TrainState` (params, optimizer state, reference
params, PRNG key, step) plus a small JSON record (data position and anything
the loop needs to resume). Orbax writes each step into a temporary directory
and renames it when complete, so a crash mid-write leaves earlier steps intact.
"""

from __future__ import annotations

import os
import re

import jax
import numpy as np
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  """A checkpoint could not be written or read; the message names it and what is left."""


class Checkpointer:
  """Saves and restores (TrainState, meta) under `directory`."""

  def __init__(self, directory: str, max_to_keep: int = 2):
    self.directory = os.path.abspath(directory)
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                             enable_async_checkpointing=False))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state, meta: dict) -> None:
    """Writes step `step` atomically; on failure (disk full, permissions) raises
    CheckpointError and the earlier checkpoints stay as they were."""
    try:
      self.manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(_flat(state)), meta=ocp.args.JsonSave(meta)))
      self.manager.wait_until_finished()
    except Exception as e:  # orbax raises many types; say what happened and what is left.
      self.manager.reload()  # forget the failed step: it was never committed
      raise CheckpointError(
          f"could not write checkpoint step {step} to {self.directory} "
          f"({type(e).__name__}: {e}); the earlier checkpoints "
          f"{list(self.manager.all_steps())} are intact") from e

  def restore(self, abstract_state, step: int | None = None):
    """Restores onto the shapes and shardings of `abstract_state`; returns (state, meta)."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"no checkpoint in {self.directory}")
    if step not in self.manager.all_steps():
      raise CheckpointError(f"no checkpoint step {step} in {self.directory}; "
                            f"available: {list(self.manager.all_steps())}")
    target = {k: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None))
              for k, x in _flat(abstract_state).items()}
    try:
      out = self.manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
    except Exception as e:  # orbax raises many types; name the checkpoint instead.
      raise CheckpointError(
          f"checkpoint step {step} in {self.directory} is unreadable or does not match "
          f"this config ({type(e).__name__}: {str(e)[:300]}). If it is corrupt, delete "
          f"{os.path.join(self.directory, str(step))} to resume from an earlier one "
          f"({[s for s in self.manager.all_steps() if s != step]}).") from e
    flat = out["state"]
    leaves = [flat[k] for k in _flat(abstract_state)]
    return jax.tree.unflatten(jax.tree.structure(abstract_state), leaves), dict(out["meta"])

  def read_flat(self, step: int | None = None) -> dict:
    """{path: numpy array} of a checkpoint's state, without a target structure."""
    step = self.latest_step() if step is None else step
    if step is None or step not in self.manager.all_steps():
      raise CheckpointError(f"no checkpoint step {step} in {self.directory}")
    out = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
    return {k: np.asarray(v) for k, v in out["state"].items()}

  def close(self) -> None:
    self.manager.close()


def _flat(tree) -> dict:
  """{path: leaf} with string paths: a layout orbax stores whatever the pytree types."""
  return {re.sub(r"[^A-Za-z0-9_]+", ".", jax.tree_util.keystr(path)).strip("."): leaf
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}
