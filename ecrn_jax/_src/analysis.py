# Copyright 2025 The ecrn_jax Authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""Spectral and alignment analysis of neural tangent kernels.

Two families of tools are provided:

* **Dense path.** Functions taking an explicit `N x N` symmetric positive
  semi-definite kernel matrix `kernel` (NumPy or JAX array). They compute in
  `float64` on the host via NumPy / SciPy and return Python floats or NumPy
  arrays:

  - `spectrum`
  - `kernel_statistics`
  - `kernel_target_alignment`
  - `generalization_bound`
  - `kernel_change`
  - `modewise_convergence`

* **Matrix-free path.** Functions taking a jittable `matvec: (n,) -> (n,)`
  implementing a symmetric linear operator (e.g. an NTK-vector product), so
  that the `n x n` matrix never has to be materialized. They run in JAX and
  return JAX arrays:

  - `top_eigenvalues` (Lanczos with full reorthogonalization)
  - `frobenius_norm_estimate` (Hutchinson with Rademacher probes)
  - `difference_matvec`

All functions are pure functions of their explicit arguments; nothing here
touches global JAX configuration. Matrix-free routines default to the widest
floating dtype JAX currently allows (`float64` when `jax_enable_x64` is set,
`float32` otherwise).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Dict, Optional, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from ecrn_jax._src.validation import as_kernel, as_targets, check_matvec, check_positive_int

__all__ = [
    'spectrum',
    'kernel_statistics',
    'kernel_target_alignment',
    'generalization_bound',
    'kernel_change',
    'top_eigenvalues',
    'frobenius_norm_estimate',
    'difference_matvec',
    'modewise_convergence',
]

ArrayLike = Union[np.ndarray, jax.Array]
MatVec = Callable[[jax.Array], jax.Array]


# ---------------------------------------------------------------------------
# Input validation helpers.
# ---------------------------------------------------------------------------


def _symmetrize(k: np.ndarray) -> np.ndarray:
  return 0.5 * (k + k.T)


def _default_dtype(dtype: Optional[Any]) -> np.dtype:
  """`dtype`, or the widest float JAX allows (float64 iff x64 is enabled)."""
  if dtype is None:
    dtype = jnp.float64
  dtype = jax.dtypes.canonicalize_dtype(dtype)
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f'`dtype` must be a real floating dtype; got {dtype}.')
  return dtype


# ---------------------------------------------------------------------------
# Dense path.
# ---------------------------------------------------------------------------


def spectrum(kernel: ArrayLike) -> np.ndarray:
  """Eigenvalues of a symmetric kernel matrix, in descending order.

  Args:
    kernel: `(N, N)` kernel matrix. It is symmetrized as `(K + K^T) / 2` first.

  Returns:
    `(N,)` float64 array of eigenvalues, largest first.
  """
  k = _symmetrize(as_kernel(kernel))
  return np.linalg.eigvalsh(k)[::-1].copy()


def kernel_statistics(
    kernel: ArrayLike,
    *,
    top_k: int = 10,
) -> Dict[str, Any]:
  """Summary statistics of the spectrum of a kernel matrix.

  Args:
    kernel: `(N, N)` symmetric PSD kernel matrix (symmetrized first).
    top_k: number of largest eigenvalues to report. Values larger than `N`
      are clipped to `N`.

  Returns:
    A dict with

    * `lambda_max`, `lambda_min`: extreme eigenvalues (floats).
    * `top_eigenvalues`: `(min(top_k, N),)` largest eigenvalues, descending.
    * `trace`: `sum_i lambda_i`.
    * `condition_number`: `lambda_max / lambda_min`, `inf` if
      `lambda_min <= 0`.
    * `effective_rank`: `(sum_i lambda_i)^2 / sum_i lambda_i^2` (`0.` for the
      zero matrix).
    * `frobenius_norm`: `||K||_F`.
  """
  top_k = check_positive_int(top_k, 'top_k')
  k = _symmetrize(as_kernel(kernel))
  eigs = np.linalg.eigvalsh(k)[::-1]
  lambda_max = float(eigs[0])
  lambda_min = float(eigs[-1])
  # Scale-free: (sum e)^2 / sum e^2 with e = lambda / max|lambda| cannot overflow
  # (float(x)**2 raises OverflowError for |x| > 1e154, e.g. a diverging network's NTK).
  scale = float(np.max(np.abs(eigs)))
  scaled = eigs / scale if scale > 0 else eigs
  sum_sq = float(np.sum(scaled**2))
  trace = float(np.trace(k))
  return {
      'lambda_max': lambda_max,
      'lambda_min': lambda_min,
      'top_eigenvalues': eigs[:min(top_k, eigs.shape[0])].copy(),
      'trace': trace,
      'condition_number': (
          lambda_max / lambda_min if lambda_min > 0 else float('inf')),
      'effective_rank': (
          float(np.sum(scaled))**2 / sum_sq if sum_sq > 0 else 0.),
      'frobenius_norm': scale * float(np.linalg.norm(scaled)),
  }


