# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Kernel regression with the NTK and the NNGP: closed forms, the twin's kernels, a network's.

Conventions (shared by every function here and by the scikit-learn estimators):

* Training is gradient flow on the MSE loss L(f) = ½ N⁻¹ ‖f(X) − Y‖²_F with learning rate η
  (docs/spec.md §4). With Θ_r = Θ(X, X) + r·I, the prediction at time t is

      f_t(x) = f₀(x) + Θ(x, X) Θ_r⁻¹ (I − exp(−η t Θ_r / N)) (Y − f₀(X)),

  and at t = None (∞): f_∞(x) = f₀(x) + Θ(x, X) Θ_r⁻¹ (Y − f₀(X)). With the NNGP kernel K in place
  of Θ, t = ∞ gives the NNGP posterior mean. f₀ ≡ 0 unless initial outputs are passed.
  neural-tangents' `predict.gradient_descent_mse` normalizes time by Y.size = N·C instead of N:
  its `learning_rate` equals η·C here.
* `diag_reg` is relative: r = diag_reg · tr(Θ)/N, the mean of the kernel's diagonal
  (neural-tangents' convention with `diag_reg_absolute_scale=False`). Multiplying every kernel by
  a constant leaves predictions unchanged.
* Solves run on the host with LAPACK (scipy) in float64 by default. The Cholesky solve
  (`solve_with_jitter`) checks its relative residual ‖(Θ_r + jitter·I)α − Y‖/‖Y‖ against
  `RESIDUAL_TOLERANCE`; when the factorization fails or the residual misses it, it
  retries with jitter·tr(Θ)/N added, jitter = 1e-10, 1e-9, …, 1e-2, and warns (`JitterWarning`)
  with the jitter used and the residuals reached, or raises ValueError when no jitter meets it.
  A kernel with NaN or inf entries raises ValueError.

Shapes: N training inputs, M test inputs, C outputs; targets (N,) or (N, C) and predictions of
the same trailing shape.

The twin's kernels are native JAX (`batching.py`, tiles of `twin.py`'s recursions); nothing
here imports neural-tangents.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence, Union

import flax.linen as nn
import jax
import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.special

from ecrn_jax._src import batching
from ecrn_jax._src.config import ArchConfig
from ecrn_jax._src.empirical import empirical_ntk
from ecrn_jax._src.twin import KERNELS
from ecrn_jax._src.validation import (
    as_float_array,
    check_diag_reg,
    check_finite,
    check_int,
    check_time,
)

SOLVE_DTYPES = ('float64', 'float32')
JITTER_SCHEDULE = tuple(10.0**e for e in range(-10, -1))


class JitterWarning(UserWarning):
  """A Cholesky solve needed jitter on the diagonal: to factorize, or to meet its residual."""


class JitteredSolve(NamedTuple):
  """`solve_with_jitter`'s result.

  coefficients: α with (A + jitter·I) α = rhs, like rhs (N,) or (N, C); factor: (N, N) lower L
  with L Lᵀ = A + jitter·I; jitter: the absolute jitter added; residual: max over the columns of
  ‖(A + jitter·I)α − rhs‖/‖rhs‖; unjittered_residual: the same with A alone.
  """

  coefficients: np.ndarray
  factor: np.ndarray
  jitter: float
  residual: float
  unjittered_residual: float


# The largest relative residual ‖(A + jitter·I)α − y‖/‖y‖ a solve may leave. Rounding leaves
# ≈ eps·‖A‖‖α‖/‖y‖ (eps times the condition number the targets meet), and the relative error of
# α tracks it. The bar is √eps of float32 (half its digits) in both dtypes: jitter biases α by
# the part of y on eigenvalues below it, of order one for an ill-conditioned kernel, so trading
# a float64 rounding error of 1e-6 for jitter would make the results worse, not better.
RESIDUAL_TOLERANCE = float(np.sqrt(np.finfo(np.float32).eps))


