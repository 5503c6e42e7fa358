# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The checks of `plan.build`, before any work: a ValueError naming the field and where it was set.

Counts, names, data fields, search settings and space, and every unit plan the run can build.
"""

from __future__ import annotations

import difflib
import itertools
import json
import math
import os

from experiments.configs.common import DATASET_NAMES
from experiments.registry import MODELS
from experiments.registry import REGISTRY
from experiments.settings import is_int
from experiments.settings import is_real

# Data sets whose seeds redraw the train/test split of one fixed table: a validation point of
# one seed is a test point of another.
RESPLIT_DATASETS = ('boston', 'iris', 'wine')


def _field_error(path: str, expected: str, value) -> ValueError:
  return ValueError(f'config.{path} must be {expected}, got {value!r}; fix --config.{path}.')


_INT, _REAL = 'an integer >= {}', 'a finite number >= 0'
_COUNT = (lambda v: is_int(v, 1), _INT.format(1))
_finite = lambda v: is_real(v, -math.inf)
# Data fields checked before any data are loaded: field → (is valid, what is expected).
_DATA_FIELDS = {
    **dict.fromkeys(('num_train', 'num_test', 'input_dim', 'num_modes'), _COUNT),
    'num_classes': (lambda v: is_int(v, 2), _INT.format(2)),
    'data_seed': (lambda v: v is None or is_int(v, 0), 'None or ' + _INT.format(0)),
    'num_rows': (lambda v: v is None or is_int(v, 10), 'None or ' + _INT.format(10)),
    'test_fraction': (lambda v: is_real(v, 0, 1, True, True), 'a number in (0, 1)'),
    **{f: (lambda v: is_real(v, 0), _REAL) for f in ('frequency_scale', 'noise_std', 'mean_scale')},
    'cluster_std': (lambda v: is_real(v, 0, open_low=True), 'a finite number > 0'),
    **dict.fromkeys(('amplitude_min', 'amplitude_max'), (_finite, 'a finite number')),
    'covariance': (lambda v: v in ('isotropic', 'anisotropic'), "'isotropic' or 'anisotropic'"),
    'source': (lambda v: v in ('tfds', 'npz'), "'tfds' or 'npz'"),
}


def _check_data(run) -> None:
  """The data fields that can be checked without loading the data."""
  data = run.data
  if data['name'] not in DATASET_NAMES:
    raise _field_error('data.name', f'one of {list(DATASET_NAMES)}', data['name'])
  for field, (valid, expected) in _DATA_FIELDS.items():
    if field in data and not valid(data[field]):
      raise _field_error(f'data.{field}', expected, data[field])
  if 'amplitude_max' in data and data['amplitude_max'] < data['amplitude_min']:
    raise _field_error(
        'data.amplitude_max', f'>= amplitude_min={data["amplitude_min"]}', data['amplitude_max']
    )
  npz = 'an npz with x (N, 32, 32, 3) uint8 and y (N,) labels'
  files = {f: npz for f in ('train_npz', 'test_npz')} if data.get('source') == 'npz' else {}
  if data['name'] == 'boston':
    files['csv_path'] = (
        'the Boston Housing CSV (the project copy: shared/data/uci/boston_housing.csv)'
    )
  for field, what in files.items():
    if not (data.get(field) and os.path.isfile(data[field])):
      raise _field_error(f'data.{field}', f'the path of {what}', data.get(field))
  search = run.search
  if 'num_train' not in data or search is None or not search.enabled:
    return
  # The validation split needs a point of each class on both sides (classification).
  least, num_train = data.get('num_classes', 1), data['num_train']
  held_out = math.ceil(float(search.validation_fraction) * num_train)
  if min(held_out, num_train - held_out) < least:
    fraction = search.validation_fraction
    expected = f'large enough for a validation split of {fraction} with at least {least} point(s)'
    raise _field_error('data.num_train', expected + ' on each side', num_train)


def _check_settings(run) -> None:
  """The counts, names (models, variants and their overrides), pinned paths and search settings
  (search.seeds shared only where no seed's test point is in the selection's validation split)."""
  examples = {'seeds': "--config.seeds='(0,)'", 'models': '--config.models=mlp'}
  for field, example in examples.items():
    if not getattr(run, field):
      raise ValueError(
          f'config.{field} is empty, so nothing would run; give at least one, e.g. {example}.'
      )
  if not all(is_int(seed, 0) for seed in run.seeds):
    raise _field_error('seeds', 'a tuple of integers >= 0', tuple(run.seeds))
  for field in ('seeds', 'models'):  # a repeat would be counted as another seed or model
    values = list(getattr(run, field))
    repeated = sorted({v for v in values if values.count(v) > 1}, key=str)
    if repeated:
      raise ValueError(
          f'config.{field} holds {repeated} more than once, so one run would count as '
          f'several (n, std); give each once.'
      )
  tracked = run.fields.get('tracking.models') or ()
  known = [*REGISTRY, *run.variants]
  for name in tracked:
    if name not in known:
      close = difflib.get_close_matches(str(name), known, n=1)
      raise ValueError(
          f'config.tracking.models names {name!r}, no model of this config'
          + (f'; did you mean {close[0]!r}?' if close else '')
          + f' Valid: {known}.'
      )
  fields = ['checkpoint_every', 'eval_batch_size', 'train.epochs']
  fields += ['search.trials', 'search.rounds'] if run.search is not None else []
  for field in fields:
    value = run.fields.get(field)
    if not is_int(value, 1):
      raise ValueError(f'config.{field} must be a positive integer, got {value!r}.')
  for name, variant in run.variants.items():
    if variant.get('base') not in REGISTRY:
      raise ValueError(
          f'variants.{name}.base must be one of {list(REGISTRY)}, got {variant.get("base")!r}.'
      )
  for name in run.models:
    if name not in REGISTRY and name not in run.variants:
      raise ValueError(
          f'unknown model {name!r} in config.models; valid: {list(REGISTRY)} and '
          f'the variants {sorted(run.variants)}.'
      )
  for name in run.models:  # every override names a field
    run.values(run.unit_overrides(name))
  for path in run.pinned:
    if not run.has(path):
      raise ValueError(
          f'config.pinned holds {path!r}, which names no field of the config; pin fields by '
          'their dotted path, e.g. train.learning_rate.'
      )
  if run.search is None:
    return
  fraction = run.search.validation_fraction
  if not is_real(fraction, 0, 1, True, True):
    raise _field_error('search.validation_fraction', 'a number in (0, 1)', fraction)
  seeds = run.search.seeds
  if seeds is None:
    return
  if not seeds or not all(is_int(s, 0) and s in tuple(run.seeds) for s in seeds):
    expected = f'None (every run seed) or a non-empty tuple of run seeds {run.seeds}'
    raise _field_error('search.seeds', expected, seeds)
  shared = [s for s in run.seeds if s not in tuple(seeds)]
  name = run.data['name']
  if shared and name in RESPLIT_DATASETS and run.data.get('data_seed') is None:
    raise ValueError(
        f'config.search.seeds={tuple(seeds)} would give seeds {shared} the selection of seed '
        f'{seeds[0]}, but {name} redraws its train/test split per seed: its validation points '
        'are their test points. Leave search.seeds None, or fix the split with '
        '--config.data.data_seed.'
    )


def _check_space(run) -> None:
  """Every model of search.space is registered, each axis a non-empty tuple; a twin's grid
  leaves its inherited block."""
  for model, axes in run.search.space.items():
    if model not in REGISTRY:
      raise ValueError(f'search.space.{model}: unknown model; valid: {list(MODELS)}.')
    spec = REGISTRY[model]
    if spec.kind == 'reference':
      raise ValueError(
          f'search.space.{model}: {model} is a reference, which selects its own '
          'hyperparameters on the training split; it has no search space.'
      )
    for path, values in axes.items():
      if not isinstance(values, (tuple, list)) or not values:
        raise ValueError(
            f'search.space.{model}.{path} must be a non-empty tuple of candidate values, got '
            f'{values!r}.'
        )
    for path in run.grid(model)[0]:
      if spec.twin_of is not None and path.startswith(spec.family + '.'):
        raise ValueError(
            f'search.space.{model}.{path} cannot be searched: {model} takes its '
            f'{spec.family} block from the tuned {spec.twin_of} (search '
            f'{model}_self_tuned for a twin tuned on its own).'
        )


def _axes(run, base: str) -> tuple[dict, dict, dict]:
  """(axes, start point, {field: where set}) of every grid value `base`'s units can get: its
  own grid and, for a twin, its source's grid under the inherited block."""
  own, _ = run.grid(base)
  sets = lambda p: 'train.epochs' if p == 'train.epochs_fraction' else p
  sources = {sets(p): f'search.space.{base}.{p}' for p in own}
  start = run.start_point(base, own)
  spec = REGISTRY[base]
  if spec.twin_of is None:
    return own, start, sources
  source_axes = run.grid(spec.twin_of)[0].items()
  inherited = {p: v for p, v in source_axes if p.startswith(spec.family + '.')}
  sources.update({p: f'search.space.{spec.twin_of}.{p}' for p in inherited})
  start.update(run.start_point(spec.twin_of, inherited))
  return {**own, **inherited}, start, sources


