# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Hyperparameter selection on a validation split.

Every model of a config gets the same budget: `config.search.trials` candidate settings
(the whole grid when it has fewer points), each trained or fitted on the training data minus
a validation split (`input_pipeline.split_validation`, `search.validation_fraction` of the
training points of seed `search.seed`), and scored on that split only: the test split is
never seen. The selected setting is the best by the task's validation metric (MSE for
regression; accuracy for classification, ties broken by cross-entropy). Everything is
recorded in the workdir's search.json (every trial, its scores and seconds, the budget) and
search/<model>/trial_<k>/result.json (a finished trial is not rerun on resume).

Config fields (`config.search`):
  enabled: False runs every model with the config as given (no selection).
  validation_fraction, seed, trials: as above.
  space: one block per model, nested like the config it overrides, leaves are tuples of
    candidate values, e.g. space.mlp.train.learning_rate = (1e-4, 1e-3, 1e-2). The number
    of epochs is searched relative to the model's `train.epochs`:
    space.MODEL.train.epochs_fraction = (0.5, 1.0) tries max(1, ⌊f · train.epochs⌋) epochs,
    so a config with train.epochs = 10 searches 5 and 10 epochs.

Pinned fields (`config.pinned`; the command line pins every `--config.FIELD` it sets): a
pinned field leaves every model's grid (a pinned train.epochs removes train.epochs_fraction),
the candidates are drawn from the rest, and neither a model's defaults nor the selection
replace it. search.json records them: 'pinned' (every pinned field and its value), per model
'pinned' (those its grid or defaults would have set) and 'removed_from_grid'. A variant's
own overrides still apply ('pinned_but_set_by_variants', also logged).

`check(config)` runs before any work: it builds every unit config the run can build (each
model's and variant's defaults, each search candidate) into the library's config objects,
so an invalid value fails at once, naming the field and where it was set.

Per-model defaults and variants: see experiments/models.py (`model_config`).
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import time
from typing import Any, Callable

from absl import logging
import ml_collections

from ecrn_jax import io
from experiments import input_pipeline
from experiments import models
from experiments import workdir as workdir_lib

EPOCHS_FRACTION = 'train.epochs_fraction'


def _resolve_epochs(config, model: str, point: dict[str, Any]) -> dict[str, Any]:
  """`point` with train.epochs_fraction f replaced by train.epochs = max(1, ⌊f · epochs⌋)."""
  if EPOCHS_FRACTION not in point:
    return point
  point = dict(point)
  fraction = point.pop(EPOCHS_FRACTION)
  if not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
    raise ValueError(
        f'search.space.{model}.{EPOCHS_FRACTION} values must be in (0, 1], got ' f'{fraction!r}.'
    )
  epochs = int(models.model_config(config, model).train.epochs)
  point['train.epochs'] = max(1, int(fraction * epochs))
  return point


def _sets(path: str) -> str:
  """The config field that grid path `path` sets (train.epochs_fraction sets train.epochs)."""
  return 'train.epochs' if path == EPOCHS_FRACTION else path


def grid(config: ml_collections.ConfigDict, model: str) -> tuple[dict[str, Any], list[str]]:
  """(`model`'s grid {path: candidate values} without the pinned fields, the paths removed)."""
  space = config.search.space.get(model)
  if not space:
    return {}, []
  full = models.flatten(space)
  for path, values in full.items():
    if not isinstance(values, (tuple, list)) or not values:
      raise ValueError(
          f'search.space.{model}.{path} must be a non-empty tuple of candidate '
          f'values, got {values!r}.'
      )
  removed = sorted(p for p in full if models.is_pinned(_sets(p), models.pinned(config)))
  return {p: v for p, v in full.items() if p not in removed}, removed


def candidates(config: ml_collections.ConfigDict, model: str) -> list[dict[str, Any]]:
  """The settings tried for `model`: its grid (less the pinned fields), or `trials` distinct
  points drawn from it."""
  points_grid, _ = grid(config, model)
  if not points_grid:
    return [{}]
  paths = sorted(points_grid)
  points = [
      dict(zip(paths, combo)) for combo in itertools.product(*(points_grid[p] for p in paths))
  ]
  trials = int(config.search.trials)
  if len(points) > trials:
    rng = input_pipeline.named_rng(int(config.search.seed), f'search/{model}')
    points = [points[i] for i in sorted(rng.choice(len(points), trials, replace=False))]
  return [_resolve_epochs(config, model, point) for point in points]