def _check_kernels(k_train_train, y_train, k_test_train, dtype):
  if dtype not in SOLVE_DTYPES:
    raise ValueError(f'dtype must be one of {list(SOLVE_DTYPES)}, got {dtype!r}.')
  k_train_train = as_float_array('k_train_train', k_train_train, dtype)
  if k_train_train.ndim != 2 or k_train_train.shape[0] != k_train_train.shape[1]:
    raise ValueError(
        f'k_train_train must be a square (N, N) matrix, got shape ' f'{k_train_train.shape}.'
    )
  n = k_train_train.shape[0]
  if n == 0:
    raise ValueError(
        'k_train_train is empty: kernel regression needs at least one ' 'training example.'
    )
  y_train = as_float_array('y_train', y_train, dtype)
  if y_train.ndim not in (1, 2) or y_train.shape[0] != n:
    raise ValueError(
        f'y_train must have shape (N,) or (N, C) with N = {n} (the size of '
        f'k_train_train), got {y_train.shape}.'
    )
  check_finite('k_train_train', k_train_train)
  check_finite('y_train', y_train, 'Remove or impute the missing targets first.')
  if k_test_train is not None:
    k_test_train = _check_test_kernel(k_test_train, n, dtype)
  return k_train_train, y_train, k_test_train


def _check_test_kernel(k_test_train, n: int, dtype) -> np.ndarray:
  k_test_train = as_float_array('k_test_train', k_test_train, dtype)
  if k_test_train.ndim != 2 or k_test_train.shape[1] != n:
    raise ValueError(
        f'k_test_train must have shape (M, N) with N = {n}, got ' f'{k_test_train.shape}.'
    )
  check_finite('k_test_train', k_test_train)
  return k_test_train


def mean_diagonal(kernel) -> float:
  """tr(K)/N of an (N, N) kernel: the unit in which `diag_reg` and jitter are measured."""
  kernel = np.asarray(kernel)
  value = float(np.trace(kernel)) / kernel.shape[0]
  if not value > 0:
    raise ValueError(
        f'the mean of the kernel diagonal is {value}: a kernel (covariance) '
        'matrix has a positive diagonal, so this is not a valid kernel.'
    )
  return value


