# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Hyperparameter selection on a validation split, nested per seed.

Nested: seed s's setting of every model is selected on a validation split carved from seed s's
training split only (`input_pipeline.split_validation` of seed s's dataset,
`search.validation_fraction` of its training points, re-standardized), and seed s's units use
it, so no test point of any seed is seen in its selection. Score: the task's validation metric
(MSE for regression; accuracy for classification, ties broken by cross-entropy).
`search.seeds` (e.g. (0,)) selects on those seeds only and gives the others the first one's
selection: allowed only where no seed's test point can be in it, i.e. data drawn afresh per
seed (synthetic) or a fixed test set apart from the training pool (CIFAR-10); refused for the
UCI tables, whose seeds redraw one table's split (`RESPLIT_DATASETS`). search.json's
'selection_seed' maps each run seed to the seed whose selection it uses.

Coverage: coordinate-wise refinement, the same scheme for every model. From the start point (on
each axis the model's configured value when the grid holds it, else the grid's middle value),
each axis in turn (`FIRST_AXES` first, then by name, `LAST_AXES` last) is swept over all its
values with the other axes at the best setting so far; the best moves only on a strict
improvement. Up to `search.rounds` rounds, stopping early after a round that moved nothing.
So every value of every axis is tried for every model (axis coverage 1, whatever the grid's
size) at a cost that grows with the sum of the axis lengths, not their product, and the path
depends on the data set's and seed's own scores (no shared draw).
Edges: when a selected numeric value is the first or last of its axis, the next value beyond
it (the axis's own step: the ratio of the two edge values, or their difference when one is
≤ 0; none below a lower edge of 0) is tried once, with the other axes at the selection
(phase 'extension'); search.json and search.md flag every selected value still on an edge.
`search.trials` caps the trials per model and seed, extensions included.

Recorded in search.json: 'budget', 'pinned' and, per seed ('seeds': {'0': ...}), per model:
every trial (grid 'point', resolved 'overrides', 'phase', scores, seconds), 'grid_size',
'trials_run', 'coverage' (grid points tried / grid size), 'axis_coverage' (axis values tried /
axis values), per axis its values, the values tried, the selection, its 'edge' and the
'extension', and 'on_edge'. Trials live in search/seed_<s>/<model>/trial_<k>/result.json; a
finished trial is not rerun on resume (the refinement is deterministic given the scores).

References (models.REFERENCES: LDA, least squares, ARD GP, RBF-SVM, Bayes-optimal) are not
searched: each selects its own hyperparameters on the training split (experiments/units.py);
search.space may not name them.

Twins: `ntk_ecrn_infinite` (models.ModelSpec.twin_of) takes its ecrn block from the tuned
`ntk_ecrn` of the same seed ('inherited'), so `ntk_ecrn` is searched first (also when it is
not among config.models: then for the twin only); only its kernel settings are searched.

Config fields (`config.search`):
  enabled: False runs every model with the config as given (no selection).
  validation_fraction, trials, rounds, seeds: as above (seeds None: every run seed).
  space: one block per model, nested like the config it overrides, leaves are tuples of
    candidate values, e.g. space.mlp.train.learning_rate = (1e-4, 1e-3, 1e-2). The number
    of epochs is searched relative to the model's `train.epochs`:
    space.MODEL.train.epochs_fraction = (0.5, 1.0, 2.0) tries max(1, ⌊f · train.epochs⌋)
    epochs, so a config with train.epochs = 10 searches 5, 10 and 20 epochs.

Pinned fields (`config.pinned`; the command line pins every `--config.FIELD` it sets): a
pinned field leaves every model's grid (a pinned train.epochs removes train.epochs_fraction),
the search runs on the rest, and neither a model's defaults nor the selection replace it.
search.json records them: 'pinned' (every pinned field and its value), per model 'pinned'
(those its grid or defaults would have set) and 'removed_from_grid'. A variant's own
overrides still apply ('pinned_but_set_by_variants', also logged).

