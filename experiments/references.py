# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The classical references beside the paper's models (registry.REFERENCES): least squares, the
ARD Gaussian process, LDA, the RBF-SVM and the mixture's Bayes-optimal classifier. None is
searched: each selects its own hyperparameters on the training split only.
"""

from __future__ import annotations

import warnings

import numpy as np

from experiments import sources
from experiments.registry import REGISTRY

SVM_C = (0.1, 1.0, 10.0, 100.0)
SVM_GAMMA_FACTORS = (0.03, 0.1, 0.3, 1.0, 3.0)  # γ = factor / d (1/d: sklearn's 'scale')
CV_FOLDS = 5  # rbf_svm: folds of the (C, γ) selection and of the probability calibration
GP_RESTARTS = 2  # gp_ard: optimizer restarts from random hyperparameters (seeded)
_LOG_FLOOR = float(np.log(1e-300))


def _full_log_probs(log_probs, classes, num_classes: int, floor=_LOG_FLOOR) -> np.ndarray:
  """(M, num_classes) log-probabilities (or scores) from an estimator's columns for `classes`
  (a class absent from the training split gets -inf: probability 0), floored at `floor`."""
  out = np.full((len(log_probs), num_classes), -np.inf)
  out[:, np.asarray(classes, np.int64)] = log_probs
  return np.maximum(out, floor)


def _folds(labels, seed: int):
  from sklearn.model_selection import StratifiedKFold  # pylint: disable=g-import-not-at-top

  smallest = int(np.min(np.bincount(labels)[np.unique(labels)]))
  return StratifiedKFold(max(2, min(CV_FOLDS, smallest)), shuffle=True, random_state=seed)


def _lda(x, y, num_classes: int, seed: int):
  del seed
  from sklearn import discriminant_analysis  # pylint: disable=g-import-not-at-top

  lda = discriminant_analysis.LinearDiscriminantAnalysis().fit(x, y)

  def predict(z):
    log_probs = _full_log_probs(lda.predict_log_proba(z), lda.classes_, num_classes)
    return log_probs, log_probs

  return predict, {'estimator': 'sklearn LinearDiscriminantAnalysis(solver="svd")'}


def _rbf_svm(x, y, num_classes: int, seed: int):
  """SVC with (C, γ) of the best 5-fold CV accuracy on (x, y); scores: its one-vs-rest decision
  function; probabilities: sigmoid calibration on 5-fold cross-validated decision values."""
  from sklearn.calibration import CalibratedClassifierCV  # pylint: disable=g-import-not-at-top
  from sklearn.model_selection import GridSearchCV  # pylint: disable=g-import-not-at-top
  from sklearn.svm import SVC  # pylint: disable=g-import-not-at-top

  grid = {'C': list(SVM_C), 'gamma': [f / x.shape[1] for f in SVM_GAMMA_FACTORS]}
  search = GridSearchCV(SVC(kernel='rbf'), grid, cv=_folds(y, seed), scoring='accuracy').fit(x, y)
  svc = search.best_estimator_  # refitted on all of (x, y)
  calibrated = CalibratedClassifierCV(
      SVC(kernel='rbf', **search.best_params_), method='sigmoid', cv=_folds(y, seed), ensemble=False
  ).fit(x, y)

  def predict(z):
    decision = svc.decision_function(z)
    if decision.ndim == 1:  # two classes: the second's margin
      decision = np.stack([-decision, decision], axis=1)
    scores = _full_log_probs(decision, svc.classes_, num_classes, floor=-np.inf)
    log_probs = np.log(np.clip(calibrated.predict_proba(z), 1e-300, None))
    return _full_log_probs(log_probs, calibrated.classes_, num_classes), scores

  details = {'estimator': 'sklearn SVC(kernel="rbf"), one-vs-rest decision function'}
  details.update(selected=search.best_params_, cv_accuracy=float(search.best_score_), grid=grid)
  details['probabilities'] = 'CalibratedClassifierCV(method="sigmoid", ensemble=False)'
  return predict, dict(details, cv_folds=search.n_splits_)


def _bayes_optimal(dataset):
  """The posterior under the mixture's known generator (dataset.info, sources.py)."""
  info = dataset.info
  if info.get('means') is None:
    raise ValueError('bayes_optimal needs the synthetic mixture (its generator is unknown here).')
  mean, std = (np.asarray(info[k], np.float64) for k in ('feature_mean', 'feature_std'))
  generator = [info[k] for k in ('means', 'covariance_sqrt', 'class_weights')]

  def predict(z):
    x_raw = np.asarray(z, np.float64) * std + mean  # undo the standardization
    log_probs = sources.mixture_log_posterior(x_raw, *generator)
    return log_probs, log_probs

  return predict, {'estimator': 'posterior argmax under the known generator (no fit)'}


def _gp_ard(x, y, seed: int, restarts: int = GP_RESTARTS):
  """GP regression, C·RBF(ARD) + white noise, hyperparameters by marginal likelihood."""
  from sklearn.exceptions import ConvergenceWarning  # pylint: disable=g-import-not-at-top
  from sklearn import gaussian_process  # pylint: disable=g-import-not-at-top
  from sklearn.gaussian_process import kernels  # pylint: disable=g-import-not-at-top

  rbf = kernels.RBF(np.ones(x.shape[1]), (1e-2, 1e3))
  kernel = kernels.ConstantKernel(1.0, (1e-3, 1e3)) * rbf + kernels.WhiteKernel(0.1, (1e-6, 1e1))
  options = dict(normalize_y=True, n_restarts_optimizer=restarts, random_state=seed)
  gp = gaussian_process.GaussianProcessRegressor(kernel, **options)
  with warnings.catch_warnings():  # a length scale at its upper bound: an irrelevant feature
    warnings.simplefilter('ignore', ConvergenceWarning)
    gp.fit(x, y)
  details = {
      'estimator': (
          'sklearn GaussianProcessRegressor(normalize_y=True), ConstantKernel·RBF(ARD)'
          f' + WhiteKernel, {restarts} seeded restarts'
      ),
      'kernel': str(gp.kernel_),
      'log_marginal_likelihood': float(gp.log_marginal_likelihood_value_),
  }
  return gp.predict, details


def fit_reference(name: str, dataset, seed: int, gp_restarts: int = GP_RESTARTS, gp_max_train=None):
  """(predict, details) of reference `name` fitted on dataset's training split only: predict(x)
  gives predictions (regression) or (log-probabilities, scores), both (M, C)."""
  task = REGISTRY[name].task
  if task is not None and task != dataset.task:
    raise ValueError(f'reference {name!r} is for {task}, but {dataset.name} is {dataset.task}.')
  if name == 'bayes_optimal':
    return _bayes_optimal(dataset)
  x = np.asarray(dataset.x_train, np.float64)
  y = np.asarray(dataset.y_train)
  if name == 'gp_ard':
    n = len(x) if gp_max_train is None else int(gp_max_train)  # smoke: the first n only
    predict, details = _gp_ard(x[:n], y[:n].astype(np.float64), seed, gp_restarts)
    return predict, {**details, 'fitted_on_training_points': min(n, len(x))}
  if name == 'linear':
    from sklearn.linear_model import LinearRegression  # pylint: disable=g-import-not-at-top

    fitted = LinearRegression().fit(x, y.astype(np.float64))
    return fitted.predict, {'estimator': 'sklearn LinearRegression'}
  fit = {'lda': _lda, 'rbf_svm': _rbf_svm}[name]
  return fit(x, y.astype(np.int64), dataset.num_classes, seed)