def kernel_target_alignment(kernel: ArrayLike, y: ArrayLike) -> float:
  """Kernel-target alignment `y^T K y / (||K||_F ||y||^2)`.

  For multi-output targets `y` of shape `(N, C)` the numerator is
  `sum_c y_c^T K y_c` and the denominator `||K||_F ||y||_F^2`. The value is
  in `[-1, 1]`, and in `[0, 1]` for PSD `K`.

  Args:
    kernel: `(N, N)` kernel matrix.
    y: `(N,)` or `(N, C)` targets.

  Returns:
    The alignment, a float.
  """
  k = as_kernel(kernel)
  y = as_targets(y, k.shape[0])
  k_norm = np.linalg.norm(k, 'fro')
  y_sq = float(np.sum(y**2))
  if k_norm == 0:
    raise ValueError('`kernel` is the zero matrix; alignment is undefined.')
  if y_sq == 0:
    raise ValueError('`y` is identically zero; alignment is undefined.')
  return float(np.sum(y * (k @ y)) / (k_norm * y_sq))


def generalization_bound(
    kernel: ArrayLike,
    y: ArrayLike,
    *,
    rcond: Optional[float] = None,
) -> float:
  """Arora et al. (2019) complexity term `sqrt(2 y^T K^{-1} y / N)`.

  See "Fine-Grained Analysis of Optimization and Generalization for
  Overparameterized Two-Layer Neural Networks", Theorem 5.1. For `(N, C)`
  targets the quadratic form is summed over columns.

  The quadratic form is computed with a Cholesky factorization. If `kernel` is
  not numerically positive definite, a `RuntimeWarning` is issued and a
  pseudo-inverse is used instead: eigenvalues below
  `rcond * max_i |lambda_i|` are discarded.

  Args:
    kernel: `(N, N)` symmetric PSD kernel matrix (symmetrized first).
    y: `(N,)` or `(N, C)` targets.
    rcond: relative eigenvalue cut-off for the pseudo-inverse fallback.
      Defaults to `N * eps(float64)`.

  Returns:
    The bound, a float.
  """
  k = _symmetrize(as_kernel(kernel))
  n = k.shape[0]
  y = as_targets(y, n)
  try:
    factor = scipy.linalg.cho_factor(k, lower=True, check_finite=False)
    quad = float(np.sum(y * scipy.linalg.cho_solve(factor, y,
                                                   check_finite=False)))
  except np.linalg.LinAlgError:
    eigs, vecs = np.linalg.eigh(k)
    if rcond is None:
      rcond = n * np.finfo(np.float64).eps
    threshold = rcond * np.max(np.abs(eigs))
    keep = eigs > threshold
    warnings.warn(
        '`kernel` is not positive definite; using a pseudo-inverse that '
        f'discards {int(np.sum(~keep))} of {n} eigenvalues below '
        f'{threshold:.3g}. The bound is then computed on the retained '
        'eigenspace only.', RuntimeWarning, stacklevel=2)
    proj = vecs[:, keep].T @ y
    quad = float(np.sum(proj**2 / eigs[keep][:, None]))
  return float(np.sqrt(2. * max(quad, 0.) / n))


def kernel_change(
    kernel_t: ArrayLike,
    kernel_0: ArrayLike,
) -> Dict[str, float]:
  """Change of a kernel during training, `||K_t - K_0||_F`.

  Args:
    kernel_t: `(N, N)` kernel at time `t`.
    kernel_0: `(N, N)` kernel at initialization.

  Returns:
    A dict with `delta_frobenius = ||K_t - K_0||_F` and
    `relative_delta_frobenius = ||K_t - K_0||_F / ||K_0||_F` (`inf` if
    `K_0 = 0` and `K_t != K_0`, `0.` if both are zero).
  """
  k_t = as_kernel(kernel_t, 'kernel_t')
  k_0 = as_kernel(kernel_0, 'kernel_0')
  if k_t.shape != k_0.shape:
    raise ValueError(
        f'`kernel_t` and `kernel_0` must have the same shape; got '
        f'{k_t.shape} and {k_0.shape}. Compute both on the same inputs.')
  delta = float(np.linalg.norm(k_t - k_0, 'fro'))
  norm_0 = float(np.linalg.norm(k_0, 'fro'))
  if norm_0 > 0:
    relative = delta / norm_0
  else:
    relative = 0. if delta == 0 else float('inf')
  return {'delta_frobenius': delta, 'relative_delta_frobenius': relative}


