# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The paper's tables from experiment workdirs.

`python -m experiments.report --workdirs=DIR[,DIR...] --table=IV --out=DIR` writes results.csv,
table.md (the table, the runs' costs, the claim checks and the paired tests), table.tex and,
with a search.json, search.md and search_trials.md.
"""

from __future__ import annotations

import csv
import math
import os
from typing import Iterable, Optional, Sequence

from absl import app
from absl import flags
import numpy as np

from ecrn_jax import files
from experiments import paired
from experiments import search_tables
from experiments import tables

CSV_FIELDS = ('config', 'dataset', 'model', 'seed', 'split', 'metric', 'value')
SPLITS = ('train', 'test')
_UNIT_SECONDS = ('unit_this_session', 'unit', 'total')  # the first present counts


def load_workdir(workdir: str) -> dict:
  """{'config', 'results', 'search'}: the workdir's JSON files (config, search: None if absent)."""
  paths = {name: os.path.join(workdir, f'{name}.json') for name in ('config', 'results', 'search')}
  if not os.path.exists(paths['results']):
    raise FileNotFoundError(f'{workdir} has no results.json (has the run started?)')
  loaded = {k: files.read_json(p) if os.path.exists(p) else None for k, p in paths.items()}
  if not isinstance(loaded['results'], dict) or 'units' not in loaded['results']:
    raise ValueError(f"{paths['results']} holds no 'units' (not written by this program?)")
  return loaded


def config_name(loaded: dict, workdir: str) -> str:
  """The run's config name (config.json 'name'), else the workdir's directory name."""
  return (loaded['config'] or {}).get('name') or os.path.basename(os.path.normpath(workdir))


def _dataset_name(unit: dict, loaded: dict) -> str:
  config = (loaded['config'] or {}).get('config') or {}
  return (unit.get('dataset') or {}).get('name') or config.get('data', {}).get('name', 'unknown')


def results_rows(workdir: str) -> list[dict]:
  """One row per unit (seed × model) × split × metric of `workdir`'s results.json."""
  loaded = load_workdir(workdir)
  config = config_name(loaded, workdir)
  rows = []
  for unit in loaded['results']['units']:
    where = dict(config=config, workdir=workdir, dataset=_dataset_name(unit, loaded))
    where.update(model=unit['model'], seed=unit['seed'])
    values = [(split, m, v) for split in SPLITS for m, v in (unit.get(split) or {}).items()]
    rows += [dict(where, split=split, metric=m, value=v) for split, m, v in values]
  return rows


def write_results_csv(rows: Iterable[dict], path: str) -> None:
  """Writes `rows` as CSV (columns CSV_FIELDS; None → empty cell)."""
  # Text mode: on POSIX csv's '\r\n' row ends are written as they are (as with newline='').
  with files.atomic_open(os.path.abspath(path)) as f:
    writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
    writer.writeheader()
    writer.writerows({k: '' if row.get(k) is None else row[k] for k in CSV_FIELDS} for row in rows)


def summary_stats(values: Sequence) -> dict:
  """{'mean', 'std' (population, ddof=0), 'n', 'values'} over the finite values."""
  finite = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
  mean, std = (float(np.mean(finite)), float(np.std(finite))) if finite else (None, None)
  return {'mean': mean, 'std': std, 'n': len(finite), 'values': list(values)}


def summarize(rows: Iterable[dict], split: str = 'test') -> dict:
  """{(dataset, model, metric): summary_stats} of `split`'s rows."""
  grouped = {}
  for row in rows:
    if row['split'] == split:
      grouped.setdefault((row['dataset'], row['model'], row['metric']), []).append(row['value'])
  return {key: summary_stats(values) for key, values in grouped.items()}


def tracking_summary(workdirs: Sequence[str]) -> dict:
  """{(dataset, model): {field: summary_stats}} of the units' 'tracking' entries."""
  grouped = {}
  for workdir in workdirs:
    loaded = load_workdir(workdir)
    for unit in loaded['results']['units']:
      if unit.get('tracking'):
        entry = grouped.setdefault((_dataset_name(unit, loaded), unit['model']), {})
        for field in ('lambda_max_init', 'lambda_max_final', 'relative_delta_frobenius_final'):
          entry.setdefault(field, []).append(unit['tracking'].get(field))
  return {key: {f: summary_stats(v) for f, v in fields.items()} for key, fields in grouped.items()}


def workdir_context(workdirs: Sequence[str]) -> dict:
  """{dataset: {'workdir', 'config', 'expected_seeds', 'complete', 'task'}} (a dataset's first)."""
  context = {}
  for workdir in workdirs:
    loaded = load_workdir(workdir)
    config = (loaded['config'] or {}).get('config') or {}
    units = loaded['results']['units']
    tasks = {}
    for u in units:
      tasks.setdefault((u.get('dataset') or {}).get('name'), (u.get('dataset') or {}).get('task'))
    seeds = len(config.get('seeds') or ()) or None
    run = dict(workdir=workdir, config=config, expected_seeds=seeds)
    run['complete'] = bool(loaded['results'].get('complete'))
    datasets = {_dataset_name(u, loaded) for u in units}
    for dataset in datasets or {config.get('data', {}).get('name', 'unknown')}:
      context.setdefault(dataset, dict(run, task=tasks.get(dataset)))
  return context


def timing_line(workdir: str) -> str:
  """'name: hardware, wall time, summed unit seconds, completeness' of a workdir."""
  loaded = load_workdir(workdir)
  results = loaded['results']
  device = results.get('device') or {}
  kind, platform, count = (device.get(k, '?') for k in ('device_kind', 'platform', 'count'))
  wall = (results.get('seconds') or {}).get('wall_this_session')
  wall = (
      f'{wall:.0f} s wall (last session)' if isinstance(wall, (int, float)) else 'wall time unknown'
  )
  searches = search_tables.search_entries(loaded.get('search') or {})
  search = sum(e.get('seconds') or 0.0 for _, _, e in searches)
  if search:
    wall += f'; hyperparameter search {search:.0f} s'
  units = results.get('units') or []
  seconds = [u.get('seconds') or {} for u in units]
  found = [[s[k] for k in _UNIT_SECONDS if isinstance(s.get(k), (int, float))] for s in seconds]
  unit_seconds = sum(float(f[0]) for f in found if f)
  name = os.path.basename(os.path.normpath(workdir))
  return (
      f'`{name}` ({config_name(loaded, workdir)}): {kind} ({platform} × {count}); {wall}; '
      f'{unit_seconds:.0f} s summed over {len(units)} units; '
      + ('complete.' if results.get('complete') else '**incomplete**.')
  )


def parse_workdir(spec: str) -> tuple[str, Optional[tuple[str, ...]]]:
  """'DIR' → (DIR, None): every unit; 'DIR@a+b' → (DIR, ('a', 'b')): only models a and b."""
  workdir, sep, models = spec.rpartition('@')
  if not sep or os.sep in models:
    return spec, None
  names = tuple(m for m in models.split('+') if m)
  if not names:
    raise ValueError(f'{spec!r}: no model after @; write DIR@MODEL[+MODEL...].')
  return workdir, names


def _markdown_report(rows, workdirs, table: str, built, summary, context) -> str:
  """table.md: the table (`built`), the runs' costs, the claim checks and the paired differences."""
  title = 'Ablations' if table == 'ablation' else f'Table {table}'
  md = [f'## {title}', '', tables.markdown_table(*built)]
  md += ['### Runs', ''] + [f'- {timing_line(w)}' for w in workdirs] + ['']
  checks = paired.claim_checks(summary, context, rows)
  if checks:
    md += ['### Paper claim: NTK-ECRN beats every baseline', '']
    md += [f'- {"✓" if holds else "✗"} {text}' for _, _, holds, text in checks] + ['']
  if any(row['model'] == 'ntk_ecrn' for row in rows):
    md += ['### Paired per-seed differences (NTK-ECRN minus each model)', '']
    md.append(paired.paired_differences(rows, context))
  return '\n'.join(md)


def write_report(workdirs: Sequence[str], out_dir: str, table: str) -> dict:
  """Writes `table`'s results.csv, table.md, table.tex (search.md, search_trials.md): paths."""
  if table not in tables.TABLES:
    raise ValueError(f'unknown table {table!r}; valid: {list(tables.TABLES)}')
  chosen = [parse_workdir(w) for w in workdirs]
  workdirs = [w for w, _ in chosen]
  os.makedirs(out_dir, exist_ok=True)
  rows = [r for w, models in chosen for r in results_rows(w) if not models or r['model'] in models]
  summary = summarize(rows)
  if table in ('ablation', 'IV'):  # the train metrics too
    summary.update({(d, m, 'train_' + k): v for (d, m, k), v in summarize(rows, 'train').items()})
  context = workdir_context(workdirs)
  tracking = tracking_summary(workdirs) if table == 'ablation' else None
  path = lambda name: os.path.join(out_dir, name)
  paths = {'csv': path('results.csv'), 'markdown': path('table.md'), 'latex': path('table.tex')}
  write_results_csv(rows, paths['csv'])
  built = tables.build_table(summary, table, context=context, tracking=tracking)
  texts = {
      'markdown': _markdown_report(rows, workdirs, table, built, summary, context),
      'latex': tables.latex_table(table, *built),
  }
  searches = [(os.path.basename(os.path.normpath(w)), load_workdir(w)['search']) for w in workdirs]
  searches = [(name, s) for name, s in searches if s]
  for kind, file, title, tabulate in (
      ('search', 'search.md', 'Hyperparameter search', search_tables.search_table),
      ('trials', 'search_trials.md', 'Search trials', search_tables.trials_table),
  ):
    if searches:
      paths[kind] = path(file)
      texts[kind] = '\n'.join(f'## {title}: `{n}`\n\n{tabulate(s)}' for n, s in searches)
  for kind, text in texts.items():
    with files.atomic_open(paths[kind]) as f:
      f.write(text)
  return paths


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  workdirs = [w for w in flags.FLAGS.workdirs.split(',') if w]
  for path in write_report(workdirs, flags.FLAGS.out, flags.FLAGS.table).values():
    print(path)


if __name__ == '__main__':
  # Defined only when run as a program, so importing this module registers no flag.
  workdirs_help = (
      'Comma-separated experiment workdirs; DIR@MODEL+MODEL takes only those models of DIR '
      '(the first workdir of a dataset gives its config and seed count).'
  )
  flags.DEFINE_string('workdirs', None, workdirs_help)
  table_help = "Layout: the paper's Table I–IV or ablation."
  flags.DEFINE_enum('table', 'IV', list(tables.TABLES), table_help)
  flags.DEFINE_string('out', None, 'Output directory.')
  flags.mark_flags_as_required(['workdirs', 'out'])
  app.run(main)
