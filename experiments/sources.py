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

_CIFAR_IMPORT_HELP = (
    'Import a local copy (uint8 images + labels as npz files with keys x (N, 32, 32, 3) and '
    'y (N,)) once, from the repository root, with\n'
    '    python -m experiments.import_cifar10 --train_npz=PATH --test_npz=PATH '
    '--data_dir={data_dir}\n'
    '(the project data: ../shared/data/cifar10/train_subset.npz and test_public.npz), or, with '
    'network access, run tfds.builder("cifar10", data_dir={data_dir!r}).download_and_prepare().'
)


def synthetic_regression_targets(x, amplitudes, frequencies, phases) -> np.ndarray:
  """The noise-free target of docs/spec.md §5: Σ_k a_k sin(2π w_kᵀx + φ_k), (N,) of (N, d) x."""
  return np.sin(2 * np.pi * x @ frequencies.T + phases) @ amplitudes


# The Boston Housing table (shared/data/uci/boston_housing.csv): its header and its row count.
BOSTON_COLUMNS = tuple('CRIM ZN INDUS CHAS NOX RM AGE DIS RAD TAX PTRATIO B LSTAT MEDV'.split())
BOSTON_NUM_ROWS = 506
# Fewest data rows accepted (num_rows=None): enough for a training and a test part to standardize.
BOSTON_MIN_ROWS = 10


def _csv_rows(csv_path: str) -> list[tuple[int, list[str]]]:
  """The non-blank rows of a CSV file as (line number, cells); cells stripped of spaces."""
  with open(csv_path, newline='', encoding='utf-8-sig') as f:
    reader = csv.reader(f)
    return [(reader.line_num, [c.strip() for c in row]) for row in reader if row]


def _check_num_rows(num_rows) -> None:
  if num_rows is not None and (
      isinstance(num_rows, bool) or not isinstance(num_rows, int) or num_rows < BOSTON_MIN_ROWS
  ):
    raise ValueError(
        f'data_config.num_rows must be None or an integer >= {BOSTON_MIN_ROWS} (the expected '
        f'number of data rows of the CSV), got {num_rows!r}; pass e.g. '
        f'--config.data.num_rows={BOSTON_NUM_ROWS} or --config.data.num_rows=None.'
    )


def _check_boston_header(csv_path: str, header: list[str]) -> None:
  """The 14 columns of BOSTON_COLUMNS, each once, in any order."""
  missing = [c for c in BOSTON_COLUMNS if c not in header]
  unexpected = [c for c in header if c not in BOSTON_COLUMNS]
  duplicated = sorted({c for c in header if header.count(c) > 1})
  if missing or unexpected or duplicated:
    problems = {'missing': missing, 'unexpected': unexpected, 'duplicated': duplicated}
    found = ', '.join(f'{what} {names}' for what, names in problems.items() if names)
    raise ValueError(
        f'{csv_path}: the header line must name the 14 Boston Housing columns '
        f'{list(BOSTON_COLUMNS)} (any order), found {header} ({found}); fix the header line.'
    )


def _boston_values(csv_path: str, header: list[str], body) -> np.ndarray:
  """(rows, 14) float64 of the data rows: every row 14 cells, every cell a finite number."""
  ragged = [(line, row) for line, row in body if len(row) != len(header)]
  if ragged:
    line, row = ragged[0]
    raise ValueError(
        f'{csv_path}: line {line} has {len(row)} cells, expected {len(header)} (one per header '
        f'column), and {len(ragged)} row(s) in all have the wrong length; fix or remove them '
        '(a row cut short suggests a truncated file).'
    )
  values = np.empty((len(body), len(header)), np.float64)
  bad = []  # (line, column, cell) of every cell that is not a number
  for i, (line, row) in enumerate(body):
    for j, cell in enumerate(row):
      try:
        values[i, j] = float(cell)
      except ValueError:
        bad.append((line, header[j], cell))
  if bad:
    line, column, cell = bad[0]
    raise ValueError(
        f'{csv_path}: line {line}, column {column} holds {cell!r}, expected a number, and '
        f'{len(bad)} cell(s) in all are not numbers; fix or remove those rows.'
    )
  not_finite = ~np.isfinite(values)
  if not_finite.any():
    per_column = {c: int(n) for c, n in zip(header, not_finite.sum(0)) if n}
    first = body[int(np.argmax(not_finite.any(1)))][0]
    raise ValueError(
        f'{csv_path}: {int(not_finite.sum())} NaN/inf value(s), per column {per_column} (the '
        f'first at line {first}), expected finite numbers only; fix or remove those rows.'
    )
  return values


def _check_row_count(csv_path: str, n: int, num_rows) -> None:
  if num_rows is not None and n != num_rows:
    raise ValueError(
        f'{csv_path} has {n} data rows, expected {num_rows} (the Boston Housing table has '
        f'{BOSTON_NUM_ROWS}; is the file truncated?); for a CSV of your own with these columns '
        f'pass --config.data.num_rows={n} (or --config.data.num_rows=None for any count of at '
        f'least {BOSTON_MIN_ROWS}).'
    )
  if n < BOSTON_MIN_ROWS:
    raise ValueError(
        f'{csv_path} has {n} data rows, expected at least {BOSTON_MIN_ROWS} to split into '
        'training and test parts; use a CSV with more rows.'
    )


