"""Kernel regression with the NTK and the NNGP: closed forms, the twin's kernels, a network's.

Conventions (shared by every function here and by the scikit-learn estimators):

* Training is gradient flow on the MSE loss L(f) = ½ N⁻¹ ‖f(X) − Y‖²_F with learning rate η
  (SPEC §4). With Θ_r = Θ(X, X) + r·I, the prediction at time t is

      f_t(x) = f₀(x) + Θ(x, X) Θ_r⁻¹ (I − exp(−η t Θ_r / N)) (Y − f₀(X)),

  and at t = None (∞): f_∞(x) = f₀(x) + Θ(x, X) Θ_r⁻¹ (Y − f₀(X)). With the NNGP kernel K in place
  of Θ, t = ∞ gives the NNGP posterior mean. f₀ ≡ 0 unless initial outputs are passed.
  neural-tangents' `predict.gradient_descent_mse` normalizes time by Y.size = N·C instead of N:
  its `learning_rate` equals η·C here.
* `diag_reg` is relative: r = diag_reg · tr(Θ)/N, the mean of the kernel's diagonal
  (neural-tangents' convention with `diag_reg_absolute_scale=False`). Multiplying every kernel by
  a constant leaves predictions unchanged.
* Solves run on the host with LAPACK (scipy) in float64 by default. A Cholesky that fails retries
  with jitter·tr(Θ)/N added, jitter = 1e-10, 1e-9, …, 1e-2, and warns (`JitterWarning`) with the
  value used; a kernel with NaN or inf entries raises ValueError.

Shapes: N training inputs, M test inputs, C outputs; targets (N,) or (N, C) and predictions of
the same trailing shape.

The twin's kernels are native JAX (`twin.py`); nothing here imports neural-tangents.
"""

from __future__ import annotations

import functools
import math
import sys
import time
import warnings
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence, Union

import flax.linen as nn
import jax
import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.special

from ecrn_jax._src.config import ArchConfig, ECRNConfig
from ecrn_jax._src.empirical import empirical_ntk
from ecrn_jax._src.twin import (InfiniteKernels, block_scales, canonical_get, check_config,
                                check_fourier_limit, fourier_b, structural_config, twin_core,
                                twin_diagonal_core,
                                uses_fourier)
from ecrn_jax._src.validation import (as_float_array, check_diag_reg, check_finite,
                                      check_finite_inputs, check_time)
from ecrn_jax._src.models import fourier_embed, resolve_dtype

KERNELS = ('nngp', 'ntk')
SOLVE_DTYPES = ('float64', 'float32')
JITTER_SCHEDULE = tuple(10.0 ** e for e in range(-10, -1))


class JitterWarning(UserWarning):
  """A Cholesky factorization succeeded only after adding jitter to the diagonal."""




def _check_kernels(k_train_train, y_train, k_test_train, dtype):
  if dtype not in SOLVE_DTYPES:
    raise ValueError(f'dtype must be one of {list(SOLVE_DTYPES)}, got {dtype!r}.')
  k_train_train = as_float_array('k_train_train', k_train_train, dtype)
  if k_train_train.ndim != 2 or k_train_train.shape[0] != k_train_train.shape[1]:
    raise ValueError(f'k_train_train must be a square (N, N) matrix, got shape '
                     f'{k_train_train.shape}.')
  n = k_train_train.shape[0]
  if n == 0:
    raise ValueError('k_train_train is empty: kernel regression needs at least one '
                     'training example.')
  y_train = as_float_array('y_train', y_train, dtype)
  if y_train.ndim not in (1, 2) or y_train.shape[0] != n:
    raise ValueError(f'y_train must have shape (N,) or (N, C) with N = {n} (the size of '
                     f'k_train_train), got {y_train.shape}.')
  check_finite('k_train_train', k_train_train)
  check_finite('y_train', y_train)
  if k_test_train is not None:
    k_test_train = as_float_array('k_test_train', k_test_train, dtype)
    if k_test_train.ndim != 2 or k_test_train.shape[1] != n:
      raise ValueError(f'k_test_train must have shape (M, N) with N = {n}, got '
                       f'{k_test_train.shape}.')
    check_finite('k_test_train', k_test_train)
  return k_train_train, y_train, k_test_train


