# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Hyperparameter selection by coordinate-wise refinement (refinement.py) on a validation split
of each seed's training split (README.md, Experiments); search.json records every trial, the
coverage and the selection; a finished trial is not rerun."""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import time
from typing import Any, Callable, Optional

from absl import logging

from ecrn_jax import files
from experiments import input_pipeline
from experiments import plan as plan_lib
from experiments import workdir as workdir_lib
from experiments.refinement import Refinement
from experiments.refinement import key as _key
from experiments.refinement import score
from experiments.registry import REGISTRY


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
          if search.seeds is None
          else f'on seeds {tuple(search.seeds)} only, shared with the other seeds (their '
          'data are drawn afresh or their test set is fixed: no test point is in it)'
      ),
      'search_seeds': None if search.seeds is None else [int(v) for v in search.seeds],
      'selection': (
          'validation MSE (regression); validation accuracy, ties by '
          'cross-entropy (classification)'
      ),
  }


def pins(run: plan_lib.RunPlan, model: str) -> dict[str, Any]:
  """The pinned fields (with their values) that `model`'s grid or defaults would otherwise
  set, and the grid paths removed."""
  _, removed = run.grid(model)
  changed = [plan_lib.sets(p) for p in removed] + list(run.defaults.get(model) or {})
  paths = [p for p in run.pinned if any(plan_lib.is_pinned(c, [p]) for c in changed)]
  return {'pinned': {p: run.value(p) for p in paths}, 'removed_from_grid': removed}


def pin_notes(run: plan_lib.RunPlan) -> dict[str, Any]:
  """search.json's record of the pinned fields, and of those a variant sets (logged)."""
  out = {'pinned': {p: run.value(p) for p in run.pinned}}
  by_variant = {}
  for name in run.models:
    pinned = run.variant_overrides(name).items()
    overridden = {k: v for k, v in pinned if plan_lib.is_pinned(k, run.pinned)}
    if overridden:
      by_variant[name] = overridden
      message = 'variant %s sets pinned field(s) %s: the variant keeps its own value(s)'
      logging.warning(message, name, overridden)
  if by_variant:
    out['pinned_but_set_by_variants'] = by_variant
  return out


# run_unit(plan, dataset) → the unit's result dict (units.run_trial: no checkpoints).
RunUnit = Callable[[plan_lib.UnitPlan, Any], dict]


@dataclasses.dataclass
class _Seed:
  """One seed's search: its trials' directory and its validation split (loaded when needed)."""

  run: plan_lib.RunPlan
  workdir: str
  seed: int
  run_unit: RunUnit

  @functools.cached_property
  def validation(self) -> input_pipeline.Dataset:
    """The seed's validation split, carved from the seed's training split only."""
    full = input_pipeline.load_dataset(self.run.data, seed=self.seed)
    fraction = float(self.run.search.validation_fraction)
    _, split = input_pipeline.split_validation(full, fraction, self.seed)
    n = (len(split.x_train), len(split.x_test), self.seed)
    logging.info('search: %d training / %d validation points (seed %d)', *n)
    return split


def _trial(ctx: _Seed, model: str, k: int, point: dict, phase: str, inherited) -> dict:
  """Trial k of `model` at grid `point`, or its earlier result (resume)."""
  directory = os.path.join(ctx.workdir, 'search', f'seed_{ctx.seed}', model, f'trial_{k}')
  result_path = os.path.join(directory, 'result.json')
  earlier = workdir_lib.read_result(result_path)
  if earlier is not None and _key(earlier.get('point')) == _key(point):
    return earlier
  label = f'[search seed {ctx.seed} {model} trial {k + 1}, {phase}]'
  overrides = ctx.run.resolve_epochs(model, point)
  selection = ctx.run.unit_selection(model, point, inherited)
  metrics = os.path.join(directory, 'metrics.jsonl')
  plan = ctx.run.unit(
      model, ctx.seed, selection, directory=directory, label=label, metrics=metrics, trial=True
  )
  os.makedirs(directory, exist_ok=True)
  logging.info('%s %s', label, overrides)
  start = time.perf_counter()
  unit = ctx.run_unit(plan, ctx.validation)
  result = {'point': point, 'overrides': overrides, 'phase': phase, 'validation': unit.get('test')}
  result.update(train=unit.get('train'), diverged=unit.get('diverged', False))
  result = files.jsonable(dict(result, seconds=time.perf_counter() - start))
  files.write_json(result_path, result)
  # Trials write no checkpoints (a killed one reruns); an earlier version's trials did.
  shutil.rmtree(os.path.join(directory, 'checkpoints'), ignore_errors=True)
  logging.info('%s validation %s', label, result['validation'])
  return result


