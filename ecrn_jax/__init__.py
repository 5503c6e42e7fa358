"""ecrn_jax: the NTK-ECRN, its empirical NTK and its infinite-width twin in JAX.

The infinite-width kernels are native JAX. neural_tangents (the reference they are tested
against) is imported only by `stax_twin`, `to_stax_params` and
`implementation='neural_tangents'`; importing this package never imports it or TensorFlow.
"""

from ecrn_jax._src.config import ECRNConfig
from ecrn_jax._src.config import MLPConfig
from ecrn_jax._src.empirical import empirical_nngp
from ecrn_jax._src.empirical import empirical_ntk
from ecrn_jax._src.empirical import ntk_vp_fn
from ecrn_jax._src.infinite import ExpectedKernels
from ecrn_jax._src.infinite import InfiniteKernels
from ecrn_jax._src.infinite import embed_inputs
from ecrn_jax._src.infinite import expected_kernels_stochastic_depth
from ecrn_jax._src.infinite import infinite_kernels
from ecrn_jax._src.infinite import stax_twin
from ecrn_jax._src.twin import block_scales
from ecrn_jax._src.twin import infinite_kernel_fn
from ecrn_jax._src.infinite import to_stax_params
from ecrn_jax._src.models import Dense
from ecrn_jax._src.models import ECRN
from ecrn_jax._src.models import FourierFeatures
from ecrn_jax._src.models import MLP
from ecrn_jax._src.models import fourier_embed
from ecrn_jax._src.models import fourier_matrix
from ecrn_jax._src import analysis
from ecrn_jax._src.regression import GaussianPosterior
from ecrn_jax._src.regression import JitterWarning
from ecrn_jax._src.regression import batched_infinite_kernel_diagonal
from ecrn_jax._src.regression import batched_infinite_kernels
from ecrn_jax._src.regression import calibrated_softmax
from ecrn_jax._src.regression import centered_one_hot
from ecrn_jax._src.regression import cholesky_with_jitter
from ecrn_jax._src.regression import dual_coefficients
from ecrn_jax._src.regression import empirical_kernel_regression
from ecrn_jax._src.regression import fit_softmax_temperature
from ecrn_jax._src.regression import gp_posterior
from ecrn_jax._src.regression import infinite_kernel_regression
from ecrn_jax._src.regression import kernel_regression
from ecrn_jax._src.tracking import KernelTracker
from ecrn_jax._src.tracking import TrackingConfig
from ecrn_jax._src.training import LinearizedModel
from ecrn_jax._src.training import TrainConfig
from ecrn_jax._src.training import TrainingDiverged
from ecrn_jax._src.training import cross_entropy_loss
from ecrn_jax._src.training import learning_rate_schedule
from ecrn_jax._src.training import linearize
from ecrn_jax._src.training import make_optimizer
from ecrn_jax._src.training import make_train_step
from ecrn_jax._src.training import mse_loss
from ecrn_jax._src.training import train

__version__ = '0.1.0'


def __getattr__(name):
  # scikit-learn is optional (the `experiments` and `test` extras): load the estimators lazily.
  if name in ('NTKRegressor', 'NTKClassifier'):
    from ecrn_jax._src import sklearn as _sklearn  # pylint: disable=g-import-not-at-top
    return getattr(_sklearn, name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
