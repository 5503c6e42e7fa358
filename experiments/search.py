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
    so `--config.train.epochs=10` moves the whole grid with it.

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


def candidates(config: ml_collections.ConfigDict, model: str) -> list[dict[str, Any]]:
  """The settings tried for `model`: its grid, or `trials` distinct points drawn from it."""
  space = config.search.space.get(model)
  if not space:
    return [{}]
  grid = models.flatten(space)
  for path, values in grid.items():
    if not isinstance(values, (tuple, list)) or not values:
      raise ValueError(
          f'search.space.{model}.{path} must be a non-empty tuple of candidate '
          f'values, got {values!r}.'
      )
  paths = sorted(grid)
  points = [dict(zip(paths, combo)) for combo in itertools.product(*(grid[p] for p in paths))]
  trials = int(config.search.trials)
  if len(points) > trials:
    rng = input_pipeline.named_rng(int(config.search.seed), f'search/{model}')
    points = [points[i] for i in sorted(rng.choice(len(points), trials, replace=False))]
  return [_resolve_epochs(config, model, point) for point in points]


def check(config: ml_collections.ConfigDict) -> None:
  """Fails (ValueError naming the field) on a search space or variant that names no field."""
  examples = {'seeds': "--config.seeds='(0,)'", 'models': '--config.models=mlp'}
  for field, example in examples.items():
    if not config[field]:
      raise ValueError(
          f'config.{field} is empty, so nothing would run; give at least one, e.g. ' f'{example}.'
      )
  for field in ('checkpoint_every', 'eval_batch_size', 'train.epochs', 'search.trials'):
    value = models.get_path(config, field)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(f'config.{field} must be a positive integer, got {value!r}.')
  models.check_models(config)
  search = config.get('search')
  if search is None:
    return
  used = {models.base_model(config, m) for m in config.models}
  for model in search.space.keys():
    if model not in models.REGISTRY:
      raise ValueError(f'search.space.{model}: unknown model; valid: {list(models.MODELS)}.')
    if model in used:
      for overrides in candidates(config, model):
        models.model_config(config, model, overrides)


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
  out = {'budget': _budget(config.search), 'models': {}}
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
    entry = {'trials': trials, 'seconds': sum(t['seconds'] for t in trials)}
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
    lines.append(
        f'  {model:<18} {len(entry["trials"])} trials, selected {entry["selected"]} '
        f'(validation {entry["selected_validation"]})'
    )
  return '\n'.join(lines)
