# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Kernel regression with empirical or infinite-width kernels: closed-form gradient-flow and
ridge solutions, the GP posterior, tiled (sharded) infinite-width kernels for large N, and the
softmax-temperature calibration of kernel classifiers."""

from ecrn_jax._src.infinite.deprecated import batched_infinite_kernel_diagonal
from ecrn_jax._src.infinite.deprecated import batched_infinite_kernels
from ecrn_jax._src.regression import GaussianPosterior
from ecrn_jax._src.linalg import JitterWarning
from ecrn_jax._src.linalg import JitteredSolve
from ecrn_jax._src.linalg import RESIDUAL_TOLERANCE
from ecrn_jax._src.calibration import TemperatureCalibration
from ecrn_jax._src.calibration import calibrate_temperature
from ecrn_jax._src.calibration import calibrated_softmax
from ecrn_jax._src.calibration import centered_one_hot
from ecrn_jax._src.linalg import cholesky_with_jitter
from ecrn_jax._src.calibration import cross_validated_scores
from ecrn_jax._src.regression import dual_coefficients
from ecrn_jax._src.regression import empirical_kernel_regression
from ecrn_jax._src.calibration import fit_softmax_temperature
from ecrn_jax._src.regression import gp_posterior
from ecrn_jax._src.regression import infinite_kernel_regression
from ecrn_jax._src.regression import kernel_regression
from ecrn_jax._src.linalg import mean_diagonal
from ecrn_jax._src.linalg import solve_with_jitter

__all__ = [
    'GaussianPosterior',
    'JitterWarning',
    'JitteredSolve',
    'RESIDUAL_TOLERANCE',
    'TemperatureCalibration',
    'batched_infinite_kernel_diagonal',
    'batched_infinite_kernels',
    'calibrate_temperature',
    'calibrated_softmax',
    'centered_one_hot',
    'cholesky_with_jitter',
    'cross_validated_scores',
    'dual_coefficients',
    'empirical_kernel_regression',
    'fit_softmax_temperature',
    'gp_posterior',
    'infinite_kernel_regression',
    'kernel_regression',
    'mean_diagonal',
    'solve_with_jitter',
]
