# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""`batch`: the twin's infinite-width kernels in tiles, sharded over the local devices.

`batch(kernel_fn, batch_size=...)` turns a native kernel function of `infinite_kernel_fn` into
one that computes K∞ and/or Θ∞ of large input sets a tile at a time (the recursions are
`twin.twin_core`), the rows of each tile split over the devices by `shard_map`, into host
memory or a preallocated array such as an `np.memmap`, as `neural_tangents.batch` does for
`stax` kernel functions. With `diagonal=True` it computes diag K(x, x) alone in O(N). The
closed-form solves that use these kernels are in `regression.py`.
"""

from __future__ import annotations

import functools
import math
import sys
import time
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
import numpy as np

from ecrn_jax._src.compat import shard_map
from ecrn_jax._src.config import ArchConfig, ECRNConfig
from ecrn_jax._src.models import fourier_embed, resolve_dtype
from ecrn_jax._src.infinite.kernel_fn import TwinSpec
from ecrn_jax._src.infinite.twin import (
    InfiniteKernels,
    block_scales,
    canonical_get,
    check_config,
    check_fourier_limit,
    fourier_b,
    structural_config,
    twin_core,
    twin_diagonal_core,
    uses_fourier,
)
from ecrn_jax._src.validation import check_finite_inputs, check_positive_int

Tile = tuple[int, int, int, int]  # rows r0:r1, columns c0:c1


@functools.lru_cache(maxsize=32)
def _tile_kernel_fn(
    config: ArchConfig, get: tuple[str, ...], devices: tuple, x64: bool, fourier_limit: bool
):
  """Jitted functions of input tiles (γ(x), or x for the limit and configs without Fourier
  features) and the block scales: (x1, x2, scales) → tuple of kernels with the rows of x1
  sharded over `devices`; (x, scales) → tuple of diagonals diag K(x, x), (N,) each, in O(N)."""
  del x64  # part of the cache key only: the kernels are built under the caller's precision.

  def tile(x1, x2, scales):
    return twin_core(
        x1, x2, None, scales, config=config, names=get, symmetric=False, fourier_limit=fourier_limit
    )

  def diagonal(x, scales):
    return twin_diagonal_core(
        x, None, scales, config=config, names=get, fourier_limit=fourier_limit
    )

  mesh = Mesh(np.asarray(devices), ('rows',))
  replicated = PartitionSpec()
  sharded = shard_map(
      tile, mesh, (PartitionSpec('rows'), replicated, replicated), PartitionSpec('rows')
  )
  return jax.jit(sharded), jax.jit(diagonal), mesh


def _bucket(size: int, cap: int) -> int:
  """The next power of two >= size (at least 8), capped at `cap`: few distinct tile shapes."""
  return min(cap, max(8, 1 << (max(size, 1) - 1).bit_length()))


def _padded(block: np.ndarray, rows: int) -> np.ndarray:
  if block.shape[0] == rows:
    return block
  return np.pad(block, ((0, rows - block.shape[0]), (0, 0)), mode='edge')


def _twin_inputs(name: str, config, x, variables, fourier_limit: bool, chunk: int) -> np.ndarray:
  """(N, ...) inputs → what the tiles take, as NumPy in the config's dtype: γ(x) (N, 2m),
  computed once here in chunks, when the config has Fourier features (with B from
  `variables`); the flattened x (N, d) otherwise and with `fourier_limit`."""
  check_config(config)
  check_fourier_limit(config, fourier_limit)
  x = np.asarray(x)
  if x.ndim < 2:
    raise ValueError(
        f'{name} must be batched with shape (N, d), got shape {x.shape}; '
        'for one example use x[None].'
    )
  check_finite_inputs(name, x)  # also refuses an empty x
  dtype = resolve_dtype(config.dtype)
  x = x.reshape(x.shape[0], -1).astype(np.dtype(dtype))
  if not uses_fourier(config) or fourier_limit:
    return x
  b_matrix = jax.numpy.asarray(fourier_b(config, variables, x.shape[1]), dtype)
  embed = jax.jit(fourier_embed)
  return np.concatenate(
      [np.asarray(embed(x[i : i + chunk], b_matrix)) for i in range(0, x.shape[0], chunk)]
  )


def _block_scales(config, mask=None) -> jax.Array:
  dtype = resolve_dtype(config.dtype)
  if isinstance(config, ECRNConfig):
    return jax.numpy.asarray(block_scales(config, mask), dtype)
  return jax.numpy.zeros((0,), dtype)


def _progress_printer(label: str, every_s: float = 5.0) -> Callable[[int, int], None]:
  start = time.perf_counter()
  last = [-math.inf]

  def report(done: int, total: int) -> None:
    now = time.perf_counter()
    if done < total and now - last[0] < every_s:
      return
    last[0] = now
    elapsed = now - start
    remaining = elapsed / done * (total - done) if done else math.nan
    print(
        f'{label}: {done}/{total} tiles ({100.0 * done / total:.0f}%), {elapsed:.1f} s '
        f'elapsed, ~{remaining:.1f} s left',
        file=sys.stderr,
        flush=True,
    )

  return report


def _progress_report(progress) -> Optional[Callable[[int, int], None]]:
  """`progress` as a callable(done_tiles, total_tiles) or None."""
  if progress is True:
    return _progress_printer('infinite kernels')
  return progress or None


def _resolve_devices(devices) -> tuple:
  if devices is None:
    return tuple(jax.local_devices())
  if isinstance(devices, int) and not isinstance(devices, bool):
    available = jax.local_devices()
    if not 1 <= devices <= len(available):
      raise ValueError(
          f'devices={devices} but {len(available)} local devices exist; pass '
          f'1..{len(available)}, a list of jax devices, or None for all.'
      )
    return tuple(available[:devices])
  devices = tuple(devices)
  if not devices:
    raise ValueError('devices is empty: pass None for all local devices.')
  return devices


def _output_arrays(
    names: tuple[str, ...],
    shape: tuple[int, int],
    dtype: np.dtype,
    out: Optional[Mapping[str, np.ndarray]],
) -> dict[str, np.ndarray]:
  """Kernel name → the (N₁, N₂) array the tiles are written into: out[name] or a new one."""
  results = {}
  for name in names:
    if out is not None and name in out:
      if tuple(out[name].shape) != shape:
        raise ValueError(f'out[{name!r}] must have shape {shape}, got {out[name].shape}.')
      results[name] = out[name]
    else:
      results[name] = np.empty(shape, dtype)
  return results


def _tile_jobs(
    n1: int, n2: int, step_rows: int, batch_size: int, symmetric: bool
) -> tuple[list[Tile], list[Tile]]:
  """The tiles to compute, row block by row block, and (symmetric) those left of the row
  block's first row, to mirror from the ones computed."""
  jobs: list[Tile] = []
  mirrored: list[Tile] = []
  for r0 in range(0, n1, step_rows):
    r1 = min(n1, r0 + step_rows)
    for c0 in range(0, n2, batch_size):
      c1 = min(n2, c0 + batch_size)
      (mirrored if symmetric and c1 <= r0 else jobs).append((r0, r1, c0, c1))
  return jobs, mirrored


