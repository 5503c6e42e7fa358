# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Where the raw data come from: the synthetic generators of docs/spec.md §5, the Boston
Housing CSV and CIFAR-10 through tensorflow-datasets. Everything here returns raw arrays;
`experiments/input_pipeline.py` splits and standardizes them into a `Dataset`.
"""

from __future__ import annotations

import csv
import os
import pathlib

import numpy as np

# The project's tensorflow-datasets data_dir: <repo root>/data_cache.
DEFAULT_DATA_DIR = str(pathlib.Path(__file__).resolve().parents[1] / 'data_cache')

_CIFAR_IMPORT_HELP = (
    'Import a local copy (uint8 images + labels as npz files with keys x (N, 32, 32, 3) and '
    'y (N,)) once, from the repository root, with\n'
    '    python -m experiments.import_cifar10 --train_npz=PATH --test_npz=PATH '
    '--data_dir={data_dir}\n'
    '(the project data: ../shared/data/cifar10/train_subset.npz and test_public.npz), or, with '
    'network access, run tfds.builder("cifar10", data_dir={data_dir!r}).download_and_prepare().'
)


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


def synthetic_regression(config, rng) -> tuple:
  """(x_train, y_train, x_test, y_test, info) drawn from three child streams of `rng`:
  parameters, training set, test set. Raw (unstandardized) arrays."""
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
  info = dict(
      amplitudes=amplitudes,
      frequencies=frequencies,
      phases=phases,
      x_train_raw=x_train,
      x_test_raw=x_test,
  )
  return x_train, y_train, x_test, y_test, info


def synthetic_classification(config, rng) -> tuple:
  """(x_train, y_train, x_test, y_test, info): means and covariance, then labels and inputs,
  from three child streams of `rng`. Raw (unstandardized) arrays."""
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
  info = dict(means=means, covariance_sqrt=scale, class_weights=weights)
  return x_train, y_train, x_test, y_test, info


def tfds_load_numpy(name, split, data_dir):
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