def pins(config: ml_collections.ConfigDict, model: str) -> dict[str, Any]:
  """What pinning changed for `model`: the pinned fields (with their values) that its grid
  or defaults would otherwise set, and the grid paths removed."""
  _, removed = grid(config, model) if config.get('search') is not None else ({}, [])
  defaults = models.flatten((config.get('model_defaults') or {}).get(model) or {})
  changed = [_sets(p) for p in removed] + list(defaults)
  paths = [p for p in models.pinned(config) if any(models.is_pinned(c, [p]) for c in changed)]
  return {
      'pinned': {p: models.get_path(config, p) for p in paths},
      'removed_from_grid': removed,
  }


def pin_notes(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """search.json's top-level record of the pinned fields: {'pinned': {path: value}} and, when a
  variant sets a pinned field (the variant's value is used: it is what the variant is),
  {'pinned_but_set_by_variants': {variant: {path: its value}}}, which is also logged."""
  out = {'pinned': {p: models.get_path(config, p) for p in models.pinned(config)}}
  by_variant = {}
  for name in config.models:
    overridden = models.pinned_set_by_variant(config, name)
    if overridden:
      by_variant[name] = overridden
      logging.warning(
          'variant %s sets pinned field(s) %s: the variant keeps its own value(s)',
          name,
          overridden,
      )
  if by_variant:
    out['pinned_but_set_by_variants'] = by_variant
  return out


def _field_error(path: str, expected: str, value) -> ValueError:
  return ValueError(f'config.{path} must be {expected}, got {value!r}; fix --config.{path}.')


def _is_int(value, low: int) -> bool:
  return not isinstance(value, bool) and isinstance(value, int) and value >= low


def _is_real(value, low: float, high: float = math.inf, open_low=False, open_high=False) -> bool:
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
    return False
  return (value > low if open_low else value >= low) and (
      value < high if open_high else value <= high
  )


# Data fields checked before any data are loaded: field → (is valid, what is expected).
_DATA_FIELDS = {
    'num_train': (lambda v: _is_int(v, 1), 'an integer >= 1'),
    'num_test': (lambda v: _is_int(v, 1), 'an integer >= 1'),
    'input_dim': (lambda v: _is_int(v, 1), 'an integer >= 1'),
    'num_modes': (lambda v: _is_int(v, 1), 'an integer >= 1'),
    'num_classes': (lambda v: _is_int(v, 2), 'an integer >= 2'),
    'data_seed': (lambda v: v is None or _is_int(v, 0), 'None or an integer >= 0'),
    'num_rows': (lambda v: v is None or _is_int(v, 10), 'None or an integer >= 10'),
    'test_fraction': (lambda v: _is_real(v, 0, 1, True, True), 'a number in (0, 1)'),
    'frequency_scale': (lambda v: _is_real(v, 0), 'a finite number >= 0'),
    'noise_std': (lambda v: _is_real(v, 0), 'a finite number >= 0'),
    'mean_scale': (lambda v: _is_real(v, 0), 'a finite number >= 0'),
    'cluster_std': (lambda v: _is_real(v, 0, open_low=True), 'a finite number > 0'),
    'amplitude_min': (lambda v: _is_real(v, -math.inf), 'a finite number'),
    'amplitude_max': (lambda v: _is_real(v, -math.inf), 'a finite number'),
    'covariance': (lambda v: v in ('isotropic', 'anisotropic'), "'isotropic' or 'anisotropic'"),
}


def _check_data(config) -> None:
  """The data fields that can be checked without loading the data."""
  data = config.data
  if data.name not in input_pipeline.DATASET_NAMES:
    raise _field_error('data.name', f'one of {list(input_pipeline.DATASET_NAMES)}', data.name)
  for field, (valid, expected) in _DATA_FIELDS.items():
    if field in data and not valid(data[field]):
      raise _field_error(f'data.{field}', expected, data[field])
  if 'amplitude_max' in data and data.amplitude_max < data.amplitude_min:
    raise _field_error(
        'data.amplitude_max', f'>= amplitude_min={data.amplitude_min}', data.amplitude_max
    )
  if data.name == 'boston' and not (data.get('csv_path') and os.path.isfile(data.csv_path)):
    raise _field_error(
        'data.csv_path',
        'the path of the Boston Housing CSV (the project copy: shared/data/uci/boston_housing.csv)',
        data.get('csv_path'),
    )
  search = config.get('search')
  if 'num_train' not in data or search is None or not search.enabled:
    return
  # The validation split needs a point of each class on both sides (classification).
  least = data.get('num_classes', 1)
  held_out = math.ceil(float(search.validation_fraction) * data.num_train)
  if min(held_out, data.num_train - held_out) < least:
    raise _field_error(
        'data.num_train',
        f'large enough for a validation split of {search.validation_fraction} with at least '
        f'{least} point(s) on each side',
        data.num_train,
    )


def check(config: ml_collections.ConfigDict) -> None:
  """Fails, before any work, on a config that cannot run (ValueError naming the field).

  Checks the counts and names, the search settings, the data fields that need no data and the
  search space, and builds every unit config the run can build into the library's config
  objects (`models.check_unit`): each model's and variant's defaults and each search candidate.
  """
  examples = {'seeds': "--config.seeds='(0,)'", 'models': '--config.models=mlp'}
  for field, example in examples.items():
    if not config[field]:
      raise ValueError(
          f'config.{field} is empty, so nothing would run; give at least one, e.g. ' f'{example}.'
      )
  for seed in config.seeds:
    if not _is_int(seed, 0):
      raise _field_error('seeds', 'a tuple of integers >= 0', tuple(config.seeds))
  for field in ('checkpoint_every', 'eval_batch_size', 'train.epochs', 'search.trials'):
    value = models.get_path(config, field)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(f'config.{field} must be a positive integer, got {value!r}.')
  models.check_models(config)
  for path in models.pinned(config):
    try:
      models.get_path(config, path)
    except (KeyError, AttributeError):
      raise ValueError(
          f'config.pinned holds {path!r}, which names no field of the config; pin fields by '
          'their dotted path, e.g. train.learning_rate.'
      ) from None
  search = config.get('search')
  if search is not None:
    if not _is_real(search.validation_fraction, 0, 1, True, True):
      raise _field_error(
          'search.validation_fraction', 'a number in (0, 1)', search.validation_fraction
      )
    if not _is_int(search.seed, 0):
      raise _field_error('search.seed', 'an integer >= 0', search.seed)
  _check_data(config)
  names = list(
      dict.fromkeys([*config.models, *(models.base_model(config, m) for m in config.models)])
  )
  for name in names:
    models.check_unit(config, name)
  if search is None:
    return
  for model in search.space.keys():
    if model not in models.REGISTRY:
      raise ValueError(f'search.space.{model}: unknown model; valid: {list(models.MODELS)}.')
    grid(config, model)
  for name in names:
    base = models.base_model(config, name)
    sources = {_sets(p): f'search.space.{base}.{p}' for p in grid(config, base)[0]}
    for k, point in enumerate(candidates(config, base)):
      context = f', search candidate {k} {point}'
      models.check_unit(config, name, point, sources=sources, context=context)


def score(task: str, metrics: dict) -> tuple:
  """A key to minimize: validation MSE, or (−accuracy, cross-entropy)."""
  if not metrics:
    return (math.inf, math.inf)
  if task == 'regression':
    mse = metrics.get('mse')
    return (mse if mse is not None and math.isfinite(mse) else math.inf, 0.0)
  ce = metrics.get('cross_entropy')
  return (-metrics['accuracy'], ce if ce is not None and math.isfinite(ce) else math.inf)


def _budget(search) -> dict:
  return {
      'trials_per_model': int(search.trials) if search.enabled else 0,
      'validation_fraction': float(search.validation_fraction),
      'seed': int(search.seed),
      'selection': (
          'validation MSE (regression); validation accuracy, ties by '
          'cross-entropy (classification)'
      ),
  }


def _validation_split(config) -> input_pipeline.Dataset:
  search = config.search
  full = input_pipeline.load_dataset(config.data, seed=int(search.seed))
  _, validation = input_pipeline.split_validation(
      full, float(search.validation_fraction), int(search.seed)
  )
  logging.info(
      'search: %d training / %d validation points (seed %d)',
      len(validation.x_train),
      len(validation.x_test),
      int(search.seed),
  )
  return validation


def _select_best(entry: dict) -> None:
  first = next((t['validation'] for t in entry['trials'] if t['validation']), None) or {}
  task = 'classification' if 'accuracy' in first else 'regression'
  best = min(
      range(len(entry['trials'])), key=lambda i: score(task, entry['trials'][i]['validation'])
  )
  entry.update(
      selected=entry['trials'][best]['overrides'],
      selected_trial=best,
      selected_validation=entry['trials'][best]['validation'],
  )


RunUnit = Callable[[str, ml_collections.ConfigDict, Any, str, str], dict]


def _trial(
    config,
    model: str,
    k: int,
    overrides: dict,
    total: int,
    workdir: str,
    run_unit: RunUnit,
    validation: Callable[[], Any],
) -> dict:
  directory = os.path.join(workdir, 'search', model, f'trial_{k}')
  result_path = os.path.join(directory, 'result.json')
  earlier = workdir_lib.read_result(result_path)
  if earlier is not None:
    return earlier
  label = f'[search {model} {k + 1}/{total}]'
  unit_config = models.model_config(config, model, overrides)
  unit_config.tracking.models = ()
  os.makedirs(directory, exist_ok=True)
  logging.info('%s %s', label, overrides)
  start = time.perf_counter()
  unit = run_unit(model, unit_config, validation(), directory, label)
  result = {
      'overrides': overrides,
      'validation': unit.get('test'),
      'train': unit.get('train'),
      'diverged': unit.get('diverged', False),
      'seconds': time.perf_counter() - start,
  }
  io.write_json(result_path, result)
  # A finished trial is never resumed: its checkpoints (params and optimizer state) can go.
  shutil.rmtree(os.path.join(directory, 'checkpoints'), ignore_errors=True)
  logging.info('%s validation %s', label, result['validation'])
  return result


def select(config: ml_collections.ConfigDict, workdir: str, run_unit: RunUnit) -> dict:
  """Runs every model's trials (resuming) and returns (and writes) search.json's content.

  `run_unit(model, unit_config, dataset, directory, label)` trains or fits one model on
  dataset (whose test split is the validation split) and returns its result dict.
  """
  out = {'budget': _budget(config.search), **pin_notes(config), 'models': {}}
  if not config.search.enabled:
    return out
  base_models = list(dict.fromkeys(models.base_model(config, m) for m in config.models))
  cache = []

  def validation():
    if not cache:
      cache.append(_validation_split(config))
    return cache[0]

  start = time.perf_counter()
  for model in base_models:
    points = candidates(config, model)
    trials = [
        _trial(config, model, k, overrides, len(points), workdir, run_unit, validation)
        for k, overrides in enumerate(points)
    ]
    entry = {**pins(config, model), 'trials': trials, 'seconds': sum(t['seconds'] for t in trials)}
    _select_best(entry)
    out['models'][model] = entry
    io.write_json(os.path.join(workdir, 'search.json'), out)
  out['seconds'] = time.perf_counter() - start
  io.write_json(os.path.join(workdir, 'search.json'), out)
  return out


def selected_overrides(search_result: dict, config, model: str) -> dict[str, Any]:
  entry = search_result['models'].get(models.base_model(config, model))
  return dict(entry['selected']) if entry else {}


def describe(search_result: dict) -> str:
  lines = []
  for model, entry in search_result['models'].items():
    pinned = f', pinned {entry["pinned"]}' if entry.get('pinned') else ''
    lines.append(
        f'  {model:<18} {len(entry["trials"])} trials, selected {entry["selected"]}{pinned} '
        f'(validation {entry["selected_validation"]})'
    )
  return '\n'.join(lines)