`check(config)` runs before any work: it builds every unit config the run can build (each
model's and variant's defaults, and every combination of grid values: per config block, the
product of that block's axes, which is every configuration the library builds from the grid)
into the library's config objects, so an invalid value fails at once, naming the field and
where it was set. An extension value is checked when it comes up; an invalid one is recorded
and not run.

Per-model defaults and variants: see experiments/models.py (`model_config`).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import shutil
import time
from typing import Any, Callable, Optional

from absl import logging
import ml_collections

from ecrn_jax import io
from experiments import input_pipeline
from experiments import models
from experiments import workdir as workdir_lib

EPOCHS_FRACTION = 'train.epochs_fraction'
# Swept first: the settings that scale every fit; the other axes follow by name.
FIRST_AXES = ('train.learning_rate', 'kernel.diag_reg')
# Swept last: the axis whose large values cost the most (the first layer grows with it), so
# every other axis is swept at the start's (configured, cheapest) feature count.
LAST_AXES = ('ecrn.fourier_features',)


def _resolve_epochs(config, model: str, point: dict[str, Any]) -> dict[str, Any]:
  """`point` with train.epochs_fraction f replaced by train.epochs = max(1, ⌊f · epochs⌋)."""
  if EPOCHS_FRACTION not in point:
    return point
  point = dict(point)
  fraction = point.pop(EPOCHS_FRACTION)
  if not _is_real(fraction, 0, open_low=True):
    raise ValueError(
        f'search.space.{model}.{EPOCHS_FRACTION} values must be finite numbers > 0, got '
        f'{fraction!r}.'
    )
  # model_config(config, model).train.epochs, without copying the config.
  epochs = int(models.unit_overrides(config, model).get('train.epochs', config.train.epochs))
  point['train.epochs'] = max(1, int(fraction * epochs))
  return point


def _sets(path: str) -> str:
  """The config field that grid path `path` sets (train.epochs_fraction sets train.epochs)."""
  return 'train.epochs' if path == EPOCHS_FRACTION else path


def _axis_order(path: str) -> tuple:
  if path in FIRST_AXES:
    return (0, FIRST_AXES.index(path), path)
  return (2, 0, path) if path in LAST_AXES else (1, 0, path)


def grid(config: ml_collections.ConfigDict, model: str) -> tuple[dict[str, Any], list[str]]:
  """(`model`'s grid {path: candidate values} without the pinned fields, in sweep order; the
  paths removed)."""
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
  paths = sorted((p for p in full if p not in removed), key=_axis_order)
  return {p: tuple(full[p]) for p in paths}, removed


def grid_size(axes: dict[str, Any]) -> int:
  return math.prod(len(v) for v in axes.values())


def start_point(config: ml_collections.ConfigDict, model: str, axes: dict) -> dict[str, Any]:
  """On each axis the model's configured value when the axis holds it, else its middle value
  (train.epochs_fraction: 1, the configured epochs)."""
  unit = models.model_config(config, model)
  point = {}
  for path, values in axes.items():
    try:
      current = 1.0 if path == EPOCHS_FRACTION else models.get_path(unit, path)
    except (KeyError, AttributeError):
      current = None
    if isinstance(current, list):
      current = tuple(current)
    point[path] = current if current in values else values[(len(values) - 1) // 2]
  return point


def _is_number(value) -> bool:
  return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def edge(values, value) -> Optional[str]:
  """'lower' or 'upper' when `value` is the least or greatest of a numeric axis of at least
  two values, else None."""
  if len(set(values)) < 2 or not all(_is_number(v) for v in values) or not _is_number(value):
    return None
  if value == min(values):
    return 'lower'
  return 'upper' if value == max(values) else None


def extension(values, side: str):
  """The value beyond the `side` edge of numeric axis `values`, one step of the axis: the
  ratio of the two edge values (both > 0), else their difference; None below a lower edge of
  0 (a bound: drop rates, weight decays) or for a non-numeric axis."""
  if len(set(values)) < 2 or not all(_is_number(v) for v in values):
    return None
  ordered = sorted(set(values))
  if side == 'upper':
    a, b = ordered[-2], ordered[-1]
    new = b * (b / a) if a > 0 else b + (b - a)
  else:
    a, b = ordered[0], ordered[1]
    if a == 0:
      return None
    new = a * (a / b) if a > 0 else a - (b - a)
  if all(isinstance(v, int) for v in values):
    new = int(round(new))
    return None if new in ordered else new
  return float(f'{new:.6g}')


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
    'source': (lambda v: v in ('tfds', 'npz'), "'tfds' or 'npz'"),
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
  if data.get('source') == 'npz':
    for field in ('train_npz', 'test_npz'):
      if not (data.get(field) and os.path.isfile(data[field])):
        raise _field_error(
            f'data.{field}',
            'the path of an npz with x (N, 32, 32, 3) uint8 and y (N,) labels',
            data.get(field),
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


def _check_settings(config: ml_collections.ConfigDict) -> None:
  """The counts, names, pinned paths and search settings."""
  examples = {'seeds': "--config.seeds='(0,)'", 'models': '--config.models=mlp'}
  for field, example in examples.items():
    if not config[field]:
      raise ValueError(
          f'config.{field} is empty, so nothing would run; give at least one, e.g. ' f'{example}.'
      )
  for seed in config.seeds:
    if not _is_int(seed, 0):
      raise _field_error('seeds', 'a tuple of integers >= 0', tuple(config.seeds))
  fields = ['checkpoint_every', 'eval_batch_size', 'train.epochs']
  fields += ['search.trials', 'search.rounds'] if config.get('search') is not None else []
  for field in fields:
    try:
      value = models.get_path(config, field)
    except (KeyError, AttributeError):
      value = None
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
  if search is not None and not _is_real(search.validation_fraction, 0, 1, True, True):
    raise _field_error(
        'search.validation_fraction', 'a number in (0, 1)', search.validation_fraction
    )
  if search is not None:
    _check_search_seeds(config)


# Data sets whose seeds redraw the train/test split of one fixed table: a validation point of
# one seed is a test point of another.
RESPLIT_DATASETS = ('boston', 'iris', 'wine')


def _check_search_seeds(config: ml_collections.ConfigDict) -> None:
  """search.seeds: None, or run seeds; shared only where no seed's test point is in it."""
  seeds = config.search.get('seeds')
  if seeds is None:
    return
  if not seeds or not all(_is_int(s, 0) and s in tuple(config.seeds) for s in seeds):
    raise _field_error(
        'search.seeds',
        f'None (every run seed) or a non-empty tuple of run seeds {config.seeds}',
        seeds,
    )
  shared = [s for s in config.seeds if s not in tuple(seeds)]
  if shared and config.data.name in RESPLIT_DATASETS and config.data.get('data_seed') is None:
    raise ValueError(
        f'config.search.seeds={tuple(seeds)} would give seeds {shared} the selection of seed '
        f'{seeds[0]}, but {config.data.name} redraws its train/test split per seed, so seed '
        f"{seeds[0]}'s validation points are test points of the others. Leave search.seeds "
        'None (each seed selects on its own training split), or fix the split for every seed '
        'with --config.data.data_seed.'
    )


def search_seeds(config: ml_collections.ConfigDict) -> list[int]:
  """The seeds whose validation splits select hyperparameters (search.seeds, or every run
  seed)."""
  seeds = config.search.get('seeds')
  return [int(s) for s in (config.seeds if seeds is None else seeds)]


def selection_seed(config: ml_collections.ConfigDict, seed: int) -> int:
  """The seed whose selection seed `seed`'s units use: its own when searched, else the first
  of search.seeds."""
  searched = search_seeds(config)
  return int(seed) if int(seed) in searched else searched[0]


def _check_space(config: ml_collections.ConfigDict) -> None:
  """Every model of search.space is registered; a twin's grid leaves its inherited block."""
  for model in config.search.space.keys():
    if model not in models.REGISTRY:
      raise ValueError(f'search.space.{model}: unknown model; valid: {list(models.MODELS)}.')
    spec = models.REGISTRY[model]
    if spec.kind == 'reference':
      raise ValueError(
          f'search.space.{model}: {model} is a reference, which selects its own '
          'hyperparameters on the training split; it has no search space.'
      )
    for path in grid(config, model)[0]:
      if spec.twin_of is not None and path.startswith(spec.family + '.'):
        raise ValueError(
            f'search.space.{model}.{path} cannot be searched: {model} takes its '
            f'{spec.family} block from the tuned {spec.twin_of} (search '
            f'{model}_self_tuned for a twin tuned on its own).'
        )


def _check_axes(config, base: str) -> tuple[dict, dict, dict]:
  """(axes, start point, {field: where set}) of every grid value `base`'s units can get: its
  own grid and, for a twin, its source's grid under the inherited block."""
  own, _ = grid(config, base)
  sources = {_sets(p): f'search.space.{base}.{p}' for p in own}
  start = start_point(config, base, own)
  spec = models.REGISTRY[base]
  if spec.twin_of is None:
    return own, start, sources
  inherited = {
      p: v for p, v in grid(config, spec.twin_of)[0].items() if p.startswith(spec.family + '.')
  }
  sources.update({p: f'search.space.{spec.twin_of}.{p}' for p in inherited})
  start.update(start_point(config, spec.twin_of, inherited))
  return {**own, **inherited}, start, sources


def unit_selection(config, model: str, point: dict, inherited: Optional[dict] = None) -> dict:
  """The `selected` overrides of `model`'s unit at grid `point` (epochs resolved): for a twin,
  the inherited block first (`inherited`, else from the source's axes in `point`)."""
  spec = models.REGISTRY[model]
  if spec.twin_of is None:
    return _resolve_epochs(config, model, point)
  prefix = spec.family + '.'
  if inherited is None:
    source = {p: v for p, v in point.items() if p.startswith(prefix)}
    inherited = models.inherited_overrides(config, model, source)
  own = {p: v for p, v in point.items() if not p.startswith(prefix)}
  return {**inherited, **_resolve_epochs(config, model, own)}


def _block_points(axes: dict, start: dict):
  """Per config block, every combination of that block's axes, the other axes at `start`."""
  blocks: dict[str, list[str]] = {}
  for path in axes:
    blocks.setdefault(_sets(path).split('.')[0], []).append(path)
  for block, paths in blocks.items():
    for combo in itertools.product(*(axes[p] for p in paths)):
      yield block, {**start, **dict(zip(paths, combo))}


def _check_grid(config, name: str, seen: set) -> None:
  """Builds `name`'s unit at every grid combination (once per distinct block content)."""
  base = models.base_model(config, name)
  spec = models.spec(config, name)
  if spec.kind == 'reference':  # not searched
    return
  axes, start, sources = _check_axes(config, base)
  kind = (spec.kind, spec.family, models.is_tracked(config, name))
  for block, point in _block_points(axes, start):
    selected = unit_selection(config, base, point)
    content = models.unit_overrides(config, name, selected)
    content = {p: v for p, v in content.items() if p.split('.')[0] == block}
    key = (kind, block, json.dumps(content, sort_keys=True, default=repr))
    if key in seen:
      continue
    seen.add(key)
    context = f', search grid point {selected}'
    models.check_unit(config, name, selected, sources=sources, context=context)


def check(config: ml_collections.ConfigDict) -> None:
  """Fails, before any work, on a config that cannot run (ValueError naming the field).

  Checks the counts and names, the search settings, the data fields that need no data and the
  search space, and builds every unit config the run can build into the library's config
  objects (`models.check_unit`): each model's and variant's defaults and every combination of
  grid values (per config block: the library builds one config object per block).
  """
  _check_settings(config)
  _check_data(config)
  names = [*config.models, *(models.base_model(config, m) for m in config.models)]
  if config.get('search') is not None:
    _check_space(config)
    names += searched_models(config)  # with the tuned sources of the twins
  names = list(dict.fromkeys(names))
  for name in names:
    models.check_unit(config, name)
  if config.get('search') is None:
    return
  seen = set()
  for name in names:
    _check_grid(config, name, seen)


def score(task: str, metrics: dict) -> tuple:
  """A key to minimize: validation MSE, or (−accuracy, cross-entropy)."""
  if not metrics:
    return (math.inf, math.inf)
  if task == 'regression':
    mse = metrics.get('mse')
    return (mse if mse is not None and math.isfinite(mse) else math.inf, 0.0)
  ce = metrics.get('cross_entropy')
  return (-metrics['accuracy'], ce if ce is not None and math.isfinite(ce) else math.inf)


def _score(metrics: Optional[dict]) -> tuple:
  return score('classification' if 'accuracy' in (metrics or {}) else 'regression', metrics)


def _key(point) -> str:
  return json.dumps(point, sort_keys=True)


def _budget(search) -> dict:
  return {
      'scheme': (
          'coordinate-wise refinement (every value of every axis tried, the others at the best '
          'so far), then one extension beyond each selected edge value'
      ),
      'max_trials_per_model_and_seed': int(search.trials) if search.enabled else 0,
      'rounds': int(search.rounds),
      'validation_fraction': float(search.validation_fraction),
      'nested': (
          "per seed: seed s's selection uses a validation split of seed s's training split"
          if search.get('seeds') is None
          else f'on seeds {tuple(search.seeds)} only, shared with the other seeds (their '
          'data are drawn afresh or their test set is fixed: no test point is in it)'
      ),
      'search_seeds': None if search.get('seeds') is None else [int(v) for v in search.seeds],
      'selection': (
          'validation MSE (regression); validation accuracy, ties by '
          'cross-entropy (classification)'
      ),
  }


def searched_models(config: ml_collections.ConfigDict) -> list[str]:
  """The base models searched, in order, a twin's source first (searched for the twin alone
  when it is not among config.models and has a grid); references (models.REFERENCES) are not."""
  bases = dict.fromkeys(models.base_model(config, m) for m in config.models)
  bases = [m for m in bases if models.REGISTRY[m].kind != 'reference']
  out = []
  for base in bases:
    source = models.REGISTRY[base].twin_of
    if source is not None and source not in out and (source in bases or grid(config, source)[0]):
      out.append(source)
    if base not in out:
      out.append(base)
  return out


def validation_split(config: ml_collections.ConfigDict, seed: int) -> input_pipeline.Dataset:
  """Seed `seed`'s validation split, carved from seed `seed`'s training split only."""
  full = input_pipeline.load_dataset(config.data, seed=seed)
  _, validation = input_pipeline.split_validation(
      full, float(config.search.validation_fraction), seed
  )
  logging.info(
      'search: %d training / %d validation points (seed %d)',
      len(validation.x_train),
      len(validation.x_test),
      seed,
  )
  return validation


# run_unit(model, unit_config, dataset, directory, label, seed) → the unit's result dict.
RunUnit = Callable[[str, ml_collections.ConfigDict, Any, str, str, int], dict]


@dataclasses.dataclass
class Refinement:
  """The coordinate-wise refinement of one grid (module docstring). `evaluate(point, phase)`
  runs one trial and returns its score key (lower is better)."""

  axes: dict[str, tuple]
  evaluate: Callable[[dict, str], tuple]
  max_trials: int
  points: list = dataclasses.field(default_factory=list)  # the points tried, in order
  scores: dict = dataclasses.field(default_factory=dict)  # point key → score key
  best: Optional[dict] = None
  capped: bool = False
  rounds_run: int = 0

  def visit(self, point: dict, phase: str) -> Optional[bool]:
    """Tries `point` (once): whether it is the new best; None when the trials cap stops it."""
    key = _key(point)
    if key in self.scores:
      return False
    if len(self.points) >= self.max_trials:
      self.capped = True
      return None
    self.scores[key] = self.evaluate(point, phase)
    self.points.append(point)
    if self.best is None or self.scores[key] < self.scores[_key(self.best)]:
      self.best = point
      return True
    return False

  def refine(self, start: dict, rounds: int) -> None:
    """From `start`, sweeps each axis in turn with the others at the best so far."""
    self.visit(start, 'start')
    for r in range(1, rounds + 1):
      moved = False
      for path, values in self.axes.items():
        center = dict(self.best)
        for value in values:
          if value != center[path]:
            moved = bool(self.visit({**center, path: value}, f'round {r}: {path}')) or moved
      self.rounds_run = r
      if not moved or self.capped:
        break

  def extend(self, refusal: Callable[[dict], Optional[str]]) -> dict[str, dict]:
    """Tries, once per axis, the value beyond a selected edge value; {path: what was done}."""
    out = {}
    for path, values in self.axes.items():
      side = edge(values, self.best[path])
      if side is None:
        continue
      new = extension(values, side)
      record = {'side': side, 'value': new}
      point = {**self.best, path: new}
      error = None if new is None else refusal(point)
      if new is None:
        record['not_run'] = 'no value beyond this edge (the bound of the field)'
      elif error:
        record['not_run'] = f'invalid: {error}'
      elif self.visit(point, f'extension: {path}') is None:
        record['not_run'] = 'the trials cap (search.trials) was reached'
      else:
        record['trial'] = len(self.points) - 1
      out[path] = record
    return out

  def axes_record(self, extensions: dict[str, dict]) -> dict[str, dict]:
    """Per axis: its values, those tried, the selection, its edge and the extension."""
    out = {}
    for path, values in self.axes.items():
      extension_record = extensions.get(path)
      extended = list(values)
      if extension_record and 'trial' in extension_record:
        extended.append(extension_record['value'])
      selected = self.best[path]
      out[path] = {
          'values': list(values),
          'tried': [v for v in extended if any(p[path] == v for p in self.points)],
          'selected': selected,
          'edge': edge(extended, selected),
          'extension': extension_record,
      }
    return out

  def coverage(self) -> dict:
    """The grid size, the trials run and the fractions of grid points and axis values tried."""
    in_grid = [p for p in self.points if all(p[a] in v for a, v in self.axes.items())]
    size = grid_size(self.axes)
    values = sum(len(v) for v in self.axes.values())
    tried = sum(len({_key(p[a]) for p in in_grid}) for a in self.axes)
    return {
        'grid_size': size,
        'trials_run': len(self.points),
        'grid_points_tried': len(in_grid),
        'coverage': len(in_grid) / size,
        'axis_coverage': tried / values if values else 1.0,
    }


@dataclasses.dataclass
class _Seed:
  """One seed's search: its trials' directory and its validation split (loaded when needed)."""

  config: ml_collections.ConfigDict
  workdir: str
  seed: int
  run_unit: RunUnit
  split: Any = None

  def validation(self) -> input_pipeline.Dataset:
    if self.split is None:
      self.split = validation_split(self.config, self.seed)
    return self.split


def _trial(ctx: _Seed, model: str, k: int, point: dict, phase: str, inherited) -> dict:
  """Trial k of `model` at grid `point`, or its earlier result (resume)."""
  directory = os.path.join(ctx.workdir, 'search', f'seed_{ctx.seed}', model, f'trial_{k}')
  result_path = os.path.join(directory, 'result.json')
  earlier = workdir_lib.read_result(result_path)
  if earlier is not None and _key(earlier.get('point')) == _key(point):
    return earlier
  label = f'[search seed {ctx.seed} {model} trial {k + 1}, {phase}]'
  overrides = _resolve_epochs(ctx.config, model, point)
  unit_config = models.model_config(
      ctx.config, model, unit_selection(ctx.config, model, point, inherited)
  )
  unit_config.tracking.models = ()
  # A trial's checkpoints go when it ends: at most four saves (epoch 0 aside).
  epochs = int(unit_config.train.epochs)
  unit_config.checkpoint_every = max(int(unit_config.checkpoint_every), -(-epochs // 4))
  os.makedirs(directory, exist_ok=True)
  logging.info('%s %s', label, overrides)
  start = time.perf_counter()
  unit = ctx.run_unit(model, unit_config, ctx.validation(), directory, label, ctx.seed)
  result = io.jsonable(
      {
          'point': point,
          'overrides': overrides,
          'phase': phase,
          'validation': unit.get('test'),
          'train': unit.get('train'),
          'diverged': unit.get('diverged', False),
          'seconds': time.perf_counter() - start,
      }
  )
  io.write_json(result_path, result)
  # A finished trial is never resumed: its checkpoints (params and optimizer state) can go.
  shutil.rmtree(os.path.join(directory, 'checkpoints'), ignore_errors=True)
  logging.info('%s validation %s', label, result['validation'])
  return result


def _refusal(config, model: str, point: dict, inherited) -> Optional[str]:
  """Why the units of `model` (and its variants) cannot run at `point`, or None."""
  names = [n for n in config.models if models.base_model(config, n) == model] or [model]
  try:
    for name in names:
      models.check_unit(config, name, unit_selection(config, model, point, inherited))
  except ValueError as e:
    return str(e)
  return None


def _search_model(ctx: _Seed, model: str, inherited: Optional[dict]) -> dict:
  """Refines `model`'s grid on `ctx`'s validation split; its search.json entry."""
  config = ctx.config
  axes, _ = grid(config, model)
  trials = []

  def evaluate(point, phase):
    trials.append(_trial(ctx, model, len(trials), point, phase, inherited))
    return _score(trials[-1]['validation'])

  ref = Refinement(axes, evaluate, int(config.search.trials))
  ref.refine(start_point(config, model, axes), int(config.search.rounds))
  axes_record = ref.axes_record(ref.extend(lambda p: _refusal(config, model, p, inherited)))
  best = ref.points.index(ref.best)
  entry = {
      **pins(config, model),
      **ref.coverage(),
      'rounds_run': ref.rounds_run,
      'stopped_by_trials_cap': ref.capped,
      'axes': axes_record,
      'on_edge': {p: r['edge'] for p, r in axes_record.items() if r['edge']},
      'trials': trials,
      'selected': trials[best]['overrides'],
      'selected_point': trials[best]['point'],
      'selected_trial': best,
      'selected_validation': trials[best]['validation'],
      'seconds': sum(t['seconds'] for t in trials),
  }
  if inherited is not None:
    entry.update(inherited=inherited, inherited_from=models.REGISTRY[model].twin_of)
  return entry


def _select_seed(ctx: _Seed, out: dict, save: Callable[[], None]) -> None:
  """Fills `out` ({'models': {}}) with every searched model's entry of one seed."""
  start = time.perf_counter()
  bases = {models.base_model(ctx.config, m) for m in ctx.config.models}
  for model in searched_models(ctx.config):
    inherited = None
    source = models.REGISTRY[model].twin_of
    if source is not None:
      selected = (out['models'].get(source) or {}).get('selected') or {}
      inherited = models.inherited_overrides(ctx.config, model, selected)
    entry = _search_model(ctx, model, inherited)
    if model not in bases:
      entry['searched_for'] = 'the twins of the tuned model (not in config.models)'
    out['models'][model] = entry
    save()
  out['seconds'] = time.perf_counter() - start


def select(config: ml_collections.ConfigDict, workdir: str, run_unit: RunUnit) -> dict:
  """Runs every seed's and model's trials (resuming); returns (and writes) search.json's
  content.

  `run_unit(model, unit_config, dataset, directory, label, seed)` trains or fits one model on
  dataset (whose test split is the validation split) and returns its result dict.
  """
  out = {'budget': _budget(config.search), **pin_notes(config), 'seeds': {}}
  if not config.search.enabled:
    return out
  path = os.path.join(workdir, 'search.json')
  start = time.perf_counter()
  out['selection_seed'] = {str(s): selection_seed(config, s) for s in config.seeds}
  for seed in search_seeds(config):
    out['seeds'][str(seed)] = {'models': {}}
    ctx = _Seed(config, workdir, int(seed), run_unit)
    _select_seed(ctx, out['seeds'][str(seed)], lambda: io.write_json(path, out))
  out['seconds'] = time.perf_counter() - start
  io.write_json(path, out)
  return out


def selected_overrides(search_result: dict, config, model: str, seed: int) -> dict[str, Any]:
  """The selected overrides of `model`'s units of `seed` (a twin's inherited block first)."""
  base = models.base_model(config, model)
  seeds = search_result.get('seeds') or {}
  seed = (search_result.get('selection_seed') or {}).get(str(seed), seed)
  entry = ((seeds.get(str(seed)) or {}).get('models') or {}).get(base)
  if entry is None:
    return models.inherited_overrides(config, base)
  return {**(entry.get('inherited') or {}), **entry['selected']}


def describe(search_result: dict) -> str:
  lines = []
  for seed, seed_entry in (search_result.get('seeds') or {}).items():
    for model, entry in seed_entry['models'].items():
      pinned = f', pinned {entry["pinned"]}' if entry.get('pinned') else ''
      edges = f', on a grid edge: {entry["on_edge"]}' if entry.get('on_edge') else ''
      lines.append(
          f'  seed {seed} {model:<28} {entry["trials_run"]} trials ({entry["coverage"]:.1%} of '
          f'{entry["grid_size"]} grid points, {entry["axis_coverage"]:.0%} of axis values), '
          f'selected {entry["selected"]}{pinned}{edges} '
          f'(validation {entry["selected_validation"]})'
      )
  return '\n'.join(lines)
