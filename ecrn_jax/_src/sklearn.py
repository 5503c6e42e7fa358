# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""scikit-learn estimators: kernel regression with the infinite-width twin's NTK or NNGP.

`NTKRegressor` and `NTKClassifier` compute the twin's kernels (`batch(infinite_kernel_fn(...))`) on
γ(x) for an `ECRNConfig` with Fourier features (B drawn at fit from `random_state`, for the
number of features of X) or on x for an `MLPConfig`, and solve in closed form
(`ecrn_jax._src.regression`; conventions for `t`, `learning_rate` and `diag_reg` there).
Every fit and predict runs under `compat.enable_x64()` (64-bit JAX for that scope only, on old
and current JAX alike), so float64 configs work whether or not the caller enabled 64-bit JAX,
and leave the global setting unchanged.

The kernels are computed natively in JAX (`batch(infinite_kernel_fn(...))`): neither
neural-tangents nor TensorFlow is needed or imported.
"""

from __future__ import annotations

import math
import numbers
from typing import Optional

import jax
import numpy as np
import scipy.linalg
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, check_random_state, column_or_1d
from sklearn.utils.validation import validate_data

from ecrn_jax._src import calibration
from ecrn_jax._src import linalg
from ecrn_jax._src import regression
from ecrn_jax._src import validation
from ecrn_jax._src.compat import enable_x64
from ecrn_jax._src.config import ArchConfig, ECRNConfig, MLPConfig
from ecrn_jax._src.infinite.batching import batch
from ecrn_jax._src.infinite.kernel_fn import infinite_kernel_fn
from ecrn_jax._src.infinite.twin import KERNELS
from ecrn_jax._src.models import ECRN, FOURIER_COLLECTION


def default_config(num_features: int) -> ECRNConfig:
  """The architecture used when `config=None`: the default ECRN in float64 (width 512,
  depth 4, 256 Fourier features) with σ_ff = 1/(2π√d), so that each phase 2π bⱼᵀx has unit
  variance on standardized inputs with d features.

  >>> from ecrn_jax import estimators
  >>> config = estimators.default_config(num_features=4)
  >>> config.dtype, round(config.fourier_scale, 4)  # 1 / (2π √4)
  ('float64', 0.0796)
  """
  return ECRNConfig(
      width=512,
      depth=4,
      fourier_features=256,
      fourier_scale=1.0 / (2.0 * math.pi * math.sqrt(num_features)),
      dtype='float64',
  )


class _NTKEstimator(BaseEstimator):
  """Shared fit/predict machinery; see `NTKRegressor` and `NTKClassifier`."""

  def __init__(
      self,
      config: Optional[ArchConfig] = None,
      kernel: str = 'ntk',
      t=None,
      diag_reg: float = 1e-2,
      learning_rate: float = 1.0,
      batch_size: int = 512,
      random_state=None,
      verbose: bool = False,
  ):
    self.config = config
    self.kernel = kernel
    self.t = t
    self.diag_reg = diag_reg
    self.learning_rate = learning_rate
    self.batch_size = batch_size
    self.random_state = random_state
    self.verbose = verbose

  def _check_params(self, num_features: int) -> ArchConfig:
    config: ArchConfig
    if self.config is None:
      config = default_config(num_features)
    elif isinstance(self.config, (ECRNConfig, MLPConfig)):
      config = self.config
    else:
      raise ValueError(
          'config must be an ECRNConfig, an MLPConfig or None (the default '
          f'ECRN), got {type(self.config).__name__}.'
      )
    validation.check_choice('kernel', self.kernel, KERNELS)
    if self.t is not None and (
        isinstance(self.t, bool)
        or not isinstance(self.t, numbers.Real)
        or math.isnan(self.t)
        or self.t < 0
    ):
      raise ValueError(f't must be None (t = ∞) or a number >= 0, got {self.t!r}.')
    validation.check_diag_reg(self.diag_reg)
    validation.check_time(None, self.learning_rate)
    validation.check_positive_int(self.batch_size, 'batch_size')
    return config

  def _time(self):
    return None if self.t is None or math.isinf(self.t) else float(self.t)

  def _kernel(self, x1, x2=None) -> np.ndarray:
    kernel_fn = infinite_kernel_fn(self.config_, variables=self.variables_)
    kernel_fn = batch(kernel_fn, batch_size=int(self.batch_size), progress=bool(self.verbose))
    return kernel_fn(x1, x2, self.kernel)

  def _fit_targets(self, X: np.ndarray, targets: np.ndarray) -> None:
    """Draws B, computes Θ(X, X) and the dual coefficients; X (N, d), targets (N, C)."""
    self.config_ = self._check_params(X.shape[1])
    self.variables_ = None
    self.seed_ = None
    with enable_x64():
      if isinstance(self.config_, ECRNConfig) and self.config_.fourier_features is not None:
        self.seed_ = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        init = ECRN(self.config_).init(jax.random.PRNGKey(self.seed_), X[:1])
        b_matrix = (
            init[FOURIER_COLLECTION]['fourier_features']['B']
            if FOURIER_COLLECTION in init
            else init['params']['fourier_features']['B']
        )
        self.variables_ = {FOURIER_COLLECTION: {'fourier_features': {'B': np.asarray(b_matrix)}}}
      k_train_train = self._kernel(X)
    validation.check_finite('the training kernel', k_train_train)
    self.X_fit_ = X
    self._posterior_factor = None
    if self.kernel == 'nngp' and self._time() is None:
      solve = linalg.solve_with_jitter(
          linalg.regularized_kernel(k_train_train, float(self.diag_reg)), targets
      )
      self._posterior_factor, self.dual_coef_ = solve.factor, solve.coefficients
    else:
      self.dual_coef_ = regression.dual_coefficients(
          k_train_train, targets, diag_reg=self.diag_reg, t=self.t, learning_rate=self.learning_rate
      )

  def _scores(self, X) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """(M, C) regression outputs, and (X as validated (M, d), the (M, N) test–train kernel)."""
    check_is_fitted(self, 'dual_coef_')
    X = validate_data(self, X, reset=False, dtype=np.float64)
    with enable_x64():
      k_test_train = self._kernel(X, self.X_fit_)
    validation.check_finite('the test–train kernel', k_test_train)
    return k_test_train @ self.dual_coef_, (X, k_test_train)

  def __sklearn_tags__(self):
    tags = super().__sklearn_tags__()
    tags.non_deterministic = self.random_state is None and not isinstance(self.config, MLPConfig)
    return tags


class NTKRegressor(RegressorMixin, _NTKEstimator):
  """Kernel regression with the infinite-width NTK or NNGP of an ECRN or MLP.

  kernel='ntk': the mean output of infinitely wide networks trained by gradient flow on
  ½N⁻¹‖f − y‖² for time t (None: to convergence). kernel='nngp', t=None: the NNGP posterior
  mean (`predict(X, return_std=True)` adds its standard deviation).

  Parameters:
    config: `ECRNConfig` or `MLPConfig` (kernels in its dtype; the solve is float64), or None
      for `default_config(d)`. Width does not change the NTK-parameterized twin's kernel.
    kernel: 'ntk' or 'nngp'.
    t: None (∞) or a training time >= 0 (in steps of `learning_rate`).
    diag_reg: relative ridge: diag_reg · mean(diag Θ(X, X)) is added to the diagonal.
    learning_rate: η (only η·t matters).
    batch_size: tile edge of the kernel computation (memory ~ batch_size² per kernel tile).
    random_state: seed (int, RandomState or None) of the Fourier matrix B.
    verbose: report kernel progress to stderr.

  Attributes:
    config_: the architecture used; seed_: the seed drawn from random_state, B being that of
    `ECRN(config_).init(jax.random.PRNGKey(seed_), X[:1])` (None without Fourier features);
    variables_: {'fourier': {'fourier_features': {'B': (d, m)}}} for the twin, or None;
    X_fit_ (N, d); dual_coef_ (N,) or (N, C): predictions are Θ(x, X_fit_) @ dual_coef_;
    n_features_in_.
  """

  def fit(self, X, y):
    """X (N, d), y (N,) or (N, C) → self."""
    X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True, multi_output=True)
    self._fit_targets(X, y.astype(np.float64))
    return self

  def predict(self, X, return_std: bool = False):
    """(M,) or (M, C) predictions; with return_std (kernel='nngp', t=None), also the (M,)
    posterior standard deviation of the latent function (without noise)."""
    if return_std and (self.kernel != 'nngp' or self._time() is not None):
      raise ValueError(
          "return_std=True needs kernel='nngp' and t=None: the standard deviation "
          'is that of the NNGP (Bayesian) posterior.'
      )
    mean, (X, k_test_train) = self._scores(X)
    if not return_std:
      return mean
    with enable_x64():
      kernel_fn = infinite_kernel_fn(self.config_, variables=self.variables_)
      k_test_diag = batch(kernel_fn, batch_size=int(self.batch_size))(X, get='nngp', diagonal=True)
    whitened = scipy.linalg.solve_triangular(self._posterior_factor, k_test_train.T, lower=True)
    variance = k_test_diag - np.einsum('nm,nm->m', whitened, whitened)
    return mean, np.sqrt(np.maximum(variance, 0.0))

  def __sklearn_tags__(self):
    tags = super().__sklearn_tags__()
    tags.target_tags.multi_output = True
    return tags


class NTKClassifier(ClassifierMixin, _NTKEstimator):
  """Classification by kernel regression on centered one-hot targets (one-hot − 1/K).

  The decision is the argmax of the K regression scores. There is no `predict_proba`: the
  scores are kernel-regression outputs (they need not lie in [0, 1] nor sum to 1), not
  probabilities. For probabilities fit a calibration on held-out scores
  (`calibration.fit_softmax_temperature`, `calibration.calibrated_softmax`).

  Parameters and attributes as `NTKRegressor`, plus classes_ (K,); labels may be any
  sortable values (integers, strings).
  """

  def fit(self, X, y):
    """X (N, d), y (N,) labels → self."""
    X, y = validate_data(self, X, y, dtype=np.float64)
    check_classification_targets(y)
    y = column_or_1d(y, warn=True)
    self.classes_, encoded = np.unique(y, return_inverse=True)
    if len(self.classes_) < 2:
      raise ValueError(
          f'{type(self).__name__} needs samples of at least 2 classes in y; got '
          f'1 class: {self.classes_[0]!r}.'
      )
    self._fit_targets(X, calibration.centered_one_hot(encoded.ravel(), len(self.classes_)))
    return self

  def decision_function(self, X):
    """Regression scores (M, K), one column per class of classes_; for K = 2, the (M,)
    difference score(classes_[1]) − score(classes_[0]). Not probabilities."""
    scores, _ = self._scores(X)
    if len(self.classes_) == 2:
      return scores[:, 1] - scores[:, 0]
    return scores

  def predict(self, X):
    """(M,) labels: classes_[argmax of the scores]."""
    scores, _ = self._scores(X)
    return self.classes_[np.argmax(scores, axis=1)]