def _refusal(run, model: str, point: dict, inherited) -> Optional[str]:
  """Why the units of `model` (and its variants) cannot run at `point`, or None."""
  names = [n for n in run.models if run.base_model(n) == model] or [model]
  try:
    for name in names:
      run.unit(name, 0, run.unit_selection(model, point, inherited))
  except ValueError as e:
    return str(e)
  return None


def _search_model(ctx: _Seed, model: str, inherited: Optional[dict]) -> dict:
  """Refines `model`'s grid on `ctx`'s validation split; its search.json entry."""
  run = ctx.run
  axes, _ = run.grid(model)
  trials = []

  def evaluate(point, phase):
    trials.append(_trial(ctx, model, len(trials), point, phase, inherited))
    metrics = trials[-1]['validation']
    return score('classification' if 'accuracy' in (metrics or {}) else 'regression', metrics)

  ref = Refinement(axes, evaluate, int(run.search.trials))
  ref.refine(run.start_point(model, axes), int(run.search.rounds))
  axes_record = ref.axes_record(ref.extend(lambda p: _refusal(run, model, p, inherited)))
  best = ref.points.index(ref.best)
  entry = {
      **pins(run, model),
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
    entry.update(inherited=inherited, inherited_from=REGISTRY[model].twin_of)
  return entry


def select(run: plan_lib.RunPlan, workdir: str, run_unit: RunUnit) -> dict:
  """Runs every seed's and model's trials (resuming); returns (and writes) search.json's
  content. `run_unit(plan, dataset)` runs one unit on a dataset whose test split is the
  validation split, and returns its result dict."""
  out = {'budget': _budget(run.search), **pin_notes(run), 'seeds': {}}
  if not run.search.enabled:
    return out
  path = os.path.join(workdir, 'search.json')
  start = time.perf_counter()
  searched = [int(s) for s in (run.seeds if run.search.seeds is None else run.search.seeds)]
  out['selection_seed'] = {str(s): int(s) if int(s) in searched else searched[0] for s in run.seeds}
  bases = {run.base_model(m) for m in run.models}
  for seed in searched:
    seed_start = time.perf_counter()
    seed_out = out['seeds'][str(seed)] = {'models': {}}
    ctx = _Seed(run, workdir, seed, run_unit)
    for model in run.searched_models():
      source = REGISTRY[model].twin_of  # a twin inherits its source's selected block
      selected = (seed_out['models'].get(source) or {}).get('selected') or {}
      inherited = None if source is None else run.inherited_overrides(model, selected)
      entry = _search_model(ctx, model, inherited)
      if model not in bases:
        entry['searched_for'] = 'the twins of the tuned model (not in config.models)'
      seed_out['models'][model] = entry
      files.write_json(path, out)
    seed_out['seconds'] = time.perf_counter() - seed_start
  out['seconds'] = time.perf_counter() - start
  files.write_json(path, out)
  return out


def selected_overrides(search_result: dict, run, model: str, seed: int) -> dict[str, Any]:
  """The selected overrides of `model`'s units of `seed` (a twin's inherited block first)."""
  base = run.base_model(model)
  seeds = search_result.get('seeds') or {}
  seed = (search_result.get('selection_seed') or {}).get(str(seed), seed)
  entry = ((seeds.get(str(seed)) or {}).get('models') or {}).get(base)
  if entry is None:
    return run.inherited_overrides(base)
  return {**(entry.get('inherited') or {}), **entry['selected']}


def describe(search_result: dict) -> str:
  """One line per searched (seed, model): trials, coverage, the selection."""
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
