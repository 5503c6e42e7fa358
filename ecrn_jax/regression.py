# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Kernel regression with empirical or infinite-width kernels (docs/spec.md §2.6).

- Linear algebra: jittered Cholesky factorizations and solves with a residual check
  (`solve_with_jitter`, `cholesky_with_jitter`, `mean_diagonal`, `RESIDUAL_TOLERANCE`).
- Regression: the closed-form gradient-flow and ridge solutions (Lee et al. 2019), the GP
  posterior of the NNGP, and regression with a network's empirical NTK or the twin's kernels.
- Calibration of kernel classifiers: centred one-hot targets, cross-validated scores and the
  softmax temperature fitted on them.

The tiled infinite-width kernels for large N are `ecrn_jax.batch(ecrn_jax.infinite_kernel_fn(
...))`; `batched_infinite_kernels` and `batched_infinite_kernel_diagonal` here are deprecated.
"""

# pylint: disable=g-importing-member
from ecrn_jax._src.calibration import TemperatureCalibration
from ecrn_jax._src.calibration import calibrate_temperature
from ecrn_jax._src.calibration import calibrated_softmax
from ecrn_jax._src.calibration import centered_one_hot
from ecrn_jax._src.calibration import cross_validated_scores
from ecrn_jax._src.calibration import fit_softmax_temperature
from ecrn_jax._src.deprecations import deprecation_getattr as _deprecation_getattr
from ecrn_jax._src.infinite import deprecated as _deprecated_infinite
from ecrn_jax._src.linalg import JitterWarning
from ecrn_jax._src.linalg import JitteredSolve
from ecrn_jax._src.linalg import RESIDUAL_TOLERANCE
from ecrn_jax._src.linalg import cholesky_with_jitter
from ecrn_jax._src.linalg import mean_diagonal
from ecrn_jax._src.linalg import solve_with_jitter
from ecrn_jax._src.regression import GaussianPosterior
from ecrn_jax._src.regression import dual_coefficients
from ecrn_jax._src.regression import empirical_kernel_regression
from ecrn_jax._src.regression import gp_posterior
from ecrn_jax._src.regression import infinite_kernel_regression
from ecrn_jax._src.regression import kernel_regression

__all__ = [
    # Linear algebra.
    'JitterWarning',
    'JitteredSolve',
    'RESIDUAL_TOLERANCE',
    'cholesky_with_jitter',
    'mean_diagonal',
    'solve_with_jitter',
    # Regression and prediction.
    'GaussianPosterior',
    'dual_coefficients',
    'empirical_kernel_regression',
    'gp_posterior',
    'infinite_kernel_regression',
    'kernel_regression',
    # Calibration.
    'TemperatureCalibration',
    'calibrate_temperature',
    'calibrated_softmax',
    'centered_one_hot',
    'cross_validated_scores',
    'fit_softmax_temperature',
]

# Old spelling → (new spelling, object), for one release (also at the top level).
_DEPRECATED = {
    'batched_infinite_kernels': (
        'ecrn_jax.batch(ecrn_jax.infinite_kernel_fn(config, variables=..., fourier_limit=...), '
        'batch_size=..., devices=..., progress=...)(x1, x2, get, out=...)',
        _deprecated_infinite.batched_infinite_kernels,
    ),
    'batched_infinite_kernel_diagonal': (
        'ecrn_jax.batch(ecrn_jax.infinite_kernel_fn(config, variables=..., fourier_limit=...), '
        'batch_size=...)(x, get=get, diagonal=True)',
        _deprecated_infinite.batched_infinite_kernel_diagonal,
    ),
}

__getattr__ = _deprecation_getattr(__name__, _DEPRECATED)
