"""Result tables (the paper's Tables I–IV and an ablation table) from experiment workdirs.

`python -m experiments.report --workdirs=DIR[,DIR...] --table=IV --out=DIR` writes
OUT/results.csv (one row per model × seed × split × metric), OUT/table.md (the table, the
run's hardware and wall time, incompleteness markers and the paper's-claim checks),
OUT/table.tex (booktabs) and, when a workdir has a search.json, OUT/search.md.

Reads (see experiments/train.py): config.json ('name', 'config': 'seeds', 'mlp'),
results.json ('complete', 'device', 'seconds', 'units': 'seed', 'model', 'train', 'test',
'dataset': 'name', 'task', 'seconds', 'tracking': 'lambda_max_init', 'lambda_max_final',
'relative_delta_frobenius_final') and the optional search.json.

Mean ± std are over seeds, std the population std (ddof=0), as train.py's `_summary`; None
and non-finite values are left out of both (n counts the rest).
"""

from __future__ import annotations

import csv
import json
import math
import os
from typing import Any, Iterable, Optional, Sequence

import numpy as np

TABLES = ('I', 'II', 'III', 'IV', 'ablation')
CSV_FIELDS = ('config', 'dataset', 'model', 'seed', 'split', 'metric', 'value')
SPLITS = ('train', 'test')

# Paper row order; models not listed (ablations) follow, by name.
MODEL_ORDER = ('mlp', 'resnet18', 'standard_ntk', 'ntk_ecrn', 'ntk_ecrn_infinite')
BASELINES = ('mlp', 'resnet18', 'standard_ntk')
IMAGE_DATASETS = ('cifar10',)
DATASET_ORDER = ('synthetic_regression', 'synthetic_classification', 'boston', 'iris', 'wine',
                 'cifar10')
DATASET_LABELS = {
    'synthetic_regression': 'Synthetic regression',
    'synthetic_classification': 'Synthetic classification',
    'boston': 'Boston Housing', 'iris': 'Iris', 'wine': 'Wine', 'cifar10': 'CIFAR-10 subset'}
METRIC_LABELS = {'accuracy': 'Accuracy (%)', 'cross_entropy': 'Cross-Entropy', 'mse': 'MSE',
                 'r2': 'R²', 'train_accuracy': 'Train accuracy (%)', 'train_mse': 'Train MSE'}
HIGHER_IS_BETTER = {'accuracy': True, 'r2': True, 'mse': False, 'cross_entropy': False}
DASH = '—'

# The paper's claims, as printed (accuracy in %). Table III (UCI: Boston R², Iris and Wine test
# accuracy) and Table IV (CIFAR-10 subset: accuracy %, cross-entropy). Tables I (synthetic
# regression) and II (synthetic classification): the text we have leaves the cells empty and
# only claims NTK-ECRN has the lowest MSE / highest R² / highest accuracy (see claim_checks).
PAPER_CLAIMS = {
    'III': {
        'boston': {'r2': {'mlp': 0.84, 'resnet18': 0.87, 'standard_ntk': 0.82,
                          'ntk_ecrn': 0.89}},
        'iris': {'accuracy': {'mlp': 94.2, 'resnet18': 95.0, 'standard_ntk': 93.5,
                              'ntk_ecrn': 96.1}},
        'wine': {'accuracy': {'mlp': 96.0, 'resnet18': 96.5, 'standard_ntk': 95.2,
                              'ntk_ecrn': 97.0}},
    },
    'IV': {
        'cifar10': {
            'accuracy': {'resnet18': 78.4, 'mlp': 74.1, 'standard_ntk': 71.5, 'ntk_ecrn': 81.9},
            'cross_entropy': {'resnet18': 0.712, 'mlp': 0.815, 'standard_ntk': 0.843,
                              'ntk_ecrn': 0.648},
        },
    },
    'I': {},
    'II': {},
}


