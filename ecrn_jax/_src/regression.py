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
* Solves run on the host with LAPACK (scipy) in float64 by default: the jittered Cholesky
  solve of `linalg.py` (`solve_with_jitter`, with its residual check and `JitterWarning`) at
  t = ∞, an eigendecomposition at finite t. A kernel with NaN or inf entries raises ValueError.

Shapes: N training inputs, M test inputs, C outputs; targets (N,) or (N, C) and predictions of
the same trailing shape.

The twin's kernels are native JAX (`infinite/`); nothing here imports neural-tangents. The
calibration of classifiers (cross-validated scores, softmax temperature) is in `calibration.py`.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence, Union

import flax.linen as nn
import jax
import numpy as np
import scipy.linalg

from ecrn_jax._src.config import ArchConfig
from ecrn_jax._src.empirical import empirical_ntk
from ecrn_jax._src.infinite.batching import batch
from ecrn_jax._src.infinite.kernel_fn import infinite_kernel_fn
from ecrn_jax._src.infinite.twin import KERNELS
from ecrn_jax._src.linalg import (
    RESIDUAL_TOLERANCE,
    finite_time_solve,
    mean_diagonal,
    regularized_kernel,
    relative_residual,
    solve_with_jitter,
    spectral_coefficients,
)
from ecrn_jax._src.validation import (
    as_float_array,
    check_diag_reg,
    check_finite,
    check_time,
)

SOLVE_DTYPES = ('float64', 'float32')


