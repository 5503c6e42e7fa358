# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The raw data: the synthetic generators of docs/spec.md §5, the Boston Housing CSV and CIFAR-10
(tensorflow-datasets, or npz files with numpy only); input_pipeline.py makes `Dataset`s of them.
"""

from __future__ import annotations

import csv
import os
import pathlib
import re
import zipfile
import zlib

import numpy as np
import scipy.special

# The project's tensorflow-datasets data_dir: <repo root>/data_cache.
DEFAULT_DATA_DIR = str(pathlib.Path(__file__).resolve().parents[1] / 'data_cache')


def synthetic_regression_targets(x, amplitudes, frequencies, phases) -> np.ndarray:
  """The noise-free target of docs/spec.md §5: Σ_k a_k sin(2π w_kᵀx + φ_k), (N,) of (N, d) x."""
  return np.sin(2 * np.pi * x @ frequencies.T + phases) @ amplitudes


# The Boston Housing table (shared/data/uci/boston_housing.csv): its header and its row count.
BOSTON_COLUMNS = tuple('CRIM ZN INDUS CHAS NOX RM AGE DIS RAD TAX PTRATIO B LSTAT MEDV'.split())
BOSTON_NUM_ROWS = 506
# Fewest data rows accepted (num_rows=None): enough for a training and a test part to standardize.
BOSTON_MIN_ROWS = 10


def _number(cell: str) -> float | None:
  try:
    return float(cell)
  except ValueError:
    return None


def _boston_table(csv_path: str, num_rows) -> tuple[list[str], np.ndarray]:
  """(header, (rows, 14) float64 values) of the CSV: the 14 BOSTON_COLUMNS in any order, then
  rows of 14 finite numbers; anything else raises a ValueError naming the line and the column."""
  with open(csv_path, newline='', encoding='utf-8-sig') as f:
    reader = csv.reader(f)
    rows = [(reader.line_num, [c.strip() for c in row]) for row in reader if row]
  if not rows:
    raise ValueError(
        f'{csv_path} is empty: expected the Boston Housing CSV, a header line '
        f'{",".join(BOSTON_COLUMNS)} then rows of 14 numbers; point csv_path at a complete copy.'
    )
  (_, header), body = rows[0], rows[1:]
  problems = {
      'missing': [c for c in BOSTON_COLUMNS if c not in header],
      'unexpected': [c for c in header if c not in BOSTON_COLUMNS],
      'duplicated': sorted({c for c in header if header.count(c) > 1}),
  }
  if any(problems.values()):
    found = ', '.join(f'{what} {names}' for what, names in problems.items() if names)
    raise ValueError(
        f'{csv_path}: the header line must name the 14 Boston Housing columns '
        f'{list(BOSTON_COLUMNS)} (any order), found {header} ({found}); fix the header line.'
    )
  if not body:
    raise ValueError(
        f'{csv_path} has a header but no data rows: expected '
        f'{num_rows or f"at least {BOSTON_MIN_ROWS}"} rows of 14 numbers below it; point '
        'data_config.csv_path at a complete copy.'
    )
  ragged = [(line, len(row)) for line, row in body if len(row) != len(header)]
  if ragged:
    raise ValueError(
        f'{csv_path}: line {ragged[0][0]} has {ragged[0][1]} cells, expected {len(header)}, and '
        f'{len(ragged)} row(s) in all have the wrong length; fix or remove them (truncated?).'
    )
  cells = [(line, column, cell) for line, row in body for column, cell in zip(header, row)]
  bad = [(line, column, cell) for line, column, cell in cells if _number(cell) is None]
  if bad:
    raise ValueError(
        f'{csv_path}: line {bad[0][0]}, column {bad[0][1]} holds {bad[0][2]!r}, expected a '
        f'number, and {len(bad)} cell(s) in all are not numbers; fix or remove those rows.'
    )
  values = np.array([[float(cell) for cell in row] for _, row in body], np.float64)
  not_finite = ~np.isfinite(values)
  if not_finite.any():
    per_column = {c: int(n) for c, n in zip(header, not_finite.sum(0)) if n}
    first = body[int(np.argmax(not_finite.any(1)))][0]
    raise ValueError(
        f'{csv_path}: {int(not_finite.sum())} NaN/inf value(s), per column {per_column} (the '
        f'first at line {first}), expected finite numbers only; fix or remove those rows.'
    )
  return header, values


def read_boston_csv(
    csv_path: str | None,
    *,
    target: str = 'MEDV',
    drop_columns: tuple[str, ...] = (),
    num_rows: int | None = BOSTON_NUM_ROWS,
):
  """Reads and checks the Boston table: returns x (N, 13 - len(drop_columns)) float64, y (N,)
  float64 and the feature names; N is `num_rows` (506, the published table) unless that is None."""
  if not csv_path:
    raise ValueError(
        "dataset 'boston' needs data_config.csv_path: pass --config.data.csv_path=PATH, the Boston "
        'Housing CSV (project copy: shared/data/uci/boston_housing.csv; see README, "Data").'
    )
  if not os.path.exists(csv_path):
    raise FileNotFoundError(
        f'data_config.csv_path={csv_path!r} does not exist: point it at the Boston Housing CSV '
        '(the project copy is shared/data/uci/boston_housing.csv; see README, "Data").'
    )
  if num_rows is not None and (
      isinstance(num_rows, bool) or not isinstance(num_rows, int) or num_rows < BOSTON_MIN_ROWS
  ):
    raise ValueError(
        f"data_config.num_rows must be None or an integer >= {BOSTON_MIN_ROWS} (the CSV's data "
        f'rows), got {num_rows!r}; pass e.g. --config.data.num_rows={BOSTON_NUM_ROWS} or None.'
    )
  header, values = _boston_table(csv_path, num_rows)
  n = len(values)
  if num_rows is not None and n != num_rows:
    raise ValueError(
        f'{csv_path} has {n} data rows, expected {num_rows} (truncated?); for a CSV of your own '
        f'pass --config.data.num_rows={n} (or None for any count of at least {BOSTON_MIN_ROWS}).'
    )
  if n < BOSTON_MIN_ROWS:
    raise ValueError(
        f'{csv_path} has {n} data rows, expected at least {BOSTON_MIN_ROWS} to split into '
        'training and test parts; use a CSV with more rows.'
    )
  missing = [c for c in (target, *drop_columns) if c not in header]
  if missing:
    raise ValueError(
        f'{csv_path}: no column(s) {missing} for data_config.target / drop_columns; columns are '
        f'{header}.'
    )
  features = [c for c in header if c != target and c not in drop_columns]
  x = values[:, [header.index(c) for c in features]]
  return x, values[:, header.index(target)], features


def synthetic_regression(config, rng) -> tuple:
  """Raw (x_train, y_train, x_test, y_test, info) from `rng`'s streams: parameters, train, test."""
  params_rng, train_rng, test_rng = rng.spawn(3)
  d, k, lo, hi = (config[f] for f in ('input_dim', 'num_modes', 'amplitude_min', 'amplitude_max'))
  amplitudes = params_rng.uniform(lo, hi, size=k) / np.sqrt(k)
  frequencies = config['frequency_scale'] * params_rng.standard_normal((k, d))
  phases = params_rng.uniform(0.0, 2 * np.pi, size=k)

  def draw(r, n):
    x = r.standard_normal((n, d))
    y = synthetic_regression_targets(x, amplitudes, frequencies, phases)
    return x, y + config['noise_std'] * r.standard_normal(n)

  x_train, y_train = draw(train_rng, config['num_train'])
  x_test, y_test = draw(test_rng, config['num_test'])
  info = dict(amplitudes=amplitudes, frequencies=frequencies, phases=phases)
  return x_train, y_train, x_test, y_test, dict(info, x_train_raw=x_train, x_test_raw=x_test)


