# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Result tables (the paper's Tables I–IV and an ablation table) from experiment workdirs.

This module reads the workdirs, summarizes them and writes the files; the tables' layout,
labels, formatting and the paper's claims are `experiments/tables.py`.

`python -m experiments.report --workdirs=DIR[,DIR...] --table=IV --out=DIR` writes
OUT/results.csv (one row per model × seed × split × metric), OUT/table.md (the table, the
run's hardware and wall time, incompleteness markers and the paper's-claim checks),
OUT/table.tex (booktabs) and, when a workdir has a search.json, OUT/search.md (per seed and
model: the selection, grid size and coverage, and every selected value on a grid edge).

Reads (the layout: experiments/workdir.py): config.json ('name', 'config': 'seeds', 'mlp'),
results.json ('complete', 'device', 'seconds', 'units': 'seed', 'model', 'train', 'test',
'dataset': 'name', 'task', 'seconds', 'tracking': 'lambda_max_init', 'lambda_max_final',
'relative_delta_frobenius_final') and the optional search.json.

Mean ± std are over seeds, std the population std (ddof=0), as train.py's `_summary`; None
and non-finite values are left out of both (n counts the rest).
"""

from __future__ import annotations

import csv
import os
from typing import Any, Iterable, Optional, Sequence


from ecrn_jax import io
from experiments import evaluation
from experiments import tables

CSV_FIELDS = ('config', 'dataset', 'model', 'seed', 'split', 'metric', 'value')
SPLITS = ('train', 'test')


# ---------------------------------------------------------------------------------------------
# Reading and summarizing.


def _read_json(path: str) -> Optional[Any]:
  """`io.read_json(path)`, None when `path` does not exist."""
  return io.read_json(path) if os.path.exists(path) else None


def load_workdir(workdir: str) -> dict:
  """Returns {'config', 'results', 'search'} of `workdir` (config/search None if absent)."""
  results = _read_json(os.path.join(workdir, 'results.json'))
  if results is None:
    raise FileNotFoundError(f'{workdir} has no results.json (has the run started?)')
  return {
      'config': _read_json(os.path.join(workdir, 'config.json')),
      'results': results,
      'search': _read_json(os.path.join(workdir, 'search.json')),
  }


def config_name(loaded: dict, workdir: str) -> str:
  """The run's config name (config.json 'name'), else the workdir's directory name."""
  return (loaded['config'] or {}).get('name') or os.path.basename(os.path.normpath(workdir))


def _dataset_name(unit: dict, loaded: dict) -> str:
  name = (unit.get('dataset') or {}).get('name')
  if name:
    return name
  return ((loaded['config'] or {}).get('config') or {}).get('data', {}).get('name', 'unknown')


def results_rows(workdir: str) -> list[dict]:
  """One row per unit (seed × model) × split × metric of `workdir`'s results.json."""
  loaded = load_workdir(workdir)
  config = config_name(loaded, workdir)
  rows = []
  for unit in loaded['results']['units']:
    for split in SPLITS:
      for metric, value in (unit.get(split) or {}).items():
        rows.append(
            {
                'config': config,
                'workdir': workdir,
                'dataset': _dataset_name(unit, loaded),
                'model': unit['model'],
                'seed': unit['seed'],
                'split': split,
                'metric': metric,
                'value': value,
            }
        )
  return rows


def write_results_csv(rows: Iterable[dict], path: str) -> None:
  """Writes `rows` as CSV (columns CSV_FIELDS; None → empty cell)."""
  # Text mode: on POSIX csv's '\r\n' row ends are written as they are (as with newline='').
  with io.atomic_open(os.path.abspath(path)) as f:
    writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for row in rows:
      writer.writerow({k: '' if row.get(k) is None else row[k] for k in CSV_FIELDS})


