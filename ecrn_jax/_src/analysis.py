# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

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
  - `kernel_summary` (all of the above for one kernel)
  - `modewise_convergence` (on `modewise_prediction`)

* **Matrix-free path.** Functions taking a jittable `matvec: (n,) -> (n,)`
  implementing a symmetric linear operator (e.g. an NTK-vector product), so
  that the `n x n` matrix never has to be materialized. They run in JAX and
  return JAX arrays:

  - `top_eigenvalues` (Lanczos with full reorthogonalization)
  - `frobenius_norm_estimate` (Hutchinson with Rademacher probes:
    `deflated_estimate` without deflation)
  - `deflated_products` (the products of deflated Hutchinson probes)
  - `conjugate_gradient`
  - `matrix_free_products` (one Lanczos run, deflated probes, targets, CG)
  - `difference_matvec`

* **Estimates from products.** `deflated_estimate` (trace and Frobenius norm
  from the products of deflated probes; NumPy in, host float64 out, or JAX
  in, JAX out, also under `jit`), `ratio_with_stderr`,
  `matrix_free_summary` (the statistics of `kernel_summary` from
  `matrix_free_products`) and `modewise_prediction` (the linearized-GD decay
  of residual eigen-modes under a constant step, a step sequence or a
  schedule).

All functions are pure functions of their explicit arguments; nothing here
touches global JAX configuration. Matrix-free routines default to the widest
floating dtype JAX currently allows (`float64` when `jax_enable_x64` is set,
`float32` otherwise).
"""

from __future__ import annotations

import math
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
    'kernel_summary',
    'top_eigenvalues',
    'frobenius_norm_estimate',
    'deflated_products',
    'deflated_estimate',
    'ratio_with_stderr',
    'conjugate_gradient',
    'matrix_free_products',
    'matrix_free_summary',
    'difference_matvec',
    'modewise_prediction',
    'modewise_convergence',
]

ArrayLike = Union[np.ndarray, jax.Array]
MatVec = Callable[[jax.Array], jax.Array]
# A constant step size, a sequence of them, or a schedule step -> step size.
LearningRate = Union[float, ArrayLike, Callable[[Any], Any]]


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
      'top_eigenvalues': eigs[: min(top_k, eigs.shape[0])].copy(),
      'trace': trace,
      'condition_number': lambda_max / lambda_min if lambda_min > 0 else float('inf'),
      'effective_rank': float(np.sum(scaled)) ** 2 / sum_sq if sum_sq > 0 else 0.0,
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
    quad = float(np.sum(y * scipy.linalg.cho_solve(factor, y, check_finite=False)))
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
        'eigenspace only.',
        RuntimeWarning,
        stacklevel=2,
    )
    proj = vecs[:, keep].T @ y
    quad = float(np.sum(proj**2 / eigs[keep][:, None]))
  return float(np.sqrt(2.0 * max(quad, 0.0) / n))


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
        f'{k_t.shape} and {k_0.shape}. Compute both on the same inputs.'
    )
  delta = float(np.linalg.norm(k_t - k_0, 'fro'))
  norm_0 = float(np.linalg.norm(k_0, 'fro'))
  if norm_0 > 0:
    relative = delta / norm_0
  else:
    relative = 0.0 if delta == 0 else float('inf')
  return {'delta_frobenius': delta, 'relative_delta_frobenius': relative}


def kernel_summary(
    kernel: ArrayLike,
    y: ArrayLike,
    *,
    kernel_0: Optional[ArrayLike] = None,
    top_k: int = 10,
) -> Dict[str, Any]:
  """All the dense statistics of one kernel: what `KernelTracker` records.

  Args:
    kernel: `(N, N)` symmetric PSD kernel `K_t`.
    y: `(N,)` or `(N, C)` targets.
    kernel_0: `(N, N)` reference kernel `K_0` of the change (default: `kernel`).
    top_k: number of largest eigenvalues to report.

  Returns:
    `kernel_statistics`, then `kernel_change` against `kernel_0`, then
    `alignment` (`kernel_target_alignment`) and `arora_bound`
    (`generalization_bound`).
  """
  out = kernel_statistics(kernel, top_k=top_k)
  out.update(kernel_change(kernel, kernel if kernel_0 is None else kernel_0))
  out['alignment'] = kernel_target_alignment(kernel, y)
  out['arora_bound'] = generalization_bound(kernel, y)
  return out


def modewise_convergence(
    kernel_0: ArrayLike,
    residual_0: ArrayLike,
    residuals: ArrayLike,
    *,
    learning_rate: LearningRate,
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
    learning_rate: gradient descent step size `eta`; or the step sizes
      `eta_0, ..., eta_{T-1}`, or a schedule `s -> eta_s` (see
      `modewise_prediction`).
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
    raise ValueError(f'`top_k`={top_k} exceeds the kernel size N={n}; choose ' f'`top_k <= {n}`.')
  r0 = np.asarray(residual_0, dtype=np.float64)
  rs = np.asarray(residuals, dtype=np.float64)
  if r0.ndim not in (1, 2) or r0.shape[0] != n:
    raise ValueError(
        f'`residual_0` must have shape ({n},) or ({n}, C) to match ' f'`kernel_0`; got {r0.shape}.'
    )
  if rs.ndim != r0.ndim + 1 or rs.shape[1:] != r0.shape:
    raise ValueError(
        f'`residuals` must have shape (T + 1, *{r0.shape}) (one residual per '
        f'step, same shape as `residual_0`); got {rs.shape}.'
    )
  if not (np.all(np.isfinite(r0)) and np.all(np.isfinite(rs))):
    raise ValueError('`residual_0` / `residuals` contain non-finite entries.')
  eigs, vecs = np.linalg.eigh(k)
  eigs = eigs[::-1][:top_k]
  vecs = vecs[:, ::-1][:, :top_k]

  # `tensordot` contracts the N axis: (T+1, N[, C]) x (N, k) -> (T+1, [C,] k).
  observed = np.moveaxis(np.tensordot(rs, vecs, axes=([1], [0])), -1, 1)
  proj_0 = np.tensordot(vecs, r0, axes=([0], [0]))  # (k[, C])
  predicted = modewise_prediction(
      eigs, proj_0, np.arange(rs.shape[0]), num_examples=n, learning_rate=learning_rate
  )
  return {'eigenvalues': eigs.copy(), 'observed': observed, 'predicted': predicted}


def modewise_prediction(
    eigenvalues: ArrayLike,
    projections_0: ArrayLike,
    steps: Union[int, ArrayLike],
    *,
    num_examples: int,
    learning_rate: LearningRate,
    start_step: int = 0,
) -> np.ndarray:
  """Linearized-GD prediction `prod_{s<t} (1 - eta_s lambda_i / N) <r_0, v_i>`.

  A gradient-descent step of size `eta_s` on the linearized network with the
  mean squared error (see `modewise_convergence`) multiplies the projection of
  the residual on the eigenvector `v_i` of `K_0` by `1 - eta_s lambda_i / N`.

  Args:
    eigenvalues: `(k,)` eigenvalues `lambda_i` of `K_0`.
    projections_0: `(k,)` or `(k, C)` projections `<r_0, v_i>` of the residual
      at the reference step.
    steps: steps `t >= 0` taken since the reference: an int or a `(T,)` array.
    num_examples: `N`, the number of examples the loss averages over.
    learning_rate: a number `eta` (constant: `(1 - eta lambda_i / N)^t`); a
      1-D sequence `eta_0, eta_1, ...` of at least `max(steps)` step sizes; or
      a schedule `s -> eta_s` (e.g. optax's), evaluated at the int32 global
      steps `start_step + s`, as optax's own step counter.
    start_step: the global step of the reference (used by schedules only).

  Returns:
    float64 predictions of shape `steps.shape + projections_0.shape`.
  """
  lam = np.asarray(eigenvalues, dtype=np.float64)
  proj = np.asarray(projections_0, dtype=np.float64)
  if lam.ndim != 1 or proj.ndim not in (1, 2) or proj.shape[0] != lam.shape[0]:
    raise ValueError(
        f'`eigenvalues` must have shape (k,) and `projections_0` (k,) or '
        f'(k, C); got {lam.shape} and {proj.shape}.'
    )
  steps = np.asarray(steps)
  if steps.ndim > 1 or not np.issubdtype(steps.dtype, np.integer) or np.any(steps < 0):
    raise ValueError(f'`steps` must be an integer >= 0 or a 1-D array of them; got {steps}.')
  num_examples = check_positive_int(num_examples, 'num_examples')
  if callable(learning_rate) or np.ndim(learning_rate) == 1:
    etas = _step_sizes(learning_rate, int(steps.max(initial=0)), start_step)
    decay = 1.0 - etas[:, None] * lam[None, :] / num_examples
    # Row t of the cumulative product is prod_{s<t}.
    factors = np.cumprod(np.concatenate([np.ones((1, lam.shape[0])), decay]), axis=0)[steps]
  else:
    learning_rate = float(learning_rate)
    if not np.isfinite(learning_rate):
      raise ValueError(f'`learning_rate` must be finite; got {learning_rate}.')
    base = 1.0 - learning_rate * lam / num_examples
    factors = base ** int(steps) if steps.ndim == 0 else base[None, :] ** steps[:, None]
  return factors.reshape(factors.shape + (1,) * (proj.ndim - 1)) * proj


def _step_sizes(learning_rate: LearningRate, num_steps: int, start_step: int) -> np.ndarray:
  """`(num_steps,)` float64 step sizes of a schedule or a sequence."""
  if callable(learning_rate):
    counts = jnp.arange(start_step, start_step + num_steps, dtype=jnp.int32)
    return np.asarray(jax.vmap(learning_rate)(counts), dtype=np.float64)
  etas = np.asarray(learning_rate, dtype=np.float64)[:num_steps]
  if etas.shape[0] < num_steps or not np.all(np.isfinite(etas)):
    raise ValueError(
        f'`learning_rate` must hold at least {num_steps} finite step sizes; '
        f'got {np.shape(learning_rate)[0]}.'
    )
  return etas


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
  tol = 10.0 * np.sqrt(n) * eps
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
    restart = restart / jnp.where(restart_norm > 0, restart_norm, 1.0)

    v_next = jnp.where(breakdown, restart, w / jnp.where(breakdown, jnp.ones((), dtype), beta))
    beta = jnp.where(breakdown, jnp.zeros((), dtype), beta)
    basis = basis.at[j + 1].set(v_next)
    alphas = alphas.at[j].set(alpha)
    betas = betas.at[j].set(beta)
    return basis, alphas, betas, scale

  basis, alphas, betas, _ = jax.lax.fori_loop(
      0, m, body, (basis, alphas, betas, jnp.zeros((), dtype))
  )
  off = betas[: m - 1]
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
    raise ValueError(f'`k`={k} exceeds the operator dimension n={n}; choose `k <= n`.')
  if num_iterations is None:
    num_iterations = _default_num_iterations(n, k)
  num_iterations = check_positive_int(num_iterations, 'num_iterations')
  if not k <= num_iterations <= n:
    raise ValueError(
        f'`num_iterations`={num_iterations} must satisfy k <= num_iterations '
        f'<= n (k={k}, n={n}).'
    )
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
  entries): `deflated_estimate` without deflation, with each `||A v||^2`
  reduced inside the product loop (memory: `num_probes` numbers, not
  `num_probes x n`). The standard error of the mean of `||A v||^2` is
  propagated to the square root by the delta method, `se_F = se_{F^2} / (2 F)`.

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
    batch_size = min(check_positive_int(batch_size, 'batch_size'), num_probes)
  dtype = _default_dtype(dtype)
  check_matvec(matvec, n, dtype)

  @jax.jit
  def run(key):
    probes = jax.random.rademacher(key, (num_probes, n), dtype)
    squared_norms = jax.lax.map(
        lambda v: jnp.sum(matvec(v).astype(dtype) ** 2),
        probes,
        batch_size=batch_size if batch_size is not None else num_probes,
    )
    estimate = _frobenius_estimate(jnp, squared_norms, 0.0)
    return estimate['frobenius_norm'], estimate['frobenius_norm_stderr']

  return run(key)


def deflated_products(
    matvec: MatVec,
    probes: jax.Array,
    basis: jax.Array,
    *,
    batch_size: Optional[int] = None,
) -> Tuple[jax.Array, jax.Array, jax.Array]:
  """The products `deflated_estimate` takes: `A w_j` and `A q_i` (jittable).

  Args:
    matvec: `(n,) -> (n,)` product with `A`.
    probes: `(p, n)` probes `v_j` (Rademacher for Hutchinson).
    basis: `(r, n)` orthonormal rows `q_i` (`Q^T`); `r = 0` for no deflation.
    batch_size: probes `vmap`-ed over together in `jax.lax.map` (memory
      control); `None` for all at once.

  Returns:
    `(projected, probe_products, basis_products)`: the `(p, n)` deflated
    probes `w_j = (I - Q Q^T) v_j`, the `(p, n)` products `A w_j` and the
    `(r, n)` products `A q_i`.
  """
  num_probes = probes.shape[0]
  projected = probes - (probes @ basis.T) @ basis
  probe_products = jax.lax.map(
      matvec, projected, batch_size=min(batch_size or num_probes, num_probes)
  )
  if basis.shape[0] == 0:
    basis_products = jnp.zeros((0, probes.shape[1]), probe_products.dtype)
  else:
    basis_products = jax.lax.map(matvec, basis)
  return projected, probe_products, basis_products


def deflated_estimate(
    probe_products: ArrayLike,
    basis_products: Optional[ArrayLike] = None,
    *,
    projected_probes: Optional[ArrayLike] = None,
    basis: Optional[ArrayLike] = None,
) -> Dict[str, ArrayLike]:
  """Deflated Hutchinson estimates of `||A||_F^2`, `||A||_F` and `tr A`.

  Exact on the span of an orthonormal `Q` (`n x r`), Hutchinson on its
  complement, with deflated probes `w_j = (I - Q Q^T) v_j` (Rademacher `v_j`):

    `||A||_F^2 = ||A Q||_F^2 + E ||A w||^2`,
    `tr A = tr Q^T A Q + E [w^T A w]`,

  both unbiased for any fixed `Q`; `r = 0` is plain Hutchinson. Deflating the
  dominant eigenvectors removes most of the variance for a spectrum like an
  NTK's. Standard errors are those of the sample means (`nan` for one probe);
  the one of `||A||_F` follows by the delta method, `se_{F^2} / (2 F)`.

  NumPy inputs are reduced on the host in their dtype (float64 for the
  tracker); JAX inputs give JAX outputs, also under `jit`.

  Args:
    probe_products: `(p, n)` products `A w_j` (see `deflated_products`).
    basis_products: `(r, n)` products `A q_i`; `None` without deflation.
    projected_probes: `(p, n)` deflated probes `w_j`, for the trace.
    basis: `(r, n)` orthonormal rows `q_i`, for the trace (`None`: `r = 0`).

  Returns:
    A dict with `frobenius_norm_sq`, `frobenius_norm` and their
    `*_stderr`, and, given `projected_probes`, `trace` and `trace_stderr`.
  """
  xp = jnp if isinstance(probe_products, jax.Array) else np
  exact_sq = 0.0 if basis_products is None else xp.sum(basis_products**2)
  out = _frobenius_estimate(xp, xp.sum(probe_products**2, axis=1), exact_sq)
  if projected_probes is not None:
    exact_trace = 0.0 if basis is None else xp.sum(basis * basis_products)
    out['trace'], out['trace_stderr'] = _mean_with_stderr(
        xp, xp.sum(projected_probes * probe_products, axis=1), exact_trace
    )
  return out


def _frobenius_estimate(xp, squared_norms, exact_sq):
  """The Frobenius entries of `deflated_estimate` from `||A w_j||^2` and `||A Q||_F^2`."""
  sq, sq_se = _mean_with_stderr(xp, squared_norms, exact_sq)
  norm, norm_se = _sqrt_with_stderr(xp, sq, sq_se)
  return {
      'frobenius_norm_sq': sq,
      'frobenius_norm_sq_stderr': sq_se,
      'frobenius_norm': norm,
      'frobenius_norm_stderr': norm_se,
  }


def _mean_with_stderr(xp, samples, exact):
  """`exact` plus the mean of the samples, and the standard error of that mean."""
  count = samples.shape[0]
  mean = xp.mean(samples) + exact
  if count > 1:
    return mean, xp.std(samples, ddof=1) / np.sqrt(count)
  return mean, xp.full((), xp.nan, samples.dtype)[()]


def _sqrt_with_stderr(xp, mean, stderr):
  """`sqrt(mean)` and its delta-method standard error `stderr / (2 sqrt(mean))`."""
  root = xp.sqrt(xp.maximum(mean, 0.0))
  positive = root > 0
  # If the root is 0 every sample is 0, so the standard error is 0 (or nan).
  return root, xp.where(positive, stderr / (2.0 * xp.where(positive, root, 1.0)), stderr)[()]


def ratio_with_stderr(
    numerator: float, numerator_stderr: float, denominator: float, denominator_stderr: float
) -> Tuple[float, float]:
  """`a / b` and its first-order standard error `(a / b) sqrt((se_a / a)^2 + (se_b / b)^2)`.

  For positive estimates `a`, `b` with independent errors (e.g. the relative
  kernel change `||K_t - K_0||_F / ||K_0||_F`). The ratio is `nan` unless
  `b > 0`, its standard error unless also `a > 0`.
  """
  a, b = float(numerator), float(denominator)
  ratio = a / b if b > 0 else float('nan')
  if not (a > 0 and b > 0):
    return ratio, float('nan')
  return ratio, ratio * math.sqrt(
      (float(numerator_stderr) / a) ** 2 + (float(denominator_stderr) / b) ** 2
  )


def conjugate_gradient(
    matvec: MatVec,
    rhs: jax.Array,
    *,
    num_iterations: int,
    tol: float = 1e-12,
) -> Tuple[jax.Array, jax.Array]:
  """Solves `A x = b` for every row `b` of `rhs` by conjugate gradients (jittable).

  Args:
    matvec: `(n,) -> (n,)` product with a symmetric positive definite `A`.
    rhs: `(c, n)` right-hand sides.
    num_iterations: CG steps (at most).
    tol: relative residual at which CG stops earlier.

  Returns:
    `(solutions, residual_norms)`: `(c, n)` and `(c,)` `||A x - b||`. Then
    `b^T x` is a lower estimate of `b^T A^{-1} b` that increases to it.
  """

  def solve(b):
    solution, _ = jax.scipy.sparse.linalg.cg(matvec, b, tol=tol, maxiter=num_iterations)
    return solution, jnp.linalg.norm(matvec(solution) - b)

  return jax.lax.map(solve, rhs)


def matrix_free_products(
    matvec: MatVec,
    n: int,
    *,
    key: jax.Array,
    num_iterations: int,
    probes: jax.Array,
    targets: jax.Array,
    basis: Optional[jax.Array] = None,
    deflation_rank: int = 0,
    num_vectors: int = 0,
    cg_iterations: int = 0,
    batch_size: Optional[int] = None,
) -> Dict[str, jax.Array]:
  """The products with a symmetric `A` that `matrix_free_summary` takes (jittable).

  Args:
    matvec: `(n,) -> (n,)` product with `A`; its output dtype is the working one.
    n: operator dimension.
    key: PRNG key of the Lanczos run.
    num_iterations: Lanczos steps `m` (`<= n`): all `m` Ritz values are returned.
    probes: `(p, n)` Hutchinson probes (see `deflated_products`).
    targets: `(C, n)` target columns `y_c`.
    basis: `(r, n)` deflation basis `Q^T`; `None` to take the top
      `deflation_rank` Ritz vectors of this `A`, orthonormalized.
    deflation_rank: `r` when `basis` is `None`.
    num_vectors: top Ritz vectors returned when `basis` is `None`.
    cg_iterations: conjugate-gradient steps on `A x = y_c` (0: none).
    batch_size: probes pushed through `matvec` together.

  Returns:
    A dict with 'ritz_values' `(m,)` (descending), 'probe_products' `(p, n)`,
    'basis_products' `(r, n)`, 'target_products' `(C, n)` (`A y_c`); without
    `basis`, 'basis' `(r, n)` and 'vectors' `(n, num_vectors)`; with
    `cg_iterations`, 'solutions' `(C, n)` and 'cg_residuals' `(C,)` (see
    `conjugate_gradient`).
  """
  out = {}
  if basis is None:
    values, vectors = top_eigenvalues(
        matvec, n, num_iterations, key=key, num_iterations=num_iterations, return_vectors=True
    )
    out['vectors'] = vectors[:, :num_vectors]
    basis = out['basis'] = (
        jnp.linalg.qr(vectors[:, :deflation_rank])[0].T if deflation_rank > 0 else vectors[:, :0].T
    )
  else:
    values = top_eigenvalues(matvec, n, num_iterations, key=key, num_iterations=num_iterations)
  dtype = values.dtype
  product = lambda v: matvec(v).astype(dtype)
  out['ritz_values'] = values
  _, out['probe_products'], out['basis_products'] = deflated_products(
      product, probes.astype(dtype), basis.astype(dtype), batch_size=batch_size
  )
  targets = targets.astype(dtype)
  out['target_products'] = jax.lax.map(product, targets)
  if cg_iterations > 0:
    out['solutions'], out['cg_residuals'] = conjugate_gradient(
        product, targets, num_iterations=cg_iterations
    )
  return out


def matrix_free_summary(
    products: Dict[str, ArrayLike],
    products_0: Dict[str, ArrayLike],
    probes: ArrayLike,
    y: ArrayLike,
    *,
    top_k: int,
) -> Dict[str, float]:
  """The statistics of `kernel_summary`, from `matrix_free_products` of `A_t` and `A_0`.

  Both products must be of the same probes, key and basis (`products_0`'s
  'basis'); reduced on the host in float64. The spectrum is of the Ritz values
  (`lambda_max` and the top-k are lower bounds, `lambda_min` an upper bound);
  trace and Frobenius norms are `deflated_estimate`s with `*_stderr`; the
  change `A_t - A_0` uses `A_t w_j - A_0 w_j`. The Arora bound is from the CG
  solutions (a lower estimate; `nan` without them), with the CG
  `arora_cg_relative_residual`.

  Args:
    products: `matrix_free_products` of `A_t`.
    products_0: those of `A_0`, with its 'basis'.
    probes: `(p, n)` the probes `v_j` of both.
    y: `(n, C)` targets (their columns are `targets` of the products).
    top_k: number of largest Ritz values reported.
  """
  f64 = lambda a: np.asarray(a, dtype=np.float64)
  u, tq = f64(products['probe_products']), f64(products['basis_products'])
  u0, tq0 = f64(products_0['probe_products']), f64(products_0['basis_products'])
  basis, probes, y = f64(products_0['basis']), f64(probes), f64(y)
  theta = deflated_estimate(
      u, tq, basis=basis, projected_probes=probes - (probes @ basis.T) @ basis
  )
  theta_0, delta = deflated_estimate(u0, tq0), deflated_estimate(u - u0, tq - tq0)
  trace, fro = float(theta['trace']), float(theta['frobenius_norm'])
  relative, relative_se = ratio_with_stderr(
      delta['frobenius_norm'],
      delta['frobenius_norm_stderr'],
      theta_0['frobenius_norm'],
      theta_0['frobenius_norm_stderr'],
  )
  ritz = f64(products['ritz_values'])
  lambda_max, lambda_min = float(ritz[0]), float(ritz[-1])
  y_sq = float(np.sum(y**2))
  out = {
      'lambda_max': lambda_max,
      'lambda_min': lambda_min,
      'top_eigenvalues': ritz[:top_k].copy(),
      'trace': trace,
      'trace_stderr': float(theta['trace_stderr']),
      'condition_number': lambda_max / lambda_min if lambda_min > 0 else float('inf'),
      'effective_rank': trace**2 / fro**2 if fro > 0 else 0.0,
      'frobenius_norm': fro,
      'frobenius_norm_stderr': float(theta['frobenius_norm_stderr']),
      'delta_frobenius': float(delta['frobenius_norm']),
      'delta_frobenius_stderr': float(delta['frobenius_norm_stderr']),
      'relative_delta_frobenius': relative,
      'relative_delta_frobenius_stderr': relative_se,
      'alignment': (
          float(np.sum(y.T * f64(products['target_products']))) / (fro * y_sq)
          if fro > 0 and y_sq > 0
          else float('nan')
      ),
      'arora_bound': float('nan'),
  }
  if 'solutions' in products:
    quad = float(np.sum(y.T * f64(products['solutions'])))
    out['arora_bound'] = math.sqrt(2.0 * max(quad, 0.0) / y.shape[0])
    # The residuals in their own dtype, as the solver returned them.
    residual = np.linalg.norm(np.asarray(products['cg_residuals']))
    out['arora_cg_relative_residual'] = (
        float(residual / math.sqrt(y_sq)) if y_sq > 0 else float('nan')
    )
  return out
