# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""scikit-learn estimators NTKRegressor and NTKClassifier.

`parametrize_with_checks` runs every scikit-learn estimator check. Checks it may skip here, and
why (none is expected to fail):
- check_regressor_data_not_an_array / check_classifier_data_not_an_array: need pandas, which is
  not installed in this venv (the checks run where pandas is present);
- check_array_api_input: runs only with SCIPY_ARRAY_API=1 and array-API support, which the
  estimators do not declare (they convert inputs to NumPy float64);
- check_pipeline_consistency: skipped for `non_deterministic` estimators, i.e. an ECRN config
  with random_state=None (B differs per fit); it runs for the estimators below.
"""

import json
import math
import os
from pathlib import Path
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import relative_max_error
from sklearn.base import clone
from sklearn.datasets import load_iris, load_wine
from sklearn.dummy import DummyClassifier
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from ecrn_jax import ECRNConfig, MLPConfig
from ecrn_jax._src.infinite.deprecated import infinite_kernels  # the wrapper: same numbers
from ecrn_jax import regression
from ecrn_jax.estimators import NTKClassifier, NTKRegressor, default_config

SMALL_ECRN = ECRNConfig(width=8, depth=1, fourier_features=16, fourier_scale=0.2, dtype='float64')
SMALL_MLP = MLPConfig(hidden_widths=(8,), dtype='float64')
DEEPER_ECRN = ECRNConfig(
    width=8, depth=2, fourier_features=32, fourier_scale=0.3, drop_rate=0.1, dtype='float64'
)
BOSTON = (
    Path(__file__).resolve().parents[2] / '..' / 'shared' / 'data' / 'uci' / 'boston_housing.csv'
)


@parametrize_with_checks(
    [
        NTKRegressor(config=SMALL_ECRN, random_state=0),
        NTKClassifier(config=SMALL_ECRN, random_state=0),
        NTKRegressor(config=SMALL_MLP, kernel='nngp', t=5.0),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
  check(estimator)


def _closed_form(estimator, x_train, targets, x_test):
  """Θ(x, X) (Θ(X, X) + diag_reg·mean(diag)·I)⁻¹ targets with the twin's kernels (t = ∞), or
  the matrix-exponential form at finite t."""
  train = infinite_kernels(estimator.config_, x_train, variables=estimator.variables_)
  test = infinite_kernels(estimator.config_, x_test, x_train, variables=estimator.variables_)
  k_tt = np.asarray(getattr(train, estimator.kernel))
  k_st = np.asarray(getattr(test, estimator.kernel))
  n = len(x_train)
  regularized = k_tt + estimator.diag_reg * np.trace(k_tt) / n * np.eye(n)
  if estimator.t is None:
    return k_st @ np.linalg.solve(regularized, targets)
  eigenvalues, eigenvectors = np.linalg.eigh(regularized)
  gain = -np.expm1(-estimator.learning_rate * estimator.t * eigenvalues / n) / eigenvalues
  return k_st @ (eigenvectors @ (gain[:, None] * (eigenvectors.T @ targets.reshape(n, -1))))


@pytest.mark.parametrize('config', [DEEPER_ECRN, SMALL_MLP], ids=['ecrn', 'mlp'])
@pytest.mark.parametrize('kernel, t', [('ntk', None), ('nngp', None), ('ntk', 4.0)])
@pytest.mark.x64
def test_regressor_equals_closed_form_with_twin_kernels(config, kernel, t, rng):
  x, x_test = rng.normal(size=(30, 3)), rng.normal(size=(9, 3))
  y = np.sin(x @ np.array([1.0, -2.0, 0.5])) + 0.1 * rng.normal(size=30)
  est = NTKRegressor(
      config=config,
      kernel=kernel,
      t=t,
      diag_reg=1e-3,
      learning_rate=0.5,
      batch_size=16,
      random_state=7,
  ).fit(x, y)
  expected = _closed_form(est, x, y, x_test).ravel()
  predictions = est.predict(x_test)
  assert predictions.shape == (9,) and predictions.dtype == np.float64
  assert relative_max_error(predictions, expected) < 1e-8


@pytest.mark.x64
def test_classifier_scores_equal_closed_form_on_centered_one_hot(rng):
  x, x_test = rng.normal(size=(40, 4)), rng.normal(size=(11, 4))
  labels = np.array(['cat', 'dog', 'emu'])[rng.integers(0, 3, size=40)]
  est = NTKClassifier(config=DEEPER_ECRN, diag_reg=1e-3, batch_size=16, random_state=0).fit(
      x, labels
  )
  np.testing.assert_array_equal(est.classes_, ['cat', 'dog', 'emu'])
  targets = np.eye(3)[np.searchsorted(est.classes_, labels)] - 1.0 / 3
  expected = _closed_form(est, x, targets, x_test)
  scores = est.decision_function(x_test)
  assert scores.shape == (11, 3)
  assert relative_max_error(scores, expected) < 1e-8
  np.testing.assert_array_equal(est.predict(x_test), est.classes_[np.argmax(expected, 1)])
  binary = NTKClassifier(config=DEEPER_ECRN, diag_reg=1e-3, random_state=0).fit(x, labels == 'cat')
  two = _closed_form(binary, x, np.eye(2)[(labels == 'cat').astype(int)] - 0.5, x_test)
  assert relative_max_error(binary.decision_function(x_test), two[:, 1] - two[:, 0]) < 1e-8
  assert not hasattr(est, 'predict_proba')


@pytest.mark.x64
def test_return_std_is_the_nngp_posterior_deviation(rng):
  x, x_test = rng.normal(size=(25, 2)), rng.normal(size=(6, 2))
  y = rng.normal(size=25)
  est = NTKRegressor(config=SMALL_ECRN, kernel='nngp', diag_reg=1e-2, random_state=0).fit(x, y)
  mean, std = est.predict(x_test, return_std=True)
  k = lambda a, b=None: np.asarray(
      infinite_kernels(est.config_, a, b, variables=est.variables_).nngp
  )
  regularized = k(x) + 1e-2 * np.trace(k(x)) / 25 * np.eye(25)
  cov = k(x_test) - k(x_test, x) @ np.linalg.solve(regularized, k(x_test, x).T)
  assert relative_max_error(std, np.sqrt(np.diag(cov))) < 1e-8
  assert relative_max_error(mean, est.predict(x_test)) < 1e-12
  with pytest.raises(ValueError, match="return_std=True needs kernel='nngp'"):
    NTKRegressor(config=SMALL_ECRN).fit(x, y).predict(x_test, return_std=True)


def test_multi_output_regression_is_columnwise(rng):
  x, x_test = rng.normal(size=(20, 3)), rng.normal(size=(5, 3))
  y = rng.normal(size=(20, 2))
  est = NTKRegressor(config=SMALL_ECRN, random_state=1)
  both = est.fit(x, y).predict(x_test)
  assert both.shape == (5, 2)
  for c in range(2):
    column = clone(est).fit(x, y[:, c]).predict(x_test)
    assert relative_max_error(column, both[:, c]) < 1e-10


def test_fourier_matrix_comes_from_random_state_and_default_config(rng):
  x = rng.normal(size=(15, 5))
  y = rng.normal(size=15)
  a = NTKRegressor(random_state=3).fit(x, y)
  b = NTKRegressor(random_state=3).fit(x, y)
  c = NTKRegressor(random_state=4).fit(x, y)
  b_matrix = a.variables_['fourier']['fourier_features']['B']
  assert b_matrix.shape == (5, 256)
  np.testing.assert_array_equal(b_matrix, b.variables_['fourier']['fourier_features']['B'])
  assert not np.allclose(b_matrix, c.variables_['fourier']['fourier_features']['B'])
  assert a.config_ == default_config(5)
  assert math.isclose(a.config_.fourier_scale, 1 / (2 * math.pi * math.sqrt(5)))
  assert a.config_.dtype == 'float64' and a.config is None
  assert NTKRegressor(config=SMALL_MLP).fit(x, y).variables_ is None


def test_params_clone_pipeline_and_grid_search():
  x, y = load_iris(return_X_y=True)
  est = NTKClassifier(config=SMALL_ECRN, diag_reg=0.1, random_state=0)
  params = est.get_params()
  assert params['config'] == SMALL_ECRN and params['kernel'] == 'ntk' and params['t'] is None
  twin = clone(est)
  assert twin.get_params() == params and twin.config == SMALL_ECRN
  twin.set_params(kernel='nngp', config=SMALL_MLP)
  assert twin.kernel == 'nngp' and twin.config == SMALL_MLP and est.kernel == 'ntk'
  search = GridSearchCV(
      make_pipeline(StandardScaler(), est),
      {'ntkclassifier__diag_reg': [1e-3, 1e-1], 'ntkclassifier__config': [SMALL_ECRN, SMALL_MLP]},
      cv=3,
  )
  search.fit(x, y)
  assert search.best_score_ > 0.85
  assert search.best_params_['ntkclassifier__config'] in (SMALL_ECRN, SMALL_MLP)


@pytest.mark.parametrize('loader', [load_iris, load_wine], ids=['iris', 'wine'])
def test_iris_and_wine_cross_validated_accuracy_beats_majority_class(loader):
  x, y = loader(return_X_y=True)
  accuracy = cross_val_score(
      make_pipeline(StandardScaler(), NTKClassifier(random_state=0)), x, y, cv=5
  )
  baseline = cross_val_score(DummyClassifier(strategy='most_frequent'), x, y, cv=5)
  print(
      f'\n{loader.__name__}: 5-fold accuracy {accuracy.mean():.4f} ± {accuracy.std():.4f} '
      f'(folds {np.round(accuracy, 4).tolist()}); majority class {baseline.mean():.4f}'
  )
  assert accuracy.mean() > baseline.mean() + 0.4
  assert accuracy.mean() > 0.85


def test_boston_housing_r2():
  if not BOSTON.exists():
    pytest.skip(
        f'Boston Housing CSV not found at {BOSTON} (the shared data directory beside '
        'the repository); nothing to test against.'
    )
  table = np.genfromtxt(BOSTON, delimiter=',', names=True)
  features = [name for name in table.dtype.names if name != 'MEDV']
  x = np.stack([table[name] for name in features], axis=1)
  y = table['MEDV']
  assert x.shape == (506, 13)
  cv = KFold(5, shuffle=True, random_state=0)
  r2 = cross_val_score(
      make_pipeline(StandardScaler(), NTKRegressor(random_state=0)), x, y, cv=cv, scoring='r2'
  )
  print(
      f'\nBoston Housing: 5-fold (shuffled, seed 0) R² {r2.mean():.4f} ± {r2.std():.4f} '
      f'(folds {np.round(r2, 4).tolist()})'
  )
  assert r2.mean() > 0.75


def test_bad_inputs_raise_what_sklearn_users_expect(rng):
  x, y = rng.normal(size=(12, 3)), rng.normal(size=12)
  reg = NTKRegressor(config=SMALL_ECRN, random_state=0)
  clf = NTKClassifier(config=SMALL_ECRN, random_state=0)
  labels = np.arange(12) % 3
  with pytest.raises(NotFittedError):
    reg.predict(x)
  with pytest.raises(ValueError, match='NaN'):
    reg.fit(np.where(np.eye(12, 3) > 0, np.nan, x), y)
  with pytest.raises(ValueError, match='infinity'):
    reg.fit(np.where(np.eye(12, 3) > 0, np.inf, x), y)
  with pytest.raises(ValueError, match='NaN'):
    reg.fit(x, np.r_[y[:-1], np.nan])
  with pytest.raises(ValueError, match='Expected 2D array'):
    reg.fit(x[:, 0], y)
  with pytest.raises(ValueError, match='inconsistent numbers of samples'):
    reg.fit(x, y[:-1])
  with pytest.raises(ValueError, match='0 sample'):
    reg.fit(x[:0], y[:0])
  with pytest.raises(ValueError, match='at least 2 classes'):
    clf.fit(x[:1], labels[:1])
  with pytest.raises(ValueError, match='Unknown label type'):
    clf.fit(x, y)
  fitted = reg.fit(x, y)
  with pytest.raises(ValueError, match='3 features'):
    fitted.predict(x[:, :2])
  with pytest.raises(ValueError, match='NaN'):
    fitted.predict(np.full((2, 3), np.nan))
  assert fitted.predict(x[:1]).shape == (1,)
  one = NTKRegressor(config=SMALL_ECRN, random_state=0).fit(x[:1], y[:1])
  assert np.isfinite(one.predict(x)).all()
  strings = np.array(['setosa', 'versicolor', 'virginica'])[labels]
  predicted = clf.fit(x, strings).predict(x)
  assert predicted.dtype == strings.dtype and set(predicted) <= set(strings)
  assert clf.score(x, strings) > 0.9
  with pytest.raises(ValueError, match='standardize'):
    NTKRegressor(config=MLPConfig((8,), activation='relu', dtype='float64')).fit(x * 1e200, y)
  for params, match in [
      ({'kernel': 'rbf'}, 'kernel'),
      ({'t': -1.0}, 't must be'),
      ({'diag_reg': -1.0}, 'diag_reg'),
      ({'batch_size': 0}, 'batch_size'),
      ({'learning_rate': 0.0}, 'learning_rate'),
      ({'config': 'ecrn'}, 'config must be'),
  ]:
    with pytest.raises(ValueError, match=match):
      NTKRegressor(**params).fit(x, y)


def test_float64_without_global_x64(rng):
  """Fit/predict under enable_x64 even when the caller left 64-bit JAX off (a fresh process)."""
  x, y, x_test = rng.normal(size=(20, 3)), rng.normal(size=20), rng.normal(size=(4, 3))
  code = textwrap.dedent(f"""
      import json, jax, numpy as np
      from ecrn_jax import ECRNConfig
      from ecrn_jax.estimators import NTKRegressor
      config = ECRNConfig(width=8, depth=1, fourier_features=16, fourier_scale=0.2,
                          dtype='float64')
      x, y, x_test = (np.array(v) for v in json.loads({json.dumps(json.dumps(
          [x.tolist(), y.tolist(), x_test.tolist()]))}))
      assert not jax.config.jax_enable_x64
      predictions = NTKRegressor(config, random_state=0).fit(x, y).predict(x_test)
      assert not jax.config.jax_enable_x64 and predictions.dtype == np.float64
      print(json.dumps(predictions.tolist()))
  """)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', JAX_ENABLE_X64='0')
  result = subprocess.run(
      [sys.executable, '-c', code], capture_output=True, text=True, env=env, timeout=300
  )
  assert result.returncode == 0, result.stderr[-3000:]
  theirs = np.array(json.loads(result.stdout.strip().splitlines()[-1]))
  ours = NTKRegressor(SMALL_ECRN, random_state=0).fit(x, y).predict(x_test)
  assert relative_max_error(theirs, ours) < 1e-10


def test_calibrated_probabilities_are_a_separate_helper(rng):
  x, y = load_iris(return_X_y=True)
  x = StandardScaler().fit_transform(x)
  order = rng.permutation(len(y))
  train, held_out = order[:100], order[100:]
  clf = NTKClassifier(config=SMALL_ECRN, random_state=0).fit(x[train], y[train])
  scores = clf.decision_function(x[held_out])
  temperature = regression.fit_softmax_temperature(scores, y[held_out])
  probabilities = regression.calibrated_softmax(scores, temperature)
  np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
  np.testing.assert_array_equal(probabilities.argmax(1), clf.predict(x[held_out]))
