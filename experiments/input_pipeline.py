# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Data for the experiments of docs/spec.md §5 as `Dataset`s of flat float32 features.

Features are standardized with the training split's statistics only. Everything random comes
from a numpy stream keyed by the run seed and the dataset's name (`named_rng`; `data_seed` fixes
the data apart from the run seed). `split_validation` carves a validation split (stratified for
classification) out of the training data. TensorFlow is imported only when CIFAR-10 is read
from tfds.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping
import zlib

import numpy as np

from experiments import sources
from experiments.configs import common


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A train/test pair: (N, d), (M, d) float32 features standardized with the training
  statistics; y float32 (regression) or int32 labels; num_classes 0 for regression; name e.g.
  'iris' ('/train' or '/validation' after split_validation); info: the statistics applied
  ('feature_mean', 'feature_std', 'standardize_channels') and synthetic data's parameters."""

  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  task: str
  num_classes: int
  name: str
  info: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)


def load_dataset(
    data_config: Mapping[str, Any], *, seed: int, data_dir: str | None = None
) -> Dataset:
  """The standardized `Dataset` of the `data` block (`configs.common.data_config(name)` or a
  mapping), deterministic in `seed` (or `data_seed`). `data_dir`: tfds's for CIFAR-10 (None:
  `data_config.data_dir`, else data_cache/)."""
  name = data_config['name']
  if name not in common.DATASET_NAMES:
    raise ValueError(f'unknown dataset {name!r}; valid names: {list(common.DATASET_NAMES)}.')
  data_seed = seed if data_config.get('data_seed') is None else data_config['data_seed']
  rng = named_rng(data_seed, f'data/{name}')
  if name == 'synthetic_regression':
    return _from_source(sources.synthetic_regression(data_config, rng), 'regression', 0, name)
  if name == 'synthetic_classification':
    return _from_source(
        sources.synthetic_classification(data_config, rng),
        'classification',
        data_config['num_classes'],
        name,
    )
  if name == 'boston':
    x, y, _ = sources.read_boston_csv(
        data_config.get('csv_path'),
        target=data_config['target'],
        drop_columns=tuple(data_config['drop_columns']),
        num_rows=data_config.get('num_rows', sources.BOSTON_NUM_ROWS),
    )
    return _split_and_standardize(x, y, 'regression', 0, name, data_config['test_fraction'], rng)
  if name in ('iris', 'wine'):
    from sklearn import datasets  # pylint: disable=g-import-not-at-top

    bunch = datasets.load_iris() if name == 'iris' else datasets.load_wine()
    return _split_and_standardize(
        bunch.data,
        bunch.target,
        'classification',
        len(bunch.target_names),
        name,
        data_config['test_fraction'],
        rng,
    )
  return _cifar10(data_config, data_dir or data_config.get('data_dir'))


def split_validation(dataset: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
  """(train_part, validation_part): round(fraction · N) training points held out (stratified
  for classification, drawn from named_rng(seed, 'validation')), all re-standardized with the
  reduced training part's statistics. Both train on that part; train_part's test split is the
  original test split, validation_part's the held-out points."""
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
  shared = dict(task=dataset.task, num_classes=dataset.num_classes, info=info)
  y_fit = dataset.y_train[fit_idx]
  train_part = Dataset(x_fit, y_fit, x_test, dataset.y_test, name=f'{dataset.name}/train', **shared)
  validation_part = Dataset(
      x_fit, y_fit, x_val, dataset.y_train[val_idx], name=f'{dataset.name}/validation', **shared
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


def _from_source(arrays: tuple, task: str, num_classes: int, name: str) -> Dataset:
  """A `Dataset` of a source's (x_train, y_train, x_test, y_test, info)."""
  x_train, y_train, x_test, y_test, info = arrays
  return _standardized(x_train, y_train, x_test, y_test, task, num_classes, name, **info)


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


CIFAR10_SOURCES = ('tfds', 'npz')


def _cifar10_arrays(config, data_dir) -> tuple:
  """(x_train, y_train, x_test, y_test) raw images and labels from `config.source`."""
  source = config.get('source', 'tfds')
  if source == 'tfds':
    data_dir = data_dir or sources.DEFAULT_DATA_DIR
    train = sources.tfds_load_numpy('cifar10', config['train_split'], data_dir)
    return *train, *sources.tfds_load_numpy('cifar10', config['test_split'], data_dir)
  if source == 'npz':
    paths = (config.get('train_npz'), config.get('test_npz'))
    train = sources.npz_load_numpy(config['train_split'], 'train_split', *paths)
    return *train, *sources.npz_load_numpy(config['test_split'], 'test_split', *paths)
  raise ValueError(
      f'data.source must be one of {list(CIFAR10_SOURCES)}, got {source!r}; pass '
      '--config.data.source=tfds (tensorflow-datasets in data_dir) or --config.data.source=npz '
      '(with --config.data.train_npz=PATH --config.data.test_npz=PATH).'
  )


def _cifar10(config, data_dir) -> Dataset:
  """CIFAR-10 from tensorflow-datasets or npz files; per-channel statistics of the training
  subset."""
  x_train, y_train, x_test, y_test = _cifar10_arrays(config, data_dir)
  channels = x_train.shape[-1]
  xs_train, (xs_test,), mean, std = standardize(
      x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1), channels=channels
  )
  info = dict(
      feature_mean=mean,
      feature_std=std,
      standardize_channels=channels,
      image_shape=tuple(x_train.shape[1:]),
      train_split=config['train_split'],
      test_split=config['test_split'],
      source=config.get('source', 'tfds'),
  )
  return Dataset(
      xs_train,
      y_train.astype(np.int32),
      xs_test,
      y_test.astype(np.int32),
      task='classification',
      num_classes=10,
      name=config['name'],
      info=info,
  )