def modewise_convergence(
    kernel_0: ArrayLike,
    residual_0: ArrayLike,
    residuals: ArrayLike,
    *,
    learning_rate: float,
    top_k: int,
) -> Dict[str, np.ndarray]:
  """Observed vs. linearized-NTK-predicted decay of residual eigen-modes.

  Convention: the loss is the *mean* squared error
  `L = 1 / (2 N) sum_i ||f(x_i) - y_i||^2`, so one step of gradient descent
  with step size `learning_rate = eta` on the linearized network gives

    `r_{t+1} = r_t - (eta / N) K_0 r_t`,  `r_t = f_t(X) - y`.

  Hence with eigenpairs `(lambda_i, v_i)` of `K_0`,

    `<r_t, v_i> = (1 - eta lambda_i / N)^t <r_0, v_i>`.

  (If your loss is a sum rather than a mean, pass `learning_rate * N`.)

  Args:
    kernel_0: `(N, N)` NTK at initialization (symmetrized first).
    residual_0: `(N,)` or `(N, C)` initial residual `f_0(X) - y`, used for
      the prediction.
    residuals: `(T + 1, N)` or `(T + 1, N, C)` observed residuals
      `f_t(X) - y` for `t = 0, ..., T`.
    learning_rate: gradient descent step size `eta`.
    top_k: number of leading eigen-modes to track, `1 <= top_k <= N`.

  Returns:
    A dict with `eigenvalues` `(top_k,)` (descending), and `observed` and
    `predicted`, both `(T + 1, top_k)` or `(T + 1, top_k, C)`: the
    projections `<r_t, v_i>` of the observed residuals and their linearized
    prediction.
  """
  k = _symmetrize(as_kernel(kernel_0, 'kernel_0'))
  n = k.shape[0]
  top_k = check_positive_int(top_k, 'top_k')
  if top_k > n:
    raise ValueError(
        f'`top_k`={top_k} exceeds the kernel size N={n}; choose '
        f'`top_k <= {n}`.')
  r0 = np.asarray(residual_0, dtype=np.float64)
  rs = np.asarray(residuals, dtype=np.float64)
  if r0.ndim not in (1, 2) or r0.shape[0] != n:
    raise ValueError(
        f'`residual_0` must have shape ({n},) or ({n}, C) to match '
        f'`kernel_0`; got {r0.shape}.')
  if rs.ndim != r0.ndim + 1 or rs.shape[1:] != r0.shape:
    raise ValueError(
        f'`residuals` must have shape (T + 1, *{r0.shape}) (one residual per '
        f'step, same shape as `residual_0`); got {rs.shape}.')
  if not (np.all(np.isfinite(r0)) and np.all(np.isfinite(rs))):
    raise ValueError('`residual_0` / `residuals` contain non-finite entries.')
  learning_rate = float(learning_rate)
  if not np.isfinite(learning_rate):
    raise ValueError(f'`learning_rate` must be finite; got {learning_rate}.')

  eigs, vecs = np.linalg.eigh(k)
  eigs = eigs[::-1][:top_k]
  vecs = vecs[:, ::-1][:, :top_k]

  # `tensordot` contracts the N axis: (T+1, N[, C]) x (N, k) -> (T+1, [C,] k).
  observed = np.moveaxis(np.tensordot(rs, vecs, axes=([1], [0])), -1, 1)
  proj_0 = np.tensordot(vecs, r0, axes=([0], [0]))  # (k[, C])
  steps = np.arange(rs.shape[0])
  factors = (1. - learning_rate * eigs / n)[None, :] ** steps[:, None]
  predicted = factors.reshape(factors.shape + (1,) * (r0.ndim - 1)) * proj_0
  return {'eigenvalues': eigs.copy(), 'observed': observed,
          'predicted': predicted}


# ---------------------------------------------------------------------------
# Matrix-free path.
# ---------------------------------------------------------------------------


