# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Data for the experiments of docs/spec.md §5 as `Dataset`s of flat float32 features,
standardized with the training split's statistics only; everything random comes from `named_rng`
(run seed or `data_seed`, and the dataset's name). TensorFlow is imported only for tfds's CIFAR-10.
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
  """A train/test pair: (N, d), (M, d) float32 features standardized with the training statistics
  (info: 'feature_mean', 'feature_std', 'standardize_channels', and a source's parameters); y
  float32 or int32 labels (num_classes 0 for regression); name e.g. 'iris' or 'iris/validation'."""

  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  task: str
  num_classes: int
  name: str
  info: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)


def load_dataset(data_config: Mapping, *, seed: int, data_dir: str | None = None) -> Dataset:
  """The standardized `Dataset` of the `data` block (`configs.common.data_config(name)` or a
  mapping), deterministic in `seed` (or `data_seed`). `data_dir`: tfds's for CIFAR-10 (None:
  `data_config.data_dir`, else data_cache/)."""
  name = data_config['name']
  if name not in common.DATASET_NAMES:
    raise ValueError(f'unknown dataset {name!r}; valid names: {list(common.DATASET_NAMES)}.')
  if name == 'cifar10':
    return _cifar10(data_config, data_dir or data_config.get('data_dir'))
  data_seed = seed if data_config.get('data_seed') is None else data_config['data_seed']
  rng = named_rng(data_seed, f'data/{name}')
  if name == 'synthetic_regression':
    *arrays, info = sources.synthetic_regression(data_config, rng)
    return _standardized(*arrays, 'regression', 0, name, **info)
  if name == 'synthetic_classification':
    *arrays, info = sources.synthetic_classification(data_config, rng)
    return _standardized(*arrays, 'classification', data_config['num_classes'], name, **info)
  if name == 'boston':
    columns = dict(target=data_config['target'], drop_columns=tuple(data_config['drop_columns']))
    num_rows = data_config.get('num_rows', sources.BOSTON_NUM_ROWS)
    x, y, _ = sources.read_boston_csv(data_config.get('csv_path'), num_rows=num_rows, **columns)
    task, num_classes = 'regression', 0
  else:  # iris or wine
    from sklearn import datasets  # pylint: disable=g-import-not-at-top

    bunch = datasets.load_iris() if name == 'iris' else datasets.load_wine()
    x, y, task, num_classes = bunch.data, bunch.target, 'classification', len(bunch.target_names)
  train, test = _split_indices(y, data_config['test_fraction'], task == 'classification', rng)
  info = dict(train_indices=train, test_indices=test)
  return _standardized(x[train], y[train], x[test], y[test], task, num_classes, name, **info)


def split_validation(dataset: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
  """(train_part, validation_part): both train on the training points less round(fraction · N)
  held out (stratified for classification; named_rng(seed, 'validation')) and are re-standardized
  with their statistics; train_part tests on the test split, validation_part on those held out."""
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
  info = dict(dataset.info, validation_fraction=fraction)
  info.update(feature_mean=old_mean + old_std * mean, feature_std=old_std * std)
  shared = dict(task=dataset.task, num_classes=dataset.num_classes, info=info)
  y_fit = dataset.y_train[fit_idx]
  train_part = Dataset(x_fit, y_fit, x_test, dataset.y_test, name=f'{dataset.name}/train', **shared)
  validation_part = Dataset(
      x_fit, y_fit, x_val, dataset.y_train[val_idx], name=f'{dataset.name}/validation', **shared
  )
  return train_part, validation_part


def named_rng(seed: int, name: str) -> np.random.Generator:
  """A numpy generator keyed by (seed, name): stable across processes and platforms."""
  return np.random.default_rng(
      np.random.SeedSequence(entropy=int(seed), spawn_key=(zlib.crc32(name.encode()),))
  )


def standardize(x_train: np.ndarray, *others: np.ndarray, channels: int | None = None):
  """(x_train, others, mean, std): `x_train` (N, d) and each of `others` (M_i, d) standardized
  with x_train's (d,) float64 statistics, as float32; `channels` C: per-channel statistics of
  flattened (..., C) features. A constant feature is only centred; a value beyond ±1e150 (its
  square overflows the std) is refused, naming the feature."""
  x_train = np.asarray(x_train, np.float64)
  for name, x in (('training', x_train), *(('test', np.asarray(o, np.float64)) for o in others)):
    too_large = np.abs(x) > 1e150
    if too_large.any():
      feature = int(np.argmax(too_large.any(axis=0)))
      raise ValueError(
          f'{int(too_large.sum())} {name} input value(s) beyond ±1e150 (feature {feature}: '
          f'{x[:, feature][too_large[:, feature]][0]:g}); their squares overflow the '
          'standardization. Fix or remove those rows.'
      )
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

  split = dict(test_size=test_fraction, stratify=y if stratify else None)
  return model_selection.train_test_split(
      np.arange(len(y)), **split, random_state=int(rng.integers(2**31 - 1))
  )


def _standardized(x_train, y_train, x_test, y_test, task, num_classes, name, **info) -> Dataset:
  """A `Dataset` of raw arrays, standardized per feature (per channel: `standardize_channels`)."""
  channels = info.pop('standardize_channels', None)
  xs_train, (xs_test,), mean, std = standardize(x_train, x_test, channels=channels)
  y_dtype = np.int32 if task == 'classification' else np.float32
  y_train, y_test = (np.asarray(y).astype(y_dtype) for y in (y_train, y_test))
  info = dict(feature_mean=mean, feature_std=std, standardize_channels=channels, **info)
  return Dataset(xs_train, y_train, xs_test, y_test, task, num_classes, name, info)


def _cifar10(config, data_dir) -> Dataset:
  """CIFAR-10 from tfds or npz files (`config.source`), with the training subset's statistics."""
  source = config.get('source', 'tfds')
  if source == 'tfds':
    data_dir = data_dir or sources.DEFAULT_DATA_DIR
    load = lambda split, _: sources.tfds_load_numpy('cifar10', split, data_dir)
  elif source == 'npz':
    paths = (config.get('train_npz'), config.get('test_npz'))
    load = lambda split, field: sources.npz_load_numpy(split, field, *paths)
  else:
    raise ValueError(
        f"data.source must be one of ['tfds', 'npz'], got {source!r}; pass --config.data.source="
        'tfds (tensorflow-datasets in data_dir) or npz (with --config.data.train_npz and test_npz).'
    )
  splits = {'train_split': config['train_split'], 'test_split': config['test_split']}
  (x_train, y_train), (x_test, y_test) = (load(split, field) for field, split in splits.items())
  info = dict(standardize_channels=x_train.shape[-1], image_shape=tuple(x_train.shape[1:]))
  info.update(splits, source=source)
  x_train, x_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
  return _standardized(x_train, y_train, x_test, y_test, 'classification', 10, 'cifar10', **info)