def _compute_tiles(
    tile_fn,
    mesh,
    a1: np.ndarray,
    a2: np.ndarray,
    scales,
    jobs: list[Tile],
    results: dict[str, np.ndarray],
    *,
    batch_size: int,
    report: Optional[Callable[[int, int], None]],
) -> None:
  """Runs `tile_fn` (of `_tile_kernel_fn`) on each tile of `jobs` and writes the tiles into
  `results` (in `tile_fn`'s kernel order). Tile i is copied to the host while tile i + 1
  computes; a block of rows goes to the devices once for all its tiles. Ragged edges are
  padded to bucketed shapes (each compiles once) and cropped."""
  num_devices = mesh.devices.size
  step_rows = batch_size * num_devices
  row_sharding = NamedSharding(mesh, PartitionSpec('rows'))
  replicated = NamedSharding(mesh, PartitionSpec())

  def store(pending):
    (r0, r1, c0, c1), arrays = pending
    for result, array in zip(results.values(), arrays):
      result[r0:r1, c0:c1] = np.asarray(array)[: r1 - r0, : c1 - c0]

  def launch(r0, r1, c0, c1, row_block):
    if row_block is None or row_block[0] != r0:
      rows = r1 - r0
      padded_rows = (
          step_rows
          if rows == step_rows
          else num_devices * _bucket(-(-rows // num_devices), batch_size)
      )
      row_block = (r0, jax.device_put(_padded(a1[r0:r1], padded_rows), row_sharding))
    cols = _bucket(c1 - c0, batch_size) if c1 - c0 < batch_size else batch_size
    col_block = jax.device_put(_padded(a2[c0:c1], cols), replicated)
    return row_block, tile_fn(row_block[1], col_block, scales)

  pending, row_block = None, None
  for done, (r0, r1, c0, c1) in enumerate(jobs, start=1):
    row_block, arrays = launch(r0, r1, c0, c1, row_block)
    if pending is not None:
      store(pending)
      if report is not None:
        report(done - 1, len(jobs))
    pending = ((r0, r1, c0, c1), arrays)
  store(pending)
  if report is not None:
    report(len(jobs), len(jobs))


def batch(
    kernel_fn: Callable[..., Any],
    *,
    batch_size: int = 512,
    devices: Union[None, int, Sequence[Any]] = None,
    progress: Union[bool, Callable[[int, int], None]] = False,
) -> Callable[..., Any]:
  """`kernel_fn` computed in tiles on one or several devices, as `neural_tangents.batch`.

  Memory: the result (on the host, or `out`) plus the inputs plus a few tiles: each step
  computes a (n_dev·batch_size) × batch_size tile, its rows split over the devices (`shard_map`
  over a one-axis mesh), and copies it to the host while the next one runs. When x2 is None only
  the tiles on or above the diagonal are computed; the rest is mirrored, and for ReLU the
  diagonal is recomputed exactly (each point alone, as `infinite_kernel_fn`'s symmetric form).
  Ragged edges are padded (to a few bucketed shapes, so each compiles once) and cropped. Equal
  to `kernel_fn` up to round-off (docs/spec.md §3: ≤ 1e-12).

  Args:
    kernel_fn: a native kernel function of `infinite_kernel_fn` (evaluation mode or one mask).
    batch_size: tile edge per device.
    devices: None (all local devices), a number of local devices, or a list of devices.
    progress: False, True (report to stderr every 5 s) or a callable(done_tiles, total_tiles).
  Returns:
    `batched_kernel_fn(x1, x2=None, get=('nngp', 'ntk'), *, out=None, diagonal=False)`: x1
    (N₁, ...), x2 (N₂, ...) or None for x1; `out` optional preallocated (N₁, N₂) arrays (e.g.
    `np.memmap`) keyed by kernel name. It returns NumPy arrays in the config's dtype: (N₁, N₂)
    if `get` is a string, else `InfiniteKernels(nngp, ntk)` with None for a kernel not
    requested. `diagonal=True` (x2 None) gives diag K(x1, x1) alone, (N₁,), in O(N₁): each
    point's own 1 × 1 recursion, batch_size points at a time on the first device.

  >>> import numpy as np, ecrn_jax
  >>> config = ecrn_jax.MLPConfig(hidden_widths=(8,), activation='relu')
  >>> kernel_fn = ecrn_jax.batch(ecrn_jax.infinite_kernel_fn(config), batch_size=8)
  >>> x = np.linspace(-1.0, 1.0, 20, dtype=np.float32).reshape(10, 2)
  >>> kernel_fn(x, get='ntk').shape
  (10, 10)
  >>> kernel_fn(x, get='nngp', diagonal=True).shape
  (10,)
  """
  twin = getattr(kernel_fn, 'twin', None)
  if not isinstance(twin, TwinSpec):
    raise ValueError(
        'batch takes a kernel function of infinite_kernel_fn with the native implementation '
        "(implementation='native', no expectation over masks)."
    )
  batch_size = check_positive_int(batch_size, 'batch_size')
  devices = _resolve_devices(devices)

  def batched_kernel_fn(x1, x2=None, get=('nngp', 'ntk'), *, out=None, diagonal=False):
    names, single = canonical_get(get)
    if not diagonal:
      return _tiled_kernels(twin, x1, x2, names, single, batch_size, devices, progress, out)
    if x2 is not None:
      raise ValueError('diagonal=True computes diag K(x1, x1): pass x2=None.')
    diagonals = dict(zip(names, _tiled_diagonals(twin, x1, names, batch_size, devices[0])))
    if single:
      return diagonals[names[0]]
    return InfiniteKernels(nngp=diagonals.get('nngp'), ntk=diagonals.get('ntk'))

  return batched_kernel_fn


def _tiled_kernels(
    twin: TwinSpec, x1, x2, names, single: bool, batch_size: int, devices: tuple, progress, out
):
  """The kernels `names` of `twin` on x1 (N₁, ...) and x2 (N₂, ...) or None, in tiles."""
  config, variables, fourier_limit = twin.config, twin.variables, twin.fourier_limit
  step_rows = batch_size * len(devices)
  symmetric = x2 is None
  a1 = _twin_inputs('x1', config, x1, variables, fourier_limit, step_rows)
  a2 = a1 if symmetric else _twin_inputs('x2', config, x2, variables, fourier_limit, step_rows)
  if a1.shape[1] != a2.shape[1]:
    raise ValueError(
        f'x1 and x2 must have the same number of features, got {a1.shape[1]} and {a2.shape[1]}.'
    )
  n1, n2 = a1.shape[0], a2.shape[0]
  results = _output_arrays(names, (n1, n2), np.dtype(resolve_dtype(config.dtype)), out)
  tile_fn, diagonal_fn, mesh = _tile_kernel_fn(
      structural_config(config),
      names,
      devices,
      bool(jax.config.jax_enable_x64),  # type: ignore[attr-defined]  # flag not in jax's stubs
      bool(fourier_limit),
  )
  scales = jax.device_put(_block_scales(config, twin.mask), NamedSharding(mesh, PartitionSpec()))
  jobs, mirrored = _tile_jobs(n1, n2, step_rows, batch_size, symmetric)
  _compute_tiles(
      tile_fn,
      mesh,
      a1,
      a2,
      scales,
      jobs,
      results,
      batch_size=batch_size,
      report=_progress_report(progress),
  )
  for r0, r1, c0, c1 in mirrored:
    for result in results.values():
      result[r0:r1, c0:c1] = result[c0:c1, r0:r1].T
  if symmetric and config.activation == 'relu':
    # ReLU's dual has infinite slope at correlation 1, so the diagonal of a tile computed from
    # two copies of the same points carries √ε round-off; each point alone is exact (O(N)).
    idx = np.arange(n1)
    for name, diagonal in zip(names, _diagonals(diagonal_fn, a1, scales, step_rows, devices[0])):
      results[name][idx, idx] = diagonal
  if single:
    return results[names[0]]
  return InfiniteKernels(nngp=results.get('nngp'), ntk=results.get('ntk'))


def _tiled_diagonals(twin: TwinSpec, x, names, batch_size: int, device) -> list:
  """diag K(x, x) (N,) of each kernel in `names`, batch_size points at a time on `device`."""
  config = twin.config
  a = _twin_inputs('x', config, x, twin.variables, twin.fourier_limit, batch_size)
  scales = _block_scales(config, twin.mask)
  _, diagonal_fn, _ = _tile_kernel_fn(
      structural_config(config),
      names,
      (device,),
      bool(jax.config.jax_enable_x64),  # type: ignore[attr-defined]  # flag not in jax's stubs
      bool(twin.fourier_limit),
  )
  return _diagonals(diagonal_fn, a, scales, batch_size, device)


def _diagonals(diagonal_fn, a: np.ndarray, scales, batch_size: int, device) -> list:
  """`diagonal_fn` (of `_tile_kernel_fn`) over `a` in blocks of batch_size rows (the ragged
  end padded to a bucketed size): one (N,) NumPy array per kernel name."""
  parts = []
  for i in range(0, a.shape[0], batch_size):
    block = a[i : i + batch_size]
    size = _bucket(len(block), batch_size) if len(block) < batch_size else batch_size
    parts.append(
        [
            np.asarray(d)[: len(block)]
            for d in diagonal_fn(jax.device_put(_padded(block, size), device), scales)
        ]
    )
  return [np.concatenate(per_name) for per_name in zip(*parts)]