def _jittered_factors(matrix: np.ndarray):
  """Yields (relative jitter, A + jitter·I, its lower Cholesky factor) for jitter 0, then
  j·tr(A)/N for j in JITTER_SCHEDULE; a failed factorization yields None for the factor."""
  scale = mean_diagonal(matrix)
  for relative in (0.0,) + JITTER_SCHEDULE:
    candidate = matrix
    if relative:
      candidate = matrix.copy()
      candidate[np.diag_indices_from(candidate)] += relative * scale
    try:
      factor = scipy.linalg.cholesky(candidate, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
      factor = None
    if factor is not None and not np.all(np.isfinite(factor)):
      factor = None
    yield relative, candidate, factor


def _not_positive_definite(name: str) -> ValueError:
  return ValueError(
      f'{name} is not positive definite, even with jitter {JITTER_SCHEDULE[-1]:.0e}·mean(diag) '
      'added to the diagonal. Check that it is a kernel matrix (symmetric, positive '
      'semi-definite) and increase diag_reg.'
  )


def cholesky_with_jitter(
    matrix, *, name: str = 'k_train_train + diag_reg·I'
) -> tuple[np.ndarray, float]:
  """Lower Cholesky factor L (L Lᵀ = A + jitter·I) of a symmetric (N, N) matrix A.

  Tries jitter = 0, then jitter = j·tr(A)/N for j in 1e-10, 1e-9, …, 1e-2, and warns
  (`JitterWarning`) with the jitter it needed. It checks only that the factorization succeeds,
  not that solves with L are accurate: to solve, use `solve_with_jitter`.

  Returns:
    (L, absolute jitter added).
  Raises:
    ValueError: A is not positive definite even with the largest jitter.
  """
  matrix = np.asarray(matrix)
  scale = mean_diagonal(matrix)
  for relative, _, factor in _jittered_factors(matrix):
    if factor is None:
      continue
    if relative:
      warnings.warn(
          f'the Cholesky factorization of {name} failed; it succeeded after adding '
          f'jitter {relative:.0e}·mean(diag) = {relative * scale:.3e} to the diagonal. '
          'Increase diag_reg to regularize explicitly.',
          JitterWarning,
          stacklevel=3,
      )
    return factor, relative * scale
  raise _not_positive_definite(name)


def solve_with_jitter(matrix, rhs, *, name: str = 'k_train_train + diag_reg·I') -> JitteredSolve:
  """α = (A + jitter·I)⁻¹ rhs by Cholesky, with the smallest jitter that makes the solve accurate.

  Tries jitter = 0, then j·tr(A)/N for j in 1e-10, …, 1e-2, until the factorization succeeds
  and the relative residual ‖(A + jitter·I)α − rhs‖/‖rhs‖ (max over columns, evaluated in
  float64) is at most `RESIDUAL_TOLERANCE` (3.5e-4). The residual is that of the jittered system,
  the one L factorizes: it measures the rounding error of the solve, which jitter reduces.
  Against A itself the residual also holds jitter·α, the bias the jitter brings, which is of
  order one for a singular A whatever the precision; it is reported (`unjittered_residual`,
  and in the warning), not required. With jitter > 0 it warns (`JitterWarning`) with the jitter
  and both residuals. A jitter-free solve that meets the tolerance is plain `cho_solve`.

  Args:
    matrix: (N, N) symmetric A (its lower triangle is read), float32 or float64.
    rhs: (N,) or (N, C), of A's dtype.
    name: how errors and warnings call A.
  Returns:
    `JitteredSolve(coefficients, factor, jitter, residual, unjittered_residual)`.
  Raises:
    ValueError: no jitter up to 1e-2·tr(A)/N both factorizes A and meets the tolerance.
  """
  matrix, rhs = np.asarray(matrix), np.asarray(rhs)
  dtype = matrix.dtype
  scale = mean_diagonal(matrix)
  tried = []  # (relative jitter, residual), residual None where the factorization failed
  for relative, candidate, factor in _jittered_factors(matrix):
    if factor is None:
      tried.append((relative, None))
      continue
    coefficients = scipy.linalg.cho_solve((factor, True), rhs, check_finite=False)
    residual, unjittered = _relative_residuals(matrix, candidate, coefficients, rhs)
    if residual <= RESIDUAL_TOLERANCE:
      if relative:
        warnings.warn(
            f'solving with {name} needed jitter {relative:.0e}·mean(diag) = '
            f'{relative * scale:.3e} on the diagonal: {_why_jitter(tried)}. '
            f'With it the relative residual ‖(A + jitter·I)α − y‖/‖y‖ is {residual:.1e} '
            f'(tolerance {RESIDUAL_TOLERANCE:.1e}, dtype {dtype}); against A itself (no jitter) '
            f'it is {unjittered:.1e}, which measures how far the jitter moves the results from '
            'those asked for. ' + _advice(dtype),
            JitterWarning,
            stacklevel=3,
        )
      return JitteredSolve(coefficients, factor, relative * scale, residual, unjittered)
    tried.append((relative, residual))
  solved = [(residual, relative) for relative, residual in tried if residual is not None]
  if not solved:
    raise _not_positive_definite(name)
  best, at = min(solved)
  raise ValueError(
      f'{name} cannot be solved accurately in {dtype}: with jitter up to '
      f'{JITTER_SCHEDULE[-1]:.0e}·mean(diag) added to the diagonal, the smallest relative '
      f'residual ‖(A + jitter·I)α − y‖/‖y‖ reached was {best:.1e} (at jitter '
      f'{at:.0e}·mean(diag)), above the tolerance {RESIDUAL_TOLERANCE:.1e}. The kernel '
      'is too ill-conditioned for this precision. ' + _advice(dtype, explicit=False)
  )


def _relative_residuals(matrix, candidate, coefficients, rhs) -> tuple[float, float]:
  """max over columns of ‖(A + jitter·I)α − y‖/‖y‖ and of ‖Aα − y‖/‖y‖, both in float64.

  candidate is A + jitter·I as factorized (its rounded diagonal included); float32 rows are
  cast in blocks, so no float64 copy of A is made.
  """
  n = matrix.shape[0]
  alpha = np.asarray(coefficients, np.float64).reshape(n, -1)
  y = np.asarray(rhs, np.float64).reshape(n, -1)
  jittered = np.empty_like(y)
  rows = max(1, (1 << 22) // n)
  for start in range(0, n, rows):
    block = slice(start, start + rows)
    jittered[block] = np.asarray(candidate[block], np.float64) @ alpha - y[block]
  added = np.asarray(candidate.diagonal(), np.float64) - np.asarray(matrix.diagonal(), np.float64)
  unjittered = jittered - added[:, None] * alpha
  y_norms = np.linalg.norm(y, axis=0)

  def worst(r):
    # A zero column of y has α = 0 and a zero residual.
    norms = np.linalg.norm(r, axis=0)
    return float(np.max(np.divide(norms, y_norms, out=np.zeros_like(norms), where=y_norms > 0)))

  return worst(jittered), worst(unjittered)


def _why_jitter(tried) -> str:
  """Why the smaller jitters in `tried` ((relative, residual or None) pairs) were refused."""
  solved = [(residual, relative) for relative, residual in tried if residual is not None]
  if not solved:
    return 'with less, its Cholesky factorization failed'
  best, at = min(solved)
  failed = ' or the Cholesky factorization failed' if len(solved) < len(tried) else ''
  return (
      f'with less, the solve was inaccurate (the smallest relative residual was {best:.1e}, at '
      f'jitter {at:.0e}·mean(diag), above the tolerance {RESIDUAL_TOLERANCE:.1e}){failed}'
  )


def _advice(dtype, explicit: bool = True) -> str:
  what = 'Set diag_reg to regularize explicitly' if explicit else 'Pass a larger diag_reg'
  if np.dtype(dtype) == np.float32:
    return f"{what}, or pass dtype='float64'."
  return f'{what}.'


def regularized_kernel(k_train_train: np.ndarray, diag_reg: float) -> np.ndarray:
  """Θ + diag_reg·tr(Θ)/N·I (a copy). LAPACK reads its lower triangle only."""
  regularized = np.array(k_train_train, copy=True)
  regularized[np.diag_indices_from(regularized)] += diag_reg * mean_diagonal(k_train_train)
  return regularized


def dual_coefficients(
    k_train_train,
    y_train,
    *,
    diag_reg: float = 0.0,
    t=None,
    learning_rate: float = 1.0,
    dtype: str = 'float64',
) -> np.ndarray:
  """A with predictions f_t(x) = Θ(x, X) A: the closed form of the module docstring (f₀ ≡ 0).

  Args:
    k_train_train: (N, N) kernel Θ(X, X) (NTK or NNGP).
    y_train: (N,) or (N, C) targets (or residuals Y − f₀(X)).
    diag_reg: relative ridge, r = diag_reg · tr(Θ)/N.
    t: None for t = ∞ (Cholesky solve, `solve_with_jitter`), a time >= 0, or a 1-D array of
      T times (eigendecomposition of Θ_r; negative round-off eigenvalues are clipped at 0).
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
    return solve_with_jitter(regularized, y_train).coefficients
  eigenvalues, eigenvectors = scipy.linalg.eigh(regularized, check_finite=False)
  eigenvalues = np.maximum(eigenvalues, 0.0)
  tau = np.atleast_1d(times)[:, None] * (learning_rate / n)  # (T, 1)
  exponent = eigenvalues[None, :] * tau  # (T, N)
  safe = np.where(eigenvalues > 0, eigenvalues, 1.0)[None, :]
  # (1 − e^{−λτ})/λ, which tends to τ as λ → 0.
  gain = np.where(eigenvalues[None, :] > 0, -np.expm1(-exponent) / safe, tau)
  projected = eigenvectors.T @ y_train.reshape(n, -1)  # (N, C)
  coefficients = np.einsum('ij,tj,jc->tic', eigenvectors, gain.astype(dtype), projected)
  coefficients = coefficients.reshape((len(tau),) + y_train.shape)
  return coefficients if times.ndim else coefficients[0]


def kernel_regression(
    k_train_train,
    y_train,
    k_test_train,
    *,
    diag_reg: float = 0.0,
    t=None,
    learning_rate: float = 1.0,
    fx_train_0=None,
    fx_test_0=None,
    dtype: str = 'float64',
):
  """f_t(x_test) = f₀(x_test) + Θ(x_test, X) Θ_r⁻¹ (I − e^{−ηtΘ_r/N}) (Y − f₀(X)).

  NTK: the mean output of infinitely wide networks trained by gradient flow for time t
  (t = None: to convergence). NNGP with t = None: the NNGP posterior mean.

  Args:
    k_train_train: (N, N) kernel on the training inputs.
    y_train: (N,) or (N, C) targets.
    k_test_train: (M, N) kernel between test and training inputs, or a list or tuple of
      such (Mᵢ, N) kernels: one solve, a prediction for each (e.g. the training and the test
      kernel).
    diag_reg: relative ridge, r = diag_reg · tr(Θ)/N.
    t: None (∞), a time >= 0 or a 1-D array of times.
    learning_rate: η.
    fx_train_0, fx_test_0: initial outputs f₀(X) (like y_train) and f₀(x_test) ((M,) or
      (M, C); with several kernels, a list or tuple of them, one per kernel) for the
      linearized network's prediction; None for f₀ ≡ 0.
    dtype: 'float64' (default) or 'float32'.
  Returns:
    (M,) or (M, C) predictions; with an array t, a leading axis of length T. With a sequence
    of kernels, a tuple of such predictions, one per kernel.
  """
  several = _is_kernel_sequence(k_test_train)
  k_test_trains = tuple(k_test_train) if several else (k_test_train,)
  k_train_train, y_train, _ = _check_kernels(k_train_train, y_train, None, dtype)
  k_test_trains = tuple(_check_test_kernel(k, k_train_train.shape[0], dtype) for k in k_test_trains)
  fx_tests_0 = _initial_test_outputs(fx_train_0, fx_test_0, several, len(k_test_trains))
  residual = y_train
  if fx_train_0 is not None:
    fx_train_0 = as_float_array('fx_train_0', fx_train_0, dtype).reshape(y_train.shape)
    residual = y_train - fx_train_0
  coefficients = dual_coefficients(
      k_train_train, residual, diag_reg=diag_reg, t=t, learning_rate=learning_rate, dtype=dtype
  )
  predictions = tuple(
      _predict(coefficients, k, fx_0, y_train.shape, dtype)
      for k, fx_0 in zip(k_test_trains, fx_tests_0)
  )
  return predictions if several else predictions[0]


def _is_kernel_sequence(k_test_train) -> bool:
  """Whether k_test_train is a list or tuple of matrices (not one matrix as nested lists)."""
  return (
      isinstance(k_test_train, (list, tuple))
      and len(k_test_train) > 0
      and all(np.ndim(part) == 2 for part in k_test_train)
  )


def _initial_test_outputs(fx_train_0, fx_test_0, several: bool, count: int) -> tuple:
  """fx_test_0 as one entry (or None) per test kernel."""
  if (fx_train_0 is None) != (fx_test_0 is None):
    raise ValueError(
        'pass both fx_train_0 and fx_test_0 (the linearized network) or ' 'neither (f₀ ≡ 0).'
    )
  if fx_test_0 is None:
    return (None,) * count
  if not several:
    return (fx_test_0,)
  if not isinstance(fx_test_0, (list, tuple)) or len(fx_test_0) != count:
    raise ValueError(
        f'with a sequence of {count} kernels k_test_train, fx_test_0 must be a '
        f'list or tuple of {count} initial outputs, one per kernel.'
    )
  return tuple(fx_test_0)


def _predict(
    coefficients: np.ndarray, k_test_train: np.ndarray, fx_test_0, y_shape: tuple[int, ...], dtype
) -> np.ndarray:
  """Θ(x, X) A (+ f₀(x)): coefficients A (N,)/(N, C), or (T, ...) → (M,)/(M, C) or (T, ...)."""
  predictions = np.tensordot(coefficients, k_test_train, axes=([-len(y_shape)], [1]))
  predictions = np.moveaxis(predictions, -1, -len(y_shape))
  if fx_test_0 is not None:
    expected = (k_test_train.shape[0],) + y_shape[1:]
    predictions = predictions + as_float_array('fx_test_0', fx_test_0, dtype).reshape(expected)
  return predictions


class GaussianPosterior(NamedTuple):
  """Posterior mean (M,) or (M, C) and covariance (M, M), variance (M,), or None."""

  mean: np.ndarray
  covariance: Optional[np.ndarray]


def gp_posterior(
    k_train_train,
    y_train,
    k_test_train,
    k_test_test=None,
    *,
    diag_reg: float = 0.0,
    dtype: str = 'float64',
) -> GaussianPosterior:
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
    `GaussianPosterior(mean, covariance)`. The residual of the mean's solve is checked
    (`solve_with_jitter`); the covariance uses the same factor.
  """
  diag_reg = check_diag_reg(diag_reg)
  k_train_train, y_train, k_test_train = _check_kernels(k_train_train, y_train, k_test_train, dtype)
  solve = solve_with_jitter(regularized_kernel(k_train_train, diag_reg), y_train)
  factor, mean = solve.factor, k_test_train @ solve.coefficients
  if k_test_test is None:
    return GaussianPosterior(mean, None)
  k_test_test = as_float_array('k_test_test', k_test_test, dtype)
  m = k_test_train.shape[0]
  if k_test_test.shape not in ((m, m), (m,)):
    raise ValueError(
        f'k_test_test must be the (M, M) = ({m}, {m}) test kernel or its '
        f'diagonal (M,), got shape {k_test_test.shape}.'
    )
  check_finite('k_test_test', k_test_test)
  whitened = scipy.linalg.solve_triangular(
      factor, k_test_train.T, lower=True, check_finite=False
  )  # (N, M)
  if k_test_test.ndim == 1:
    return GaussianPosterior(mean, k_test_test - np.einsum('nm,nm->m', whitened, whitened))
  return GaussianPosterior(mean, k_test_test - whitened.T @ whitened)


def cross_validated_scores(
    k_train_train,
    targets,
    *,
    folds: int,
    order,
    diag_reg: float = 0.0,
    t=None,
    learning_rate: float = 1.0,
    dtype: str = 'float64',
) -> np.ndarray:
  """K-fold cross-validated kernel-regression predictions of the training points.

  Fold f holds out the points order[f::folds] and predicts them with `kernel_regression`
  fitted on the other points (the blocks of k_train_train), its ridge relative to the mean
  diagonal of that fit block. So there is one solve per fold: the folds' ridges differ, and
  no single factorization of the full kernel gives these numbers exactly.

  Args:
    k_train_train: (N, N) kernel on the training inputs.
    targets: (N,) or (N, C).
    folds: the number of folds, 2 <= folds <= N.
    order: a permutation of range(N) (e.g. `rng.permutation(N)`) that deals the points into
      the folds.
    diag_reg, t, learning_rate, dtype: as in `kernel_regression`.
  Returns:
    Held-out predictions like targets, (N,) or (N, C); with an array t, a leading axis of
    length T.
  """
  k_train_train, targets, _ = _check_kernels(k_train_train, targets, None, dtype)
  n = k_train_train.shape[0]
  order = _check_folds(folds, order, n)
  scores = None
  for fold in range(int(folds)):
    held = np.sort(order[fold::folds])
    fit = np.setdiff1d(np.arange(n), held)
    predictions = kernel_regression(
        k_train_train[np.ix_(fit, fit)],
        targets[fit],
        k_train_train[np.ix_(held, fit)],
        diag_reg=diag_reg,
        t=t,
        learning_rate=learning_rate,
        dtype=dtype,
    )
    if scores is None:
      scores = np.zeros(predictions.shape[: -targets.ndim] + targets.shape, predictions.dtype)
    scores[(Ellipsis, held) + (slice(None),) * (targets.ndim - 1)] = predictions
  return scores


def _check_folds(folds, order, n: int) -> np.ndarray:
  """order (N,) as an integer array, after checking it and 2 <= folds <= N."""
  check_int('folds', folds, 2)
  if folds > n:
    raise ValueError(
        f'folds must be <= N = {n} (each fold holds out at least one point), ' f'got {folds}.'
    )
  order = np.asarray(order)
  if (
      order.shape != (n,)
      or not np.issubdtype(order.dtype, np.integer)
      or not np.array_equal(np.sort(order), np.arange(n))
  ):
    raise ValueError(
        f'order must be a permutation of range(N) = range({n}), each of 0..{n - 1} '
        f'once (e.g. rng.permutation({n})), got {np.array2string(order, threshold=8)} '
        f'(shape {order.shape}).'
    )
  return order


def infinite_kernel_regression(
    config: ArchConfig,
    x_train,
    y_train,
    x_test,
    *,
    variables: Optional[Mapping[str, Any]] = None,
    kernel: str = 'ntk',
    t=None,
    diag_reg: float = 0.0,
    learning_rate: float = 1.0,
    return_variance: bool = False,
    batch_size: int = 512,
    devices: Union[None, int, Sequence[Any]] = None,
    progress: Union[bool, Callable[[int, int], None]] = False,
    fourier_limit: bool = False,
):
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
    raise ValueError(
        "return_variance needs kernel='nngp' and t=None: the posterior variance "
        'is that of the NNGP (Bayesian) posterior.'
    )
  common = dict(
      variables=variables,
      get=kernel,
      batch_size=batch_size,
      devices=devices,
      progress=progress,
      fourier_limit=fourier_limit,
  )
  k_train_train = batching.batched_infinite_kernels(config, x_train, **common)
  k_test_train = batching.batched_infinite_kernels(config, x_test, x_train, **common)
  if return_variance:
    k_test_diag = batching.batched_infinite_kernel_diagonal(
        config,
        x_test,
        variables=variables,
        get=kernel,
        batch_size=batch_size,
        fourier_limit=fourier_limit,
    )
    return gp_posterior(k_train_train, y_train, k_test_train, k_test_diag, diag_reg=diag_reg)
  return kernel_regression(
      k_train_train, y_train, k_test_train, diag_reg=diag_reg, t=t, learning_rate=learning_rate
  )


def empirical_kernel_regression(
    model: nn.Module,
    variables: Mapping[str, Any],
    x_train,
    y_train,
    x_test,
    *,
    diag_reg: float = 0.0,
    t=None,
    learning_rate: float = 1.0,
    linearized: bool = False,
    trace_outputs: bool = True,
    block_size: Optional[int] = None,
    rngs: Optional[Mapping[str, jax.Array]] = None,
    **apply_kwargs,
) -> np.ndarray:
  """Kernel regression with the empirical NTK Θ_θ of `model` at `variables` (docs/spec.md §2).

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
  k_train_train = np.asarray(
      empirical_ntk(model, variables, x_train, trace_outputs=trace_outputs, **kwargs), np.float64
  )
  k_test_train = np.asarray(
      empirical_ntk(model, variables, x_test, x_train, trace_outputs=trace_outputs, **kwargs),
      np.float64,
  )
  n, m = x_train.shape[0], x_test.shape[0]
  fx_train_0 = fx_test_0 = None
  if linearized:
    fx_train_0, fx_test_0 = _initial_outputs(
        model, variables, x_train, x_test, y, rngs, apply_kwargs
    )
  if trace_outputs:
    if fx_train_0 is not None:
      fx_train_0, fx_test_0 = fx_train_0.reshape(y.shape), fx_test_0.reshape((m,) + y.shape[1:])
    return kernel_regression(
        k_train_train,
        y,
        k_test_train,
        diag_reg=diag_reg,
        t=t,
        learning_rate=learning_rate,
        fx_train_0=fx_train_0,
        fx_test_0=fx_test_0,
    )
  return _full_kernel_regression(
      k_train_train, y, k_test_train, fx_train_0, fx_test_0, n, m, diag_reg, t, learning_rate
  )


def _initial_outputs(model, variables, x_train, x_test, y, rngs, apply_kwargs):
  """The network's outputs f(x), (N, C) and (M, C) in float64, checked against y (N,) or
  (N, C)."""
  n, m = x_train.shape[0], x_test.shape[0]
  fx_train_0 = np.asarray(
      model.apply(variables, x_train, rngs=rngs, **apply_kwargs), np.float64
  ).reshape(n, -1)
  fx_test_0 = np.asarray(
      model.apply(variables, x_test, rngs=rngs, **apply_kwargs), np.float64
  ).reshape(m, -1)
  if y.reshape(n, -1).shape[1] != fx_train_0.shape[1]:
    raise ValueError(
        f"linearized=True needs y_train with the model's "
        f'{fx_train_0.shape[1]} outputs per example, got shape {y.shape}.'
    )
  return fx_train_0, fx_test_0


def _full_kernel_regression(
    k_train_train, y, k_test_train, fx_train_0, fx_test_0, n, m, diag_reg, t, learning_rate
) -> np.ndarray:
  """Kernel regression with the full (N·C, N·C) and (M·C, N·C) kernels: y (N,) or (N, C) →
  (M,) or (M, C), with a leading time axis for an array t."""
  c = k_train_train.shape[0] // n
  if y.reshape(n, -1).shape[1] != c:
    raise ValueError(
        f"trace_outputs=False needs y_train with the model's {c} outputs per "
        f'example, got shape {y.shape}.'
    )
  flat = lambda a, rows: None if a is None else a.reshape(rows * c)
  # Rows of the full kernel are (example, output) pairs, N·C of them; time stays normalized by N.
  predictions = kernel_regression(
      k_train_train,
      flat(y, n),
      k_test_train,
      diag_reg=diag_reg,
      t=t,
      learning_rate=learning_rate * c,
      fx_train_0=flat(fx_train_0, n),
      fx_test_0=flat(fx_test_0, m),
  )
  return predictions.reshape(predictions.shape[:-1] + (m,) + y.shape[1:])


def centered_one_hot(labels, num_classes: int) -> np.ndarray:
  """Regression targets for classification: one-hot(labels) − 1/K, shape (N, K)."""
  labels = np.asarray(labels)
  if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f'labels must be a 1-D array of integers in [0, K), got {labels!r}.')
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(
        f'labels must lie in [0, {num_classes}), got range ' f'[{labels.min()}, {labels.max()}].'
    )
  return np.eye(num_classes)[labels] - 1.0 / num_classes


def calibrated_softmax(scores, temperature: float) -> np.ndarray:
  """softmax(scores / temperature) over the last axis: (M, K) → (M, K).

  Kernel-regression scores are not probabilities; this is a calibration, honest only with a
  temperature fitted on held-out data (`fit_softmax_temperature`).
  """
  if not temperature > 0:
    raise ValueError(f'temperature must be > 0, got {temperature!r}.')
  return scipy.special.softmax(np.asarray(scores, np.float64) / temperature, axis=-1)


def fit_softmax_temperature(scores, labels, *, bounds: tuple[float, float] = (1e-4, 1e4)) -> float:
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
    raise ValueError(
        f'scores must be (M, K) and labels (M,), got {scores.shape} and ' f'{labels.shape}.'
    )
  check_finite('scores', scores)

  def cross_entropy(log_t):
    log_p = scipy.special.log_softmax(scores / np.exp(log_t), axis=-1)
    return -float(np.mean(log_p[np.arange(len(labels)), labels]))

  result = scipy.optimize.minimize_scalar(
      cross_entropy, bounds=np.log(bounds), method='bounded', options={'xatol': 1e-6}
  )
  return float(np.exp(result.x))


class TemperatureCalibration(NamedTuple):
  """A softmax temperature and the held-out scores it was fitted on.

  temperature: T for `calibrated_softmax`; held_out_scores: (N, K) cross-validated scores of
  the training points; held_out_accuracy: the fraction of them whose argmax is the label.
  """

  temperature: float
  held_out_scores: np.ndarray
  held_out_accuracy: float


def calibrate_temperature(
    k_train_train,
    labels,
    num_classes: int,
    *,
    folds: int,
    order,
    diag_reg: float = 0.0,
    t=None,
    learning_rate: float = 1.0,
) -> TemperatureCalibration:
  """The softmax temperature of kernel-regression classification, fitted on held-out scores.

  Classification regresses centered one-hot targets (`centered_one_hot`) and turns the scores
  into probabilities with softmax(scores / T) (`calibrated_softmax`). T must be fitted on
  scores of points the regression was not fitted on: on its own training points kernel
  regression (nearly) interpolates the targets, so every argmax is right with a wide margin,
  the cross-entropy keeps falling as T → 0 and T runs to its lower bound. Here each training
  point's score comes from the fit on the other folds (`cross_validated_scores`), and T is
  fitted on all N of them (`fit_softmax_temperature`). When every held-out score is classified
  correctly (held_out_accuracy == 1) the same happens: T is then its bound, not a calibration.

  Args:
    k_train_train: (N, N) kernel on the training inputs.
    labels: (N,) integer labels in [0, K); num_classes: K.
    folds, order, diag_reg, t, learning_rate: as in `cross_validated_scores` (t one time or
      None).
  Returns:
    `TemperatureCalibration(temperature, held_out_scores (N, K), held_out_accuracy)`.
  """
  if np.ndim(t) != 0:
    raise ValueError(
        f't must be None (t = ∞) or one time >= 0: one temperature is fitted, '
        f'got shape {np.shape(t)}.'
    )
  labels = np.asarray(labels)
  scores = cross_validated_scores(
      k_train_train,
      centered_one_hot(labels, num_classes),
      folds=folds,
      order=order,
      diag_reg=diag_reg,
      t=t,
      learning_rate=learning_rate,
  )
  accuracy = float(np.mean(np.argmax(scores, axis=-1) == labels))
  return TemperatureCalibration(fit_softmax_temperature(scores, labels), scores, accuracy)