def _checked_boston_table(csv_path: str, num_rows) -> tuple[list[str], np.ndarray]:
  """(header, (rows, 14) values) of the CSV, after every check."""
  expected = f'a header line {",".join(BOSTON_COLUMNS)} and then one row of 14 numbers per line'
  rows = _csv_rows(csv_path)
  if not rows:
    raise ValueError(
        f'{csv_path} is empty: expected the Boston Housing CSV, {expected}; point '
        'data_config.csv_path at a complete copy (shared/data/uci/boston_housing.csv).'
    )
  (_, header), body = rows[0], rows[1:]
  _check_boston_header(csv_path, header)
  if not body:
    raise ValueError(
        f'{csv_path} has a header but no data rows: expected '
        f'{num_rows or f"at least {BOSTON_MIN_ROWS}"} rows of 14 numbers below it; point '
        'data_config.csv_path at a complete copy.'
    )
  values = _boston_values(csv_path, header, body)
  _check_row_count(csv_path, len(body), num_rows)
  return header, values


def read_boston_csv(
    csv_path: str | None,
    *,
    target: str = 'MEDV',
    drop_columns: tuple[str, ...] = (),
    num_rows: int | None = BOSTON_NUM_ROWS,
):
  """Reads and checks the Boston table: returns x (N, 13 - len(drop_columns)) float64, y (N,)
  float64 and the feature names; N is `num_rows` (506, the published table) unless that is None.

  The header must name the 14 columns of BOSTON_COLUMNS (any order), and every data row must hold
  14 finite numbers; a violation raises a ValueError naming the file, the line and the column.
  """
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
  _check_num_rows(num_rows)
  header, values = _checked_boston_table(csv_path, num_rows)
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
  """(x_train, y_train, x_test, y_test, info) drawn from three child streams of `rng`:
  parameters, training set, test set. Raw (unstandardized) arrays."""
  params_rng, train_rng, test_rng = rng.spawn(3)
  d, k, low, high = (
      config[f] for f in ('input_dim', 'num_modes', 'amplitude_min', 'amplitude_max')
  )
  amplitudes = params_rng.uniform(low, high, size=k) / np.sqrt(k)
  frequencies = config['frequency_scale'] * params_rng.standard_normal((k, d))
  phases = params_rng.uniform(0.0, 2 * np.pi, size=k)

  def draw(r, n):
    x = r.standard_normal((n, d))
    y = synthetic_regression_targets(x, amplitudes, frequencies, phases)
    return x, y + config['noise_std'] * r.standard_normal(n)

  x_train, y_train = draw(train_rng, config['num_train'])
  x_test, y_test = draw(test_rng, config['num_test'])
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
  d, c = config['input_dim'], config['num_classes']
  means = config['mean_scale'] * params_rng.standard_normal((c, d))
  if config['covariance'] == 'isotropic':
    scale = config['cluster_std'] * np.eye(d)
  elif config['covariance'] == 'anisotropic':
    scale = config['cluster_std'] * params_rng.standard_normal((d, d)) / np.sqrt(d)
  else:
    raise ValueError(
        f"covariance must be 'isotropic' or 'anisotropic', got {config['covariance']!r}."
    )
  weights = (
      np.full(c, 1.0 / c)
      if config.get('class_weights') is None
      else np.asarray(config['class_weights'], np.float64)
  )
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
  x = np.asarray(x_raw, np.float64)
  means = np.asarray(means, np.float64)
  scale = np.asarray(covariance_sqrt, np.float64)
  # z = S⁻¹(x − μ_c): the squared Mahalanobis distance is |z|²; the log-determinant is shared.
  z = np.linalg.solve(scale, (x[:, None, :] - means[None]).reshape(-1, x.shape[1]).T).T
  quadratic = np.sum(z.reshape(len(x), len(means), -1) ** 2, axis=-1)
  with np.errstate(divide='ignore'):
    log_joint = np.log(np.asarray(class_weights, np.float64))[None] - 0.5 * quadratic
  return log_joint - scipy.special.logsumexp(log_joint, axis=1, keepdims=True)


def tfds_load_numpy(name, split, data_dir):
  """tfds.load(name, split=split, as_supervised=True) as numpy arrays, never downloading.

  Batches of 1,000 are concatenated rather than `batch_size=-1`, which batches by the split size
  recorded on disk (unknown under `tfds.testing.mock_data`, where TF then aborts the process).
  """
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')  # before TensorFlow's first import
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  try:
    offline = dict(as_supervised=True, shuffle_files=False, download=False, try_gcs=False)
    ds = tfds.load(name, split=split, data_dir=data_dir, **offline)
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
  images, labels = zip(*batches)
  return np.concatenate(images), np.concatenate(labels)


