# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""ecrn_jax: the NTK-ECRN, its empirical NTK and its infinite-width twin in JAX.

The top level holds what a first program needs: the networks and their configurations, the
empirical and infinite-width kernel functions (`batch` tiles the latter over devices), `train`
and the kernel tracker. Public submodules hold the rest:

- `ecrn_jax.analysis`: spectra, ΔΘ, alignment, the Arora et al. bound, mode-wise convergence,
  their matrix-free estimators, and finite- vs infinite-width convergence;
- `ecrn_jax.regression`: jittered Cholesky solves, kernel regression and the GP posterior,
  calibration of kernel classifiers;
- `ecrn_jax.kernels`: helpers and result types of the kernel functions, and the
  neural-tangents reference twin;
- `ecrn_jax.models`: the layers and helpers of the networks (Dense, Fourier features, dtypes);
- `ecrn_jax.training`: the pieces `train` is made of (optimizer, steps, losses, linearization);
- `ecrn_jax.files`: atomic files without pickle;
- `ecrn_jax.estimators`: scikit-learn estimators (`NTKRegressor` and `NTKClassifier` are also
  reachable here, loaded on first use).

The infinite-width kernels are native JAX. neural_tangents (the reference they are tested
against) is imported only by `kernels.stax_twin` and `implementation='neural_tangents'`;
importing this package never imports it or TensorFlow.

Names that moved from the top level, and `ecrn_jax.io` (now `ecrn_jax.files`: it shadowed the
standard library's `io`), still resolve for one release with a DeprecationWarning that names
the new spelling (`_DEPRECATED` below).
"""

# pylint: disable=g-importing-member
from ecrn_jax import analysis
from ecrn_jax import files
from ecrn_jax import kernels
from ecrn_jax import models
from ecrn_jax import regression
from ecrn_jax import training
from ecrn_jax._src.config import ECRNConfig
from ecrn_jax._src.config import MLPConfig
from ecrn_jax._src.deprecations import deprecation_getattr as _deprecation_getattr
from ecrn_jax._src.empirical import empirical_nngp
from ecrn_jax._src.empirical import empirical_ntk
from ecrn_jax._src.vector_products import ntk_vp_fn
from ecrn_jax._src.infinite import deprecated as _deprecated_infinite
from ecrn_jax._src.infinite.batching import batch
from ecrn_jax._src.infinite.kernel_fn import infinite_kernel_fn
from ecrn_jax._src.models import ECRN
from ecrn_jax._src.models import MLP
from ecrn_jax._src.tracking import KernelTracker
from ecrn_jax._src.tracking import TrackingConfig
from ecrn_jax._src.tracking_io import TrackingWriter
from ecrn_jax._src.training import TrainConfig
from ecrn_jax._src.training import TrainingDiverged
from ecrn_jax._src.training import train

__version__ = '0.1.0'

# scikit-learn is optional (the `experiments` and `test` extras): the estimators load lazily.
_LAZY = ('NTKClassifier', 'NTKRegressor', 'estimators')

__all__ = [
    # Public submodules.
    'analysis',
    'estimators',
    'files',
    'kernels',
    'models',
    'regression',
    'training',
    # The networks and their configurations.
    'ECRN',
    'ECRNConfig',
    'MLP',
    'MLPConfig',
    # Empirical kernels.
    'empirical_nngp',
    'empirical_ntk',
    'ntk_vp_fn',
    # Infinite-width kernels.
    'batch',
    'infinite_kernel_fn',
    # Training and kernel tracking.
    'KernelTracker',
    'TrackingConfig',
    'TrackingWriter',
    'TrainConfig',
    'TrainingDiverged',
    'train',
    # scikit-learn estimators (loaded on first use, by __getattr__).
    'NTKClassifier',  # pylint: disable=undefined-all-variable
    'NTKRegressor',  # pylint: disable=undefined-all-variable
]


def _moved(module, names):
  """{name: ('ecrn_jax.module.name', the object)} for names now in a public submodule."""
  return {name: (f'{module.__name__}.{name}', getattr(module, name)) for name in names}


# Old top-level spelling → (new spelling, object), for one release.
_DEPRECATED = {
    'io': ('ecrn_jax.files', files),
    **_moved(
        models,
        (
            'ArchConfig',
            'Dense',
            'FourierFeatures',
            'fourier_embed',
            'fourier_matrix',
            'resolve_dtype',
        ),
    ),
    **_moved(
        kernels,
        (
            'ExpectedKernels',
            'InfiniteKernels',
            'auto_vp_batch_size',
            'block_scales',
            'embed_inputs',
            'stax_twin',
            'to_stax_params',
        ),
    ),
    **_moved(
        training,
        (
            'LinearizedModel',
            'TrainState',
            'cross_entropy_loss',
            'learning_rate_schedule',
            'linearize',
            'make_optimizer',
            'make_train_epoch',
            'make_train_step',
            'mse_loss',
            'steps_per_epoch',
        ),
    ),
    **_moved(
        analysis,
        ('ConvergenceResult', 'finite_vs_infinite', 'fit_power_law', 'relative_frobenius_error'),
    ),
    # Every kernel-regression name was exported here and in `ecrn_jax.regression`.
    **_moved(regression, regression.__all__),
    # Replaced by the one entry point `infinite_kernel_fn` and the `batch` combinator.
    'infinite_kernels': (
        'ecrn_jax.infinite_kernel_fn(config, variables=..., mask=..., fourier_limit=..., '
        'implementation=...)(x1, x2)',
        _deprecated_infinite.infinite_kernels,
    ),
    'expected_kernels_stochastic_depth': (
        'ecrn_jax.infinite_kernel_fn(config, variables=..., expectation=method, '
        'num_samples=..., key=...)(x1, x2)',
        _deprecated_infinite.expected_kernels_stochastic_depth,
    ),
    **regression._DEPRECATED,  # pylint: disable=protected-access
}

# Called from this module's __getattr__, one frame below the caller's: stacklevel 3.
_deprecated_getattr = _deprecation_getattr(__name__, _DEPRECATED, stacklevel=3)


def __getattr__(name):
  if name in _LAZY:
    import importlib  # pylint: disable=g-import-not-at-top

    estimators = importlib.import_module('ecrn_jax.estimators')
    return estimators if name == 'estimators' else getattr(estimators, name)
  return _deprecated_getattr(name)


def __dir__():
  return sorted(set(globals()) | set(__all__))