# ---------------------------------------------------------------------------------------------
# Reading.


def _read_json(path: str) -> Optional[Any]:
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def load_workdir(workdir: str) -> dict:
  """Returns {'config', 'results', 'search'} of `workdir` (config/search None if absent)."""
  results = _read_json(os.path.join(workdir, 'results.json'))
  if results is None:
    raise FileNotFoundError(f'{workdir} has no results.json (has the run started?)')
  return {'config': _read_json(os.path.join(workdir, 'config.json')), 'results': results,
          'search': _read_json(os.path.join(workdir, 'search.json'))}


def _config_name(loaded: dict, workdir: str) -> str:
  return (loaded['config'] or {}).get('name') or os.path.basename(os.path.normpath(workdir))


def _dataset_name(unit: dict, loaded: dict) -> str:
  name = (unit.get('dataset') or {}).get('name')
  if name:
    return name
  return ((loaded['config'] or {}).get('config') or {}).get('data', {}).get('name', 'unknown')


def results_rows(workdir: str) -> list[dict]:
  """One row per unit (seed × model) × split × metric of `workdir`'s results.json."""
  loaded = load_workdir(workdir)
  config = _config_name(loaded, workdir)
  rows = []
  for unit in loaded['results']['units']:
    for split in SPLITS:
      for metric, value in (unit.get(split) or {}).items():
        rows.append({'config': config, 'dataset': _dataset_name(unit, loaded),
                     'model': unit['model'], 'seed': unit['seed'], 'split': split,
                     'metric': metric, 'value': value})
  return rows


def write_results_csv(rows: Iterable[dict], path: str) -> None:
  """Writes `rows` as CSV (columns CSV_FIELDS; None → empty cell)."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for row in rows:
      writer.writerow({k: ('' if row.get(k) is None else row[k]) for k in CSV_FIELDS})


def _finite(values: Iterable) -> list[float]:
  return [float(v) for v in values
          if v is not None and isinstance(v, (int, float)) and math.isfinite(v)]


def _stats(values: Sequence) -> dict:
  finite = _finite(values)
  return {'mean': float(np.mean(finite)) if finite else None,
          'std': float(np.std(finite)) if finite else None,   # population std (ddof=0)
          'n': len(finite), 'values': list(values)}


def summarize(rows: Iterable[dict], split: str = 'test') -> dict:
  """{(dataset, model, metric): {'mean', 'std' (ddof=0), 'n', 'values'}} of `split`'s rows."""
  grouped: dict[tuple, list] = {}
  for row in rows:
    if row['split'] == split:
      grouped.setdefault((row['dataset'], row['model'], row['metric']), []).append(row['value'])
  return {key: _stats(values) for key, values in grouped.items()}


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
  return {key: {f: _stats(v) for f, v in fields.items()} for key, fields in grouped.items()}


def workdir_context(workdirs: Sequence[str]) -> dict:
  """{dataset: {'workdir', 'config', 'expected_seeds', 'complete', 'task'}} of the workdirs."""
  context = {}
  for workdir in workdirs:
    loaded = load_workdir(workdir)
    config = (loaded['config'] or {}).get('config') or {}
    units = loaded['results']['units']
    datasets = {_dataset_name(u, loaded) for u in units} or {
        config.get('data', {}).get('name', 'unknown')}
    for dataset in datasets:
      task = next((u['dataset'].get('task') for u in units
                   if (u.get('dataset') or {}).get('name') == dataset), None)
      context[dataset] = {'workdir': workdir, 'config': config,
                          'expected_seeds': len(config.get('seeds') or ()) or None,
                          'complete': bool(loaded['results'].get('complete')), 'task': task}
  return context


# ---------------------------------------------------------------------------------------------
# Labels and formatting.


