"""The KV cache and the read-only views of it that attention reads (`attention.py`).

Cache layout (documented once, used by the sampler): one pair of arrays for all L
layers, keys k [L, B, K, H, S] with the slots minor and values v [L, B, K, S, H], S
the cache length (layer l reads and writes k[l], v[l]). Both are the operands' natural
layouts for the two attention matmuls (q . k over H, probs . v over S), so a decode
step reads them in place: stored as [B, S, K, H], XLA:CPU transposes the whole cache
before each step's score matmul (measured: 8x slower at 288 slots, benchmarks/README.md).
A forward call with a cache writes its T new keys/values at slots [start, start + T)
and returns the updated arrays; nothing is mutated in place. Which slots hold real
tokens is the caller's `kv_mask_BxS` (per row: rows of different lengths share slot
indices); a query at slot s attends to valid slots <= s. With one start per row
(`write_rows`) each row writes at its own slots instead: the multi-turn cache, where a
token's slot is its position in its row (`rl/multi_turn.py`).

A training forward over rows that share their prompt in groups (GRPO's G samples of
a prompt) attends through a `SharedPrefix`: the prompts' keys and values, computed
once per prompt, read by each of their G rows as a prefix (`rl/logprobs.py`).

The decode loop attends through a `DecodeWindow` instead: the prompts' slots (one
entry per prompt, as a `SharedPrefix`), the generated slots of the earlier segments
(`prefix`, static length, read-only inside the loop) and the segment's own `block` of
slots, written one per step. The loop carries only the block, so no step
copies the cache, and a step's cost follows the filled prefix rather than the cache
budget (the sampler's segments, `rl/sampler.py`).

`SharedPrefix.part` and `DecodeWindow.parts` give what attention reads: `Part`s, key
slots with their first slot and how many consecutive rows read one entry.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp

from rljax.model.config import ModelConfig


@flax.struct.dataclass
class KVCache:
  """Keys k [L, B, K, H, S] and values v [L, B, K, S, H] of every layer."""

  k: jax.Array
  v: jax.Array

  @classmethod
  def zeros(cls, cfg: ModelConfig, batch: int, length: int, dtype=jnp.float32):
    lead = (cfg.n_layers, batch, cfg.n_kv_heads)
    return cls(k=jnp.zeros(lead + (cfg.head_dim, length), dtype),
               v=jnp.zeros(lead + (length, cfg.head_dim), dtype))

  @property
  def length(self) -> int:
    return (self.k[0] if isinstance(self.k, tuple) else self.k).shape[-1]

  def per_layer(self) -> "KVCache":
    """The same slots as tuples of per-layer arrays (for unrolled layers: reading
    layer l is then no slice, which XLA would otherwise copy inside a loop)."""
    n = self.k.shape[0]
    return KVCache(k=tuple(self.k[i] for i in range(n)), v=tuple(self.v[i] for i in range(n)))

  def repeat(self, times: int) -> "KVCache":
    """Each row repeated `times` times (prompt cache shared by its G samples)."""
    return KVCache(k=jnp.repeat(self.k, times, axis=1),
                   v=jnp.repeat(self.v, times, axis=1))

  def put(self, part: "KVCache", start) -> "KVCache":
    """`part`'s slots written at [start, start + part.length) of every layer."""
    return KVCache(k=jax.lax.dynamic_update_slice(self.k, part.k.astype(self.k.dtype),
                                                  (0, 0, 0, 0, start)),
                   v=jax.lax.dynamic_update_slice(self.v, part.v.astype(self.v.dtype),
                                                  (0, 0, 0, start, 0)))

  def write(self, layer, k_BxTxKxH, v_BxTxKxH, start) -> "KVCache":
    """Layer `layer`'s T new keys and values at slots [start, start + T); `start` is one
    slot for all rows, or one per row [B] (`write_rows`)."""
    if jnp.ndim(start):
      return self.write_rows(layer, k_BxTxKxH, v_BxTxKxH, start)
    k_BxKxHxT, v_BxKxTxH = k_BxTxKxH.transpose(0, 2, 3, 1), v_BxTxKxH.transpose(0, 2, 1, 3)
    if isinstance(self.k, tuple):  # `per_layer` (static `layer`): update that array alone
      k, v = list(self.k), list(self.v)
      k[layer] = jax.lax.dynamic_update_slice(k[layer], k_BxKxHxT.astype(k[layer].dtype),
                                              (0, 0, 0, start))
      v[layer] = jax.lax.dynamic_update_slice(v[layer], v_BxKxTxH.astype(v[layer].dtype),
                                              (0, 0, start, 0))
      return KVCache(k=tuple(k), v=tuple(v))
    k_1xBxKxHxT = k_BxKxHxT[None].astype(self.k.dtype)
    v_1xBxKxTxH = v_BxKxTxH[None].astype(self.v.dtype)
    return KVCache(k=jax.lax.dynamic_update_slice(self.k, k_1xBxKxHxT, (layer, 0, 0, 0, start)),
                   v=jax.lax.dynamic_update_slice(self.v, v_1xBxKxTxH, (layer, 0, 0, start, 0)))

  def write_rows(self, layer, k_BxTxKxH, v_BxTxKxH, start_B) -> "KVCache":
    """Row b's T new keys and values at its own slots [start_B[b], start_B[b] + T) (a
    multi-turn cache, where a row's slot is its position: `rl/multi_turn.py`). Slots
    past the cache's end are dropped (a finished row's padding), never clamped onto
    its earlier slots."""
    b, t = k_BxTxKxH.shape[:2]
    rows_Bx1, slots_BxT = jnp.arange(b)[:, None], start_B[:, None] + jnp.arange(t)[None]
    # Advanced indices (row, slot) around the head axes: the update is indexed
    # [B, T, K, H], the new entries' own layout, for keys and values alike.
    k_at = (rows_Bx1, slice(None), slice(None), slots_BxT)  # k [B, K, H, S]
    v_at = (rows_Bx1, slice(None), slots_BxT)                # v [B, K, S, H]
    put = lambda x, at, new: x.at[at].set(new.astype(x.dtype), mode="drop")
    if isinstance(self.k, tuple):  # `per_layer` (static `layer`): update that array alone
      k, v = list(self.k), list(self.v)
      k[layer], v[layer] = put(k[layer], k_at, k_BxTxKxH), put(v[layer], v_at, v_BxTxKxH)
      return KVCache(k=tuple(k), v=tuple(v))
    return KVCache(k=put(self.k, (layer, *k_at), k_BxTxKxH),
                   v=put(self.v, (layer, *v_at), v_BxTxKxH))


