# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The classical references (experiments/references.py): LDA, least squares, the ARD
Gaussian process, the RBF-SVM and the mixture's Bayes-optimal classifier; their configs, search,
units, labels and table rows."""

import json
import os

import numpy as np
import pytest
import scipy.stats

import utils

from experiments import input_pipeline
from experiments import paper
from experiments import plan as plan_lib
from experiments import report
from experiments import run as run_lib
from experiments import references
from experiments import registry
from experiments import units


def _dataset(x, y, task, num_classes, n_train, info=None):
  return input_pipeline.Dataset(
      x_train=x[:n_train],
      y_train=y[:n_train],
      x_test=x[n_train:],
      y_test=y[n_train:],
      task=task,
      num_classes=num_classes,
      name='toy',
      info=info or {},
  )


def _blobs(seed=0, n=150, d=4, c=3):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, c, n)
  x = rng.standard_normal((c, d))[y] + rng.standard_normal((n, d))
  return x, y


def _mixture(seed, num_train=200, num_test=400):
  _, config = run_lib.load_config('synthetic_classification', [])
  config.data.num_train, config.data.num_test = num_train, num_test
  return input_pipeline.load_dataset(config.data, seed=seed)


def test_lda_equals_sklearn():
  from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

  x, y = _blobs()
  predict, _ = references.fit_reference('lda', _dataset(x, y, 'classification', 3, 100), 0)
  log_probs, scores = predict(x[100:])
  lda = LinearDiscriminantAnalysis().fit(x[:100], y[:100])
  np.testing.assert_array_equal(np.argmax(scores, axis=1), lda.predict(x[100:]))
  np.testing.assert_allclose(np.exp(log_probs), lda.predict_proba(x[100:]), atol=1e-12)


def test_gp_ard_fits_a_smooth_function_from_training_data_only(tmp_path):
  rng = np.random.default_rng(0)
  x = rng.standard_normal((160, 3))
  y = np.sin(x[:, 0]) + 0.5 * x[:, 1] ** 2 + 0.01 * rng.standard_normal(160)  # x2 irrelevant
  data = _dataset(x, y, 'regression', 0, 120)
  predict, details = references.fit_reference('gp_ard', data, 0)
  residual = np.sum((predict(x[120:]) - y[120:]) ** 2)
  assert 1.0 - residual / np.sum((y[120:] - y[120:].mean()) ** 2) > 0.95
  scales = predict.__self__.kernel_.k1.k2.length_scale  # ARD: the irrelevant feature's longest
  assert scales[2] > 5 * max(scales[:2]), details['kernel']
  saved = []
  for targets in (y[120:], rng.permutation(y[120:])):
    permuted = _dataset(x, np.concatenate([y[:120], targets]), 'regression', 0, 120)
    directory = str(tmp_path / str(len(saved)))
    unit = plan_lib.UnitPlan('gp_ard', 'gp_ard', 0, directory, 'gp_ard', metrics='')
    os.makedirs(unit.directory)
    units.run_reference(unit, permuted)
    saved.append(np.load(os.path.join(unit.directory, 'predictions.npz'))['predictions'])
  np.testing.assert_array_equal(saved[0], saved[1])


def _posterior_argmax(dataset):
  """The Bayes-optimal labels, computed here from the generator's parameters."""
  info = dataset.info
  x_raw = dataset.x_test.astype(np.float64) * info['feature_std'] + info['feature_mean']
  covariance = info['covariance_sqrt'] @ info['covariance_sqrt'].T
  log_joint = np.stack(
      [
          np.log(w) + scipy.stats.multivariate_normal(mu, covariance).logpdf(x_raw)
          for mu, w in zip(info['means'], info['class_weights'])
      ],
      axis=1,
  )
  return np.argmax(log_joint, axis=1), log_joint


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_bayes_optimal_is_the_posterior_argmax_and_beats_lda(seed):
  dataset = _mixture(seed)
  log_probs, scores = references.fit_reference('bayes_optimal', dataset, seed)[0](dataset.x_test)
  expected, log_joint = _posterior_argmax(dataset)
  np.testing.assert_array_equal(np.argmax(scores, axis=1), expected)
  log_posterior = log_joint - scipy.special.logsumexp(log_joint, axis=1, keepdims=True)
  np.testing.assert_allclose(log_probs, log_posterior, atol=1e-8)
  lda_scores = references.fit_reference('lda', dataset, seed)[0](dataset.x_test)[1]
  bayes = np.mean(expected == dataset.y_test)
  assert bayes >= np.mean(np.argmax(lda_scores, axis=1) == dataset.y_test) - 0.01