def model_label(model: str, dataset: Optional[str] = None, config: Optional[dict] = None) -> str:
  """The table/legend label of `model` (unknown models: their name)."""
  if model == 'mlp':
    widths = list(((config or {}).get('mlp') or {}).get('hidden_widths') or (512, 512, 512))
    if len(set(widths)) == 1:
      return f'MLP ({len(widths)}×{widths[0]})'
    return f'MLP ({"-".join(str(w) for w in widths)})'
  if model == 'resnet18':
    if dataset is not None and dataset not in IMAGE_DATASETS:
      return 'ResNet-18 (residual MLP stand-in)'
    return 'ResNet-18'
  if model.startswith('ntk_ecrn_sigma_ff_x'):
    factor = model[len('ntk_ecrn_sigma_ff_x'):].replace('p', '.')
    return f'NTK-ECRN, σ_ff = {factor}/(2π√d)'
  return {'standard_ntk': 'Standard NTK', 'ntk_ecrn': 'NTK-ECRN',
          'ntk_ecrn_infinite': 'NTK-ECRN infinite twin',
          'ntk_ecrn_no_fourier': 'NTK-ECRN without Fourier features',
          'ntk_ecrn_alpha1': 'NTK-ECRN with α_l = 1',
          'ntk_ecrn_no_stochastic_depth': 'NTK-ECRN without stochastic depth',
          'ntk_ecrn_drop_rate_0p1': 'NTK-ECRN with stochastic depth 0.1'}.get(model, model)


def order_models(models: Iterable[str]) -> list[str]:
  models = set(models)
  return ([m for m in MODEL_ORDER if m in models] +
          sorted(m for m in models if m not in MODEL_ORDER))


def _order_datasets(datasets: Iterable[str]) -> list[str]:
  datasets = set(datasets)
  return ([d for d in DATASET_ORDER if d in datasets] +
          sorted(d for d in datasets if d not in DATASET_ORDER))


def _number(x: float) -> str:
  if x != 0 and abs(x) < 1e-2:
    return f'{x:.3g}'
  return f'{x:.3f}'


def format_value(metric: str, mean: Optional[float], std: Optional[float] = None) -> str:
  """'mean ± std': accuracy in % with 1 decimal, other metrics 3 decimals."""
  if mean is None:
    return DASH
  if metric in ('accuracy', 'train_accuracy'):
    text = f'{100 * mean:.1f}'
    return text if std is None else f'{text} ± {100 * std:.1f}'
  return _number(mean) if std is None else f'{_number(mean)} ± {_number(std)}'


def _short(stats: dict) -> str:
  if stats['mean'] is None:
    return DASH
  return f'{stats["mean"]:.4g} ± {stats["std"]:.3g}'


def _paper(table: str, dataset: str, metric: str, model: str) -> str:
  value = PAPER_CLAIMS.get(table, {}).get(dataset, {}).get(metric, {}).get(model)
  if value is None:
    return DASH
  return f'{value:.1f}' if metric == 'accuracy' else f'{value:g}'


def _seeds_cell(n: int, expected: Optional[int]) -> str:
  if expected and n < expected:
    return f'n = {n} of {expected} seeds'
  return str(n)


# ---------------------------------------------------------------------------------------------
# Tables.


def _table_metrics(table: str, task: Optional[str]) -> list[str]:
  if table == 'ablation':   # the train error too: overfitting is one of the claims
    return ['mse', 'r2', 'train_mse'] if task == 'regression' else [
        'accuracy', 'cross_entropy', 'train_accuracy']
  if table == 'I' or (table == 'III' and task == 'regression'):
    return ['mse', 'r2'] if table != 'III' else ['r2']
  if table == 'III':
    return ['accuracy']
  return ['accuracy', 'cross_entropy']


def _task_of(dataset: str, context: dict, summary: dict) -> str:
  task = (context.get(dataset) or {}).get('task')
  if task:
    return task
  metrics = {m for (d, _, m) in summary if d == dataset}
  return 'classification' if 'accuracy' in metrics else 'regression'


