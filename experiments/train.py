# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""`train_and_evaluate(config, workdir)`: every experiment of the paper. A benchmark selects
hyperparameters per seed (search.py), then runs one unit per seed and model (units.py)."""

from __future__ import annotations

import itertools
import os
import tempfile
import time
from typing import Optional

from absl import logging
import jax
import ml_collections

from ecrn_jax import files
from experiments import input_pipeline
from experiments import plan as plan_lib
from experiments import report
from experiments import search as search_lib
from experiments import units
from experiments import workdir as workdir_lib


def _summary(results: list[dict]) -> dict:
  """{model: {metric: {'mean', 'std', 'n', 'values'}}} of the test metrics over seeds."""
  by_model: dict[str, dict[str, list]] = {}
  for res in results:
    entry = by_model.setdefault(res['model'], {})
    for metric, value in (res.get('test') or {}).items():
      entry.setdefault(metric, []).append(value)
  return {m: {k: report.summary_stats(v) for k, v in ms.items()} for m, ms in by_model.items()}


def _plans(run: plan_lib.RunPlan, workdir: str, search: dict) -> dict:
  """{seed: {model: its unit's plan}}: seed s's units with seed s's selection."""
  total = len(run.seeds) * len(run.models)
  plans = {seed: {} for seed in run.seeds}
  where = dict(metrics=os.path.join(workdir, 'metrics.jsonl'))
  for i, (seed, name) in enumerate(itertools.product(run.seeds, run.models)):
    where.update(directory=os.path.join(workdir, f'seed_{seed}', name))
    where.update(label=f'[seed {seed} {name} {i + 1}/{total}]')
    selected = search_lib.selected_overrides(search, run, name, seed)
    plans[seed][name] = run.unit(name, seed, selected, **where)
  return plans


def _run_seed(plans: dict, data, seed: int, metrics, results: list, on_result) -> None:
  """Runs (or reads back) every unit of one seed ({model: plan}), appending to `results`."""
  dataset = record = None
  for name, plan in plans.items():
    result_path = os.path.join(plan.directory, 'result.json')
    earlier = workdir_lib.read_result(result_path)
    if earlier is not None:
      logging.info('%s done earlier: skipped', plan.label)
      results.append(earlier)
      continue
    if dataset is None:
      dataset = input_pipeline.load_dataset(data, seed=int(seed))
      n, m, d = len(dataset.x_train), len(dataset.x_test), dataset.x_train.shape[1]
      logging.info('seed %d: %s, %d train / %d test points, d = %d', seed, dataset.name, n, m, d)
      record = dict(name=dataset.name, task=dataset.task, num_classes=dataset.num_classes)
      record.update(num_train=int(n), num_test=int(m), input_dim=int(d))
    os.makedirs(plan.directory, exist_ok=True)
    logging.info('%s start', plan.label)
    if plan.spec.kind != 'trained':  # a killed earlier try may have logged it
      metrics.truncate_unit(plan.seed, name, -1)
    result = units.run_unit(plan, dataset)
    result.update(hyperparameters=plan.overrides, dataset=record)
    result = files.jsonable(result)
    # The metrics line first: a kill before result.json reruns the unit, which drops it.
    line = {'seed': plan.seed, 'model': name, 'epoch': None}
    metrics.write({**line, 'test': result['test'], 'seconds': result['seconds']})
    files.write_json(result_path, result)
    logging.info('%s test %s', plan.label, result['test'])
    results.append(result)
    on_result()


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: Optional[str]) -> dict:
  """Runs the experiment of `config` in `workdir` (prepared by `workdir.prepare`; None: a kept,
  logged temporary directory), resuming; returns its results.json."""
  # Kernels and kernel regression are computed in float64 (float32 models keep float32).
  jax.config.update('jax_enable_x64', True)
  if config.get('experiment') == 'finite_vs_infinite':
    from experiments import finite_vs_infinite  # pylint: disable=g-import-not-at-top

    return finite_vs_infinite.train_and_evaluate(config, workdir)
  run = plan_lib.build(config)
  if workdir is None:
    workdir = tempfile.mkdtemp(prefix='ecrn_run_')
    logging.info('no --workdir: writing to %s', workdir)
  os.makedirs(workdir, exist_ok=True)
  devices = jax.devices()
  device = {'platform': devices[0].platform, 'device_kind': devices[0].device_kind}
  device['count'] = len(devices)
  logging.info('devices: %s (%s × %d)', devices, device['device_kind'], device['count'])
  wall_start = time.perf_counter()
  search = search_lib.select(run, workdir, units.run_trial)
  if search['seeds']:
    logging.info('selected hyperparameters (validation splits):\n%s', search_lib.describe(search))
  plans = _plans(run, workdir, search)
  hyperparameters = {str(s): {m: p.overrides for m, p in plans[s].items()} for s in run.seeds}
  results: list[dict] = []

  def write_results(complete: bool) -> dict:
    out = {'complete': complete, 'device': device, 'units': results, 'summary': _summary(results)}
    out.update(hyperparameters=hyperparameters, search_budget=search['budget'])
    out['seconds'] = {'wall_this_session': time.perf_counter() - wall_start}
    files.write_json(os.path.join(workdir, 'results.json'), out)
    return out

  metrics = workdir_lib.MetricsLog(os.path.join(workdir, 'metrics.jsonl'))
  for seed in run.seeds:
    _run_seed(plans[seed], run.data, seed, metrics, results, lambda: write_results(False))
  out = write_results(complete=True)
  cell = lambda k, v: f'{k} n/a' if v['mean'] is None else f'{k} {v["mean"]:.4g} ± {v["std"]:.2g}'
  lines = [
      f'  {m:<18} ' + ', '.join(cell(*i) for i in s.items()) for m, s in out['summary'].items()
  ]
  print('\n'.join(['', 'test metrics (mean ± std over seeds):', *lines]))
  return out
