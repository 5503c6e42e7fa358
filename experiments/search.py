"""Hyperparameter selection on a validation split, and per-model configs.

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
    candidate values, e.g. space.mlp.train.learning_rate = (1e-4, 1e-3, 1e-2).

Per-model defaults (`config.model_defaults.MODEL`, nested overrides like a search point)
apply before the selected setting: e.g. ResNet-18's SGD recipe.

Model variants (`config.variants`, for ablations): variants.NAME = {'base': MODEL, <nested
overrides>}: NAME runs as MODEL with its selected hyperparameters and then these overrides,
so each ablation changes one thing of the tuned model.
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import time
from typing import Any, Optional

from absl import logging
import ml_collections


def flatten(block, prefix: str = '') -> dict[str, Any]:
  """{'train': {'learning_rate': v}} → {'train.learning_rate': v} (ConfigDicts or dicts)."""
  if isinstance(block, ml_collections.ConfigDict):
    block = block.to_dict()
  out = {}
  for key, value in block.items():
    path = f'{prefix}{key}'
    if isinstance(value, dict):
      out.update(flatten(value, path + '.'))
    else:
      out[path] = value
  return out


def set_path(config: ml_collections.ConfigDict, path: str, value) -> None:
  """config.<path> = value, failing with the valid fields when `path` names none."""
  *parents, leaf = path.split('.')
  node = config
  for i, name in enumerate(parents):
    if name not in node or not isinstance(node[name], ml_collections.ConfigDict):
      raise ValueError(f'{path!r} names no field of the config: {".".join(parents[:i + 1])!r} '
                       f'is not a block; valid: {sorted(node.keys())}.')
    node = node[name]
  if leaf not in node:
    raise ValueError(f'{path!r} names no field of the config; fields of '
                     f'{".".join(parents) or "the config"}: {sorted(node.keys())}.')
  if isinstance(value, list):
    value = tuple(value)
  with node.ignore_type():
    node[leaf] = value


def base_model(config: ml_collections.ConfigDict, model: str) -> str:
  variants = config.get('variants') or {}
  return variants[model].base if model in variants else model


def variant_overrides(config: ml_collections.ConfigDict, model: str) -> dict[str, Any]:
  variants = config.get('variants') or {}
  if model not in variants:
    return {}
  return {k: v for k, v in flatten(variants[model]).items() if k != 'base'}


def default_overrides(config: ml_collections.ConfigDict, model: str) -> dict[str, Any]:
  defaults = config.get('model_defaults') or {}
  base = base_model(config, model)
  return flatten(defaults[base]) if base in defaults else {}


def model_config(config: ml_collections.ConfigDict, model: str,
                 selected: Optional[dict[str, Any]] = None) -> ml_collections.ConfigDict:
  """`config` with, in this order, model's base defaults (config.model_defaults), the
  selected hyperparameters, and the variant's overrides."""
  out = copy.deepcopy(config)
  for path, value in {**default_overrides(config, model), **(selected or {}),
                      **variant_overrides(config, model)}.items():
    set_path(out, path, value)
  return out


def candidates(config: ml_collections.ConfigDict, model: str) -> list[dict[str, Any]]:
  """The settings tried for `model`: its grid, or `trials` distinct points drawn from it."""
  from experiments import input_pipeline  # pylint: disable=g-import-not-at-top
  space = config.search.space.get(model)
  if not space:
    return [{}]
  grid = flatten(space)
  for path, values in grid.items():
    if not isinstance(values, (tuple, list)) or not values:
      raise ValueError(f'search.space.{model}.{path} must be a non-empty tuple of candidate '
                       f'values, got {values!r}.')
  paths = sorted(grid)
  points = [dict(zip(paths, combo)) for combo in itertools.product(*(grid[p] for p in paths))]
  trials = int(config.search.trials)
  if len(points) <= trials:
    return points
  rng = input_pipeline.named_rng(int(config.search.seed), f'search/{model}')
  return [points[i] for i in sorted(rng.choice(len(points), trials, replace=False))]


def check(config: ml_collections.ConfigDict) -> None:
  """Fails (ValueError naming the field) on a search space or variant that names no field."""
  search = config.get('search')
  if search is None:
    return
  from experiments import train as train_lib  # pylint: disable=g-import-not-at-top
  used = {base_model(config, m) for m in config.models}
  for model in search.space.keys():
    if model not in train_lib.MODELS:
      raise ValueError(f'search.space.{model}: unknown model; valid: {list(train_lib.MODELS)}.')
    if model not in used:
      continue
    for overrides in candidates(config, model):
      model_config(config, model, overrides)
  for model in config.models:
    model_config(config, model)