def build_table(summary: dict, table: str, *, context: Optional[dict] = None,
                tracking: Optional[dict] = None) -> tuple[list[str], list[list[str]], list[str]]:
  """(header, rows of cells, notes) of `table` (one of TABLES) from `summarize`'s output."""
  if table not in TABLES:
    raise ValueError(f'unknown table {table!r}; valid: {list(TABLES)}')
  context = context or {}
  tracking = tracking or {}
  datasets = _order_datasets({d for (d, _, _) in summary} | {d for (d, _) in tracking})
  if not datasets:
    raise ValueError('no results to tabulate')
  multi = len(datasets) > 1 or table == 'III'
  notes = []
  header: list[str] = []
  rows: list[list[str]] = []
  for dataset in datasets:
    ctx = context.get(dataset) or {}
    expected = ctx.get('expected_seeds')
    task = _task_of(dataset, context, summary)
    metrics = _table_metrics(table, task)
    models = order_models({m for (d, m, _) in summary if d == dataset} |
                          {m for (d, m) in tracking if d == dataset and table == 'ablation'})
    if ctx and not ctx.get('complete', True):
      notes.append(f'⚠ incomplete run: {ctx["workdir"]} (results.json complete = false); '
                   f'the n column gives the seeds finished of {expected}.')
    for model in models:
      label = model_label(model, dataset, ctx.get('config'))
      ns = [summary[(dataset, model, m)]['n'] for m in metrics if (dataset, model, m) in summary]
      n = min(ns) if ns else 0
      if table == 'III':
        for metric in metrics:
          stats = summary.get((dataset, model, metric), {})
          header = ['Dataset', 'Task', 'Model', 'Metric', 'Value', 'Paper', 'n']
          rows.append([DATASET_LABELS.get(dataset, dataset), task.capitalize(), label,
                       METRIC_LABELS.get(metric, metric),
                       format_value(metric, stats.get('mean'), stats.get('std')),
                       _paper(table, dataset, metric, model), _seeds_cell(n, expected)])
        continue
      header = ['Dataset'] if multi else []
      cells = [DATASET_LABELS.get(dataset, dataset)] if multi else []
      header.append('Model')
      cells.append(label)
      for metric in metrics:
        stats = summary.get((dataset, model, metric), {})
        header.append(METRIC_LABELS.get(metric, metric))
        cells.append(format_value(metric, stats.get('mean'), stats.get('std')))
        if table != 'ablation':
          header.append('Paper')
          cells.append(_paper(table, dataset, metric, model))
      if table == 'ablation':
        track = tracking.get((dataset, model))
        header += ['λ_max init → final', '‖ΔΘ‖_F/‖Θ_0‖_F final']
        if track:
          init, final = track['lambda_max_init'], track['lambda_max_final']
          rel = track['relative_delta_frobenius_final']
          cells.append(f'{_short(init)} → {_short(final)}')
          cells.append(format_value('relative_delta_frobenius_final', rel['mean'], rel['std']))
        else:
          cells += [DASH, DASH]
      header.append('n')
      cells.append(_seeds_cell(n, expected))
      rows.append(cells)
  return header, rows, notes


def markdown_table(summary: dict, table: str, *, context: Optional[dict] = None,
                   tracking: Optional[dict] = None) -> str:
  """The table as GitHub markdown (mean ± std over the n seeds; notes below)."""
  header, rows, notes = build_table(summary, table, context=context, tracking=tracking)
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join('---' for _ in header) + '|']
  lines += ['| ' + ' | '.join(cells) + ' |' for cells in rows]
  lines.append('')
  percent = '; accuracy in %' if any('Accuracy' in h for h in header) else ''
  lines.append(f'Mean ± std over seeds (population std, ddof=0){percent}. '
               f'Paper: the value the paper reports ({DASH}: none).')
  lines += ['', *notes] if notes else []
  return '\n'.join(lines) + '\n'