def summarize(rows: Iterable[dict], split: str = 'test') -> dict:
  """{(dataset, model, metric): {'mean', 'std' (ddof=0), 'n', 'values'}} of `split`'s rows."""
  grouped: dict[tuple, list] = {}
  for row in rows:
    if row['split'] == split:
      grouped.setdefault((row['dataset'], row['model'], row['metric']), []).append(row['value'])
  return {key: evaluation.summary_stats(values) for key, values in grouped.items()}


def tracking_summary(workdirs: Sequence[str]) -> dict:
  """{(dataset, model): {field: stats}} of the units' 'tracking' entries (kernel-tracked)."""
  grouped: dict[tuple, dict] = {}
  for workdir in workdirs:
    loaded = load_workdir(workdir)
    for unit in loaded['results']['units']:
      tracking = unit.get('tracking')
      if not tracking:
        continue
      entry = grouped.setdefault((_dataset_name(unit, loaded), unit['model']), {})
      for field in ('lambda_max_init', 'lambda_max_final', 'relative_delta_frobenius_final'):
        entry.setdefault(field, []).append(tracking.get(field))
  return {
      key: {f: evaluation.summary_stats(v) for f, v in fields.items()}
      for key, fields in grouped.items()
  }


def workdir_context(workdirs: Sequence[str]) -> dict:
  """{dataset: {'workdir', 'config', 'expected_seeds', 'complete', 'task'}} of the workdirs
  (for a dataset in several, the first: the main run, the others adding rows)."""
  context = {}
  for workdir in workdirs:
    loaded = load_workdir(workdir)
    config = (loaded['config'] or {}).get('config') or {}
    units = loaded['results']['units']
    datasets = {_dataset_name(u, loaded) for u in units} or {
        config.get('data', {}).get('name', 'unknown')
    }
    for dataset in datasets:
      task = next(
          (
              u['dataset'].get('task')
              for u in units
              if (u.get('dataset') or {}).get('name') == dataset
          ),
          None,
      )
      context.setdefault(
          dataset,
          {
              'workdir': workdir,
              'config': config,
              'expected_seeds': len(config.get('seeds') or ()) or None,
              'complete': bool(loaded['results'].get('complete')),
              'task': task,
          },
      )
  return context


# ---------------------------------------------------------------------------------------------
# Searches, run costs and the files written.


def search_entries(search: dict) -> list[tuple[Optional[str], str, dict]]:
  """(seed, model, entry) of a search.json: per seed ('seeds', nested selection) or, for an
  older file, one selection for every seed ('models', seed None)."""
  if 'seeds' in search:
    return [
        (seed, model, entry or {})
        for seed, per_seed in (search.get('seeds') or {}).items()
        for model, entry in ((per_seed or {}).get('models') or {}).items()
    ]
  return [(None, model, entry or {}) for model, entry in (search.get('models') or {}).items()]


def _short_value(value) -> str:
  return f'{value:.4g}' if isinstance(value, float) else str(value)


def edge_notes(entry: dict) -> list[str]:
  """One note per searched axis whose selected value is on a grid edge (bold) or that was
  extended once."""
  notes = []
  for path, axis in (entry.get('axes') or {}).items():
    extension = axis.get('extension') or {}
    value = _short_value(axis.get('selected'))
    if axis.get('edge'):
      if 'trial' in extension:
        beyond = min(axis['values']) if axis['edge'] == 'lower' else max(axis['values'])
        why = f'the one extension beyond the grid edge {_short_value(beyond)}: better'
      else:
        why = f'not extended: {extension.get("not_run", "no extension")}'
      notes.append(f'**{path} = {value} on the {axis["edge"]} edge** ({why})')
    elif 'trial' in extension:
      notes.append(
          f'{path}: extended once to {_short_value(extension["value"])} '
          f'({extension["side"]} edge), not better'
      )
  return notes