def synthetic_classification(config, rng) -> tuple:
  """Raw (x_train, y_train, x_test, y_test, info) from `rng`'s streams: parameters, train, test."""
  params_rng, train_rng, test_rng = rng.spawn(3)
  d, c = config['input_dim'], config['num_classes']
  means = config['mean_scale'] * params_rng.standard_normal((c, d))
  covariance = config['covariance']
  if covariance == 'isotropic':
    scale = config['cluster_std'] * np.eye(d)
  elif covariance == 'anisotropic':
    scale = config['cluster_std'] * params_rng.standard_normal((d, d)) / np.sqrt(d)
  else:
    raise ValueError(f"covariance must be 'isotropic' or 'anisotropic', got {covariance!r}.")
  weights = config.get('class_weights')
  weights = np.full(c, 1.0 / c) if weights is None else np.asarray(weights, np.float64)
  if weights.shape != (c,) or np.any(weights < 0) or not np.isclose(weights.sum(), 1.0):
    raise ValueError(f'class_weights must be {c} non-negative numbers summing to 1, got {weights}.')

  def draw(r, n):
    y = r.choice(c, size=n, p=weights)
    return means[y] + r.standard_normal((n, d)) @ scale.T, y

  x_train, y_train = draw(train_rng, config['num_train'])
  x_test, y_test = draw(test_rng, config['num_test'])
  info = dict(means=means, covariance_sqrt=scale, class_weights=weights)
  return x_train, y_train, x_test, y_test, info


