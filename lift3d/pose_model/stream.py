"""Chunked, device-sharded sample arrays and sums over them.

Fitting statistics (means, covariances, responsibility-weighted sums) are sums
over samples, so a large training set is laid out as (C, ..., B): C chunks of
B samples, the sample axis LAST so that elementwise maths on a few
coordinates vectorises over samples (a minor axis of 3 is slow on CPU).
`lax.scan` walks the chunks, so working memory is one chunk, and the B axis is
sharded over all local devices (a 1-D `jax.sharding.Mesh`), so each device
sums its samples and XLA adds the partial sums across devices. The same code
runs on one CPU or on a multi-device host.

Shape letters: N samples, C chunks, B rows per chunk, D dimensions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "data"


class Chunked(NamedTuple):
  """Samples laid out in chunks (a pytree).

  Attributes:
    data: (C, ..., B) samples, or a pytree of such arrays; samples past the
      end are zero padding.
    mask: (C, B) float32, 1 for real samples, 0 for padding.
  """

  data: jax.Array
  mask: jax.Array


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh named "data" over `devices` (default: all local devices)."""
  devices = list(jax.local_devices() if devices is None else devices)
  return Mesh(np.array(devices), (AXIS,))


def chunk_rows(num: int, chunk_size: int, num_devices: int) -> tuple[int, int]:
  """(C, B): number of chunks and rows per chunk for `num` samples.

  B is at most `chunk_size` rounded up to a multiple of `num_devices`, and no
  larger than needed for one chunk.
  """
  if chunk_size < 1:
    raise ValueError(f"chunk_size must be positive, got {chunk_size}")
  rows = min(chunk_size, max(num, 1))
  rows = -(-rows // num_devices) * num_devices
  return -(-num // rows), rows


def shard(x, mesh: Mesh) -> jax.Array:
  """Places an array on the mesh with its last (sample) axis split over the devices.

  Args:
    x: (C, ..., B) array (NumPy or JAX), any dtype and units; B must be a
      multiple of the mesh size (`chunk_rows` makes it so).
    mesh: from `make_mesh`.

  Returns:
    The same (C, ..., B) values as a `jax.Array` sharded along B, replicated
    along the other axes.
  """
  spec = PartitionSpec(*([None] * (np.ndim(x) - 1)), AXIS)
  return jax.device_put(x, NamedSharding(mesh, spec))


def replicate(tree, mesh: Mesh):
  """Places a pytree of (small) arrays on every device of the mesh.

  Arrays passed to the jitted passes next to chunked data must carry the same
  (replicated) sharding on every call, or each new sharding recompiles.
  """
  return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def mesh_of(chunked: Chunked) -> Mesh:
  """The mesh that `chunked` was placed on by `chunk`."""
  return chunked.mask.sharding.mesh


def chunk(data, chunk_size: int, mesh: Mesh) -> Chunked:
  """Pads and reshapes (N, ...) samples into sharded chunks (C, ..., B).

  Args:
    data: (N, ...) samples (NumPy or JAX).
    chunk_size: samples per chunk (rounded up to a multiple of the mesh size).
    mesh: from `make_mesh`.

  Returns:
    A `Chunked` with data (C, ..., B) and mask (C, B).
  """
  data = np.asarray(data)
  return chunk_from(len(data), lambda start, stop: data[start:stop], chunk_size, mesh)


def chunk_from(num: int, rows: Callable[[int, int], np.ndarray], chunk_size: int,
               mesh: Mesh) -> Chunked:
  """Like `chunk`, with the samples made chunk by chunk by `rows(start, stop)`.

  Args:
    num: N, the number of samples.
    rows: returns samples [start, stop) as a (stop − start, ...) NumPy array;
      called once per chunk, in order, so the full set never exists twice.
    chunk_size, mesh: as for `chunk`.

  Returns:
    A `Chunked` with data (C, ..., B) and mask (C, B).
  """
  num_chunks, size = chunk_rows(num, chunk_size, mesh.size)
  out = None
  for c in range(num_chunks):
    part = np.asarray(rows(c * size, min((c + 1) * size, num)))
    if out is None:
      out = np.zeros((num_chunks, *part.shape[1:], size), part.dtype)
    out[c, ..., :len(part)] = np.moveaxis(part, 0, -1)
  mask = (np.arange(num_chunks * size) < num).reshape(num_chunks, size)
  return Chunked(shard(out, mesh), shard(mask.astype(np.float32), mesh))


def gather(chunked: Chunked, index: np.ndarray) -> np.ndarray:
  """Picks samples by their index in the original (N, ...) order.

  Args:
    chunked: from `chunk` or `chunk_from`; its data must be one array
      (C, ..., B), not a pytree.
    index: (n,) int sample indexes in [0, N).

  Returns:
    (n, ...) NumPy array of those samples, same dtype and units as the data.
  """
  size = chunked.mask.shape[-1]
  index = np.asarray(index)
  return np.asarray(chunked.data[index // size, ..., index % size])


def unchunk(x: jax.Array, num: int) -> np.ndarray:
  """Undoes `chunk`: back to samples first, dropping the padding.

  Args:
    x: (C, ..., B) array laid out like a `Chunked`'s data (e.g. an output of
      `scan_map`), any dtype and units.
    num: N, the number of real samples (at most C·B).

  Returns:
    (N, ...) NumPy array, sample i at row i.
  """
  x = np.moveaxis(np.asarray(x), -1, 1)
  return x.reshape(-1, *x.shape[2:])[:num]


def _first(tree):
  return jax.tree.map(lambda x: x[0], tree)



def scan_sum(fn: Callable[..., Any], chunked: Chunked, *args) -> Any:
  """Σ over chunks of `fn(data_chunk, mask_chunk, *args)` (a pytree of arrays).

  Call inside `jit`. `fn` must weight its per-row terms by the mask.
  """
  first = jax.eval_shape(fn, _first(chunked.data), chunked.mask[0], *args)
  init = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), first)

  def step(total, chunk_and_mask):
    data, mask = chunk_and_mask
    return jax.tree.map(jnp.add, total, fn(data, mask, *args)), None

  total, _ = jax.lax.scan(step, init, (chunked.data, chunked.mask))
  return total


def scan_map(fn: Callable[..., Any], chunked: Chunked, *args) -> Any:
  """Maps `fn(data_chunk, mask_chunk, *args)` over chunks, stacking the outputs (C, ..., B).

  Call inside `jit`.
  """

  def step(carry, chunk_and_mask):
    data, mask = chunk_and_mask
    return carry, fn(data, mask, *args)

  _, out = jax.lax.scan(step, None, (chunked.data, chunked.mask))
  return out


def scan_map_sum(fn: Callable[..., Any], chunked: Chunked, *args) -> tuple[Any, Any]:
  """Like `scan_map` and `scan_sum` at once: `fn` returns (per-row outputs, sums).

  Returns:
    (stacked per-sample outputs (C, ..., B), summed statistics).
  """
  first = jax.eval_shape(fn, _first(chunked.data), chunked.mask[0], *args)[1]
  init = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), first)

  def step(total, chunk_and_mask):
    data, mask = chunk_and_mask
    rows, sums = fn(data, mask, *args)
    return jax.tree.map(jnp.add, total, sums), rows

  total, rows = jax.lax.scan(step, init, (chunked.data, chunked.mask))
  return rows, total