def grid_positions(entry: dict) -> list[str]:
  """'path = value (k/n)' per searched axis: the selected value's place among the values
  tried on that axis's grid (its one extension included), lowest first; bold on an edge."""
  out = []
  for path, axis in (entry.get('axes') or {}).items():
    values = list(axis.get('values') or [])
    extension = axis.get('extension') or {}
    if 'trial' in extension:
      values.append(extension['value'])
    selected = axis.get('selected')
    if selected not in values:
      continue
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
      values = sorted(values)
    text = f'{path} = {_short_value(selected)} ({values.index(selected) + 1}/{len(values)})'
    out.append(f'**{text}**' if axis.get('edge') and len(values) > 1 else text)
  return out


def _scores_text(scores) -> str:
  if not isinstance(scores, dict) or not scores:
    return tables.DASH
  return ', '.join(
      f'{k} = {tables.format_value(k, v)}' + ('%' if k == 'accuracy' else '')
      for k, v in scores.items()
  )


def _validation_text(entry: dict) -> str:
  """The selected trial's validation scores (else those of the trial matching 'selected')."""
  selected = entry.get('selected') or {}
  chosen = next(
      (
          t
          for t in entry.get('trials') or []
          if all((t.get('overrides') or {}).get(k) == v for k, v in selected.items())
      ),
      None,
  )
  return _scores_text(entry.get('selected_validation') or (chosen or {}).get('validation'))


def _search_row(seed: Optional[str], model: str, entry: dict) -> str:
  selected = dict(entry.get('selected') or {})
  inherited = entry.get('inherited')
  text = ', '.join(f'{k} = {_short_value(v)}' for k, v in selected.items()) or tables.DASH
  if inherited:
    text += f'; from the tuned {entry.get("inherited_from")}: ' + ', '.join(
        f'{k} = {_short_value(v)}' for k, v in inherited.items()
    )
  seconds = entry.get('seconds')
  coverage = entry.get('coverage')
  cells = [
      tables.DASH if seed is None else seed,
      tables.model_label(model),
      text,
      str(len(entry.get('trials') or [])),
      str(entry.get('grid_size', tables.DASH)),
      tables.DASH
      if coverage is None
      else f'{coverage:.1%} of points, {entry.get("axis_coverage", 0):.0%} of axis values',
      '; '.join(grid_positions(entry)) or tables.DASH,
      '; '.join(edge_notes(entry)) or tables.DASH,
      _validation_text(entry),
      f'{seconds:.1f}' if isinstance(seconds, (int, float)) else tables.DASH,
  ]
  return '| ' + ' | '.join(cells) + ' |'


def search_table(search: dict) -> str:
  """Markdown of a search.json: per seed and model the selected fields (a twin's inherited
  ones too), the trials, the grid size and the coverage, each selected value's position on its
  axis, every selected value on a grid edge (bold) and each one-time extension, the validation
  scores and the seconds."""
  lines = []
  budget = search.get('budget')
  if budget:
    lines += ['Budget: ' + ', '.join(f'{k} = {v}' for k, v in budget.items()), '']
  lines += [
      '| Seed | Model | Selected | Trials | Grid | Coverage | Grid position (k/n, lowest = 1) | '
      'Grid edges | Validation (selected) | Seconds |',
      '|---|---|---|---|---|---|---|---|---|---|',
  ]
  entries = search_entries(search)
  order = tables.order_models({model for _, model, _ in entries})
  entries.sort(key=lambda e: (int(e[0]) if e[0] is not None else -1, order.index(e[1])))
  lines += [_search_row(seed, model, entry) for seed, model, entry in entries]
  flagged = sum(1 for _, _, e in entries for a in (e.get('axes') or {}).values() if a.get('edge'))
  axes = sum(len(e.get('axes') or {}) for _, _, e in entries)
  if axes:
    lines += [
        '',
        f'Selected values on a grid edge: {flagged} of {axes} (seed × model × axis); each '
        'was extended once where a value beyond it exists.',
    ]
  return '\n'.join(lines) + '\n'


