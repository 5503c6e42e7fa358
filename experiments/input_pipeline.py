# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Data for the experiments of docs/spec.md §5: synthetic sets, UCI tables and a CIFAR-10 subset.

Every dataset is returned as a `Dataset` of flat float32 features, standardized with statistics of
the training split only (docs/spec.md §1; the test split is transformed with the same statistics and is
therefore *not* exactly standardized).

Seeds. `load_dataset(config, seed=s)` draws everything random (synthetic data, train/test splits)
from a generator keyed by the run seed and the dataset's name:

    rng = np.random.default_rng(
        np.random.SeedSequence(entropy=s, spawn_key=(zlib.crc32(b'data/<name>'),)))

a numpy stream of its own, independent of the model's JAX PRNG keys made from the same seed.
`data_config.data_seed` (an int) fixes the data (or split) independently of the run seed.

Validation. `split_validation(dataset, fraction, seed)` carves a validation split out of the
training data (stratified for classification), for hyperparameter selection that never sees the
test split.

Imports. tensorflow-datasets, and with it TensorFlow, is imported only when CIFAR-10 is read
(inside `_tfds_load_numpy`), never at module import: every other dataset, and any code that just
imports this module (e.g. the configs), runs without TensorFlow and without its start-up lines.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import pathlib
from typing import Any, Mapping
import zlib

import ml_collections
import numpy as np

# The project's tensorflow-datasets data_dir: <repo root>/data_cache.
DEFAULT_DATA_DIR = str(pathlib.Path(__file__).resolve().parents[1] / 'data_cache')

DATASET_NAMES = (
    'synthetic_regression',
    'synthetic_classification',
    'boston',
    'iris',
    'wine',
    'cifar10',
)

