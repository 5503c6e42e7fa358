# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Calibration of kernel-regression classifiers: centred one-hot targets, cross-validated scores
and the softmax temperature fitted on them (docs/spec.md §2.6).

Classification regresses centred one-hot targets e_y − 1/K (`centered_one_hot`); the class is
the argmax of the scores, which become probabilities only through softmax(scores / T)
(`calibrated_softmax`) with a temperature T fitted on held-out scores (`calibrate_temperature`,
from the K-fold `cross_validated_scores`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.optimize
import scipy.special

from ecrn_jax._src.regression import check_kernels, kernel_regression
from ecrn_jax._src.validation import check_finite, check_int


def cross_validated_scores(
    k_train_train,
    targets,
    *,
    folds: int,
    order,
    diag_reg: float = 0.0,
    t=None,
    learning_rate: float = 1.0,
    dtype: str = 'float64',
) -> np.ndarray:
  """K-fold cross-validated kernel-regression predictions of the training points.

  Fold f holds out the points order[f::folds] and predicts them with `kernel_regression`
  fitted on the other points (the blocks of k_train_train), its ridge relative to the mean
  diagonal of that fit block. So there is one solve per fold: the folds' ridges differ, and
  no single factorization of the full kernel gives these numbers exactly.

  Args:
    k_train_train: (N, N) kernel on the training inputs.
    targets: (N,) or (N, C).
    folds: the number of folds, 2 <= folds <= N.
    order: a permutation of range(N) (e.g. `rng.permutation(N)`) that deals the points into
      the folds.
    diag_reg, t, learning_rate, dtype: as in `kernel_regression`.
  Returns:
    Held-out predictions like targets, (N,) or (N, C); with an array t, a leading axis of
    length T.

  >>> import numpy as np
  >>> from ecrn_jax import regression
  >>> k = np.eye(4) + 0.5
  >>> regression.cross_validated_scores(
  ...     k, np.array([1.0, 1.0, -1.0, -1.0]), folds=2, order=np.arange(4)).shape
  (4,)
  """
  k_train_train, targets, _ = check_kernels(k_train_train, targets, None, dtype)
  n = k_train_train.shape[0]
  order = _check_folds(folds, order, n)
  scores = None
  for fold in range(int(folds)):
    held = np.sort(order[fold::folds])
    fit = np.setdiff1d(np.arange(n), held)
    predictions = kernel_regression(
        k_train_train[np.ix_(fit, fit)],
        targets[fit],
        k_train_train[np.ix_(held, fit)],
        diag_reg=diag_reg,
        t=t,
        learning_rate=learning_rate,
        dtype=dtype,
    )
    if scores is None:
      scores = np.zeros(predictions.shape[: -targets.ndim] + targets.shape, predictions.dtype)
    scores[(Ellipsis, held) + (slice(None),) * (targets.ndim - 1)] = predictions
  assert scores is not None  # _check_folds: at least 2 folds
  return scores


def _check_folds(folds, order, n: int) -> np.ndarray:
  """order (N,) as an integer array, after checking it and 2 <= folds <= N."""
  check_int('folds', folds, 2)
  if folds > n:
    raise ValueError(
        f'folds must be <= N = {n} (each fold holds out at least one point), got {folds}.'
    )
  order = np.asarray(order)
  if (
      order.shape != (n,)
      or not np.issubdtype(order.dtype, np.integer)
      or not np.array_equal(np.sort(order), np.arange(n))
  ):
    raise ValueError(
        f'order must be a permutation of range(N) = range({n}), each of 0..{n - 1} '
        f'once (e.g. rng.permutation({n})), got {np.array2string(order, threshold=8)} '
        f'(shape {order.shape}).'
    )
  return order


def centered_one_hot(labels, num_classes: int) -> np.ndarray:
  """Regression targets for classification: one-hot(labels) − 1/K, shape (N, K).

  >>> from ecrn_jax import regression
  >>> regression.centered_one_hot([0, 2], 3).round(3)
  array([[ 0.667, -0.333, -0.333],
         [-0.333, -0.333,  0.667]])
  """
  labels = np.asarray(labels)
  if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f'labels must be a 1-D array of integers in [0, K), got {labels!r}.')
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(
        f'labels must lie in [0, {num_classes}), got range [{labels.min()}, {labels.max()}].'
    )
  return np.eye(num_classes)[labels] - 1.0 / num_classes