def trials_table(search: dict, models: Optional[Sequence[str]] = None) -> str:
  """Markdown of every search trial (per seed and model, in the order run): its phase, the
  value it tried on the swept axis (the start: every axis), the validation scores and the
  scores on the training part it was fitted to (e.g. whether a network fits at all)."""
  lines = []
  for seed, model, entry in search_entries(search):
    if models is not None and model not in models:
      continue
    lines += [
        f'### Seed {seed}, {tables.model_label(model)}',
        '',
        '| Trial | Phase | Tried | Validation | Training part | Seconds |',
        '|---|---|---|---|---|---|',
    ]
    for k, trial in enumerate(entry.get('trials') or []):
      phase, point = trial.get('phase') or '', trial.get('point') or {}
      axis = phase.split(': ', 1)[1] if ': ' in phase else None
      shown = {axis: point[axis]} if axis in point else point
      tried = ', '.join(f'{a} = {_short_value(v)}' for a, v in shown.items()) or tables.DASH
      if k == entry.get('selected_trial'):
        tried = f'**{tried}** (selected)'
      seconds = trial.get('seconds')
      lines.append(
          f'| {k} | {phase.split(":")[0]} | {tried} | {_scores_text(trial.get("validation"))} | '
          f'{_scores_text(trial.get("train"))} | '
          f'{f"{seconds:.1f}" if isinstance(seconds, (int, float)) else tables.DASH} |'
      )
    lines.append('')
  return '\n'.join(lines)


def _unit_seconds(unit: dict) -> float:
  seconds = unit.get('seconds') or {}
  for key in ('unit_this_session', 'unit', 'total'):
    if isinstance(seconds.get(key), (int, float)):
      return float(seconds[key])
  return 0.0


def timing_line(workdir: str) -> str:
  """'name: hardware, wall time, summed unit seconds, completeness' of a workdir."""
  loaded = load_workdir(workdir)
  results = loaded['results']
  device = results.get('device') or {}
  hardware = (
      f'{device.get("device_kind", "?")} ({device.get("platform", "?")}'
      f' × {device.get("count", "?")})'
  )
  wall = (results.get('seconds') or {}).get('wall_this_session')
  units = results.get('units') or []
  wall_text = (
      f'{wall:.0f} s wall (last session)' if isinstance(wall, (int, float)) else 'wall time unknown'
  )
  search_seconds = sum(
      e.get('seconds') or 0.0 for _, _, e in search_entries(loaded.get('search') or {})
  )
  if search_seconds:
    wall_text += f'; hyperparameter search {search_seconds:.0f} s'
  name = os.path.basename(os.path.normpath(workdir))
  return (
      f'`{name}` ({config_name(loaded, workdir)}): {hardware}; {wall_text}; '
      f'{sum(_unit_seconds(u) for u in units):.0f} s summed over {len(units)} units; '
      + ('complete.' if results.get('complete') else '**incomplete**.')
  )


def _summaries(rows: list[dict], workdirs: Sequence[str], table: str):
  """(summary, context, tracking) of `table`: the ablation table adds train metrics and
  kernels, Table IV train metrics."""
  summary = summarize(rows)
  if table in ('ablation', 'IV'):
    summary.update(
        {
            (d, m, 'train_' + metric): stats
            for (d, m, metric), stats in summarize(rows, 'train').items()
        }
    )
  context = workdir_context(workdirs)
  tracking = tracking_summary(workdirs) if table == 'ablation' else None
  return summary, context, tracking


def _markdown_report(
    rows: list[dict],
    workdirs: Sequence[str],
    table: str,
    summary: dict,
    context: dict,
    tracking: Optional[dict],
) -> str:
  """table.md: the table, the runs' costs, the claim checks and the paired differences."""
  title = 'Ablations' if table == 'ablation' else f'Table {table}'
  md = [
      f'## {title}',
      '',
      tables.markdown_table(summary, table, context=context, tracking=tracking),
  ]
  md += ['### Runs', ''] + [f'- {timing_line(w)}' for w in workdirs] + ['']
  checks = tables.claim_checks(summary, context, rows)
  if checks:
    md += ['### Paper claim: NTK-ECRN beats every baseline', '']
    md += [f'- {"✓" if holds else "✗"} {text}' for _, _, holds, text in checks] + ['']
  if any(row['model'] == 'ntk_ecrn' for row in rows):
    md += [
        '### Paired per-seed differences (NTK-ECRN minus each model)',
        '',
        tables.paired_differences(rows, context),
    ]
  return '\n'.join(md)


