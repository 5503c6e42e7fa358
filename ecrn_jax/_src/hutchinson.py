# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Hutchinson estimates of ‖A‖_F and tr A from products with Rademacher probes (docs/spec.md §4.2).

`frobenius_norm_estimate` (plain Hutchinson, reduced inside the product loop),
`deflated_products` and `deflated_estimate` (exact on the span of an orthonormal basis,
Hutchinson on its complement) and `ratio_with_stderr`. Standard errors are those of the sample
means; the one of ‖A‖_F follows by the delta method. The Lanczos, conjugate-gradient and
summary routines that use them are in `matrix_free.py`.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Optional, Tuple, Union, cast

import jax
import jax.numpy as jnp
import numpy as np

from ecrn_jax._src.validation import check_matvec, check_positive_int

ArrayLike = Union[np.ndarray, jax.Array]
MatVec = Callable[[jax.Array], jax.Array]


def default_dtype(dtype: Optional[Any]) -> np.dtype:
  """`dtype`, or the widest float JAX allows (float64 iff x64 is enabled)."""
  if dtype is None:
    dtype = jnp.float64
  dtype = jax.dtypes.canonicalize_dtype(dtype)
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f'`dtype` must be a real floating dtype; got {dtype}.')
  return dtype


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

  >>> import jax
  >>> from ecrn_jax import analysis
  >>> estimate, stderr = analysis.frobenius_norm_estimate(
  ...     lambda v: 2.0 * v, 4, num_probes=3, key=jax.random.PRNGKey(0))
  >>> float(estimate), round(float(stderr), 12)  # ‖2·I₄‖_F = 4 for every Rademacher probe
  (4.0, 0.0)
  """
  n = check_positive_int(n, 'n')
  num_probes = check_positive_int(num_probes, 'num_probes')
  if batch_size is not None:
    batch_size = min(check_positive_int(batch_size, 'batch_size'), num_probes)
  dtype = default_dtype(dtype)
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

  >>> import jax.numpy as jnp
  >>> from ecrn_jax import analysis
  >>> probes, basis = jnp.array([[1.0, -1.0, 1.0]]), jnp.array([[1.0, 0.0, 0.0]])
  >>> projected, products, basis_products = analysis.deflated_products(
  ...     lambda v: 2.0 * v, probes, basis)
  >>> projected.tolist(), basis_products.tolist()
  ([[0.0, -1.0, 1.0]], [[2.0, 0.0, 0.0]])
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

  >>> import numpy as np
  >>> from ecrn_jax import analysis
  >>> probes = np.array([[1.0, -1.0, 1.0], [-1.0, -1.0, 1.0]])  # Rademacher, for A = 2·I₃
  >>> estimate = analysis.deflated_estimate(2.0 * probes, projected_probes=probes)
  >>> float(estimate['trace']), round(float(estimate['frobenius_norm']), 4)
  (6.0, 3.4641)
  """
  xp = jnp if isinstance(probe_products, jax.Array) else np
  exact_sq = 0.0 if basis_products is None else xp.sum(basis_products**2)
  out = _frobenius_estimate(xp, xp.sum(probe_products**2, axis=1), exact_sq)
  if projected_probes is not None:
    # `basis` comes with `basis_products` (the documented contract; not checked here).
    exact_trace = 0.0 if basis is None else xp.sum(basis * cast(ArrayLike, basis_products))
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
    numerator: Union[float, ArrayLike],
    numerator_stderr: Union[float, ArrayLike],
    denominator: Union[float, ArrayLike],
    denominator_stderr: Union[float, ArrayLike],
) -> Tuple[float, float]:
  """`a / b` and its first-order standard error `(a / b) sqrt((se_a / a)^2 + (se_b / b)^2)`.

  For positive estimates `a`, `b` with independent errors (e.g. the relative
  kernel change `||K_t - K_0||_F / ||K_0||_F`), as numbers or 0-d arrays (those of
  `deflated_estimate`). The ratio is `nan` unless `b > 0`, its standard error
  unless also `a > 0`.

  >>> from ecrn_jax import analysis
  >>> ratio, stderr = analysis.ratio_with_stderr(2.0, 0.1, 4.0, 0.2)
  >>> ratio, round(stderr, 4)
  (0.5, 0.0354)
  """
  a, b = float(numerator), float(denominator)
  ratio = a / b if b > 0 else float('nan')
  if not (a > 0 and b > 0):
    return ratio, float('nan')
  return ratio, ratio * math.sqrt(
      (float(numerator_stderr) / a) ** 2 + (float(denominator_stderr) / b) ** 2
  )
