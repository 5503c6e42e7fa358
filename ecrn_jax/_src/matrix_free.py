# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Matrix-free estimators of kernel statistics, from kernel–vector products (docs/spec.md §4).

Functions taking a jittable `matvec: (n,) -> (n,)` implementing a symmetric linear operator
(e.g. an NTK–vector product, `ecrn_jax.ntk_vp_fn`), so that the `n x n` matrix never has to be
materialized. They run in JAX and return JAX arrays:

- `top_eigenvalues` (Lanczos with full reorthogonalization)
- `conjugate_gradient`
- `matrix_free_products` (one Lanczos run, deflated probes, targets, CG)
- `difference_matvec`

`matrix_free_summary` gives the statistics of `spectral.kernel_summary` from
`matrix_free_products`, with the Hutchinson estimates of `hutchinson.py` (`deflated_estimate`,
`frobenius_norm_estimate`, `ratio_with_stderr`).

All functions are pure functions of their explicit arguments; nothing here touches global JAX
configuration. They default to the widest floating dtype JAX currently allows (`float64` when
`jax_enable_x64` is set, `float32` otherwise).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Optional, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from ecrn_jax._src.hutchinson import (
    deflated_estimate,
    deflated_products,
    default_dtype,
    ratio_with_stderr,
)
from ecrn_jax._src.validation import check_matvec, check_positive_int

ArrayLike = Union[np.ndarray, jax.Array]
MatVec = Callable[[jax.Array], jax.Array]


def difference_matvec(matvec_t: MatVec, matvec_0: MatVec) -> MatVec:
  """Returns `v -> matvec_t(v) - matvec_0(v)`, the operator `K_t - K_0`.

  Combine with `frobenius_norm_estimate` to estimate `||K_t - K_0||_F`
  without materializing either kernel.

  Args:
    matvec_t: `(n,) -> (n,)` product with `K_t`.
    matvec_0: `(n,) -> (n,)` product with `K_0`.

  Returns:
    A `(n,) -> (n,)` function computing `(K_t - K_0) v`.

  >>> import jax.numpy as jnp
  >>> from ecrn_jax import analysis
  >>> analysis.difference_matvec(lambda v: 3.0 * v, lambda v: v)(jnp.ones(2)).tolist()
  [2.0, 2.0]
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

  >>> import jax, jax.numpy as jnp
  >>> from ecrn_jax import analysis
  >>> a = jnp.array([[2.0, 1.0], [1.0, 2.0]])
  >>> values = analysis.top_eigenvalues(lambda v: a @ v, 2, 1, key=jax.random.PRNGKey(0))
  >>> round(float(values[0]), 4)
  3.0
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
  dtype = default_dtype(dtype)
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

  (the Arora et al. 2019 bound, docs/spec.md §4.2.)

  >>> import jax.numpy as jnp
  >>> from ecrn_jax import analysis
  >>> a = jnp.array([[2.0, 1.0], [1.0, 2.0]])
  >>> solutions, residuals = analysis.conjugate_gradient(
  ...     lambda v: a @ v, jnp.array([[3.0, 3.0]]), num_iterations=2)
  >>> [round(float(s), 6) for s in solutions[0]]
  [1.0, 1.0]
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

  >>> import jax, jax.numpy as jnp
  >>> from ecrn_jax import analysis
  >>> a = jnp.diag(jnp.array([3.0, 2.0, 1.0]))
  >>> products = analysis.matrix_free_products(
  ...     lambda v: a @ v, 3, key=jax.random.PRNGKey(0), num_iterations=3,
  ...     probes=jnp.ones((2, 3)), targets=jnp.ones((1, 3)), deflation_rank=1, cg_iterations=3)
  >>> sorted(products)  # doctest: +NORMALIZE_WHITESPACE
  ['basis', 'basis_products', 'cg_residuals', 'probe_products', 'ritz_values', 'solutions',
   'target_products', 'vectors']
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
) -> Dict[str, Any]:
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

  >>> import jax, jax.numpy as jnp, numpy as np
  >>> from ecrn_jax import analysis
  >>> a = jnp.diag(jnp.array([3.0, 2.0, 1.0]))
  >>> probes = jnp.array([[1.0, -1.0, 1.0], [-1.0, 1.0, 1.0]])
  >>> products = analysis.matrix_free_products(
  ...     lambda v: a @ v, 3, key=jax.random.PRNGKey(0), num_iterations=3, probes=probes,
  ...     targets=jnp.ones((1, 3)), deflation_rank=1, cg_iterations=3)
  >>> summary = analysis.matrix_free_summary(products, products, probes, np.ones((3, 1)), top_k=2)
  >>> round(summary['lambda_max'], 4), round(summary['trace'], 4), summary['delta_frobenius']
  (3.0, 6.0, 0.0)
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
  out: Dict[str, Any] = {  # floats, and the (top_k,) array 'top_eigenvalues'
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