def difference_matvec(matvec_t: MatVec, matvec_0: MatVec) -> MatVec:
  """Returns `v -> matvec_t(v) - matvec_0(v)`, the operator `K_t - K_0`.

  Combine with `frobenius_norm_estimate` to estimate `||K_t - K_0||_F`
  without materializing either kernel.

  Args:
    matvec_t: `(n,) -> (n,)` product with `K_t`.
    matvec_0: `(n,) -> (n,)` product with `K_0`.

  Returns:
    A `(n,) -> (n,)` function computing `(K_t - K_0) v`.
  """
  def matvec(v: jax.Array) -> jax.Array:
    return matvec_t(v) - matvec_0(v)
  return matvec


def _orthogonalize(basis: jax.Array, w: jax.Array) -> jax.Array:
  """Removes from `w` its projection on the rows of `basis` (twice, CGS2)."""
  w = w - basis.T @ (basis @ w)
  return w - basis.T @ (basis @ w)


def _lanczos(
    matvec: MatVec,
    key: jax.Array,
    n: int,
    num_iterations: int,
    dtype: np.dtype,
) -> Tuple[jax.Array, jax.Array]:
  """Lanczos tridiagonalization with full reorthogonalization.

  Args:
    matvec: `(n,) -> (n,)` symmetric operator.
    key: PRNG key for the starting (and restart) vectors.
    n: operator dimension.
    num_iterations: number of Lanczos steps `m <= n`.
    dtype: working dtype.

  Returns:
    `(tridiagonal, basis)`: the `(m, m)` matrix `T = Q^T A Q` and the `(m, n)`
    orthonormal Lanczos basis `Q^T`.

  On breakdown (`beta_j ~ 0`, the Krylov space is invariant) the recursion is
  restarted with a fresh random vector orthogonal to the current basis and
  `beta_j` is set to exactly zero, so `T` becomes block diagonal and remains
  the exact projection of the operator onto the basis.
  """
  m = num_iterations
  eps = jnp.finfo(dtype).eps
  tol = 10. * np.sqrt(n) * eps
  init_key, restart_key = jax.random.split(key)

  v0 = jax.random.normal(init_key, (n,), dtype)
  v0 = v0 / jnp.linalg.norm(v0)
  basis = jnp.zeros((m + 1, n), dtype).at[0].set(v0)
  alphas = jnp.zeros((m,), dtype)
  betas = jnp.zeros((m,), dtype)
  rows = jnp.arange(m + 1)

  def body(j, state):
    basis, alphas, betas, scale = state
    v = basis[j]
    w = matvec(v).astype(dtype)
    alpha = jnp.vdot(v, w)
    active = jnp.where((rows <= j)[:, None], basis, jnp.zeros((), dtype))
    # Full reorthogonalization subsumes the three-term recurrence.
    w = _orthogonalize(active, w)
    beta = jnp.linalg.norm(w)
    scale = jnp.maximum(scale, jnp.abs(alpha) + beta)
    breakdown = beta <= tol * scale

    restart = jax.random.normal(jax.random.fold_in(restart_key, j), (n,), dtype)
    restart = _orthogonalize(active, restart)
    restart_norm = jnp.linalg.norm(restart)
    restart = restart / jnp.where(restart_norm > 0, restart_norm, 1.)

    v_next = jnp.where(breakdown, restart,
                       w / jnp.where(breakdown, jnp.ones((), dtype), beta))
    beta = jnp.where(breakdown, jnp.zeros((), dtype), beta)
    basis = basis.at[j + 1].set(v_next)
    alphas = alphas.at[j].set(alpha)
    betas = betas.at[j].set(beta)
    return basis, alphas, betas, scale

  basis, alphas, betas, _ = jax.lax.fori_loop(
      0, m, body, (basis, alphas, betas, jnp.zeros((), dtype)))
  off = betas[:m - 1]
  tridiagonal = jnp.diag(alphas) + jnp.diag(off, 1) + jnp.diag(off, -1)
  return tridiagonal, basis[:m]


def _default_num_iterations(n: int, k: int) -> int:
  return min(n, max(4 * k + 40, 100))