def mixture_log_posterior(x_raw, means, covariance_sqrt, class_weights) -> np.ndarray:
  """(N, C) log p(y = c | x) of raw (unstandardized) inputs under the generator of
  `synthetic_classification` (its info: means (C, d), covariance_sqrt S with covariance S Sᵀ
  shared by the classes, class_weights): the Bayes-optimal posterior."""
  x, means, scale = (np.asarray(a, np.float64) for a in (x_raw, means, covariance_sqrt))
  # z = S⁻¹(x − μ_c): the squared Mahalanobis distance is |z|²; the log-determinant is shared.
  z = np.linalg.solve(scale, (x[:, None, :] - means[None]).reshape(-1, x.shape[1]).T).T
  quadratic = np.sum(z.reshape(len(x), len(means), -1) ** 2, axis=-1)
  with np.errstate(divide='ignore'):
    log_joint = np.log(np.asarray(class_weights, np.float64))[None] - 0.5 * quadratic
  return log_joint - scipy.special.logsumexp(log_joint, axis=1, keepdims=True)


def tfds_load_numpy(name, split, data_dir):
  """tfds.load(name, split=split, as_supervised=True) as numpy arrays, never downloading; in
  batches of 1,000, as `batch_size=-1` needs the split size on disk (not under mock_data)."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')  # before TensorFlow's first import
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  try:
    offline = dict(as_supervised=True, shuffle_files=False, download=False, try_gcs=False)
    ds = tfds.load(name, split=split, data_dir=data_dir, **offline)
  except AssertionError as e:
    # tfds: AssertionError('Dataset cifar10: could not find data in <data_dir>. ...').
    raise FileNotFoundError(
        f'{name} is not prepared in data_dir={data_dir!r} and is never downloaded here; import '
        'the npz files (../shared/data/cifar10/) once: python -m experiments.import_cifar10 '
        f'--train_npz=PATH --test_npz=PATH --data_dir={data_dir}, or read them directly with '
        '--config.data.source=npz, or, with network access, run tfds.builder("cifar10", '
        f'data_dir={data_dir!r}).download_and_prepare().'
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
  images, labels = zip(*batches)
  return np.concatenate(images), np.concatenate(labels)


# A split of the npz source: 'train' or 'test', optionally sliced with integers like tfds's.
_NPZ_SPLIT = re.compile(r'^(train|test)(?:\[(-?\d*):(-?\d*)\])?$')


def npz_load_numpy(split: str, field: str, train_npz: str | None, test_npz: str | None) -> tuple:
  """(images (N, 32, 32, 3) uint8, labels (N,) int64) of CIFAR-10 `split` from local npz files,
  without TensorFlow: 'NAME[a:b]' keeps images a to b of train_npz or test_npz in file order, as
  tfds reads an import; `field` names the config field in errors."""
  match = _NPZ_SPLIT.match(str(split).replace(' ', ''))
  if not match:
    raise ValueError(
        f"data.{field}={split!r} is not a split the npz source reads; write 'train' or 'test', "
        "optionally sliced with integers ('train[:5000]', 'test[100:200]'; no percents or unions)."
    )
  name, (start, stop) = match.group(1), (int(b) if b else None for b in match.group(2, 3))
  path_field = f'data.{name}_npz'
  path = train_npz if name == 'train' else test_npz
  if not path:
    raise ValueError(
        f"data.source='npz' reads data.{field}={split!r} from {path_field}, which is not set; "
        f'pass --config.{path_field}=PATH (project copies in ../shared/data/cifar10/).'
    )
  images, labels = load_npz(path, path_field)
  n = len(images)
  lo, hi, _ = slice(start, stop).indices(n)
  if any(b is not None and not -n <= b <= n for b in (start, stop)) or hi <= lo:
    raise ValueError(
        f'data.{field}={split!r} selects no image, or images beyond the {n} of {path}; choose '
        f"a split within the file (data.{field}, e.g. '{name}[:{n}]' or '{name}')."
    )
  return images[lo:hi].copy(), labels[lo:hi].copy()


_NPZ_EXPECTED = 'an npz archive with x (N, 32, 32, 3) uint8 and y (N,) integer labels in [0, 10)'
_NPZ_ERRORS = (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error)


def load_npz(path: str, field: str | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Reads and checks one npz: returns x (N, 32, 32, 3) uint8 and y (N,) int64 in [0, 10);
  anything else raises one error naming `path` (or config `field`), the expected and the found."""
  if not os.path.isfile(path):
    name, flag = (f'{field}={path!r}', f'--config.{field}') if field else (path, '--train_npz')
    raise FileNotFoundError(
        f'{name} does not exist (or is not a file): expected {_NPZ_EXPECTED}; pass an existing '
        f'file to {flag}.'
    )

  def bad(found: str) -> ValueError:
    return ValueError(
        f'{path}: expected {_NPZ_EXPECTED}, found {found}; copy the file again or re-create it '
        'with np.savez(path, x=images, y=labels).'
    )

  if os.path.getsize(path) == 0:
    raise bad('an empty file (0 bytes)')
  try:
    data = np.load(path, allow_pickle=False)
  except _NPZ_ERRORS as e:
    raise bad(f'{os.path.getsize(path)} bytes that are not a valid npz archive (truncated?)') from e
  if not isinstance(data, np.lib.npyio.NpzFile):
    raise bad(f'a single .npy array {getattr(data, "shape", "")}, not an npz archive')
  with data:
    missing = {'x', 'y'} - set(data.files)
    if missing:
      raise bad(f'no key(s) {sorted(missing)} (its keys: {data.files})')
    try:
      x, y = data['x'], data['y']
    except _NPZ_ERRORS as e:
      raise bad(f'x or y unreadable ({type(e).__name__}: a corrupt archive?)') from e
  if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3):
    raise bad(f'x of shape {x.shape} and dtype {x.dtype}')
  if len(x) == 0:
    raise bad('no images (x has shape (0, 32, 32, 3))')
  if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
    raise bad(f'y of shape {y.shape} and dtype {y.dtype} next to {len(x)} images')
  if y.min() < 0 or y.max() > 9:
    raise bad(f'labels from {y.min()} to {y.max()}')
  return x, y.astype(np.int64)
