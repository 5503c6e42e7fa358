# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Spectral statistics of a materialized kernel, on the host in float64 (docs/spec.md §4).

Functions taking an explicit `N x N` symmetric positive semi-definite kernel matrix `kernel`
(NumPy or JAX array). They compute in `float64` on the host via NumPy / SciPy and return Python
floats or NumPy arrays:

- `spectrum`
- `kernel_statistics`
- `kernel_target_alignment`
- `generalization_bound` (Arora et al. 2019)
- `kernel_change`
- `kernel_summary` (all of the above for one kernel)
- `modewise_convergence` (on `modewise_prediction`, the linearized-GD decay of residual
  eigen-modes under a constant step, a step sequence or a schedule; Lee et al. 2019)

The matrix-free estimators of the same quantities (Lanczos, Hutchinson, conjugate gradients)
are in `matrix_free.py`. All functions are pure functions of their explicit arguments; nothing
here touches global JAX configuration.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Dict, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from ecrn_jax._src.validation import as_kernel, as_targets, check_positive_int

ArrayLike = Union[np.ndarray, jax.Array]
# A constant step size, a sequence of them, or a schedule step -> step size.
LearningRate = Union[float, ArrayLike, Callable[[Any], Any]]


def _symmetrize(k: np.ndarray) -> np.ndarray:
  return 0.5 * (k + k.T)


def spectrum(kernel: ArrayLike) -> np.ndarray:
  """Eigenvalues of a symmetric kernel matrix, in descending order.

  Args:
    kernel: `(N, N)` kernel matrix. It is symmetrized as `(K + K^T) / 2` first.

  Returns:
    `(N,)` float64 array of eigenvalues, largest first.

  >>> import numpy as np
  >>> from ecrn_jax import analysis
  >>> analysis.spectrum(np.array([[2.0, 1.0], [1.0, 2.0]]))
  array([3., 1.])
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

  >>> import numpy as np
  >>> from ecrn_jax import analysis
  >>> stats = analysis.kernel_statistics(np.array([[2.0, 1.0], [1.0, 2.0]]))
  >>> stats['lambda_max'], stats['condition_number'], round(stats['effective_rank'], 6)
  (3.0, 3.0, 1.6)
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

  >>> import numpy as np
  >>> from ecrn_jax import analysis
  >>> round(analysis.kernel_target_alignment(np.array([[2.0, 1.0], [1.0, 2.0]]), np.ones(2)), 4)
  0.9487
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

  >>> import numpy as np
  >>> from ecrn_jax import analysis
  >>> k = np.array([[2.0, 1.0], [1.0, 2.0]])
  >>> round(analysis.generalization_bound(k, np.ones(2)), 4)  # √(2 · (2/3) / 2)
  0.8165
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

  >>> import numpy as np
  >>> from ecrn_jax import analysis
  >>> change = analysis.kernel_change(2.0 * np.eye(2), np.eye(2))
  >>> round(change['delta_frobenius'], 4), change['relative_delta_frobenius']
  (1.4142, 1.0)
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

  >>> import numpy as np
  >>> from ecrn_jax import analysis
  >>> summary = analysis.kernel_summary(np.array([[2.0, 1.0], [1.0, 2.0]]), np.ones(2))
  >>> summary['lambda_max'], summary['delta_frobenius'], round(summary['arora_bound'], 4)
  (3.0, 0.0, 0.8165)
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

  (Lee et al. 2019, docs/spec.md §4.3.)

  >>> import numpy as np
  >>> from ecrn_jax import analysis
  >>> k, r = np.array([[2.0, 1.0], [1.0, 2.0]]), [np.array([1.0, -0.5])]
  >>> for _ in range(3):  # gradient descent with η = 0.5 on the linearized network, N = 2
  ...   r.append(r[-1] - 0.25 * k @ r[-1])
  >>> out = analysis.modewise_convergence(k, r[0], np.stack(r), learning_rate=0.5, top_k=2)
  >>> out['eigenvalues'], bool(np.allclose(out['observed'], out['predicted']))
  (array([3., 1.]), True)
  """
  k = _symmetrize(as_kernel(kernel_0, 'kernel_0'))
  n = k.shape[0]
  top_k = check_positive_int(top_k, 'top_k')
  if top_k > n:
    raise ValueError(f'`top_k`={top_k} exceeds the kernel size N={n}; choose `top_k <= {n}`.')
  r0 = np.asarray(residual_0, dtype=np.float64)
  rs = np.asarray(residuals, dtype=np.float64)
  if r0.ndim not in (1, 2) or r0.shape[0] != n:
    raise ValueError(
        f'`residual_0` must have shape ({n},) or ({n}, C) to match `kernel_0`; got {r0.shape}.'
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

  (Lee et al. 2019, docs/spec.md §4.3.)

  >>> from ecrn_jax import analysis
  >>> analysis.modewise_prediction([2.0], [1.0], 3, num_examples=2, learning_rate=0.5)
  array([0.125])
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