def top_eigenvalues(
    matvec: MatVec,
    n: int,
    k: int,
    *,
    key: jax.Array,
    num_iterations: Optional[int] = None,
    dtype: Optional[Any] = None,
    return_vectors: bool = False,
) -> Union[jax.Array, Tuple[jax.Array, jax.Array]]:
  """Largest eigenvalues of a symmetric operator via Lanczos.

  Uses Lanczos iteration with full reorthogonalization (robust, `O(m^2 n)`
  extra work for `m` iterations), implemented as a `jax.lax.fori_loop`, and
  returns the `k` largest Ritz values. Breakdown (an invariant Krylov
  subspace) is handled by restarting with a random orthogonal vector.

  Args:
    matvec: jittable `(n,) -> (n,)` product with a symmetric operator `A`.
    n: operator dimension.
    k: number of eigenvalues, `1 <= k <= n`.
    key: PRNG key for the random starting vector.
    num_iterations: Lanczos steps `m`, `k <= m <= n`. Defaults to
      `min(n, max(4 k + 40, 100))`; increase it for clustered spectra. With
      `m = n` the result is exact up to rounding.
    dtype: working dtype. Defaults to `float64` if `jax_enable_x64` is set,
      else `float32`.
    return_vectors: if `True`, also return the Ritz vectors.

  Returns:
    `(k,)` eigenvalues in descending order and, if `return_vectors`, the
    `(n, k)` matrix of corresponding unit-norm Ritz vectors (columns).
  """
  n = check_positive_int(n, 'n')
  k = check_positive_int(k, 'k')
  if k > n:
    raise ValueError(
        f'`k`={k} exceeds the operator dimension n={n}; choose `k <= n`.')
  if num_iterations is None:
    num_iterations = _default_num_iterations(n, k)
  num_iterations = check_positive_int(num_iterations, 'num_iterations')
  if not k <= num_iterations <= n:
    raise ValueError(
        f'`num_iterations`={num_iterations} must satisfy k <= num_iterations '
        f'<= n (k={k}, n={n}).')
  dtype = _default_dtype(dtype)
  check_matvec(matvec, n, dtype)

  @jax.jit
  def run(key):
    tridiagonal, basis = _lanczos(matvec, key, n, num_iterations, dtype)
    ritz_values, ritz_coeffs = jnp.linalg.eigh(tridiagonal)
    ritz_values = ritz_values[::-1][:k]
    if not return_vectors:
      return ritz_values, None
    vectors = basis.T @ ritz_coeffs[:, ::-1][:, :k]
    vectors = vectors / jnp.linalg.norm(vectors, axis=0, keepdims=True)
    return ritz_values, vectors

  values, vectors = run(key)
  if return_vectors:
    return values, vectors
  return values


def frobenius_norm_estimate(
    matvec: MatVec,
    n: int,
    *,
    num_probes: int,
    key: jax.Array,
    dtype: Optional[Any] = None,
    batch_size: Optional[int] = 32,
) -> Tuple[jax.Array, jax.Array]:
  """Hutchinson estimate of `||A||_F` from matrix-vector products.

  Uses `||A||_F^2 = E_v ||A v||^2` for Rademacher probes `v` (i.i.d. +-1
  entries). The standard error of the mean of `||A v||^2` is propagated to the
  square root by the delta method, `se_F = se_{F^2} / (2 F)`.

  Args:
    matvec: jittable `(n,) -> (n,)` product with `A` (need not be symmetric;
      see `difference_matvec` for `K_t - K_0`).
    n: operator dimension.
    num_probes: number of probe vectors, `>= 1` (`>= 2` for a finite standard
      error; with one probe the standard error is `nan`).
    key: PRNG key for the probes.
    dtype: working dtype. Defaults to `float64` if `jax_enable_x64` is set,
      else `float32`.
    batch_size: probes are `vmap`-ed over in chunks of this size (memory
      control); `None` vmaps over all probes at once.

  Returns:
    `(estimate, standard_error)`: scalar arrays estimating `||A||_F` and the
    standard error of that estimate.
  """
  n = check_positive_int(n, 'n')
  num_probes = check_positive_int(num_probes, 'num_probes')
  if batch_size is not None:
    batch_size = check_positive_int(batch_size, 'batch_size')
    batch_size = min(batch_size, num_probes)
  dtype = _default_dtype(dtype)
  check_matvec(matvec, n, dtype)

  @jax.jit
  def run(key):
    probes = jax.random.rademacher(key, (num_probes, n), dtype)
    sq_norms = jax.lax.map(
        lambda v: jnp.sum(matvec(v).astype(dtype)**2), probes,
        batch_size=batch_size if batch_size is not None else num_probes)
    mean = jnp.mean(sq_norms)
    if num_probes > 1:
      se_sq = jnp.std(sq_norms, ddof=1) / np.sqrt(num_probes)
    else:
      se_sq = jnp.array(jnp.nan, dtype)
    estimate = jnp.sqrt(mean)
    # If the estimate is 0 every sample is 0, so `se_sq` is 0 (or nan).
    se = jnp.where(estimate > 0,
                   se_sq / (2. * jnp.where(estimate > 0, estimate, 1.)),
                   se_sq)
    return estimate, se

  return run(key)