def mean_diagonal(kernel) -> float:
  """tr(K)/N of an (N, N) kernel: the unit in which `diag_reg` and jitter are measured."""
  kernel = np.asarray(kernel)
  value = float(np.trace(kernel)) / kernel.shape[0]
  if not value > 0:
    raise ValueError(f'the mean of the kernel diagonal is {value}: a kernel (covariance) '
                     'matrix has a positive diagonal, so this is not a valid kernel.')
  return value


def cholesky_with_jitter(matrix, *, name: str = 'k_train_train + diag_reg·I'
                         ) -> tuple[np.ndarray, float]:
  """Lower Cholesky factor L (L Lᵀ = A + jitter·I) of a symmetric (N, N) matrix A.

  Tries jitter = 0, then jitter = j·tr(A)/N for j in 1e-10, 1e-9, …, 1e-2, and warns
  (`JitterWarning`) with the jitter it needed.

  Returns:
    (L, absolute jitter added).
  Raises:
    ValueError: A is not positive definite even with the largest jitter.
  """
  matrix = np.asarray(matrix)
  scale = mean_diagonal(matrix)
  for relative in (0.0,) + JITTER_SCHEDULE:
    jitter = relative * scale
    candidate = matrix
    if jitter:
      candidate = matrix.copy()
      candidate[np.diag_indices_from(candidate)] += jitter
    try:
      factor = scipy.linalg.cholesky(candidate, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
      continue
    if not np.all(np.isfinite(factor)):
      continue
    if jitter:
      warnings.warn(
          f'the Cholesky factorization of {name} failed; it succeeded after adding '
          f'jitter {relative:.0e}·mean(diag) = {jitter:.3e} to the diagonal. Increase diag_reg '
          'to regularize explicitly.', JitterWarning, stacklevel=3)
    return factor, jitter
  raise ValueError(
      f'{name} is not positive definite, even with jitter {JITTER_SCHEDULE[-1]:.0e}·mean(diag) '
      'added to the diagonal. Check that it is a kernel matrix (symmetric, positive '
      'semi-definite) and increase diag_reg.')


def regularized_kernel(k_train_train: np.ndarray, diag_reg: float) -> np.ndarray:
  """Θ + diag_reg·tr(Θ)/N·I (a copy). LAPACK reads its lower triangle only."""
  regularized = np.array(k_train_train, copy=True)
  regularized[np.diag_indices_from(regularized)] += diag_reg * mean_diagonal(k_train_train)
  return regularized


def dual_coefficients(k_train_train, y_train, *, diag_reg: float = 0.0, t=None,
                      learning_rate: float = 1.0, dtype: str = 'float64') -> np.ndarray:
  """A with predictions f_t(x) = Θ(x, X) A: the closed form of the module docstring (f₀ ≡ 0).

  Args:
    k_train_train: (N, N) kernel Θ(X, X) (NTK or NNGP).
    y_train: (N,) or (N, C) targets (or residuals Y − f₀(X)).
    diag_reg: relative ridge, r = diag_reg · tr(Θ)/N.
    t: None for t = ∞ (Cholesky solve), a time >= 0, or a 1-D array of T times
      (eigendecomposition of Θ_r; negative round-off eigenvalues are clipped at 0).
    learning_rate: η; only η·t matters.
    dtype: 'float64' (default) or 'float32' for the solve.
  Returns:
    (N,) or (N, C); with an array t, (T, N) or (T, N, C).
  """
  diag_reg = check_diag_reg(diag_reg)
  times = check_time(t, learning_rate)
  k_train_train, y_train, _ = _check_kernels(k_train_train, y_train, None, dtype)
  n = k_train_train.shape[0]
  regularized = regularized_kernel(k_train_train, diag_reg)
  if times is None:
    factor, _ = cholesky_with_jitter(regularized)
    return scipy.linalg.cho_solve((factor, True), y_train, check_finite=False)
  eigenvalues, eigenvectors = scipy.linalg.eigh(regularized, check_finite=False)
  eigenvalues = np.maximum(eigenvalues, 0.0)
  tau = np.atleast_1d(times)[:, None] * (learning_rate / n)                 # (T, 1)
  exponent = eigenvalues[None, :] * tau                                     # (T, N)
  safe = np.where(eigenvalues > 0, eigenvalues, 1.0)[None, :]
  # (1 − e^{−λτ})/λ, which tends to τ as λ → 0.
  gain = np.where(eigenvalues[None, :] > 0, -np.expm1(-exponent) / safe, tau)
  projected = eigenvectors.T @ y_train.reshape(n, -1)                       # (N, C)
  coefficients = np.einsum('ij,tj,jc->tic', eigenvectors, gain.astype(dtype), projected)
  coefficients = coefficients.reshape((len(tau),) + y_train.shape)
  return coefficients if times.ndim else coefficients[0]


def kernel_regression(k_train_train, y_train, k_test_train, *, diag_reg: float = 0.0, t=None,
                      learning_rate: float = 1.0, fx_train_0=None, fx_test_0=None,
                      dtype: str = 'float64') -> np.ndarray:
  """f_t(x_test) = f₀(x_test) + Θ(x_test, X) Θ_r⁻¹ (I − e^{−ηtΘ_r/N}) (Y − f₀(X)).

  NTK: the mean output of infinitely wide networks trained by gradient flow for time t
  (t = None: to convergence). NNGP with t = None: the NNGP posterior mean.

  Args:
    k_train_train: (N, N) kernel on the training inputs.
    y_train: (N,) or (N, C) targets.
    k_test_train: (M, N) kernel between test and training inputs.
    diag_reg: relative ridge, r = diag_reg · tr(Θ)/N.
    t: None (∞), a time >= 0 or a 1-D array of times.
    learning_rate: η.
    fx_train_0, fx_test_0: initial outputs f₀(X) (like y_train) and f₀(x_test) ((M,) or
      (M, C)) for the linearized network's prediction; None for f₀ ≡ 0.
    dtype: 'float64' (default) or 'float32'.
  Returns:
    (M,) or (M, C) predictions; with an array t, a leading axis of length T.
  """
  k_train_train, y_train, k_test_train = _check_kernels(k_train_train, y_train, k_test_train,
                                                        dtype)
  if (fx_train_0 is None) != (fx_test_0 is None):
    raise ValueError('pass both fx_train_0 and fx_test_0 (the linearized network) or '
                     'neither (f₀ ≡ 0).')
  residual = y_train
  if fx_train_0 is not None:
    fx_train_0 = as_float_array('fx_train_0', fx_train_0, dtype).reshape(y_train.shape)
    residual = y_train - fx_train_0
  coefficients = dual_coefficients(k_train_train, residual, diag_reg=diag_reg, t=t,
                                   learning_rate=learning_rate, dtype=dtype)
  predictions = np.tensordot(coefficients, k_test_train, axes=([-y_train.ndim], [1]))
  predictions = np.moveaxis(predictions, -1, -y_train.ndim)
  if fx_test_0 is not None:
    expected = (k_test_train.shape[0],) + y_train.shape[1:]
    predictions = predictions + as_float_array('fx_test_0', fx_test_0, dtype).reshape(expected)
  return predictions


class GaussianPosterior(NamedTuple):
  """Posterior mean (M,) or (M, C) and covariance (M, M), variance (M,), or None."""
  mean: np.ndarray
  covariance: Optional[np.ndarray]


def gp_posterior(k_train_train, y_train, k_test_train, k_test_test=None, *,
                 diag_reg: float = 0.0, dtype: str = 'float64') -> GaussianPosterior:
  """Posterior of the Gaussian process with kernel K (the NNGP for Bayesian networks).

  mean = K(x, X) K_r⁻¹ Y, covariance = K(x, x) − K(x, X) K_r⁻¹ K(X, x), K_r = K + r·I with
  r = diag_reg · tr(K)/N (so r acts as the observation-noise variance). The covariance is that
  of the latent function, shared by every output column (noise not added).

  Args:
    k_train_train: (N, N); y_train: (N,) or (N, C); k_test_train: (M, N).
    k_test_test: None (mean only), the (M, M) test kernel (full covariance) or its
      diagonal (M,) (variances only).
    diag_reg: relative ridge.
  Returns:
    `GaussianPosterior(mean, covariance)`.
  """
  diag_reg = check_diag_reg(diag_reg)
  k_train_train, y_train, k_test_train = _check_kernels(k_train_train, y_train, k_test_train,
                                                        dtype)
  factor, _ = cholesky_with_jitter(regularized_kernel(k_train_train, diag_reg))
  mean = k_test_train @ scipy.linalg.cho_solve((factor, True), y_train, check_finite=False)
  if k_test_test is None:
    return GaussianPosterior(mean, None)
  k_test_test = as_float_array('k_test_test', k_test_test, dtype)
  m = k_test_train.shape[0]
  if k_test_test.shape not in ((m, m), (m,)):
    raise ValueError(f'k_test_test must be the (M, M) = ({m}, {m}) test kernel or its '
                     f'diagonal (M,), got shape {k_test_test.shape}.')
  check_finite('k_test_test', k_test_test)
  whitened = scipy.linalg.solve_triangular(factor, k_test_train.T, lower=True,
                                           check_finite=False)              # (N, M)
  if k_test_test.ndim == 1:
    return GaussianPosterior(mean, k_test_test - np.einsum('nm,nm->m', whitened, whitened))
  return GaussianPosterior(mean, k_test_test - whitened.T @ whitened)




@functools.lru_cache(maxsize=32)
def _tile_kernel_fn(config: ArchConfig, get: tuple[str, ...], devices: tuple, x64: bool,
                    fourier_limit: bool):
  """Jitted functions of input tiles (γ(x), or x for the limit and configs without Fourier
  features) and the block scales: (x1, x2, scales) → tuple of kernels with the rows of x1
  sharded over `devices`; (x, scales) → tuple of diagonals diag K(x, x), (N,) each, in O(N)."""
  del x64   # part of the cache key only: the kernels are built under the caller's precision.
  from jax.sharding import Mesh, PartitionSpec  # pylint: disable=g-import-not-at-top
  from ecrn_jax._src.compat import shard_map  # pylint: disable=g-import-not-at-top

  def tile(x1, x2, scales):
    return twin_core(x1, x2, None, scales, config=config, names=get, symmetric=False,
                     fourier_limit=fourier_limit)

  def diagonal(x, scales):
    return twin_diagonal_core(x, None, scales, config=config, names=get,
                              fourier_limit=fourier_limit)

  mesh = Mesh(np.asarray(devices), ('rows',))
  replicated = PartitionSpec()
  sharded = shard_map(tile, mesh, (PartitionSpec('rows'), replicated, replicated),
                      PartitionSpec('rows'))
  return jax.jit(sharded), jax.jit(diagonal), mesh


def _bucket(size: int, cap: int) -> int:
  """The next power of two >= size (at least 8), capped at `cap`: few distinct tile shapes."""
  return min(cap, max(8, 1 << (max(size, 1) - 1).bit_length()))


def _padded(block: np.ndarray, rows: int) -> np.ndarray:
  if block.shape[0] == rows:
    return block
  return np.pad(block, ((0, rows - block.shape[0]), (0, 0)), mode='edge')


def _twin_inputs(name: str, config, x, variables, fourier_limit: bool, chunk: int
                 ) -> np.ndarray:
  """(N, ...) inputs → what the tiles take, as NumPy in the config's dtype: γ(x) (N, 2m),
  computed once here in chunks, when the config has Fourier features (with B from
  `variables`); the flattened x (N, d) otherwise and with `fourier_limit`."""
  check_config(config)
  check_fourier_limit(config, fourier_limit)
  x = np.asarray(x)
  if x.ndim < 2:
    raise ValueError(f'{name} must be batched with shape (N, d), got shape {x.shape}; '
                     'for one example use x[None].')
  if x.shape[0] == 0:
    raise ValueError(f'{name} is empty: need at least one example.')
  check_finite_inputs(name, x)
  dtype = resolve_dtype(config.dtype)
  x = x.reshape(x.shape[0], -1).astype(np.dtype(dtype))
  if not uses_fourier(config) or fourier_limit:
    return x
  b_matrix = jax.numpy.asarray(fourier_b(config, variables, x.shape[1]), dtype)
  embed = jax.jit(fourier_embed)
  return np.concatenate([np.asarray(embed(x[i:i + chunk], b_matrix))
                         for i in range(0, x.shape[0], chunk)])


def _block_scales(config) -> jax.Array:
  dtype = resolve_dtype(config.dtype)
  if isinstance(config, ECRNConfig):
    return jax.numpy.asarray(block_scales(config), dtype)
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
    print(f'{label}: {done}/{total} tiles ({100.0 * done / total:.0f}%), {elapsed:.1f} s '
          f'elapsed, ~{remaining:.1f} s left', file=sys.stderr, flush=True)
  return report


def _resolve_devices(devices) -> tuple:
  if devices is None:
    return tuple(jax.local_devices())
  if isinstance(devices, int) and not isinstance(devices, bool):
    available = jax.local_devices()
    if not 1 <= devices <= len(available):
      raise ValueError(f'devices={devices} but {len(available)} local devices exist; pass '
                       f'1..{len(available)}, a list of jax devices, or None for all.')
    return tuple(available[:devices])
  devices = tuple(devices)
  if not devices:
    raise ValueError('devices is empty: pass None for all local devices.')
  return devices


def batched_infinite_kernels(
    config: ArchConfig, x1, x2=None, *, variables: Optional[Mapping[str, Any]] = None,
    get: Union[str, Sequence[str]] = ('nngp', 'ntk'), batch_size: int = 512,
    devices: Union[None, int, Sequence[Any]] = None,
    progress: Union[bool, Callable[[int, int], None]] = False,
    out: Optional[Mapping[str, np.ndarray]] = None, fourier_limit: bool = False):
  """The twin's K∞ and/or Θ∞ on γ(x₁), γ(x₂), computed in tiles on one or several devices.

  Equal to `infinite_kernels(config, x1, x2, variables=variables)` (evaluation-mode survival
  scale) up to round-off. Memory: the result (on the host, or `out`) plus the inputs plus a
  few tiles: each step computes a (n_dev·batch_size) × batch_size tile, its rows split over
  the devices (`shard_map` over a one-axis mesh), and copies it to the host while the next
  one runs. When x2 is None only the tiles on or above the diagonal are computed; the rest is
  mirrored, and for ReLU the diagonal is recomputed exactly (`infinite_kernel_fn`'s
  symmetric form). Ragged edges are padded (to a few bucketed shapes, so each compiles once)
  and cropped.

  Args:
    config: `ECRNConfig` or `MLPConfig`.
    x1: (N₁, ...) inputs; x2: (N₂, ...) or None for x1.
    variables: the finite network's variables (for B) when the config has Fourier features.
    get: 'nngp', 'ntk' or a tuple of them.
    batch_size: tile edge per device.
    devices: None (all local devices), a number of local devices, or a list of devices.
    progress: False, True (report to stderr every 5 s) or a callable(done_tiles, total_tiles).
    out: optional preallocated (N₁, N₂) arrays (e.g. `np.memmap`) keyed by kernel name.
    fourier_limit: infinitely many Fourier features (see `infinite_kernel_fn`).
  Returns:
    A NumPy array (N₁, N₂) in the config's dtype if `get` is a string, else
    `InfiniteKernels(nngp, ntk)` with None for a kernel not requested.
  """
  names, single = canonical_get(get)
  if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
      or batch_size < 1:
    raise ValueError(f'batch_size must be a positive integer, got {batch_size!r}.')
  batch_size = int(batch_size)
  devices = _resolve_devices(devices)
  num_devices = len(devices)
  dtype = np.dtype(resolve_dtype(config.dtype))
  symmetric = x2 is None
  chunk = batch_size * num_devices
  a1 = _twin_inputs('x1', config, x1, variables, fourier_limit, chunk)
  a2 = a1 if symmetric else _twin_inputs('x2', config, x2, variables, fourier_limit, chunk)
  if a1.shape[1] != a2.shape[1]:
    raise ValueError(f'x1 and x2 must have the same number of features, got '
                     f'{a1.shape[1]} and {a2.shape[1]}.')
  scales = _block_scales(config)
  n1, n2 = a1.shape[0], a2.shape[0]
  results = {}
  for name in names:
    if out is not None and name in out:
      if tuple(out[name].shape) != (n1, n2):
        raise ValueError(f'out[{name!r}] must have shape ({n1}, {n2}), got {out[name].shape}.')
      results[name] = out[name]
    else:
      results[name] = np.empty((n1, n2), dtype)

  fn, diagonal_fn, mesh = _tile_kernel_fn(structural_config(config), names, devices,
                                          bool(jax.config.jax_enable_x64), bool(fourier_limit))
  from jax.sharding import NamedSharding, PartitionSpec  # pylint: disable=g-import-not-at-top
  row_sharding = NamedSharding(mesh, PartitionSpec('rows'))
  replicated = NamedSharding(mesh, PartitionSpec())
  scales = jax.device_put(scales, replicated)

  step_rows = batch_size * num_devices
  jobs, mirrored = [], []
  for r0 in range(0, n1, step_rows):
    r1 = min(n1, r0 + step_rows)
    for c0 in range(0, n2, batch_size):
      c1 = min(n2, c0 + batch_size)
      (mirrored if symmetric and c1 <= r0 else jobs).append((r0, r1, c0, c1))
  report = progress
  if progress is True:
    report = _progress_printer('batched_infinite_kernels')
  elif not progress:
    report = None

  def store(pending):
    (r0, r1, c0, c1), arrays = pending
    for name, array in zip(names, arrays):
      results[name][r0:r1, c0:c1] = np.asarray(array)[:r1 - r0, :c1 - c0]

  def launch(r0, r1, c0, c1, row_block):
    if row_block is None or row_block[0] != r0:
      rows = r1 - r0
      padded_rows = step_rows if rows == step_rows else \
          num_devices * _bucket(-(-rows // num_devices), batch_size)
      row_block = (r0, jax.device_put(_padded(a1[r0:r1], padded_rows), row_sharding))
    cols = _bucket(c1 - c0, batch_size) if c1 - c0 < batch_size else batch_size
    col_block = jax.device_put(_padded(a2[c0:c1], cols), replicated)
    return row_block, fn(row_block[1], col_block, scales)

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
  for r0, r1, c0, c1 in mirrored:
    for name in names:
      results[name][r0:r1, c0:c1] = results[name][c0:c1, r0:r1].T
  if symmetric and config.activation == 'relu':
    # ReLU's dual has infinite slope at correlation 1, so the diagonal of a tile computed from
    # two copies of the same points carries √ε round-off; each point alone is exact (O(N)).
    idx = np.arange(n1)
    for name, diagonal in zip(names, _diagonals(diagonal_fn, a1, scales, chunk, devices[0])):
      results[name][idx, idx] = diagonal
  if single:
    return results[names[0]]
  return InfiniteKernels(nngp=results.get('nngp'), ntk=results.get('ntk'))


def batched_infinite_kernel_diagonal(
    config: ArchConfig, x, *, variables: Optional[Mapping[str, Any]] = None,
    get: str = 'nngp', batch_size: int = 512, fourier_limit: bool = False) -> np.ndarray:
  """diag K∞(x, x) (get='nngp') or diag Θ∞ ('ntk'), shape (N,), in O(N): each point's own
  1 × 1 recursion (correlation exactly 1), batch_size points at a time on the first local
  device."""
  if get not in KERNELS:
    raise ValueError(f"get must be 'nngp' or 'ntk', got {get!r}.")
  if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
      or batch_size < 1:
    raise ValueError(f'batch_size must be a positive integer, got {batch_size!r}.')
  device = jax.local_devices()[0]
  a = _twin_inputs('x', config, x, variables, fourier_limit, batch_size)
  scales = _block_scales(config)
  _, diagonal_fn, _ = _tile_kernel_fn(structural_config(config), (get,), (device,),
                                      bool(jax.config.jax_enable_x64), bool(fourier_limit))
  diagonal, = _diagonals(diagonal_fn, a, scales, batch_size, device)
  return diagonal


def _diagonals(diagonal_fn, a: np.ndarray, scales, batch_size: int, device) -> list:
  """`diagonal_fn` (of `_tile_kernel_fn`) over `a` in blocks of batch_size rows (the ragged
  end padded to a bucketed size): one (N,) NumPy array per kernel name."""
  parts = []
  for i in range(0, a.shape[0], batch_size):
    block = a[i:i + batch_size]
    size = _bucket(len(block), batch_size) if len(block) < batch_size else batch_size
    parts.append([np.asarray(d)[:len(block)]
                  for d in diagonal_fn(jax.device_put(_padded(block, size), device), scales)])
  return [np.concatenate(per_name) for per_name in zip(*parts)]


def infinite_kernel_regression(
    config: ArchConfig, x_train, y_train, x_test, *,
    variables: Optional[Mapping[str, Any]] = None, kernel: str = 'ntk', t=None,
    diag_reg: float = 0.0, learning_rate: float = 1.0, return_variance: bool = False,
    batch_size: int = 512, devices: Union[None, int, Sequence[Any]] = None,
    progress: Union[bool, Callable[[int, int], None]] = False, fourier_limit: bool = False):
  """Kernel regression with the twin's Θ∞ (kernel='ntk') or K∞ ('nngp') on γ(x).

  Args:
    config, variables: the architecture and (for B) the finite network's variables.
    x_train: (N, ...); y_train: (N,) or (N, C); x_test: (M, ...).
    kernel: 'ntk' (infinitely wide networks trained by gradient flow for time t) or 'nngp'
      (t = None: the NNGP posterior mean; finite t: the readout alone trained).
    t, diag_reg, learning_rate: as in `kernel_regression`.
    return_variance: kernel='nngp', t=None only: also the NNGP posterior variance (M,) of the
      latent function.
    batch_size, devices, progress, fourier_limit: as in `batched_infinite_kernels`.
  Returns:
    Predictions (M,) or (M, C), or `GaussianPosterior(mean, variance)` with return_variance.
  """
  if kernel not in KERNELS:
    raise ValueError(f"kernel must be 'ntk' or 'nngp', got {kernel!r}.")
  if return_variance and (kernel != 'nngp' or check_time(t, learning_rate) is not None):
    raise ValueError("return_variance needs kernel='nngp' and t=None: the posterior variance "
                     'is that of the NNGP (Bayesian) posterior.')
  common = dict(variables=variables, get=kernel, batch_size=batch_size, devices=devices,
                progress=progress, fourier_limit=fourier_limit)
  k_train_train = batched_infinite_kernels(config, x_train, **common)
  k_test_train = batched_infinite_kernels(config, x_test, x_train, **common)
  if return_variance:
    k_test_diag = batched_infinite_kernel_diagonal(config, x_test, variables=variables,
                                                   get=kernel, batch_size=batch_size,
                                                   fourier_limit=fourier_limit)
    return gp_posterior(k_train_train, y_train, k_test_train, k_test_diag, diag_reg=diag_reg)
  return kernel_regression(k_train_train, y_train, k_test_train, diag_reg=diag_reg, t=t,
                           learning_rate=learning_rate)




def empirical_kernel_regression(
    model: nn.Module, variables: Mapping[str, Any], x_train, y_train, x_test, *,
    diag_reg: float = 0.0, t=None, learning_rate: float = 1.0, linearized: bool = False,
    trace_outputs: bool = True, block_size: Optional[int] = None,
    rngs: Optional[Mapping[str, jax.Array]] = None, **apply_kwargs) -> np.ndarray:
  """Kernel regression with the empirical NTK Θ_θ of `model` at `variables` (SPEC §2).

  `variables` may be those at initialization or after training. With `linearized=True` this is
  the network linearized at θ and trained by gradient flow on the MSE loss:
  f(x) + Θ_θ(x, X) Θ_r⁻¹ (I − e^{−ηtΘ_r/N}) (Y − f(X)); with False, f₀ ≡ 0 (plain kernel
  regression with Θ_θ).

  Args:
    model, variables, rngs, apply_kwargs: as in `empirical_ntk`.
    x_train: (N, ...); y_train: (N,) or (N, C); x_test: (M, ...).
    diag_reg, t, learning_rate: as in `kernel_regression`.
    linearized: add the network's own outputs f(x) (y_train must then have the model's C
      outputs).
    trace_outputs: True: Θ ⊗ I with the output-averaged (N, N) kernel; False: the full
      (N·C, N·C) kernel (exact linearized dynamics of this network).
    block_size: as in `empirical_ntk`.
  Returns:
    Predictions (M,) or (M, C) like y_train; with an array t, a leading time axis.
  """
  x_train, x_test = np.asarray(x_train), np.asarray(x_test)
  y = np.asarray(y_train, dtype=np.float64)
  kwargs = dict(block_size=block_size, rngs=rngs, **apply_kwargs)
  k_train_train = np.asarray(empirical_ntk(model, variables, x_train,
                                           trace_outputs=trace_outputs, **kwargs), np.float64)
  k_test_train = np.asarray(empirical_ntk(model, variables, x_test, x_train,
                                          trace_outputs=trace_outputs, **kwargs), np.float64)
  n, m = x_train.shape[0], x_test.shape[0]
  fx_train_0 = fx_test_0 = None
  if linearized:
    fx_train_0 = np.asarray(model.apply(variables, x_train, rngs=rngs, **apply_kwargs),
                            np.float64).reshape(n, -1)
    fx_test_0 = np.asarray(model.apply(variables, x_test, rngs=rngs, **apply_kwargs),
                           np.float64).reshape(m, -1)
    if y.reshape(n, -1).shape[1] != fx_train_0.shape[1]:
      raise ValueError(f'linearized=True needs y_train with the model\'s '
                       f'{fx_train_0.shape[1]} outputs per example, got shape {y.shape}.')
  if trace_outputs:
    if fx_train_0 is not None:
      fx_train_0, fx_test_0 = fx_train_0.reshape(y.shape), fx_test_0.reshape((m,) + y.shape[1:])
    return kernel_regression(k_train_train, y, k_test_train, diag_reg=diag_reg, t=t,
                             learning_rate=learning_rate, fx_train_0=fx_train_0,
                             fx_test_0=fx_test_0)
  c = k_train_train.shape[0] // n
  if y.reshape(n, -1).shape[1] != c:
    raise ValueError(f'trace_outputs=False needs y_train with the model\'s {c} outputs per '
                     f'example, got shape {y.shape}.')
  flat = lambda a, rows: None if a is None else a.reshape(rows * c)
  # Rows of the full kernel are (example, output) pairs, N·C of them; time stays normalized by N.
  predictions = kernel_regression(k_train_train, flat(y, n), k_test_train, diag_reg=diag_reg,
                                  t=t, learning_rate=learning_rate * c,
                                  fx_train_0=flat(fx_train_0, n), fx_test_0=flat(fx_test_0, m))
  return predictions.reshape(predictions.shape[:-1] + (m,) + y.shape[1:])




def centered_one_hot(labels, num_classes: int) -> np.ndarray:
  """Regression targets for classification: one-hot(labels) − 1/K, shape (N, K)."""
  labels = np.asarray(labels)
  if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f'labels must be a 1-D array of integers in [0, K), got {labels!r}.')
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(f'labels must lie in [0, {num_classes}), got range '
                     f'[{labels.min()}, {labels.max()}].')
  return np.eye(num_classes)[labels] - 1.0 / num_classes


def calibrated_softmax(scores, temperature: float) -> np.ndarray:
  """softmax(scores / temperature) over the last axis: (M, K) → (M, K).

  Kernel-regression scores are not probabilities; this is a calibration, honest only with a
  temperature fitted on held-out data (`fit_softmax_temperature`).
  """
  if not temperature > 0:
    raise ValueError(f'temperature must be > 0, got {temperature!r}.')
  return scipy.special.softmax(np.asarray(scores, np.float64) / temperature, axis=-1)


def fit_softmax_temperature(scores, labels, *, bounds: tuple[float, float] = (1e-4, 1e4)
                            ) -> float:
  """The temperature T minimizing the cross-entropy of softmax(scores / T) against labels.

  Fit it on held-out scores (a validation split or cross-validation predictions): on training
  inputs kernel regression nearly interpolates its targets, and T would be overconfident.

  Args:
    scores: (M, K) regression scores (e.g. `NTKClassifier.decision_function`, K > 2 columns).
    labels: (M,) integer labels in [0, K).
  """
  scores = np.asarray(scores, np.float64)
  labels = np.asarray(labels)
  if scores.ndim != 2 or labels.shape != (scores.shape[0],):
    raise ValueError(f'scores must be (M, K) and labels (M,), got {scores.shape} and '
                     f'{labels.shape}.')
  check_finite('scores', scores)

  def cross_entropy(log_t):
    log_p = scipy.special.log_softmax(scores / np.exp(log_t), axis=-1)
    return -float(np.mean(log_p[np.arange(len(labels)), labels]))

  result = scipy.optimize.minimize_scalar(cross_entropy, bounds=np.log(bounds), method='bounded',
                                          options={'xatol': 1e-6})
  return float(np.exp(result.x))