_CIFAR_IMPORT_HELP = (
    'Import a local copy (uint8 images + labels as npz files with keys x (N, 32, 32, 3) and '
    'y (N,)) once, from the repository root, with\n'
    '    python -m experiments.import_cifar10 --train_npz=PATH --test_npz=PATH '
    '--data_dir={data_dir}\n'
    '(the project data: ../shared/data/cifar10/train_subset.npz and test_public.npz), or, with '
    'network access, run tfds.builder("cifar10", data_dir={data_dir!r}).download_and_prepare().'
)


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A standardized train/test pair.

  Attributes:
    x_train: (N, d) float32, standardized with the training statistics.
    y_train: (N,) float32 for regression, (N,) int32 labels in [0, num_classes) for classification.
    x_test: (M, d) float32, standardized with the *training* statistics.
    y_test: (M,) like y_train.
    task: 'regression' or 'classification'.
    num_classes: number of classes; 0 for regression.
    name: dataset name, e.g. 'iris' (split_validation appends '/train' or '/validation').
    info: extra metadata (not needed to train): 'feature_mean' and 'feature_std' (the training
      statistics that were applied), 'standardize_channels' (C when statistics are per channel of a
      flattened (..., C) image, else None), and for synthetic data the drawn parameters.
  """

  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  task: str
  num_classes: int
  name: str
  info: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)


def default_data_config(name: str) -> ml_collections.ConfigDict:
  """Returns the data config of `name` with its defaults; all fields are documented inline."""
  config = ml_collections.ConfigDict()
  config.name = name
  # None: data/split derived from the run seed (named key, see module docstring); int: fixed.
  config.data_seed = ml_collections.config_dict.placeholder(int)
  # tensorflow-datasets data_dir (CIFAR-10); None: the repository's data_cache/. Where the data
  # live does not change the run: a workdir resumes under another data_dir.
  config.data_dir = ml_collections.config_dict.placeholder(str)
  if name == 'synthetic_regression':
    # y = sum_k a_k sin(2 pi w_k^T x + phi_k) + eps, x ~ N(0, I_d)            (docs/spec.md §5)
    config.input_dim = 8  # d
    config.num_modes = 4  # K
    config.frequency_scale = 0.25  # w_k ~ N(0, frequency_scale^2 I_d)
    config.amplitude_min = 1.0  # a_k ~ U[amplitude_min, amplitude_max] / sqrt(K)
    config.amplitude_max = 1.0  #   (min == max: the fixed a_k = amplitude / sqrt(K))
    config.noise_std = 0.1  # eps ~ N(0, noise_std^2)
    config.num_train = 1000
    config.num_test = 1000
  elif name == 'synthetic_classification':
    # x | c ~ N(mu_c, Sigma), c ~ Categorical(class_weights)
    config.input_dim = 16  # d
    config.num_classes = 5
    config.mean_scale = 0.5  # mu_c ~ N(0, mean_scale^2 I_d), drawn once per dataset
    config.cluster_std = 1.0  # isotropic: Sigma = cluster_std^2 I_d
    # 'isotropic', or 'anisotropic': one shared Sigma = cluster_std^2 A A^T / d, A_ij ~ N(0, 1).
    config.covariance = 'isotropic'
    config.class_weights = ml_collections.config_dict.placeholder(tuple)  # None: uniform 1/C
    config.num_train = 1000
    config.num_test = 1000
  elif name == 'boston':
    config.csv_path = ml_collections.config_dict.placeholder(str)  # required, see README
    config.target = 'MEDV'
    config.drop_columns = ()  # e.g. ('B',): feature columns to leave out
    config.test_fraction = 0.2
  elif name in ('iris', 'wine'):
    config.test_fraction = 0.2  # stratified by class
  elif name == 'cifar10':
    config.train_split = 'train[:5000]'  # the first 5,000 training images (official order)
    # 'test' is the whole prepared test split: 10,000 images from the official download, 2,000
    # after `experiments.import_cifar10` of the project's shared data. 'test[:2000]' pins it.
    config.test_split = 'test'
  else:
    raise ValueError(f'unknown dataset {name!r}; valid names: {list(DATASET_NAMES)}.')
  return config


def load_dataset(
    data_config: ml_collections.ConfigDict, *, seed: int, data_dir: str | None = None
) -> Dataset:
  """Loads `data_config.name`, deterministically from `seed` (or `data_config.data_seed`).

  Args:
    data_config: from `default_data_config(name)`, possibly with overridden fields.
    seed: the run seed.
    data_dir: tensorflow-datasets data_dir for CIFAR-10; None means `data_config.data_dir`,
      and when that is None too the project's data_cache/.

  Returns:
    A standardized `Dataset`.
  """
  name = data_config.name
  if name not in DATASET_NAMES:
    raise ValueError(f'unknown dataset {name!r}; valid names: {list(DATASET_NAMES)}.')
  data_seed = seed if data_config.get('data_seed') is None else data_config.data_seed
  rng = named_rng(data_seed, f'data/{name}')
  if name == 'synthetic_regression':
    return _synthetic_regression(data_config, rng)
  if name == 'synthetic_classification':
    return _synthetic_classification(data_config, rng)
  if name == 'boston':
    x, y, _ = read_boston_csv(
        data_config.get('csv_path'),
        target=data_config.target,
        drop_columns=tuple(data_config.drop_columns),
    )
    return _split_and_standardize(x, y, 'regression', 0, name, data_config.test_fraction, rng)
  if name in ('iris', 'wine'):
    from sklearn import datasets  # pylint: disable=g-import-not-at-top

    bunch = datasets.load_iris() if name == 'iris' else datasets.load_wine()
    return _split_and_standardize(
        bunch.data,
        bunch.target,
        'classification',
        len(bunch.target_names),
        name,
        data_config.test_fraction,
        rng,
    )
  return _cifar10(data_config, data_dir or data_config.get('data_dir'))


def split_validation(dataset: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
  """Carves a validation split out of the training data, for hyperparameter selection.

  The training data are split (stratified by label for classification) into a reduced training part
  and a validation part (round(fraction * N) points), and everything is re-standardized with
  statistics of the reduced training part only (per feature, or per channel as `dataset` was).
  Standardization is affine, so this equals standardizing the raw data with those statistics.

  Args:
    dataset: a `Dataset` from `load_dataset`.
    fraction: validation fraction of the training points, in (0, 1).
    seed: the split is drawn from named_rng(seed, 'validation').

  Returns:
    (train_part, validation_part), both trained on the same reduced training set:
    train_part.x_test/y_test are the original test split (for the final evaluation);
    validation_part.x_test/y_test are the held-out validation points (never the test split).
  """
  if not 0.0 < fraction < 1.0:
    raise ValueError(f'validation fraction must be in (0, 1), got {fraction}.')
  fit_idx, val_idx = _split_indices(
      dataset.y_train, fraction, dataset.task == 'classification', named_rng(seed, 'validation')
  )
  channels = dataset.info.get('standardize_channels')
  x_fit, (x_val, x_test), mean, std = standardize(
      dataset.x_train[fit_idx], dataset.x_train[val_idx], dataset.x_test, channels=channels
  )
  old_mean = np.asarray(dataset.info.get('feature_mean', 0.0), np.float64)
  old_std = np.asarray(dataset.info.get('feature_std', 1.0), np.float64)
  info = dict(
      dataset.info,
      validation_fraction=fraction,
      feature_mean=old_mean + old_std * mean,
      feature_std=old_std * std,
  )
  common = dict(task=dataset.task, num_classes=dataset.num_classes, info=info)
  y_fit = dataset.y_train[fit_idx]
  train_part = Dataset(x_fit, y_fit, x_test, dataset.y_test, name=f'{dataset.name}/train', **common)
  validation_part = Dataset(
      x_fit, y_fit, x_val, dataset.y_train[val_idx], name=f'{dataset.name}/validation', **common
  )
  return train_part, validation_part


# ----------------------------------------------------------------------------------------------
# Helpers (pure functions of explicit arguments).


def named_rng(seed: int, name: str) -> np.random.Generator:
  """A numpy generator keyed by (seed, name): stable across processes and platforms."""
  return np.random.default_rng(
      np.random.SeedSequence(entropy=int(seed), spawn_key=(zlib.crc32(name.encode()),))
  )


def standardize(x_train: np.ndarray, *others: np.ndarray, channels: int | None = None):
  """Standardizes with statistics of `x_train` only.

  Args:
    x_train: (N, d) array.
    *others: (M_i, d) arrays transformed with the same statistics.
    channels: None for per-feature statistics; C for per-channel statistics of features laid out
      as a flattened (..., C) array (d divisible by C).

  Returns:
    (x_train, others, mean, std): float32 arrays and the (d,) float64 statistics applied. A
    constant feature (std 0) is only centred.
  """
  x_train = np.asarray(x_train, np.float64)
  if channels is None:
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
  else:
    per_channel = x_train.reshape(-1, channels)
    reps = x_train.shape[1] // channels
    mean, std = np.tile(per_channel.mean(axis=0), reps), np.tile(per_channel.std(axis=0), reps)
  std = np.where(std > 0, std, 1.0)
  apply = lambda x: ((np.asarray(x, np.float64) - mean) / std).astype(np.float32)
  return apply(x_train), tuple(apply(x) for x in others), mean, std


def synthetic_regression_targets(
    x: np.ndarray, amplitudes: np.ndarray, frequencies: np.ndarray, phases: np.ndarray
) -> np.ndarray:
  """Noise-free docs/spec.md §5 target: (N, d) x, (K,) a, (K, d) w, (K,) phi -> (N,) sum_k a_k sin(.)."""
  return np.sin(2 * np.pi * x @ frequencies.T + phases) @ amplitudes


def read_boston_csv(
    csv_path: str | None, *, target: str = 'MEDV', drop_columns: tuple[str, ...] = ()
):
  """Reads the Boston table: returns x (506, 13) float64, y (506,) float64, feature names."""
  if not csv_path:
    raise ValueError(
        "dataset 'boston' needs data_config.csv_path (on the command line: "
        '--config.data.csv_path=PATH): the Boston Housing CSV (506 rows, header '
        'CRIM ... LSTAT MEDV). The project copy is shared/data/uci/boston_housing.csv (see README, '
        '"Data"); the same table is scikit-learn 1.1.3\'s sklearn/datasets/data/'
        'boston_house_prices.csv without its first line.'
    )
  if not os.path.exists(csv_path):
    raise FileNotFoundError(
        f'data_config.csv_path={csv_path!r} does not exist: point it at the Boston Housing CSV '
        '(the project copy is shared/data/uci/boston_housing.csv; see README, "Data").'
    )
  with open(csv_path, newline='') as f:
    rows = list(csv.reader(f))
  header, values = [h.strip() for h in rows[0]], np.array(rows[1:], dtype=np.float64)
  missing = [c for c in (target, *drop_columns) if c not in header]
  if missing:
    raise ValueError(f'{csv_path}: no column(s) {missing}; columns are {header}.')
  features = [c for c in header if c != target and c not in drop_columns]
  x = values[:, [header.index(c) for c in features]]
  return x, values[:, header.index(target)], features


def _split_indices(y, test_fraction, stratify, rng):
  from sklearn import model_selection  # pylint: disable=g-import-not-at-top

  idx = np.arange(len(y))
  return model_selection.train_test_split(
      idx,
      test_size=test_fraction,
      stratify=y if stratify else None,
      random_state=int(rng.integers(2**31 - 1)),
  )


def _standardized(
    x_train, y_train, x_test, y_test, task: str, num_classes: int, name: str, **info
) -> Dataset:
  """A `Dataset` of raw arrays, standardized with the training statistics (per feature)."""
  xs_train, (xs_test,), mean, std = standardize(x_train, x_test)
  y_dtype = np.int32 if task == 'classification' else np.float32
  info = dict(feature_mean=mean, feature_std=std, standardize_channels=None, **info)
  return Dataset(
      xs_train,
      np.asarray(y_train).astype(y_dtype),
      xs_test,
      np.asarray(y_test).astype(y_dtype),
      task=task,
      num_classes=num_classes,
      name=name,
      info=info,
  )


def _split_and_standardize(x, y, task, num_classes, name, test_fraction, rng) -> Dataset:
  train_idx, test_idx = _split_indices(y, test_fraction, task == 'classification', rng)
  return _standardized(
      x[train_idx],
      y[train_idx],
      x[test_idx],
      y[test_idx],
      task,
      num_classes,
      name,
      train_indices=train_idx,
      test_indices=test_idx,
  )


def _synthetic_regression(config, rng) -> Dataset:
  """Draws parameters, then train and test sets, from three independent child streams of `rng`."""
  params_rng, train_rng, test_rng = rng.spawn(3)
  d, k = config.input_dim, config.num_modes
  amplitudes = params_rng.uniform(config.amplitude_min, config.amplitude_max, size=k) / np.sqrt(k)
  frequencies = config.frequency_scale * params_rng.standard_normal((k, d))
  phases = params_rng.uniform(0.0, 2 * np.pi, size=k)

  def draw(r, n):
    x = r.standard_normal((n, d))
    y = synthetic_regression_targets(x, amplitudes, frequencies, phases)
    return x, y + config.noise_std * r.standard_normal(n)

  x_train, y_train = draw(train_rng, config.num_train)
  x_test, y_test = draw(test_rng, config.num_test)
  return _standardized(
      x_train,
      y_train,
      x_test,
      y_test,
      'regression',
      0,
      config.name,
      amplitudes=amplitudes,
      frequencies=frequencies,
      phases=phases,
      x_train_raw=x_train,
      x_test_raw=x_test,
  )


def _synthetic_classification(config, rng) -> Dataset:
  """Draws means/covariance, then labels and inputs, from three child streams of `rng`."""
  params_rng, train_rng, test_rng = rng.spawn(3)
  d, c = config.input_dim, config.num_classes
  means = config.mean_scale * params_rng.standard_normal((c, d))
  if config.covariance == 'isotropic':
    scale = config.cluster_std * np.eye(d)
  elif config.covariance == 'anisotropic':
    scale = config.cluster_std * params_rng.standard_normal((d, d)) / np.sqrt(d)
  else:
    raise ValueError(f"covariance must be 'isotropic' or 'anisotropic', got {config.covariance!r}.")
  weights = (
      np.full(c, 1.0 / c)
      if config.get('class_weights') is None
      else np.asarray(config.class_weights, np.float64)
  )
  if weights.shape != (c,) or np.any(weights < 0) or not np.isclose(weights.sum(), 1.0):
    raise ValueError(f'class_weights must be {c} non-negative numbers summing to 1, got {weights}.')

  def draw(r, n):
    y = r.choice(c, size=n, p=weights)
    return means[y] + r.standard_normal((n, d)) @ scale.T, y

  x_train, y_train = draw(train_rng, config.num_train)
  x_test, y_test = draw(test_rng, config.num_test)
  return _standardized(
      x_train,
      y_train,
      x_test,
      y_test,
      'classification',
      c,
      config.name,
      means=means,
      covariance_sqrt=scale,
      class_weights=weights,
  )


def _tfds_load_numpy(name, split, data_dir):
  """tfds.load(name, split=split, as_supervised=True) as numpy arrays, never downloading.

  Batches of 1,000 are concatenated rather than `batch_size=-1`, which batches by the split size
  recorded on disk (unknown under `tfds.testing.mock_data`, where TF then aborts the process).
  """
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')  # before TensorFlow's first import
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  try:
    ds = tfds.load(
        name,
        split=split,
        data_dir=data_dir,
        as_supervised=True,
        shuffle_files=False,
        download=False,
        try_gcs=False,
    )
  except AssertionError as e:
    # tfds: AssertionError('Dataset cifar10: could not find data in <data_dir>. ...').
    raise FileNotFoundError(
        f'{name} is not prepared in data_dir={data_dir!r} (no {name}/<version>/dataset_info.json '
        'there), and it is never downloaded here. ' + _CIFAR_IMPORT_HELP.format(data_dir=data_dir)
    ) from e
  except ValueError as e:
    if 'incompatible with' not in str(e):
      raise
    raise ValueError(
        f'split {split!r} of {name} in data_dir={data_dir!r}: {e} Choose a split '
        'within the prepared data (data_config.train_split / test_split).'
    ) from e
  batches = list(tfds.as_numpy(ds.batch(1000)))
  if not batches:
    raise ValueError(f'split {split!r} of {name} in data_dir={data_dir!r} is empty.')
  return (
      np.concatenate([images for images, _ in batches]),
      np.concatenate([labels for _, labels in batches]),
  )


def _cifar10(config, data_dir) -> Dataset:
  """CIFAR-10 through tensorflow-datasets; per-channel statistics of the training subset."""
  data_dir = data_dir or DEFAULT_DATA_DIR
  x_train, y_train = _tfds_load_numpy('cifar10', config.train_split, data_dir)
  x_test, y_test = _tfds_load_numpy('cifar10', config.test_split, data_dir)
  channels = x_train.shape[-1]
  xs_train, (xs_test,), mean, std = standardize(
      x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1), channels=channels
  )
  info = dict(
      feature_mean=mean,
      feature_std=std,
      standardize_channels=channels,
      image_shape=tuple(x_train.shape[1:]),
      train_split=config.train_split,
      test_split=config.test_split,
  )
  return Dataset(
      xs_train,
      y_train.astype(np.int32),
      xs_test,
      y_test.astype(np.int32),
      task='classification',
      num_classes=10,
      name=config.name,
      info=info,
  )