def _check_grid(run, name: str, seen: set) -> None:
  """Builds `name`'s unit at every combination of each config block's axes (the other axes at
  the start), once per distinct block content: `seen` gets the key of each plan built."""
  base, spec = run.base_model(name), run.spec(name)
  if spec.kind == 'reference':  # not searched
    return
  axes, start, sources = _axes(run, base)
  tracked = run.fields.get('tracking.models') or ()
  kind = (spec.kind, spec.family, name in tracked or base in tracked)
  blocks: dict[str, list[str]] = {}
  for path in axes:
    blocks.setdefault(path.split('.')[0], []).append(path)
  for block, paths in blocks.items():
    for combo in itertools.product(*(axes[p] for p in paths)):
      selected = run.unit_selection(base, {**start, **dict(zip(paths, combo))})
      content = run.unit_overrides(name, selected)
      content = {p: v for p, v in content.items() if p.split('.')[0] == block}
      key = (kind, block, json.dumps(content, sort_keys=True, default=repr))
      if key not in seen:
        seen.add(key)
        context = f', search grid point {selected}'
        run.unit(name, 0, selected, sources=sources, context=context)


def check(run) -> int:
  """Fails, before any work, on a run that cannot run; the number of unit plans it built."""
  _check_settings(run)
  _check_data(run)
  names = [*run.models, *(run.base_model(m) for m in run.models)]
  if run.search is not None:
    _check_space(run)
    names += run.searched_models()  # with the tuned sources of the twins
  names = list(dict.fromkeys(names))
  for name in names:
    run.unit(name)
  seen: set = set()
  for name in names if run.search is not None else ():
    _check_grid(run, name, seen)
  return len(names) + len(seen)