# A split of the npz source: 'train' or 'test', optionally sliced with integers like tfds's.
_NPZ_SPLIT = re.compile(r'^(train|test)(?:\[(-?\d*):(-?\d*)\])?$')


def _parse_npz_split(split: str, field: str) -> tuple[str, int | None, int | None]:
  """('train' or 'test', start, stop) of a split string such as 'train[:5000]'."""
  match = _NPZ_SPLIT.match(str(split).replace(' ', ''))
  if not match:
    raise ValueError(
        f"data.{field}={split!r} is not a split the npz source reads: expected 'train' or "
        "'test', optionally sliced with integers ('train[:5000]', 'test[100:200]'; no percents "
        'or unions); write the split that way.'
    )
  start, stop = (int(b) if b else None for b in match.group(2, 3))
  return match.group(1), start, stop


def _npz_path(name: str, split: str, field: str, path: str | None) -> str:
  """The checked path of the npz that split `name` ('train' or 'test') reads."""
  path_field = f'data.{name}_npz'
  if not path:
    raise ValueError(
        f"data.source='npz' reads data.{field}={split!r} from {path_field}, which is not set; "
        f'pass --config.{path_field}=PATH, an npz of x (N, 32, 32, 3) uint8 and y (N,) labels '
        '(the project copies: ../shared/data/cifar10/train_subset.npz and test_public.npz).'
    )
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f'{path_field}={path!r} does not exist (or is not a file): expected an npz of x '
        f'(N, 32, 32, 3) uint8 and y (N,) labels; pass an existing file to --config.{path_field}.'
    )
  return path


def npz_load_numpy(
    split: str, field: str, train_npz: str | None, test_npz: str | None
) -> tuple[np.ndarray, np.ndarray]:
  """(images (N, 32, 32, 3) uint8, labels (N,) int64) of CIFAR-10 `split` from local npz files,
  without TensorFlow: 'NAME[a:b]' keeps images a to b of train_npz or test_npz in file order, as
  tfds reads an import; `field` names the config field in errors."""
  name, start, stop = _parse_npz_split(split, field)
  path = _npz_path(name, split, field, train_npz if name == 'train' else test_npz)
  images, labels = load_npz(path)
  n = len(images)
  lo, hi, _ = slice(start, stop).indices(n)
  if any(b is not None and not -n <= b <= n for b in (start, stop)) or hi <= lo:
    raise ValueError(
        f'data.{field}={split!r} selects no image, or images beyond the {n} of {path}; choose '
        f"a split within the file (data.{field}, e.g. '{name}[:{n}]' or '{name}')."
    )
  return images[lo:hi].copy(), labels[lo:hi].copy()


_NPZ_EXPECTED = 'an npz archive with x (N, 32, 32, 3) uint8 and y (N,) integer labels in [0, 10)'
_NPZ_FIX = 'copy the file again or re-create it with np.savez(path, x=images, y=labels)'


def _bad_npz(path: str, found: str) -> ValueError:
  return ValueError(f'{path}: expected {_NPZ_EXPECTED}, found {found}; {_NPZ_FIX}.')


def load_npz(path: str) -> tuple[np.ndarray, np.ndarray]:
  """Reads and checks one npz: returns x (N, 32, 32, 3) uint8 and y (N,) int64 in [0, 10).

  Anything else (no file, an empty or truncated file, missing keys, wrong shapes, dtypes or labels)
  raises one error naming `path`, what was expected and what was found.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f'{path} does not exist (or is not a file): expected {_NPZ_EXPECTED}; pass an existing '
        'file to --train_npz / --test_npz.'
    )
  if os.path.getsize(path) == 0:
    raise _bad_npz(path, 'an empty file (0 bytes)')
  try:
    data = np.load(path, allow_pickle=False)
  except (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error) as e:
    size = os.path.getsize(path)
    raise _bad_npz(path, f'{size} bytes that are not a valid npz archive (truncated?)') from e
  if not isinstance(data, np.lib.npyio.NpzFile):
    raise _bad_npz(path, f'a single .npy array {getattr(data, "shape", "")}, not an npz archive')
  with data:
    missing = {'x', 'y'} - set(data.files)
    if missing:
      raise _bad_npz(path, f'no key(s) {sorted(missing)} (its keys: {data.files})')
    try:
      x, y = data['x'], data['y']
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error) as e:
      raise _bad_npz(path, f'x or y unreadable ({type(e).__name__}: a corrupt archive?)') from e
  if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3):
    raise _bad_npz(path, f'x of shape {x.shape} and dtype {x.dtype}')
  if len(x) == 0:
    raise _bad_npz(path, 'no images (x has shape (0, 32, 32, 3))')
  if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
    raise _bad_npz(path, f'y of shape {y.shape} and dtype {y.dtype} next to {len(x)} images')
  if y.min() < 0 or y.max() > 9:
    raise _bad_npz(path, f'labels from {y.min()} to {y.max()}')
  return x, y.astype(np.int64)