def test_references_check_their_task_and_data():
  x, y = _blobs()
  with pytest.raises(ValueError, match='for regression'):
    references.fit_reference('gp_ard', _dataset(x, y, 'classification', 3, 100), 0)
  with pytest.raises(ValueError, match='mixture'):
    references.fit_reference('bayes_optimal', _dataset(x, y, 'classification', 3, 100), 0)


def test_configs_labels_and_order():
  expected = {
      'boston': ('linear', 'gp_ard'),
      'iris': ('lda', 'rbf_svm'),
      'wine': ('lda', 'rbf_svm'),
      'synthetic_classification': ('lda', 'rbf_svm', 'bayes_optimal'),
      'synthetic_regression': (),
      'cifar_subset': (),
  }
  for name, references in expected.items():
    config = run_lib.load_config(name, [])[1]
    assert tuple(config.models) == registry.MODELS + references, name
  assert all(
      paper.model_label(m).endswith(')') and 'reference' in paper.model_label(m)
      for m in registry.REFERENCES
  )
  assert paper.order_models(['lda', 'ntk_ecrn_alpha1', 'mlp', 'ntk_ecrn']) == [
      'mlp',
      'ntk_ecrn',
      'ntk_ecrn_alpha1',
      'lda',
  ]
  assert not set(registry.REFERENCES) & set(paper.BASELINES)


def test_search_skips_references():
  _, config = run_lib.load_config('iris:smoke', ["models=('ntk_ecrn', 'lda', 'rbf_svm')"])
  assert plan_lib.build(config).searched_models() == ['ntk_ecrn']
  with config.unlocked():
    config.search.space.lda = {'train': {'learning_rate': (0.1,)}}
  with pytest.raises(ValueError, match='lda is a reference'):
    plan_lib.build(config)


def test_smoke_run_writes_reference_units_and_the_table_labels_them(tmp_path):
  overrides = [
      "models=('standard_ntk', 'ntk_ecrn', 'lda', 'rbf_svm')",
      'search.trials=1',
      'train.epochs=1',
  ]
  _, results = utils.smoke_run('iris', tmp_path / 'run', overrides, search=True)
  assert results['complete']
  search = json.loads((tmp_path / 'run' / 'search.json').read_text())
  assert set(search['seeds']['0']['models']) == {'standard_ntk', 'ntk_ecrn'}
  for model in ('lda', 'rbf_svm'):
    unit_dir = tmp_path / 'run' / 'seed_0' / model
    result = json.loads((unit_dir / 'result.json').read_text())
    assert result['kind'].startswith('reference') and result['hyperparameters'] == {}
    assert 0.0 <= result['test']['accuracy'] <= 1.0 and np.isfinite(result['test']['cross_entropy'])
    saved = np.load(unit_dir / 'predictions.npz')
    assert len(saved['correct']) == result['dataset']['num_test']
    assert np.mean(saved['correct']) == result['test']['accuracy']
  text = tmp_path / 'out' / 'table.md'
  report.write_report([str(tmp_path / 'run')], str(tmp_path / 'out'), 'III')
  table, _, rest = text.read_text().partition('### Runs')
  model_cells = [line.split(' | ')[2] for line in table.splitlines() if line.startswith('| Iris')]
  assert model_cells[-2:] == ['LDA (reference)', 'RBF-SVM (reference)'], model_cells
  assert 'reference' not in '\n'.join(model_cells[:-2])
  claims, _, paired = rest.partition('### Paired')
  assert 'NTK-ECRN' in claims and '(reference)' not in claims
  assert '| LDA (reference) |' in paired and '| RBF-SVM (reference) |' in paired