_LATEX_SUBS = (('\\', r'\textbackslash{}'), ('&', r'\&'), ('%', r'\%'), ('$', r'\$'),
               ('#', r'\#'), ('_', r'\_'), ('{', r'\{'), ('}', r'\}'), ('~', r'\~{}'),
               ('^', r'\^{}'))
_LATEX_UNICODE = (('±', r'$\pm$'), ('×', r'$\times$'), ('→', r'$\to$'), ('—', '---'),
                  ('R²', r'$R^2$'), ('λ_max', r'$\lambda_{\max}$'),
                  ('‖ΔΘ‖_F/‖Θ_0‖_F', r'$\|\Delta\Theta\|_F/\|\Theta_0\|_F$'), ('⚠ ', ''))


def latex_escape(text: str) -> str:
  """Escapes LaTeX specials (underscores included) and maps the unicode we use to math."""
  placeholders = {}
  for i, (uni, tex) in enumerate(_LATEX_UNICODE):
    if uni in text:
      key = f'\x00{i}\x00'
      placeholders[key] = tex
      text = text.replace(uni, key)
  for char, sub in _LATEX_SUBS:
    text = text.replace(char, sub)
  for key, tex in placeholders.items():
    text = text.replace(key, tex)
  return text


def latex_table(summary: dict, table: str, *, context: Optional[dict] = None,
                tracking: Optional[dict] = None) -> str:
  """The table as a booktabs LaTeX tabular (inside a table environment)."""
  header, rows, notes = build_table(summary, table, context=context, tracking=tracking)
  spec = 'l' * sum(h in ('Dataset', 'Task', 'Model', 'Metric') for h in header)
  spec += 'c' * (len(header) - len(spec))
  lines = [r'\begin{table}[t]', r'\centering', rf'\begin{{tabular}}{{{spec}}}', r'\toprule',
           ' & '.join(latex_escape(h) for h in header) + r' \\', r'\midrule']
  lines += [' & '.join(latex_escape(c) for c in cells) + r' \\' for cells in rows]
  lines += [r'\bottomrule', r'\end{tabular}']
  percent = '; accuracy in \\%' if any('Accuracy' in h for h in header) else ''
  caption = ('Table ' + table if table != 'ablation' else 'Ablations') + (
      f': mean $\\pm$ std over seeds (population std){percent}.')
  if notes:
    caption += ' ' + ' '.join(latex_escape(n) for n in notes)
  lines += [rf'\caption{{{caption}}}', r'\end{table}']
  return '\n'.join(lines) + '\n'


def claim_checks(summary: dict, context: Optional[dict] = None
                 ) -> list[tuple[str, str, bool, str]]:
  """(dataset, metric, holds, text) of "NTK-ECRN beats every baseline" per dataset × metric.

  Holds when NTK-ECRN's mean is better (HIGHER_IS_BETTER) than that of each of the baselines
  (mlp, resnet18, standard_ntk) present; a dataset × metric with no baseline is left out.
  """
  context = context or {}
  out = []
  for (dataset, model, metric), stats in sorted(summary.items()):
    if model != 'ntk_ecrn' or metric not in HIGHER_IS_BETTER or stats['mean'] is None:
      continue
    higher = HIGHER_IS_BETTER[metric]
    ours = stats['mean']
    others = {b: summary[(dataset, b, metric)]['mean'] for b in BASELINES
              if (dataset, b, metric) in summary and
              summary[(dataset, b, metric)]['mean'] is not None}
    if not others:
      continue
    beaten_by = [b for b, v in others.items() if (v >= ours if higher else v <= ours)]
    holds = not beaten_by
    config = (context.get(dataset) or {}).get('config')
    vs = ', '.join(f'{model_label(b, dataset, config)} {format_value(metric, v)}'
                   for b, v in others.items())
    text = (f'{DATASET_LABELS.get(dataset, dataset)}, {METRIC_LABELS.get(metric, metric)} '
            f'({"higher" if higher else "lower"} is better): NTK-ECRN '
            f'{format_value(metric, ours)} vs {vs}: '
            + ('holds.' if holds else 'does not hold (not beaten: ' +
               ', '.join(model_label(b, dataset, config) for b in beaten_by) + ').'))
    out.append((dataset, metric, holds, text))
  return out