def _write_text(path: str, text: str) -> None:
  with io.atomic_open(path) as f:
    f.write(text)


def parse_workdir(spec: str) -> tuple[str, Optional[tuple[str, ...]]]:
  """'DIR' → (DIR, None): every unit; 'DIR@a+b' → (DIR, ('a', 'b')): only models a and b
  (e.g. one model of a run made for another purpose)."""
  workdir, sep, models = spec.rpartition('@')
  if not sep or os.sep in models:
    return spec, None
  names = tuple(m for m in models.split('+') if m)
  if not names:
    raise ValueError(f'{spec!r}: no model after @; write DIR@MODEL[+MODEL...].')
  return workdir, names


def write_report(workdirs: Sequence[str], out_dir: str, table: str) -> dict:
  """Writes results.csv, table.md, table.tex (and search.md, search_trials.md) into `out_dir`;
  returns paths."""
  if table not in tables.TABLES:
    raise ValueError(f'unknown table {table!r}; valid: {list(tables.TABLES)}')
  chosen = [parse_workdir(w) for w in workdirs]
  workdirs = [w for w, _ in chosen]
  os.makedirs(out_dir, exist_ok=True)
  rows = [
      r for w, models in chosen for r in results_rows(w) if models is None or r['model'] in models
  ]
  summary, context, tracking = _summaries(rows, workdirs, table)
  paths = {
      'csv': os.path.join(out_dir, 'results.csv'),
      'markdown': os.path.join(out_dir, 'table.md'),
      'latex': os.path.join(out_dir, 'table.tex'),
  }
  write_results_csv(rows, paths['csv'])
  _write_text(
      paths['markdown'], _markdown_report(rows, workdirs, table, summary, context, tracking)
  )
  _write_text(
      paths['latex'], tables.latex_table(summary, table, context=context, tracking=tracking)
  )
  searches = [(w, load_workdir(w)['search']) for w in workdirs]
  searches = [(w, s) for w, s in searches if s]
  if searches:
    paths['search'] = os.path.join(out_dir, 'search.md')
    paths['trials'] = os.path.join(out_dir, 'search_trials.md')
    name = lambda w: os.path.basename(os.path.normpath(w))
    _write_text(
        paths['search'],
        '\n'.join(
            f'## Hyperparameter search: `{name(w)}`\n\n{search_table(s)}' for w, s in searches
        ),
    )
    _write_text(
        paths['trials'],
        '\n'.join(f'## Search trials: `{name(w)}`\n\n{trials_table(s)}' for w, s in searches),
    )
  return paths


def main(argv):
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top

  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  flag_values = flags.FLAGS
  workdirs = [w for w in flag_values.workdirs.split(',') if w]
  paths = write_report(workdirs, flag_values.out, flag_values.table)
  for path in paths.values():
    print(path)


def _define_flags():
  # Defined only when run as a program, so importing this module registers no flag.
  from absl import flags  # pylint: disable=g-import-not-at-top

  flags.DEFINE_string(
      'workdirs',
      None,
      'Comma-separated experiment workdirs; DIR@MODEL+MODEL takes only those models of DIR '
      '(the first workdir of a dataset gives its config and seed count).',
  )
  flags.DEFINE_enum(
      'table', 'IV', list(tables.TABLES), "Layout: the paper's Table I–IV or ablation."
  )
  flags.DEFINE_string('out', None, 'Output directory.')
  flags.mark_flags_as_required(['workdirs', 'out'])


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top

  _define_flags()
  app.run(main)
