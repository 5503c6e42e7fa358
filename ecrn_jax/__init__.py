# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""ecrn_jax: the NTK-ECRN, its empirical NTK and its infinite-width twin in JAX.

The top level holds the model, kernel, training and tracking API; three public modules group
the rest: `ecrn_jax.analysis` (spectra, ΔΘ, bounds, matrix-free estimators),
`ecrn_jax.regression` (kernel regression, tiled infinite-width kernels, calibration) and
`ecrn_jax.io` (atomic files without pickle); `ecrn_jax.estimators` holds the scikit-learn
estimators (`NTKRegressor` and `NTKClassifier` are also reachable here, loaded on first use).

The infinite-width kernels are native JAX. neural_tangents (the reference they are tested
against) is imported only by `stax_twin`, `to_stax_params` and
`implementation='neural_tangents'`; importing this package never imports it or TensorFlow.
"""

# pylint: disable=g-importing-member
from ecrn_jax import analysis
from ecrn_jax import io
from ecrn_jax import regression
from ecrn_jax._src.config import ArchConfig
from ecrn_jax._src.config import ECRNConfig
from ecrn_jax._src.config import MLPConfig
from ecrn_jax._src.convergence import ConvergenceResult
from ecrn_jax._src.convergence import finite_vs_infinite
from ecrn_jax._src.convergence import fit_power_law
from ecrn_jax._src.convergence import relative_frobenius_error
from ecrn_jax._src.empirical import auto_vp_batch_size
from ecrn_jax._src.empirical import empirical_nngp
from ecrn_jax._src.empirical import empirical_ntk
from ecrn_jax._src.empirical import ntk_vp_fn
from ecrn_jax._src.infinite.masks import ExpectedKernels
from ecrn_jax._src.infinite.twin import InfiniteKernels
from ecrn_jax._src.infinite.twin import embed_inputs
from ecrn_jax._src.infinite.deprecated import expected_kernels_stochastic_depth
from ecrn_jax._src.infinite.deprecated import infinite_kernels
from ecrn_jax._src.infinite.reference import stax_twin
from ecrn_jax._src.infinite.reference import to_stax_params
from ecrn_jax._src.models import Dense
from ecrn_jax._src.models import ECRN
from ecrn_jax._src.models import FourierFeatures
from ecrn_jax._src.models import MLP
from ecrn_jax._src.models import fourier_embed
from ecrn_jax._src.models import fourier_matrix
from ecrn_jax._src.models import resolve_dtype
from ecrn_jax._src.tracking import KernelTracker
from ecrn_jax._src.tracking import TrackingConfig
from ecrn_jax._src.tracking_io import TrackingWriter
from ecrn_jax._src.linearized import LinearizedModel
from ecrn_jax._src.training import TrainConfig
from ecrn_jax._src.training import TrainState
from ecrn_jax._src.training import TrainingDiverged
from ecrn_jax._src.training import cross_entropy_loss
from ecrn_jax._src.training import learning_rate_schedule
from ecrn_jax._src.linearized import linearize
from ecrn_jax._src.training import make_optimizer
from ecrn_jax._src.training import make_train_epoch
from ecrn_jax._src.training import make_train_step
from ecrn_jax._src.training import mse_loss
from ecrn_jax._src.training import steps_per_epoch
from ecrn_jax._src.training import train
from ecrn_jax._src.infinite.twin import block_scales
from ecrn_jax._src.infinite.batching import batch
from ecrn_jax._src.infinite.kernel_fn import infinite_kernel_fn
from ecrn_jax.regression import GaussianPosterior
from ecrn_jax.regression import JitterWarning
from ecrn_jax.regression import JitteredSolve
from ecrn_jax.regression import RESIDUAL_TOLERANCE
from ecrn_jax.regression import TemperatureCalibration
from ecrn_jax.regression import batched_infinite_kernel_diagonal
from ecrn_jax.regression import batched_infinite_kernels
from ecrn_jax.regression import calibrate_temperature
from ecrn_jax.regression import calibrated_softmax
from ecrn_jax.regression import centered_one_hot
from ecrn_jax.regression import cholesky_with_jitter
from ecrn_jax.regression import cross_validated_scores
from ecrn_jax.regression import dual_coefficients
from ecrn_jax.regression import empirical_kernel_regression
from ecrn_jax.regression import fit_softmax_temperature
from ecrn_jax.regression import gp_posterior
from ecrn_jax.regression import infinite_kernel_regression
from ecrn_jax.regression import kernel_regression
from ecrn_jax.regression import mean_diagonal
from ecrn_jax.regression import solve_with_jitter

__version__ = '0.1.0'

# scikit-learn is optional (the `experiments` and `test` extras): the estimators load lazily.
_LAZY = ('NTKClassifier', 'NTKRegressor', 'estimators')

__all__ = [
    # Modules.
    'analysis',
    'estimators',
    'io',
    'regression',
    # Architectures.
    'ArchConfig',
    'Dense',
    'ECRN',
    'ECRNConfig',
    'FourierFeatures',
    'MLP',
    'MLPConfig',
    'fourier_embed',
    'fourier_matrix',
    'resolve_dtype',
    # Empirical kernels.
    'auto_vp_batch_size',
    'empirical_nngp',
    'empirical_ntk',
    'ntk_vp_fn',
    # Infinite-width kernels.
    'ExpectedKernels',
    'InfiniteKernels',
    'batch',
    'block_scales',
    'embed_inputs',
    'expected_kernels_stochastic_depth',
    'infinite_kernel_fn',
    'infinite_kernels',
    'stax_twin',
    'to_stax_params',
    # Finite vs infinite width.
    'ConvergenceResult',
    'finite_vs_infinite',
    'fit_power_law',
    'relative_frobenius_error',
    # Training.
    'LinearizedModel',
    'TrainConfig',
    'TrainState',
    'TrainingDiverged',
    'cross_entropy_loss',
    'learning_rate_schedule',
    'linearize',
    'make_optimizer',
    'make_train_epoch',
    'make_train_step',
    'mse_loss',
    'steps_per_epoch',
    'train',
    # Kernel tracking.
    'KernelTracker',
    'TrackingConfig',
    'TrackingWriter',
    # Kernel regression (also in `ecrn_jax.regression`).
    *regression.__all__,
    # scikit-learn estimators (loaded on first use).
    'NTKClassifier',
    'NTKRegressor',
]


def __getattr__(name):
  if name in _LAZY:
    import importlib  # pylint: disable=g-import-not-at-top

    estimators = importlib.import_module('ecrn_jax.estimators')
    return estimators if name == 'estimators' else getattr(estimators, name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
  return sorted(set(globals()) | set(__all__))