def check_kernels(k_train_train, y_train, k_test_train, dtype):
  """The kernels and targets as arrays of `dtype`, with their shapes and values checked."""
  if dtype not in SOLVE_DTYPES:
    raise ValueError(f'dtype must be one of {list(SOLVE_DTYPES)}, got {dtype!r}.')
  k_train_train = as_float_array('k_train_train', k_train_train, dtype)
  if k_train_train.ndim != 2 or k_train_train.shape[0] != k_train_train.shape[1]:
    raise ValueError(
        f'k_train_train must be a square (N, N) matrix, got shape {k_train_train.shape}.'
    )
  n = k_train_train.shape[0]
  if n == 0:
    raise ValueError(
        'k_train_train is empty: kernel regression needs at least one training example.'
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
    raise ValueError(f'k_test_train must have shape (M, N) with N = {n}, got {k_test_train.shape}.')
  check_finite('k_test_train', k_test_train)
  return k_test_train


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
      T times (eigendecomposition of Θ_r, `finite_time_solve`: negative round-off eigenvalues
      clipped at 0, the residual checked as at t = ∞).
    learning_rate: η; only η·t matters.
    dtype: 'float64' (default) or 'float32' for the solve.
  Returns:
    (N,) or (N, C); with an array t, (T, N) or (T, N, C).

  (Lee et al. 2019, docs/spec.md §2.6.)

  >>> import numpy as np
  >>> from ecrn_jax import regression
  >>> k, y = np.array([[2.0, 1.0], [1.0, 2.0]]), np.array([3.0, 3.0])
  >>> regression.dual_coefficients(k, y).round(6)
  array([1., 1.])
  >>> regression.dual_coefficients(k, y, t=np.array([0.0, 1e9])).round(6)
  array([[0., 0.],
         [1., 1.]])
  """
  diag_reg = check_diag_reg(diag_reg)
  times = check_time(t, learning_rate)
  k_train_train, y_train, _ = check_kernels(k_train_train, y_train, None, dtype)
  n = k_train_train.shape[0]
  regularized = regularized_kernel(k_train_train, diag_reg)
  if times is None:
    return solve_with_jitter(regularized, y_train).coefficients
  tau = np.atleast_1d(times) * (learning_rate / n)  # (T,)
  coefficients = finite_time_solve(regularized, y_train, tau).coefficients
  coefficients = coefficients.reshape((len(tau),) + y_train.shape)
  return coefficients if times.ndim else coefficients[0]


def dual_coefficients_of_ridges(
    k_train_train,
    y_train,
    diag_regs: Sequence[float],
    *,
    t=None,
    learning_rate: float = 1.0,
    dtype: str = 'float64',
) -> np.ndarray:
  """`dual_coefficients` for every ridge of a sweep from one eigendecomposition of Θ.

  Θ + r·I = V (Λ + r) Vᵀ: each ridge costs O(N²C) (its residual check included), not a
  factorization. A ridge whose relative residual (`finite_time_solve`'s, the t = ∞ solve's at
  t = None) misses `RESIDUAL_TOLERANCE` is solved alone by `dual_coefficients` (with its jitter
  and its warning or error). Equal to separate `dual_coefficients` calls to round-off.

  Args:
    k_train_train, y_train, t, learning_rate, dtype: as `dual_coefficients`.
    diag_regs: R relative ridges, each r·tr(Θ)/N on the diagonal.
  Returns:
    (R, ...) : `dual_coefficients`' result for each ridge, stacked.

  >>> import numpy as np
  >>> from ecrn_jax._src import regression
  >>> k, y = np.array([[2.0, 1.0], [1.0, 2.0]]), np.array([3.0, 3.0])
  >>> regression.dual_coefficients_of_ridges(k, y, [0.0, 0.5]).round(6)
  array([[1.  , 1.  ],
         [0.75, 0.75]])
  """
  ridges = [check_diag_reg(r) for r in diag_regs]
  times = check_time(t, learning_rate)
  k_train_train, y_train, _ = check_kernels(k_train_train, y_train, None, dtype)
  n = k_train_train.shape[0]
  eigenvalues, eigenvectors = scipy.linalg.eigh(k_train_train, check_finite=False)
  scale = mean_diagonal(k_train_train)
  tau = None if times is None else np.atleast_1d(times) * (learning_rate / n)
  out = []
  for ridge in ridges:
    shifted = np.maximum(eigenvalues + ridge * scale, 0.0)
    coefficients, targets = spectral_coefficients(shifted, eigenvectors, y_train, tau)
    regularized = regularized_kernel(k_train_train, ridge)
    residual = max(relative_residual(regularized, a, b) for a, b in zip(coefficients, targets))
    if residual > RESIDUAL_TOLERANCE:  # alone, with jitter if it needs it
      single = dual_coefficients(
          k_train_train, y_train, diag_reg=ridge, t=t, learning_rate=learning_rate, dtype=dtype
      )
      out.append(np.asarray(single))
      continue
    coefficients = coefficients.reshape((len(coefficients),) + y_train.shape)
    out.append(coefficients if times is not None and times.ndim else coefficients[0])
  return np.stack(out)


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

  (Lee et al. 2019, docs/spec.md §2.6.)

  >>> import numpy as np
  >>> from ecrn_jax import regression
  >>> k_train_train, y_train = np.array([[2.0, 1.0], [1.0, 2.0]]), np.array([3.0, 3.0])
  >>> regression.kernel_regression(k_train_train, y_train, np.array([[1.0, 1.0]])).round(6)
  array([2.])
  """
  several = _is_kernel_sequence(k_test_train)
  k_test_trains = tuple(k_test_train) if several else (k_test_train,)
  k_train_train, y_train, _ = check_kernels(k_train_train, y_train, None, dtype)
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
        'pass both fx_train_0 and fx_test_0 (the linearized network) or neither (f₀ ≡ 0).'
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

  >>> import numpy as np
  >>> from ecrn_jax import regression
  >>> k, y = np.array([[2.0, 1.0], [1.0, 2.0]]), np.array([3.0, 3.0])
  >>> posterior = regression.gp_posterior(k, y, np.array([[1.0, 1.0]]), np.array([2.0]))
  >>> posterior.mean.round(6), posterior.covariance.round(6)  # 2 − [1 1] K⁻¹ [1 1]ᵀ = 4/3
  (array([2.]), array([1.333333]))
  """
  diag_reg = check_diag_reg(diag_reg)
  k_train_train, y_train, k_test_train = check_kernels(k_train_train, y_train, k_test_train, dtype)
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
    batch_size, devices, progress: as in `batch`; fourier_limit: as in `infinite_kernel_fn`.
  Returns:
    Predictions (M,) or (M, C), or `GaussianPosterior(mean, variance)` with return_variance.

  (Lee et al. 2019, docs/spec.md §2.6.)

  >>> import numpy as np, ecrn_jax
  >>> config = ecrn_jax.MLPConfig(hidden_widths=(8,), activation='relu', dtype='float32')
  >>> x = np.linspace(-1.0, 1.0, 8, dtype=np.float32).reshape(4, 2)
  >>> ecrn_jax.regression.infinite_kernel_regression(
  ...     config, x, np.array([1.0, -1.0, 1.0, -1.0]), x[:2], diag_reg=1e-3).shape
  (2,)
  """
  if kernel not in KERNELS:
    raise ValueError(f"kernel must be 'ntk' or 'nngp', got {kernel!r}.")
  if return_variance and (kernel != 'nngp' or check_time(t, learning_rate) is not None):
    raise ValueError(
        "return_variance needs kernel='nngp' and t=None: the posterior variance "
        'is that of the NNGP (Bayesian) posterior.'
    )
  kernel_fn = batch(
      infinite_kernel_fn(config, variables=variables, fourier_limit=fourier_limit),
      batch_size=batch_size,
      devices=devices,
      progress=progress,
  )
  k_train_train = kernel_fn(x_train, get=kernel)
  k_test_train = kernel_fn(x_test, x_train, get=kernel)
  if return_variance:
    k_test_diag = kernel_fn(x_test, get=kernel, diagonal=True)
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

  (Lee et al. 2019, docs/spec.md §2.6.)

  >>> import jax, numpy as np, ecrn_jax
  >>> model = ecrn_jax.MLP(ecrn_jax.MLPConfig(hidden_widths=(8,), dtype='float32'))
  >>> x = np.linspace(-1.0, 1.0, 8, dtype=np.float32).reshape(4, 2)
  >>> variables = model.init(jax.random.PRNGKey(0), x)
  >>> ecrn_jax.regression.empirical_kernel_regression(
  ...     model, variables, x, np.array([1.0, -1.0, 1.0, -1.0]), x[:2], diag_reg=1e-3).shape
  (2,)
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
      assert fx_test_0 is not None  # _initial_outputs sets both
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