def score(task: str, metrics: dict) -> tuple:
  """A key to minimize: validation MSE, or (−accuracy, cross-entropy)."""
  if not metrics:
    return (math.inf, math.inf)
  if task == 'regression':
    mse = metrics.get('mse')
    return (mse if mse is not None and math.isfinite(mse) else math.inf, 0.0)
  ce = metrics.get('cross_entropy')
  return (-metrics['accuracy'], ce if ce is not None and math.isfinite(ce) else math.inf)


def select(config: ml_collections.ConfigDict, workdir: str, run_unit, *,
           data_dir: Optional[str] = None) -> dict:
  """Runs every model's trials (resuming) and returns (and writes) search.json's content.

  `run_unit(model, unit_config, dataset, directory, label)` trains or fits one model on
  dataset (whose test split is the validation split) and returns its result dict.
  """
  from experiments import input_pipeline  # pylint: disable=g-import-not-at-top
  from experiments import train as train_lib  # pylint: disable=g-import-not-at-top
  search = config.search
  path = os.path.join(workdir, 'search.json')
  base_models = []
  for model in config.models:
    base = base_model(config, model)
    if base not in base_models:
      base_models.append(base)
  seed = int(search.seed)
  out = {'budget': {'trials_per_model': int(search.trials),
                    'validation_fraction': float(search.validation_fraction),
                    'seed': seed,
                    'selection': 'validation MSE (regression); validation accuracy, ties '
                                 'by cross-entropy (classification)'},
         'models': {}}
  if not search.enabled:
    out['budget']['trials_per_model'] = 0
    return out
  validation = None
  start = time.perf_counter()
  for model in base_models:
    entry = {'trials': [], 'seconds': 0.0}
    points = candidates(config, model)
    for k, overrides in enumerate(points):
      directory = os.path.join(workdir, 'search', model, f'trial_{k}')
      result_path = os.path.join(directory, 'result.json')
      label = f'[search {model} {k + 1}/{len(points)}]'
      if os.path.exists(result_path):
        result = train_lib.read_json(result_path)
      else:
        if validation is None:
          full = input_pipeline.load_dataset(config.data, seed=seed, data_dir=data_dir)
          _, validation = input_pipeline.split_validation(
              full, float(search.validation_fraction), seed)
          logging.info('search: %d training / %d validation points (seed %d)',
                       len(validation.x_train), len(validation.x_test), seed)
        unit_config = model_config(config, model, overrides)
        unit_config.tracking.models = ()
        os.makedirs(directory, exist_ok=True)
        logging.info('%s %s', label, overrides)
        t = time.perf_counter()
        unit = run_unit(model, unit_config, validation, directory, label)
        result = {'overrides': overrides, 'validation': unit.get('test'),
                  'train': unit.get('train'), 'diverged': unit.get('diverged', False),
                  'seconds': time.perf_counter() - t}
        train_lib.write_json(result_path, result)
        logging.info('%s validation %s', label, result['validation'])
      entry['trials'].append(result)
      entry['seconds'] += result['seconds']
    task = 'classification' if 'accuracy' in (next(
        (t['validation'] for t in entry['trials'] if t['validation']), {}) or {}) else 'regression'
    best = min(range(len(entry['trials'])),
               key=lambda i: score(task, entry['trials'][i]['validation']))
    entry['selected'] = entry['trials'][best]['overrides']
    entry['selected_trial'] = best
    entry['selected_validation'] = entry['trials'][best]['validation']
    out['models'][model] = entry
    train_lib.write_json(path, out)
  out['seconds'] = time.perf_counter() - start
  train_lib.write_json(path, out)
  return out


def selected_overrides(search_result: dict, config, model: str) -> dict[str, Any]:
  entry = search_result['models'].get(base_model(config, model))
  return dict(entry['selected']) if entry else {}


def describe(search_result: dict) -> str:
  lines = []
  for model, entry in search_result['models'].items():
    lines.append(f'  {model:<18} {len(entry["trials"])} trials, selected {entry["selected"]} '
                 f'(validation {entry["selected_validation"]})')
  return '\n'.join(lines)

