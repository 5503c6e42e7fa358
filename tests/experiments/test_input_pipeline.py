# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Tests of experiments/input_pipeline.py and experiments/import_cifar10.py (docs/spec.md §1, §5)."""

import os
import pathlib
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from experiments import import_cifar10
from experiments import input_pipeline
from experiments import sources
from experiments.configs import common

SHARED_DATA = pathlib.Path(__file__).resolve().parents[2] / '..' / 'shared' / 'data'
BOSTON_CSV = SHARED_DATA / 'uci' / 'boston_housing.csv'
CIFAR_TRAIN_NPZ = SHARED_DATA / 'cifar10' / 'train_subset.npz'
CIFAR_TEST_NPZ = SHARED_DATA / 'cifar10' / 'test_public.npz'


def _load(name, seed=0, data_dir=None, **overrides):
  config = common.data_config(name)
  config.update(overrides)
  return input_pipeline.load_dataset(config, seed=seed, data_dir=data_dir)


def _assert_same(a, b):
  for field in ('x_train', 'y_train', 'x_test', 'y_test'):
    np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def _assert_standardized_on_train(dataset, x_train_raw, x_test_raw, channels=None):
  """Train features have mean 0 / std 1; test features use the *training* statistics."""
  x = np.asarray(x_train_raw, np.float64)
  x_test = np.asarray(x_test_raw, np.float64)
  if channels:
    mean = x.reshape(-1, channels).mean(0)
    std = x.reshape(-1, channels).std(0)
    mean, std = np.tile(mean, x.shape[1] // channels), np.tile(std, x.shape[1] // channels)
  else:
    mean, std = x.mean(0), x.std(0)
  np.testing.assert_allclose(dataset.x_train, (x - mean) / std, rtol=0, atol=1e-5)
  np.testing.assert_allclose(dataset.x_test, (x_test - mean) / std, rtol=0, atol=1e-5)
  assert dataset.x_train.dtype == np.float32 and dataset.x_test.dtype == np.float32
  if not channels:
    np.testing.assert_allclose(dataset.x_train.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(dataset.x_train.std(0), 1.0, atol=1e-5)
  # The test split is not standardized with its own statistics.
  assert np.abs(dataset.x_test.mean(0)).max() > 1e-3


def test_unknown_name_lists_valid_names():
  with pytest.raises(ValueError, match='valid names:.*synthetic_regression.*cifar10'):
    common.data_config('mnist')
  config = common.data_config('iris')
  config.name = 'mnist'
  with pytest.raises(ValueError, match="unknown dataset 'mnist'; valid names"):
    input_pipeline.load_dataset(config, seed=0, data_dir=None)


@pytest.mark.parametrize('name', ['synthetic_regression', 'synthetic_classification'])
def test_synthetic_is_deterministic_in_the_seed(name):
  a, b, c = _load(name, seed=3), _load(name, seed=3), _load(name, seed=4)
  _assert_same(a, b)
  assert not np.array_equal(a.x_train, c.x_train)
  assert not np.array_equal(a.y_test, c.y_test)
  # A fixed data_seed makes the data independent of the run seed.
  _assert_same(_load(name, seed=1, data_seed=7), _load(name, seed=2, data_seed=7))
  assert a.x_train.shape == (1000, a.x_train.shape[1]) and a.x_test.shape[0] == 1000


def test_synthetic_regression_follows_spec_formula():
  """y = sum_k a_k sin(2 pi w_k^T x + phi_k) + eps, parameters drawn as documented."""
  config = dict(
      num_modes=3,
      input_dim=5,
      amplitude_min=0.5,
      amplitude_max=1.5,
      frequency_scale=0.3,
      num_train=400,
      num_test=300,
  )
  data = _load('synthetic_regression', seed=11, **config)
  assert data.task == 'regression' and data.num_classes == 0
  assert data.y_train.dtype == np.float32 and data.y_train.shape == (400,)

  # The documented recipe: named key -> three child streams (parameters, train, test).
  params_rng, train_rng, test_rng = input_pipeline.named_rng(11, 'data/synthetic_regression').spawn(
      3
  )
  a = params_rng.uniform(0.5, 1.5, size=3) / np.sqrt(3)
  w = 0.3 * params_rng.standard_normal((3, 5))
  phi = params_rng.uniform(0, 2 * np.pi, size=3)
  np.testing.assert_array_equal(data.info['amplitudes'], a)
  np.testing.assert_array_equal(data.info['frequencies'], w)
  np.testing.assert_array_equal(data.info['phases'], phi)

  for rng, n, x_std, y in (
      (train_rng, 400, data.x_train, data.y_train),
      (test_rng, 300, data.x_test, data.y_test),
  ):
    x = rng.standard_normal((n, 5))
    eps = 0.1 * rng.standard_normal(n)
    f = sum(a[k] * np.sin(2 * np.pi * x @ w[k] + phi[k]) for k in range(3))
    np.testing.assert_allclose(y, f + eps, rtol=0, atol=1e-5)
    mean, std = data.info['feature_mean'], data.info['feature_std']
    np.testing.assert_allclose(x_std, (x - mean) / std, rtol=0, atol=1e-5)
  _assert_standardized_on_train(data, data.info['x_train_raw'], data.info['x_test_raw'])

  noiseless = _load('synthetic_regression', seed=11, noise_std=0.0, **config)
  np.testing.assert_allclose(
      noiseless.y_train,
      sources.synthetic_regression_targets(noiseless.info['x_train_raw'], a, w, phi),
      rtol=0,
      atol=1e-6,
  )


def test_synthetic_classification_mixture():
  data = _load(
      'synthetic_classification', seed=0, num_train=2000, class_weights=(0.4, 0.3, 0.1, 0.1, 0.1)
  )
  assert data.task == 'classification' and data.num_classes == 5
  assert data.y_train.dtype == np.int32 and set(np.unique(data.y_train)) == set(range(5))
  np.testing.assert_allclose(np.bincount(data.y_train) / 2000, [0.4, 0.3, 0.1, 0.1, 0.1], atol=0.04)
  # Raw inputs scatter around their class means with the configured std.
  raw = data.x_train * data.info['feature_std'] + data.info['feature_mean']
  residual = raw - data.info['means'][data.y_train]
  np.testing.assert_allclose(residual.std(), 1.0, atol=0.03)
  with pytest.raises(ValueError, match='class_weights'):
    _load('synthetic_classification', class_weights=(0.5, 0.5))


@pytest.mark.parametrize(
    'name,n,n_test,num_features', [('iris', 150, 30, 4), ('wine', 178, 36, 13)]
)
def test_sklearn_split_is_stratified_and_standardized(name, n, n_test, num_features):
  from sklearn import datasets  # pylint: disable=g-import-not-at-top

  bunch = datasets.load_iris() if name == 'iris' else datasets.load_wine()
  data = _load(name, seed=0)
  assert data.num_classes == 3 and data.task == 'classification'
  assert data.x_train.shape == (n - n_test, num_features) and data.x_test.shape == (
      n_test,
      num_features,
  )
  assert data.y_train.dtype == np.int32
  # Stratified: each class's share of the test split is its share of the whole, +-1 example.
  expected = np.bincount(bunch.target) * n_test / n
  assert np.all(np.abs(np.bincount(data.y_test, minlength=3) - expected) <= 1)
  info = data.info
  np.testing.assert_array_equal(
      np.sort(np.r_[info['train_indices'], info['test_indices']]), np.arange(n)
  )
  np.testing.assert_array_equal(data.y_test, bunch.target[info['test_indices']])
  _assert_standardized_on_train(
      data, bunch.data[info['train_indices']], bunch.data[info['test_indices']]
  )
  _assert_same(data, _load(name, seed=0))
  assert not np.array_equal(data.y_test, _load(name, seed=1).y_test)
  assert _load(name, seed=0, test_fraction=0.5).x_test.shape[0] == n // 2


@pytest.mark.skipif(not BOSTON_CSV.exists(), reason=f'shared Boston CSV absent: {BOSTON_CSV}')
def test_boston_from_csv():
  data = _load('boston', seed=0, csv_path=str(BOSTON_CSV))
  assert data.task == 'regression' and data.num_classes == 0
  assert data.x_train.shape == (404, 13) and data.x_test.shape == (102, 13)
  assert data.y_train.dtype == np.float32
  x, y, names = sources.read_boston_csv(str(BOSTON_CSV))
  assert names[0] == 'CRIM' and names[-1] == 'LSTAT' and len(names) == 13
  np.testing.assert_allclose(y.mean(), 22.5328, atol=1e-4)
  np.testing.assert_array_equal(data.y_train, y[data.info['train_indices']].astype(np.float32))
  _assert_standardized_on_train(data, x[data.info['train_indices']], x[data.info['test_indices']])
  assert _load('boston', csv_path=str(BOSTON_CSV), drop_columns=('B',)).x_train.shape[1] == 12


def test_boston_without_csv_path_says_which_field():
  with pytest.raises(ValueError, match='csv_path.*boston_housing.csv'):
    _load('boston')
  with pytest.raises(FileNotFoundError, match='csv_path'):
    _load('boston', csv_path='/nonexistent/boston.csv')


def _boston_rows(num_rows=506, seed=0):
  """A Boston-like table as text cells: the header, then num_rows rows of 14 random numbers."""
  values = np.random.default_rng(seed).uniform(0.5, 50.0, (num_rows, len(sources.BOSTON_COLUMNS)))
  return [list(sources.BOSTON_COLUMNS)] + [[f'{v:.4f}' for v in row] for row in values]


def _write_csv(path, rows):
  path.write_text(''.join(','.join(row) + '\n' for row in rows))
  return str(path)


def _set_cell(rows, row, column, cell):
  rows[row][rows[0].index(column)] = cell
  return rows


def _without_column(rows, column):
  j = rows[0].index(column)
  return [row[:j] + row[j + 1 :] for row in rows]


def _renamed(rows, old, new):
  rows[0][rows[0].index(old)] = new
  return rows


# (name, rows of the CSV, regex its ValueError must match). Line numbers count the header as 1.
_BAD_BOSTON_CSVS = (
    ('truncated', lambda: _boston_rows(300), r'300 data rows, expected 506.*num_rows=300'),
    ('missing column', lambda: _without_column(_boston_rows(), 'NOX'), r"missing \['NOX'\]"),
    (
        'renamed column',
        lambda: _renamed(_boston_rows(), 'MEDV', 'PRICE'),
        r"missing \['MEDV'\], unexpected \['PRICE'\]",
    ),
    (
        'duplicated column',
        lambda: _renamed(_boston_rows(), 'ZN', 'CRIM'),
        r"missing \['ZN'\], duplicated \['CRIM'\]",
    ),
    (
        'non-numeric cell',
        lambda: _set_cell(_set_cell(_boston_rows(), 10, 'RM', 'six'), 40, 'TAX', 'n/a'),
        r"line 11, column RM holds 'six', expected a number, and 2 cell\(s\)",
    ),
    ('blank cell', lambda: _set_cell(_boston_rows(), 3, 'AGE', ''), r"line 4, column AGE holds ''"),
    (
        'NaN and inf cells',
        lambda: _set_cell(_set_cell(_boston_rows(), 7, 'DIS', 'inf'), 5, 'NOX', 'NaN'),
        r"2 NaN/inf value\(s\), per column \{'NOX': 1, 'DIS': 1\} \(the first at line 6\)",
    ),
    (
        'ragged row',
        lambda: [row[:-1] if i == 20 else row for i, row in enumerate(_boston_rows())],
        r'line 21 has 13 cells, expected 14',
    ),
    ('empty file', list, r'is empty: expected the Boston Housing CSV, a header line CRIM,'),
    ('header only', lambda: _boston_rows(0), r'has a header but no data rows'),
)


@pytest.mark.parametrize(
    'rows, message', [c[1:] for c in _BAD_BOSTON_CSVS], ids=[c[0] for c in _BAD_BOSTON_CSVS]
)
def test_boston_rejects_bad_csv(tmp_path, rows, message):
  path = _write_csv(tmp_path / 'boston.csv', rows())
  with pytest.raises(ValueError, match=re.escape(path) + '.*' + message):
    _load('boston', csv_path=path)


def test_boston_num_rows_override(tmp_path):
  rows = _boston_rows(300)
  path = _write_csv(tmp_path / 'own.csv', rows)
  expected = np.array(rows[1:], np.float64)
  for num_rows in (300, None):
    x, y, names = sources.read_boston_csv(path, num_rows=num_rows)
    assert x.shape == (300, 13) and names == list(sources.BOSTON_COLUMNS[:-1])
    np.testing.assert_array_equal(np.c_[x, y], expected)
  data = _load('boston', csv_path=path, num_rows=None)
  assert data.x_train.shape == (240, 13) and data.x_test.shape == (60, 13)
  with pytest.raises(ValueError, match=r'300 data rows, expected 299'):
    sources.read_boston_csv(path, num_rows=299)
  tiny = _write_csv(tmp_path / 'tiny.csv', _boston_rows(sources.BOSTON_MIN_ROWS - 1))
  message = rf'{sources.BOSTON_MIN_ROWS - 1} data rows, expected at least {sources.BOSTON_MIN_ROWS}'
  with pytest.raises(ValueError, match=message):
    sources.read_boston_csv(tiny, num_rows=None)


@pytest.mark.parametrize('num_rows', [0, sources.BOSTON_MIN_ROWS - 1, 300.0, '506', True])
def test_boston_rejects_bad_num_rows(tmp_path, num_rows):
  path = _write_csv(tmp_path / 'boston.csv', _boston_rows())
  with pytest.raises(ValueError, match=r'data_config.num_rows must be None or an integer'):
    sources.read_boston_csv(path, num_rows=num_rows)


@pytest.mark.skipif(not BOSTON_CSV.exists(), reason=f'shared Boston CSV absent: {BOSTON_CSV}')
def test_boston_real_csv_passes_checks(tmp_path):
  x, y, names = sources.read_boston_csv(str(BOSTON_CSV))
  assert x.shape == (506, 13) and y.shape == (506,) and len(names) == 13
  assert np.isfinite(x).all() and np.isfinite(y).all()
  # Its first 300 data rows, cut at a line boundary: a truncated copy is refused.
  lines = BOSTON_CSV.read_text().splitlines(keepends=True)
  head = tmp_path / 'head.csv'
  head.write_text(''.join(lines[:301]))
  with pytest.raises(ValueError, match=r'300 data rows, expected 506'):
    sources.read_boston_csv(str(head))
  np.testing.assert_array_equal(sources.read_boston_csv(str(head), num_rows=300)[0], x[:300])


def test_split_validation():
  data = _load('synthetic_classification', seed=0)
  train, validation = input_pipeline.split_validation(data, 0.2, seed=5)
  assert train.x_train.shape == (800, 16) and validation.x_test.shape == (200, 16)
  np.testing.assert_array_equal(train.x_train, validation.x_train)
  np.testing.assert_array_equal(train.y_test, data.y_test)
  # Stratified.
  counts, val_counts = np.bincount(data.y_train), np.bincount(validation.y_test, minlength=5)
  assert np.all(np.abs(val_counts - 0.2 * counts) <= 1)
  # Re-standardized on the reduced training part = standardizing the raw data with its statistics.
  raw = lambda x: x.astype(np.float64) * data.info['feature_std'] + data.info['feature_mean']
  # info holds the composed statistics, in raw coordinates.
  raw_fit = train.x_train * train.info['feature_std'] + train.info['feature_mean']
  np.testing.assert_allclose(raw_fit.mean(0), train.info['feature_mean'], atol=1e-5)
  np.testing.assert_allclose(train.x_train.mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(train.x_train.std(0), 1, atol=1e-5)
  mean, std = train.info['feature_mean'], train.info['feature_std']
  np.testing.assert_allclose(train.x_test, (raw(data.x_test) - mean) / std, atol=1e-4)
  # Validation points are training points, never test points.
  val_raw = validation.x_test * std + mean
  train_raw = raw(data.x_train)
  assert all(np.any(np.all(np.abs(train_raw - v) < 1e-3, axis=1)) for v in val_raw[:20])
  # Deterministic in the seed.
  _assert_same(validation, input_pipeline.split_validation(data, 0.2, seed=5)[1])
  with pytest.raises(ValueError, match='fraction'):
    input_pipeline.split_validation(data, 1.0, seed=0)


def test_experiments_import_no_tensorflow_until_cifar_is_read():
  """The runner, the pipeline, every config and a non-CIFAR dataset load without TensorFlow.

  TensorFlow (through tensorflow-datasets) prints start-up lines and takes seconds to import, so
  only the CIFAR-10 path may import it, when it reads the data. A fresh interpreter, so that
  whatever this test process already imported does not count.
  """
  code = textwrap.dedent("""
      import sys
      import experiments.run, experiments.input_pipeline, experiments.import_cifar10
      import experiments.train, experiments.search, experiments.finite_vs_infinite
      import experiments.units, experiments.models, experiments.workdir
      from experiments import input_pipeline, run
      from experiments.configs import common
      for name in run.CONFIGS:
        run.load_config(name)
        run.load_config(name + ':smoke')
      config = common.data_config('synthetic_regression')
      config.update(num_train=8, num_test=8)
      input_pipeline.load_dataset(config, seed=0, data_dir=None)
      heavy = sorted(m for m in sys.modules if m.startswith('tensorflow'))
      print('TENSORFLOW_MODULES', heavy)
  """)
  env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
  result = subprocess.run(
      [sys.executable, '-c', code],
      capture_output=True,
      text=True,
      env=env,
      cwd=pathlib.Path(__file__).resolve().parents[2],
      timeout=300,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'TENSORFLOW_MODULES []' in result.stdout, result.stdout[-3000:]


# ------------------------------------------------------------------------------------------------
# CIFAR-10 through tensorflow-datasets.


def test_cifar10_under_mock_data(tmp_path):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  with tfds.testing.mock_data(num_examples=12):  # mock_data ignores the slice of the split.
    data = _load('cifar10', data_dir=str(tmp_path))
  assert data.task == 'classification' and data.num_classes == 10 and data.name == 'cifar10'
  assert data.x_train.shape == (12, 3072) and data.x_test.shape == (12, 3072)
  assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int32
  assert data.info['standardize_channels'] == 3
  per_channel = data.x_train.reshape(-1, 3).astype(np.float64)  # (N*32*32, 3), HWC order
  np.testing.assert_allclose(per_channel.mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(per_channel.std(0), 1, atol=1e-5)


def test_cifar10_missing_dataset_says_how_to_import(tmp_path):
  with pytest.raises(FileNotFoundError) as e:
    _load('cifar10', data_dir=str(tmp_path / 'empty'))
  message = str(e.value)
  assert 'python -m experiments.import_cifar10 --train_npz=PATH --test_npz=PATH' in message
  assert str(tmp_path / 'empty') in message
  assert not (tmp_path / 'empty' / 'cifar10' / '3.0.2' / 'dataset_info.json').exists()


@pytest.mark.skipif(
    not (CIFAR_TRAIN_NPZ.exists() and CIFAR_TEST_NPZ.exists()),
    reason=f'shared CIFAR-10 npz files absent under {SHARED_DATA / "cifar10"}',
)
def test_import_real_cifar10_then_load(tmp_path):
  with np.load(CIFAR_TRAIN_NPZ) as train, np.load(CIFAR_TEST_NPZ) as test:
    x_train, y_train = train['x'][:20], train['y'][:20]
    x_test, y_test = test['x'][:10], test['y'][:10]
  np.savez(tmp_path / 'train.npz', x=x_train, y=y_train)
  np.savez(tmp_path / 'test.npz', x=x_test, y=y_test)
  data_dir = str(tmp_path / 'data_dir')
  path = import_cifar10.import_cifar10(
      str(tmp_path / 'train.npz'), str(tmp_path / 'test.npz'), data_dir
  )
  assert path == os.path.join(data_dir, 'cifar10', '3.0.2')
  assert {'dataset_info.json', 'features.json'} <= set(os.listdir(path))
  assert sorted(os.listdir(data_dir)) == ['cifar10']
  with pytest.raises(FileExistsError):
    import_cifar10.import_cifar10(str(tmp_path / 'train.npz'), str(tmp_path / 'test.npz'), data_dir)

  # The plain tfds call reads back the exact images, labels and order.
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  images, labels = tfds.as_numpy(
      tfds.load(
          'cifar10',
          split='train[:10]',
          data_dir=data_dir,
          as_supervised=True,
          batch_size=-1,
          download=False,
      )
  )
  np.testing.assert_array_equal(images, x_train[:10])
  np.testing.assert_array_equal(labels, y_train[:10])
  builder = tfds.builder('cifar10', data_dir=data_dir)
  assert builder.info.features['label'].names[:2] == ['airplane', 'automobile']
  assert builder.info.splits['test'].num_examples == 10

  data = _load('cifar10', data_dir=data_dir, train_split='train', test_split='test')
  np.testing.assert_array_equal(data.y_train, y_train)
  np.testing.assert_array_equal(data.y_test, y_test)
  _assert_standardized_on_train(data, x_train.reshape(20, -1), x_test.reshape(10, -1), channels=3)
  head = _load('cifar10', data_dir=data_dir, train_split='train[:5]', test_split='test[:2]')
  np.testing.assert_array_equal(head.y_train, y_train[:5])
  # The default 'train[:5000]' asks for more than the 20 imported images.
  with pytest.raises(ValueError, match=r'train\[:5000\].*train_split'):
    _load('cifar10', data_dir=data_dir)


def test_import_rejects_bad_npz(tmp_path):
  np.savez(tmp_path / 'bad.npz', x=np.zeros((2, 28, 28, 1), np.uint8), y=np.zeros(2, np.int64))
  with pytest.raises(ValueError, match=r'\(N, 32, 32, 3\) uint8'):
    sources.load_npz(str(tmp_path / 'bad.npz'))


def _small_npz_bytes(tmp_path, **arrays) -> bytes:
  path = tmp_path / 'small.npz'
  np.savez_compressed(path, **arrays)
  return path.read_bytes()


def _first_half(content: bytes) -> bytes:
  return content[: len(content) // 2]


def _valid_arrays():
  rng = np.random.default_rng(0)
  return {'x': rng.integers(0, 256, (4, 32, 32, 3), np.uint8), 'y': np.array([0, 3, 9, 1])}


# (name, bytes of the file given the test's tmp_path, regex its ValueError must match).
_BAD_NPZ = (
    ('empty file', lambda t: b'', r'found an empty file \(0 bytes\)'),
    (
        'truncated',
        lambda t: _first_half(_small_npz_bytes(t, **_valid_arrays())),
        r'bytes that are not a valid npz archive \(truncated',
    ),
    (
        'random bytes',
        lambda t: np.random.default_rng(1).bytes(1000),
        r'1000 bytes that are not a valid npz archive',
    ),
    (
        'missing y',
        lambda t: _small_npz_bytes(t, x=_valid_arrays()['x']),
        r"found no key\(s\) \['y'\] \(its keys: \['x'\]\)",
    ),
    (
        'x of wrong shape',
        lambda t: _small_npz_bytes(t, x=np.zeros((4, 32, 32), np.uint8), y=_valid_arrays()['y']),
        r'found x of shape \(4, 32, 32\) and dtype uint8',
    ),
    (
        'labels out of range',
        lambda t: _small_npz_bytes(t, x=_valid_arrays()['x'], y=np.array([0, 1, 10, 2])),
        r'found labels from 0 to 10',
    ),
)


@pytest.mark.parametrize(
    'content, message', [c[1:] for c in _BAD_NPZ], ids=[c[0] for c in _BAD_NPZ]
)
def test_load_npz_rejects_bad_file(tmp_path, content, message):
  path = tmp_path / 'bad.npz'
  path.write_bytes(content(tmp_path))
  expected = r'expected an npz archive with x \(N, 32, 32, 3\) uint8 and y \(N,\) integer labels'
  with pytest.raises(ValueError, match=re.escape(str(path)) + ': ' + expected + '.*' + message):
    sources.load_npz(str(path))


def test_load_npz_reads_valid_file_and_missing_path(tmp_path):
  arrays = _valid_arrays()
  path = tmp_path / 'ok.npz'
  path.write_bytes(_small_npz_bytes(tmp_path, **arrays))
  x, y = sources.load_npz(str(path))
  np.testing.assert_array_equal(x, arrays['x'])
  assert y.dtype == np.int64 and y.tolist() == arrays['y'].tolist()
  with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / 'none.npz'))):
    sources.load_npz(str(tmp_path / 'none.npz'))


# ------------------------------------------------------------------------------------------------
# CIFAR-10 from local npz files (data.source='npz'): numpy only, no TensorFlow.


def _write_cifar_npz(tmp_path, n_train=20, n_test=10, seed=0):
  """(train path, test path, arrays): random uint8 images and labels in [0, 10)."""
  rng = np.random.default_rng(seed)
  arrays = {
      split: (rng.integers(0, 256, (n, 32, 32, 3), np.uint8), rng.integers(0, 10, n))
      for split, n in (('train', n_train), ('test', n_test))
  }
  paths = []
  for split, (x, y) in arrays.items():
    paths.append(str(tmp_path / f'{split}.npz'))
    np.savez(paths[-1], x=x, y=y)
  return *paths, arrays


def _npz_config(train_npz, test_npz, **overrides):
  return dict(source='npz', train_npz=train_npz, test_npz=test_npz, **overrides)


def test_cifar10_source_defaults_to_tfds():
  config = common.data_config('cifar10')
  assert config.source == 'tfds' and config.train_npz is None and config.test_npz is None
  assert config.train_split == 'train[:5000]' and config.test_split == 'test'


def test_cifar10_npz_source_slices_and_standardizes(tmp_path):
  train_npz, test_npz, arrays = _write_cifar_npz(tmp_path)
  (x_train, y_train), (x_test, y_test) = arrays['train'], arrays['test']
  data = _load('cifar10', **_npz_config(train_npz, test_npz, train_split='train[:12]'))
  assert data.task == 'classification' and data.num_classes == 10 and data.name == 'cifar10'
  assert data.x_train.shape == (12, 3072) and data.x_test.shape == (10, 3072)
  assert data.y_train.dtype == np.int32 and data.x_train.dtype == np.float32
  np.testing.assert_array_equal(data.y_train, y_train[:12])
  np.testing.assert_array_equal(data.y_test, y_test)
  _assert_standardized_on_train(
      data, x_train[:12].reshape(12, -1), x_test.reshape(10, -1), channels=3
  )
  assert data.info['source'] == 'npz' and data.info['image_shape'] == (32, 32, 3)
  # Slices as tfds reads them: 'test[2:5]', 'train[-4:]', the whole 'train'.
  for split, part in (
      ('test[2:5]', slice(2, 5)),
      ('test[-4:]', slice(-4, None)),
      ('test', slice(None)),
  ):
    x, y = sources.npz_load_numpy(split, 'test_split', train_npz, test_npz)
    np.testing.assert_array_equal(x, x_test[part])
    np.testing.assert_array_equal(y, y_test[part])
    assert x.dtype == np.uint8 and y.dtype == np.int64
  # The data are the same whatever data_dir says (it is tfds's).
  _assert_same(
      data,
      _load(
          'cifar10',
          data_dir='/nowhere',
          **_npz_config(train_npz, test_npz, train_split='train[:12]'),
      ),
  )


# (name, config overrides given the two paths, error type, regex of its message).
_BAD_NPZ_CONFIGS = (
    (
        'no train_npz',
        lambda tr, te: _npz_config(None, te),
        ValueError,
        r"data.source='npz' reads data.train_split='train\[:5000\]' from data.train_npz, which is "
        r'not set; pass --config.data.train_npz=PATH',
    ),
    (
        'missing file',
        lambda tr, te: _npz_config(tr, te + '.gone', train_split='train'),
        FileNotFoundError,
        r"data.test_npz='.*test.npz.gone' does not exist",
    ),
    (
        'beyond the file',
        lambda tr, te: _npz_config(tr, te),
        ValueError,
        r"data.train_split='train\[:5000\]' selects no image, or images beyond the 20 of "
        r".*train.npz; choose a split within the file \(data.train_split, e.g. 'train\[:20\]'",
    ),
    (
        'percent split',
        lambda tr, te: _npz_config(tr, te, train_split='train[:10%]'),
        ValueError,
        r"data.train_split='train\[:10%\]' is not a split the npz source reads",
    ),
    (
        'unknown split',
        lambda tr, te: _npz_config(tr, te, train_split='validation'),
        ValueError,
        r"data.train_split='validation' is not a split",
    ),
    (
        'empty slice',
        lambda tr, te: _npz_config(tr, te, train_split='train', test_split='test[5:5]'),
        ValueError,
        r"data.test_split='test\[5:5\]' selects no image",
    ),
    (
        'unknown source',
        lambda tr, te: dict(source='gcs'),
        ValueError,
        r"data.source must be one of \['tfds', 'npz'\], got 'gcs'; pass --config.data.source=tfds",
    ),
)


@pytest.mark.parametrize(
    'overrides, error, message',
    [c[1:] for c in _BAD_NPZ_CONFIGS],
    ids=[c[0] for c in _BAD_NPZ_CONFIGS],
)
def test_cifar10_npz_source_errors_name_the_field(tmp_path, overrides, error, message):
  train_npz, test_npz, _ = _write_cifar_npz(tmp_path)
  with pytest.raises(error, match=message):
    _load('cifar10', **overrides(train_npz, test_npz))


def test_cifar10_npz_source_checks_the_file(tmp_path):
  train_npz, test_npz, _ = _write_cifar_npz(tmp_path)
  np.savez(test_npz, x=np.zeros((3, 28, 28, 1), np.uint8), y=np.zeros(3, np.int64))
  with pytest.raises(ValueError, match=re.escape(test_npz) + r': expected an npz archive'):
    _load('cifar10', **_npz_config(train_npz, test_npz, train_split='train'))


def test_cifar10_tfds_source_is_untouched(tmp_path, monkeypatch):
  """source='tfds' (the default) reads tfds only, with the splits and data_dir as before."""
  calls = []

  def fake_tfds(name, split, data_dir):
    calls.append((name, split, data_dir))
    rng = np.random.default_rng(len(calls))
    return rng.integers(0, 256, (6, 32, 32, 3), np.uint8), rng.integers(0, 10, 6)

  monkeypatch.setattr(sources, 'tfds_load_numpy', fake_tfds)
  monkeypatch.setattr(sources, 'npz_load_numpy', lambda *a: pytest.fail('npz read'))
  data = _load('cifar10', data_dir=str(tmp_path), train_npz='/not/read.npz')
  assert calls == [('cifar10', 'train[:5000]', str(tmp_path)), ('cifar10', 'test', str(tmp_path))]
  assert data.info['source'] == 'tfds' and data.x_train.shape == (6, 3072)
  _load('cifar10', source='tfds')
  assert calls[-1] == ('cifar10', 'test', sources.DEFAULT_DATA_DIR)


def test_cifar10_npz_source_agrees_with_tfds_import(tmp_path):
  """The npz files, and tfds after experiments.import_cifar10 of them: the same Dataset."""
  train_npz, test_npz, _ = _write_cifar_npz(tmp_path, seed=3)
  data_dir = str(tmp_path / 'data_dir')
  import_cifar10.import_cifar10(train_npz, test_npz, data_dir)
  for splits in (
      dict(train_split='train', test_split='test'),
      dict(train_split='train[:12]', test_split='test[3:7]'),
  ):
    from_tfds = _load('cifar10', data_dir=data_dir, **splits)
    from_npz = _load('cifar10', **_npz_config(train_npz, test_npz, **splits))
    _assert_same(from_tfds, from_npz)
    for key in ('feature_mean', 'feature_std'):
      np.testing.assert_array_equal(from_tfds.info[key], from_npz.info[key])


_DATA_CACHE_CIFAR = pathlib.Path(sources.DEFAULT_DATA_DIR) / 'cifar10'


@pytest.mark.skipif(
    not (CIFAR_TRAIN_NPZ.exists() and CIFAR_TEST_NPZ.exists() and _DATA_CACHE_CIFAR.exists()),
    reason='needs the shared CIFAR-10 npz files and their tfds import in data_cache/',
)
def test_cifar10_shared_npz_agrees_with_data_cache():
  splits = dict(train_split='train[:500]', test_split='test[:200]')
  from_tfds = _load('cifar10', **splits)
  from_npz = _load('cifar10', **_npz_config(str(CIFAR_TRAIN_NPZ), str(CIFAR_TEST_NPZ), **splits))
  _assert_same(from_tfds, from_npz)


def test_cifar10_npz_runs_with_tensorflow_blocked(tmp_path):
  """The cifar_subset config with source='npz' loads its data with TensorFlow unimportable."""
  train_npz, test_npz, arrays = _write_cifar_npz(tmp_path, n_train=70, n_test=40)
  code = textwrap.dedent(f"""
      import sys
      sys.modules['tensorflow'] = None  # any import of it raises ImportError
      sys.modules['tensorflow_datasets'] = None
      from experiments import input_pipeline, run
      _, config = run.load_config('cifar_subset:smoke', [
          'data.source=npz', 'data.train_npz={train_npz}', 'data.test_npz={test_npz}'])
      data = input_pipeline.load_dataset(config.data, seed=0)
      print('SHAPES', data.x_train.shape, data.x_test.shape, data.y_train[:5].tolist())
      config.data.source = 'tfds'
      try:
        input_pipeline.load_dataset(config.data, seed=0)
      except ImportError:
        print('TFDS_BLOCKED')
  """)
  result = subprocess.run(
      [sys.executable, '-c', code],
      capture_output=True,
      text=True,
      cwd=pathlib.Path(__file__).resolve().parents[2],
      timeout=300,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  expected = f'SHAPES (64, 3072) (32, 3072) {arrays["train"][1][:5].tolist()}'
  assert expected in result.stdout, result.stdout[-3000:]
  assert 'TFDS_BLOCKED' in result.stdout, result.stdout[-3000:]


# ------------------------------------------------------------------------------------------------
# The synthetic_regression config: s = 0.1 by default, the spec's 0.25 as `:hard`.


def test_synthetic_regression_config_frequency_scale_and_hard_variant():
  from experiments import run  # pylint: disable=g-import-not-at-top

  scale = lambda spec: run.load_config(spec)[1].data.frequency_scale
  assert scale('synthetic_regression') == 0.1
  assert scale('synthetic_regression:hard') == 0.25
  _, both = run.load_config('synthetic_regression:hard,smoke')
  assert both.data.frequency_scale == 0.25 and both.data.num_train == 64 and both.seeds == (0,)
  _, ablations = run.load_config('synthetic_regression:smoke,ablations,hard')
  assert ablations.data.frequency_scale == 0.25 and 'ntk_ecrn_no_fourier' in ablations.models
  _, pinned = run.load_config('synthetic_regression:hard', ['data.frequency_scale=0.05'])
  assert pinned.data.frequency_scale == 0.05 and pinned.pinned == ('data.frequency_scale',)
  from experiments.configs import common, synthetic_regression  # pylint: disable=g-import-not-at-top

  valid = list(synthetic_regression.VARIANTS)
  assert valid == ['hard', *common.VARIANTS]
  for arg in ('huge', 'hard,huge', 'hard,'):
    with pytest.raises(Exception, match=r'unknown variant .* of synthetic_regression; valid: '):
      run.load_config(f'synthetic_regression:{arg}')
    with pytest.raises(ValueError, match=re.escape(f'valid: {valid}')):
      synthetic_regression.get_config(arg)


@pytest.mark.parametrize('where', ['training', 'test'])
def test_values_whose_squares_overflow_are_refused_not_standardized(where):
  """One cell of 1e308 made a feature's std inf and the feature −0.0, silently."""
  x_train, x_test = np.ones((6, 3)), np.ones((4, 3))
  x_train[:, 1], x_test[:, 1] = np.arange(6.0), np.arange(4.0)
  (x_train if where == 'training' else x_test)[2, 1] = 1e308
  with pytest.raises(ValueError, match=rf'1 {where} input value.*feature 1: 1e\+308.*overflow'):
    input_pipeline.standardize(x_train, x_test)