def calibrated_softmax(scores, temperature: float) -> np.ndarray:
  """softmax(scores / temperature) over the last axis: (M, K) → (M, K).

  Kernel-regression scores are not probabilities; this is a calibration, honest only with a
  temperature fitted on held-out data (`fit_softmax_temperature`).

  >>> import numpy as np
  >>> from ecrn_jax import regression
  >>> regression.calibrated_softmax(np.array([[0.0, np.log(3.0)]]), 1.0).round(6)
  array([[0.25, 0.75]])
  """
  if not temperature > 0:
    raise ValueError(f'temperature must be > 0, got {temperature!r}.')
  return scipy.special.softmax(np.asarray(scores, np.float64) / temperature, axis=-1)


def fit_softmax_temperature(scores, labels, *, bounds: tuple[float, float] = (1e-4, 1e4)) -> float:
  """The temperature T minimizing the cross-entropy of softmax(scores / T) against labels.

  Fit it on held-out scores (a validation split or cross-validation predictions): on training
  inputs kernel regression nearly interpolates its targets, and T would be overconfident.

  Args:
    scores: (M, K) regression scores (e.g. `NTKClassifier.decision_function`, K > 2 columns).
    labels: (M,) integer labels in [0, K).

  >>> import numpy as np
  >>> from ecrn_jax import regression
  >>> scores = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
  >>> round(regression.fit_softmax_temperature(scores, np.array([0, 1, 0, 0])), 3)  # 1/ln 3
  0.91
  """
  scores = np.asarray(scores, np.float64)
  labels = np.asarray(labels)
  if scores.ndim != 2 or labels.shape != (scores.shape[0],):
    raise ValueError(
        f'scores must be (M, K) and labels (M,), got {scores.shape} and {labels.shape}.'
    )
  check_finite('scores', scores)

  def cross_entropy(log_t):
    log_p = scipy.special.log_softmax(scores / np.exp(log_t), axis=-1)
    return -float(np.mean(log_p[np.arange(len(labels)), labels]))

  result = scipy.optimize.minimize_scalar(
      cross_entropy, bounds=np.log(bounds), method='bounded', options={'xatol': 1e-6}
  )
  return float(np.exp(result.x))


class TemperatureCalibration(NamedTuple):
  """A softmax temperature and the held-out scores it was fitted on.

  temperature: T for `calibrated_softmax`; held_out_scores: (N, K) cross-validated scores of
  the training points; held_out_accuracy: the fraction of them whose argmax is the label.
  """

  temperature: float
  held_out_scores: np.ndarray
  held_out_accuracy: float


def calibrate_temperature(
    k_train_train,
    labels,
    num_classes: int,
    *,
    folds: int,
    order,
    diag_reg: float = 0.0,
    t=None,
    learning_rate: float = 1.0,
) -> TemperatureCalibration:
  """The softmax temperature of kernel-regression classification, fitted on held-out scores.

  Classification regresses centered one-hot targets (`centered_one_hot`) and turns the scores
  into probabilities with softmax(scores / T) (`calibrated_softmax`). T must be fitted on
  scores of points the regression was not fitted on: on its own training points kernel
  regression (nearly) interpolates the targets, so every argmax is right with a wide margin,
  the cross-entropy keeps falling as T → 0 and T runs to its lower bound. Here each training
  point's score comes from the fit on the other folds (`cross_validated_scores`), and T is
  fitted on all N of them (`fit_softmax_temperature`). When every held-out score is classified
  correctly (held_out_accuracy == 1) the same happens: T is then its bound, not a calibration.

  Args:
    k_train_train: (N, N) kernel on the training inputs.
    labels: (N,) integer labels in [0, K); num_classes: K.
    folds, order, diag_reg, t, learning_rate: as in `cross_validated_scores` (t one time or
      None).
  Returns:
    `TemperatureCalibration(temperature, held_out_scores (N, K), held_out_accuracy)`.

  >>> import numpy as np
  >>> from ecrn_jax import regression
  >>> k = np.eye(6) + 0.5
  >>> calibration = regression.calibrate_temperature(
  ...     k, np.array([0, 1, 0, 1, 0, 1]), 2, folds=3, order=np.arange(6), diag_reg=0.1)
  >>> calibration.held_out_scores.shape, calibration.temperature > 0
  ((6, 2), True)
  """
  if np.ndim(t) != 0:
    raise ValueError(
        f't must be None (t = ∞) or one time >= 0: one temperature is fitted, '
        f'got shape {np.shape(t)}.'
    )
  labels = np.asarray(labels)
  scores = cross_validated_scores(
      k_train_train,
      centered_one_hot(labels, num_classes),
      folds=folds,
      order=order,
      diag_reg=diag_reg,
      t=t,
      learning_rate=learning_rate,
  )
  accuracy = float(np.mean(np.argmax(scores, axis=-1) == labels))
  return TemperatureCalibration(fit_softmax_temperature(scores, labels), scores, accuracy)