@flax.struct.dataclass
class SharedPrefix:
  """A training forward's read-only prefix: `cache` holds Q prompts' keys and values
  (slots [0, P), from their own forward), each read by `group` consecutive rows of
  the batch (B = Q * group), whose T tokens take slots [P, P + T). Nothing is written:
  the gradient flows back into the prompts' forward, summed over each group."""

  cache: KVCache
  group: int = flax.struct.field(pytree_node=False)

  @property
  def length(self) -> int:
    return self.cache.length

  def rows(self, x_QxKx___):
    """One prompt's array for each of its rows: [Q, ...] -> [Q * group, ...]."""
    return jnp.repeat(x_QxKx___, self.group, axis=0)

  def part(self, layer) -> "Part":
    return Part(self.cache.k[layer], self.cache.v[layer], 0, self.group)


class Part(NamedTuple):
  """Key slots [first, first + S) that a softmax attends to: keys [B / group, K, H, S]
  and values [B / group, K, S, H], one entry read by `group` consecutive rows."""

  keys: jax.Array
  values: jax.Array
  first: int
  group: int = 1


@flax.struct.dataclass
class DecodeWindow:
  """The decode loop's view of the cache in one segment: the prompts' slots [0, P) as
  a `SharedPrefix` (one entry per prompt, read by its G rows), the generated slots
  written by earlier segments, one `KVCache` per segment (`prefix`: slots P onward,
  in order, possibly none), and the segment's own `block` of slots
  [start, start + C); each stacked or `per_layer`.

  The earlier segments stay separate arrays, read as separate parts of one softmax:
  XLA:CPU's score product streams a [H, 64]-slot key block at 20 GB/s and a
  [H, 192]-slot one at 9 (benchmarks/README.md)."""

  prompt: SharedPrefix
  prefix: tuple
  block: KVCache

  @property
  def start(self) -> int:
    return self.prompt.length + sum(c.length for c in self.prefix)

  @property
  def length(self) -> int:
    return self.start + self.block.length

  def parts(self, layer) -> list:
    """Layer `layer`'s `Part`s, in slot order."""
    parts, first = [self.prompt.part(layer)], self.prompt.length
    for c in (*self.prefix, self.block):
      parts.append(Part(c.k[layer], c.v[layer], first))
      first += c.length
    return parts