def paired_differences(rows: Iterable[dict], context: Optional[dict] = None) -> str:
  """Markdown: NTK-ECRN minus each other model, seed by seed (same data, split and seed).

  Per dataset × metric × other model: the mean ± std over the common seeds of the difference,
  and on how many seeds NTK-ECRN is better. With 5 seeds, "better on 5 of 5" or a mean
  difference several stds from 0 is evidence; a mean inside one std is not.
  """
  context = context or {}
  values: dict[tuple, dict] = {}
  for row in rows:
    if row['split'] == 'test' and row['metric'] in HIGHER_IS_BETTER and row['value'] is not None:
      values.setdefault((row['dataset'], row['metric'], row['model']), {})[row['seed']] = (
          row['value'])
  lines = ['| Dataset | Metric | NTK-ECRN − | mean ± std over seeds | NTK-ECRN better |',
           '|---|---|---|---|---|']
  keys = sorted({(d, m) for (d, m, model) in values if model == 'ntk_ecrn'})
  for dataset, metric in keys:
    ours = values[(dataset, metric, 'ntk_ecrn')]
    config = (context.get(dataset) or {}).get('config')
    others = order_models(model for (d, m, model) in values
                          if (d, m) == (dataset, metric) and model != 'ntk_ecrn')
    for other in others:
      theirs = values[(dataset, metric, other)]
      seeds = sorted(set(ours) & set(theirs))
      if not seeds:
        continue
      diff = np.asarray([ours[s] - theirs[s] for s in seeds], np.float64)
      scale = 100.0 if metric == 'accuracy' else 1.0
      wins = int(np.sum(diff > 0) if HIGHER_IS_BETTER[metric] else np.sum(diff < 0))
      ties = int(np.sum(diff == 0))
      lines.append(f'| {DATASET_LABELS.get(dataset, dataset)} | '
                   f'{METRIC_LABELS.get(metric, metric)} | {model_label(other, dataset, config)}'
                   f' | {_number(scale * diff.mean())} ± {_number(scale * diff.std())} | '
                   f'{wins} of {len(seeds)}' + (f' ({ties} tied)' if ties else '') + ' |')
  return '\n'.join(lines) + '\n'


def search_table(search: dict) -> str:
  """Markdown of a search.json: per model the selected fields, trials, validation, seconds.

  The validation scores are the entry's 'selected_validation', else those of the trial whose
  overrides match 'selected'.
  """
  lines = []
  budget = search.get('budget')
  if budget:
    lines += ['Budget: ' + ', '.join(f'{k} = {v}' for k, v in budget.items()), '']
  lines += ['| Model | Selected | Trials | Validation (selected) | Seconds |',
            '|---|---|---|---|---|']
  models = search.get('models') or {}
  for model in order_models(models):
    entry = models[model] or {}
    selected = entry.get('selected') or {}
    trials = entry.get('trials') or []
    chosen = next((t for t in trials if all((t.get('overrides') or {}).get(k) == v
                                            for k, v in selected.items())), None)
    scores = entry.get('selected_validation') or (chosen or {}).get('validation')
    validation = DASH
    if isinstance(scores, dict) and scores:
      validation = ', '.join(f'{k} = {format_value(k, v)}' + ('%' if k == 'accuracy' else '')
                             for k, v in scores.items())
    seconds = entry.get('seconds')
    lines.append(' | '.join([
        '| ' + model_label(model),
        ', '.join(f'{k} = {v}' for k, v in selected.items()) or DASH, str(len(trials)),
        validation, f'{seconds:.1f}' if isinstance(seconds, (int, float)) else DASH]) + ' |')
  return '\n'.join(lines) + '\n'


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
  hardware = (f'{device.get("device_kind", "?")} ({device.get("platform", "?")}'
              f' × {device.get("count", "?")})')
  wall = (results.get('seconds') or {}).get('wall_this_session')
  units = results.get('units') or []
  wall_text = f'{wall:.0f} s wall (last session)' if isinstance(wall, (int, float)) else \
      'wall time unknown'
  search_seconds = sum((e or {}).get('seconds') or 0.0
                       for e in ((loaded.get('search') or {}).get('models') or {}).values())
  if search_seconds:
    wall_text += f'; hyperparameter search {search_seconds:.0f} s'
  name = os.path.basename(os.path.normpath(workdir))
  return (f'`{name}` ({_config_name(loaded, workdir)}): {hardware}; {wall_text}; '
          f'{sum(_unit_seconds(u) for u in units):.0f} s summed over {len(units)} units; '
          + ('complete.' if results.get('complete') else '**incomplete**.'))


