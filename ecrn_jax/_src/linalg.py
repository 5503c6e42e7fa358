# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Linear algebra of kernel regression: jittered Cholesky factorizations and solves.

Solves run on the host with LAPACK (scipy), in the dtype of the matrix (float64 or float32;
docs/spec.md §2.6).
`solve_with_jitter` checks its relative residual ‖(A + jitter·I)α − y‖/‖y‖ (evaluated in
float64) against `RESIDUAL_TOLERANCE`; when the factorization fails or the residual misses it,
it retries with jitter·tr(A)/N added, jitter = 1e-10, 1e-9, …, 1e-2, and warns
(`JitterWarning`) with the jitter used and the residuals reached, or raises ValueError when no
jitter meets it. `mean_diagonal` is the unit in which the relative ridge `diag_reg` and the
jitter are measured.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple, Optional

import numpy as np
import scipy.linalg

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


def mean_diagonal(kernel) -> float:
  """tr(K)/N of an (N, N) kernel: the unit in which `diag_reg` and jitter are measured.

  >>> import numpy as np
  >>> from ecrn_jax import regression
  >>> regression.mean_diagonal(np.diag([1.0, 3.0]))
  2.0
  """
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

  >>> import numpy as np
  >>> from ecrn_jax import regression
  >>> factor, jitter = regression.cholesky_with_jitter(np.array([[2.0, 1.0], [1.0, 2.0]]))
  >>> bool(np.allclose(factor @ factor.T, [[2.0, 1.0], [1.0, 2.0]])), jitter
  (True, 0.0)
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

  >>> import numpy as np
  >>> from ecrn_jax import regression
  >>> solve = regression.solve_with_jitter(np.array([[2.0, 1.0], [1.0, 2.0]]), np.array([3.0, 3.0]))
  >>> solve.coefficients.round(6), solve.jitter
  (array([1., 1.]), 0.0)
  """
  matrix, rhs = np.asarray(matrix), np.asarray(rhs)
  dtype = matrix.dtype
  scale = mean_diagonal(matrix)
  # (relative jitter, residual), residual None where the factorization failed
  tried: list[tuple[float, Optional[float]]] = []
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


class SpectralSolve(NamedTuple):
  """`finite_time_solve`'s result.

  coefficients: (T, N, C) A_τ for each τ; jitter: the absolute jitter added; residual: the
  largest relative residual over the times and columns (`finite_time_solve`).
  """

  coefficients: np.ndarray
  jitter: float
  residual: float


def finite_time_solve(
    matrix, rhs, tau, *, name: str = 'k_train_train + diag_reg·I'
) -> SpectralSolve:
  """A_τ = M⁻¹(I − e^{−τM}) rhs for each τ of `tau`, by one eigendecomposition of M, checked
  as `solve_with_jitter` checks its solve.

  With M = V Λ Vᵀ (negative round-off eigenvalues clipped at 0), A_τ = V g(Λ) Vᵀ rhs with
  g(λ) = (1 − e^{−λτ})/λ (τ at λ = 0). The relative residual ‖M A_τ − (I − e^{−τM}) rhs‖ /
  ‖(I − e^{−τM}) rhs‖ (max over the times and columns, in float64, M applied as given and the
  exponential through V Λ Vᵀ) measures the rounding error the targets meet: as τ → ∞ it is the
  t = ∞ solve's ‖M α − rhs‖/‖rhs‖. Above `RESIDUAL_TOLERANCE`, M is decomposed again with
  jitter j·tr(M)/N, j = 1e-10, …, 1e-2, with a `JitterWarning`, or a ValueError when none meets it.

  Args:
    matrix: (N, N) symmetric M, float32 or float64.
    rhs: (N,) or (N, C), of M's dtype.
    tau: (T,) times ≥ 0 (η·t/N in kernel regression).
    name: how errors and warnings call M.
  Returns:
    `SpectralSolve(coefficients (T, N, C), jitter, residual)`.

  >>> import numpy as np
  >>> from ecrn_jax._src import linalg
  >>> m, y = np.array([[2.0, 1.0], [1.0, 2.0]]), np.array([3.0, 3.0])
  >>> solve = linalg.finite_time_solve(m, y, np.array([1e9]))
  >>> solve.coefficients[0, :, 0].round(6), solve.jitter
  (array([1., 1.]), 0.0)
  """
  matrix, rhs, tau = np.asarray(matrix), np.asarray(rhs), np.asarray(tau, np.float64)
  n, dtype = matrix.shape[0], matrix.dtype
  rhs = rhs.reshape(n, -1)
  scale = mean_diagonal(matrix)
  tried: list[tuple[float, Optional[float]]] = []
  for relative in (0.0,) + JITTER_SCHEDULE:
    candidate = matrix
    if relative:
      candidate = matrix.copy()
      candidate[np.diag_indices_from(candidate)] += relative * scale
    eigenvalues, eigenvectors = scipy.linalg.eigh(candidate, check_finite=False)
    eigenvalues = np.maximum(eigenvalues, 0.0)
    coefficients, targets = spectral_coefficients(eigenvalues, eigenvectors, rhs, tau)
    residual = max(
        _relative_residuals(matrix, candidate, a, b)[0] for a, b in zip(coefficients, targets)
    )
    if residual <= RESIDUAL_TOLERANCE:
      if relative:
        warnings.warn(
            f'the finite-time solve with {name} needed jitter {relative:.0e}·mean(diag) = '
            f'{relative * scale:.3e} on the diagonal: {_why_jitter(tried)}. With it the '
            f'relative residual is {residual:.1e} (tolerance {RESIDUAL_TOLERANCE:.1e}, dtype '
            f'{dtype}). ' + _advice(dtype),
            JitterWarning,
            stacklevel=3,
        )
      return SpectralSolve(coefficients, relative * scale, residual)
    tried.append((relative, residual))
  best, at = min((residual, relative) for relative, residual in tried if residual is not None)
  raise ValueError(
      f'the finite-time solve with {name} cannot be made accurate in {dtype}: with jitter up to '
      f'{JITTER_SCHEDULE[-1]:.0e}·mean(diag), the smallest relative residual reached was '
      f'{best:.1e} (at jitter {at:.0e}·mean(diag)), above the tolerance '
      f'{RESIDUAL_TOLERANCE:.1e}. ' + _advice(dtype, explicit=False)
  )


def spectral_coefficients(
    eigenvalues: np.ndarray, eigenvectors: np.ndarray, rhs: np.ndarray, tau: Optional[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
  """(A, B), (T, N, C) each, for M = V Λ Vᵀ (Λ ≥ 0): A_τ = V g(Λ) Vᵀ rhs, g(λ) = (1 − e^{−λτ})/λ
  (τ at λ = 0), and B_τ = V (1 − e^{−Λτ}) Vᵀ rhs, what M A_τ equals exactly; with tau None
  (τ = ∞, T = 1), g = 1/λ (0 at λ = 0, which the residual then reports) and B = rhs.
  rhs (N,) or (N, C), in M's dtype."""
  n, dtype = eigenvectors.shape[0], eigenvectors.dtype
  projected = eigenvectors.T @ rhs.reshape(n, -1)  # (N, C)
  positive = eigenvalues > 0
  safe = np.where(positive, eigenvalues, 1.0)[None, :]
  if tau is None:
    gain = np.where(positive, 1.0 / safe, 0.0)  # (1, N)
    reached = np.ones_like(gain)
  else:
    exponent = eigenvalues[None, :] * tau[:, None]  # (T, N)
    # (1 − e^{−λτ})/λ, which tends to τ as λ → 0.
    gain = np.where(positive[None, :], -np.expm1(-exponent) / safe, tau[:, None])
    reached = -np.expm1(-exponent)
  coefficients = np.einsum('ij,tj,jc->tic', eigenvectors, gain.astype(dtype), projected)
  if tau is None:
    return coefficients, np.broadcast_to(rhs.reshape(1, n, -1), coefficients.shape)
  targets = np.einsum('ij,tj,jc->tic', eigenvectors, reached.astype(dtype), projected)
  return coefficients, targets


def relative_residual(matrix, coefficients, rhs) -> float:
  """max over columns of ‖M α − rhs‖/‖rhs‖, in float64 (0 for a zero column of rhs)."""
  return _relative_residuals(matrix, matrix, coefficients, rhs)[0]


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
