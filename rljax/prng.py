"""The named random streams of a run: every key and numpy generator derives from here.

A run is a pure function of `cfg.seed`: each consumer of randomness draws from
its own stream, named below, so adding a consumer never shifts another's numbers
and a resumed run draws exactly what an uninterrupted one would. The offsets are
arbitrary but fixed: changing one changes every result that depends on it.

Stream positions (indices into a task's training stream) are named here too:
pretraining and the one-shot pool read far from where RL starts (position 0), so
the phases never see the same problem sequence.
"""

from __future__ import annotations

import zlib

import jax
import numpy as np

_EVAL = 999_983          # held-out evaluation samples
_UPDATE = 1_000_003      # per-step keys of the loss (Clip-Cov's token draws)
_REWARD = 7              # reward controls (the random reward)
_HELDOUT_DATA = 1_000_003  # a generated dataset's held-out split (reasoning-gym)
_WRONG_LABEL = 424_243   # the base model's samples that choose wrong labels

PRETRAIN_POSITION = 1_000_000   # pretraining batch i reads stream position 1_000_000 + i
ONE_SHOT_POOL_POSITION = 2_000_000  # the one-shot RLVR candidate pool


def run_key(seed: int) -> jax.Array:
  """The run's root key, stored in `TrainState.rng`."""
  return jax.random.PRNGKey(seed)


def rollout_key(run_key_: jax.Array, data_position: int) -> jax.Array:
  """Sampling key of the prompt batch at `data_position` (a resample never repeats one)."""
  return jax.random.fold_in(run_key_, data_position)


def update_key(run_key_: jax.Array, step: int) -> jax.Array:
  """Key of RL step `step`'s updates; minibatch j of epoch e folds in e * minibatches + j."""
  return jax.random.fold_in(run_key_, _UPDATE + step)


def minibatch_order(seed: int, step: int) -> np.random.Generator:
  """Generator of the minibatch permutations of RL step `step`."""
  return np.random.default_rng((seed, step))


def reward_rng(seed: int, step: int) -> np.random.Generator:
  """Generator of the reward controls of RL step `step`."""
  return np.random.default_rng((seed, step, _REWARD))


def eval_key(seed: int, tag: str) -> jax.Array:
  """Key of a held-out evaluation named `tag` ("base", "final", "rl25", ...)."""
  key = jax.random.fold_in(jax.random.PRNGKey(seed), _EVAL)
  return jax.random.fold_in(key, zlib.crc32(tag.encode()))


def heldout_data_seed(seed: int) -> int:
  """Seed of a generated dataset's held-out split, disjoint from the training one's."""
  return seed + _HELDOUT_DATA


def wrong_label_key(seed: int, canonical: str) -> jax.Array:
  """Key of the base-model samples that pick wrong labels, folded with the canonical form
  of the first problem of the sampling call."""
  key = jax.random.fold_in(jax.random.PRNGKey(seed), _WRONG_LABEL)
  return jax.random.fold_in(key, zlib.crc32(canonical.encode()))