def write_report(workdirs: Sequence[str], out_dir: str, table: str) -> dict:
  """Writes results.csv, table.md, table.tex (and search.md) into `out_dir`; returns paths."""
  if table not in TABLES:
    raise ValueError(f'unknown table {table!r}; valid: {list(TABLES)}')
  workdirs = list(workdirs)
  os.makedirs(out_dir, exist_ok=True)
  rows = [row for w in workdirs for row in results_rows(w)]
  summary = summarize(rows)
  if table == 'ablation':
    summary.update({(d, m, 'train_' + metric): stats
                    for (d, m, metric), stats in summarize(rows, 'train').items()})
  context = workdir_context(workdirs)
  tracking = tracking_summary(workdirs) if table == 'ablation' else None
  paths = {'csv': os.path.join(out_dir, 'results.csv'),
           'markdown': os.path.join(out_dir, 'table.md'),
           'latex': os.path.join(out_dir, 'table.tex')}
  write_results_csv(rows, paths['csv'])
  title = 'Ablations' if table == 'ablation' else f'Table {table}'
  md = [f'## {title}', '', markdown_table(summary, table, context=context, tracking=tracking)]
  md += ['### Runs', ''] + [f'- {timing_line(w)}' for w in workdirs] + ['']
  checks = claim_checks(summary, context)
  if checks:
    md += ['### Paper claim: NTK-ECRN beats every baseline', '']
    md += [f'- {"✓" if holds else "✗"} {text}' for _, _, holds, text in checks] + ['']
  if any(row['model'] == 'ntk_ecrn' for row in rows):
    md += ['### Paired per-seed differences (NTK-ECRN minus each model)', '',
           paired_differences(rows, context)]
  with open(paths['markdown'], 'w') as f:
    f.write('\n'.join(md))
  with open(paths['latex'], 'w') as f:
    f.write(latex_table(summary, table, context=context, tracking=tracking))
  searches = [(w, load_workdir(w)['search']) for w in workdirs]
  searches = [(w, s) for w, s in searches if s]
  if searches:
    paths['search'] = os.path.join(out_dir, 'search.md')
    with open(paths['search'], 'w') as f:
      f.write('\n'.join(f'## Hyperparameter search: `{os.path.basename(os.path.normpath(w))}`'
                        f'\n\n{search_table(s)}'
                        for w, s in searches))
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
  flags.DEFINE_string('workdirs', None, 'Comma-separated experiment workdirs.')
  flags.DEFINE_enum('table', 'IV', list(TABLES), 'Layout: the paper\'s Table I–IV or ablation.')
  flags.DEFINE_string('out', None, 'Output directory.')
  flags.mark_flags_as_required(['workdirs', 'out'])


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top
  _define_flags()
  app.run(main)
