# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The paper's result tables (I–IV and an ablation table) and its claims, from summaries.

`experiments/report.py` reads the workdirs, summarizes them (`summarize`: {(dataset, model,
metric): {'mean', 'std', 'n', 'values'}}) and writes what these functions return. Here:
value formatting, the table layouts and the checks of the paper's claims; the paper's own
vocabulary (labels, row order, its printed values) is in `experiments/paper.py`.
"""

from __future__ import annotations

from typing import Iterable, Optional

import numpy as np

from experiments.paper import BASELINES
from experiments.paper import DATASET_LABELS
from experiments.paper import DATASET_ORDER
from experiments.paper import HIGHER_IS_BETTER
from experiments.paper import METRIC_LABELS
from experiments.paper import PAPER_CLAIMS
from experiments.paper import model_label
from experiments.paper import order_models

TABLES = ('I', 'II', 'III', 'IV', 'ablation')
DASH = '—'

_TABLE_III_HEADER = ['Dataset', 'Task', 'Model', 'Metric', 'Value', 'Paper', 'n']
_TRACKING_HEADER = ['λ_max init → final', '‖ΔΘ‖_F/‖Θ_0‖_F final']


# ---------------------------------------------------------------------------------------------
# Labels, order and formatting.


def _order_datasets(datasets: Iterable[str]) -> list[str]:
  datasets = set(datasets)
  return [d for d in DATASET_ORDER if d in datasets] + sorted(
      d for d in datasets if d not in DATASET_ORDER
  )


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


def _dataset_label(dataset: str) -> str:
  return DATASET_LABELS.get(dataset, dataset)


def _metric_label(metric: str) -> str:
  return METRIC_LABELS.get(metric, metric)


def _value(summary: dict, dataset: str, model: str, metric: str) -> str:
  stats = summary.get((dataset, model, metric), {})
  return format_value(metric, stats.get('mean'), stats.get('std'))


# ---------------------------------------------------------------------------------------------
# Tables.


def _table_metrics(table: str, task: Optional[str]) -> list[str]:
  if table == 'ablation':  # the train error too: overfitting is one of the claims
    return (
        ['mse', 'r2', 'train_mse']
        if task == 'regression'
        else ['accuracy', 'cross_entropy', 'train_accuracy']
    )
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


def _tracking_cells(track: Optional[dict]) -> list[str]:
  """The ablation table's kernel cells: λ_max init → final and the relative kernel change."""
  if not track:
    return [DASH, DASH]
  init, final = track['lambda_max_init'], track['lambda_max_final']
  rel = track['relative_delta_frobenius_final']
  return [
      f'{_short(init)} → {_short(final)}',
      format_value('relative_delta_frobenius_final', rel['mean'], rel['std']),
  ]


def _model_rows(
    summary: dict,
    tracking: dict,
    table: str,
    dataset: str,
    model: str,
    *,
    ctx: dict,
    task: str,
    multi: bool,
) -> tuple[list[str], list[list[str]]]:
  """(header, rows) of one model of one dataset: one row, or one per metric in Table III."""
  metrics = _table_metrics(table, task)
  label = model_label(model, dataset, ctx.get('config'))
  ns = [summary[(dataset, model, m)]['n'] for m in metrics if (dataset, model, m) in summary]
  n_cell = _seeds_cell(min(ns) if ns else 0, ctx.get('expected_seeds'))
  if table == 'III':
    return _TABLE_III_HEADER, [
        [
            _dataset_label(dataset),
            task.capitalize(),
            label,
            _metric_label(metric),
            _value(summary, dataset, model, metric),
            _paper(table, dataset, metric, model),
            n_cell,
        ]
        for metric in metrics
    ]
  header = ['Dataset', 'Model'] if multi else ['Model']
  cells = [_dataset_label(dataset), label] if multi else [label]
  for metric in metrics:
    header.append(_metric_label(metric))
    cells.append(_value(summary, dataset, model, metric))
    if table != 'ablation':
      header.append('Paper')
      cells.append(_paper(table, dataset, metric, model))
  if table == 'ablation':
    header += _TRACKING_HEADER
    cells += _tracking_cells(tracking.get((dataset, model)))
  return header + ['n'], [cells + [n_cell]]


def build_table(
    summary: dict, table: str, *, context: Optional[dict] = None, tracking: Optional[dict] = None
) -> tuple[list[str], list[list[str]], list[str]]:
  """(header, rows of cells, notes) of `table` (one of TABLES) from `summarize`'s output."""
  if table not in TABLES:
    raise ValueError(f'unknown table {table!r}; valid: {list(TABLES)}')
  context = context or {}
  tracking = tracking or {}
  datasets = _order_datasets({d for (d, _, _) in summary} | {d for (d, _) in tracking})
  if not datasets:
    raise ValueError('no results to tabulate')
  multi = len(datasets) > 1 or table == 'III'
  notes: list[str] = []
  header: list[str] = []
  rows: list[list[str]] = []
  for dataset in datasets:
    ctx = context.get(dataset) or {}
    task = _task_of(dataset, context, summary)
    models = order_models(
        {m for (d, m, _) in summary if d == dataset}
        | {m for (d, m) in tracking if d == dataset and table == 'ablation'}
    )
    if ctx and not ctx.get('complete', True):
      notes.append(
          f'⚠ incomplete run: {ctx["workdir"]} (results.json complete = false); '
          f'the n column gives the seeds finished of {ctx.get("expected_seeds")}.'
      )
    for model in models:
      header, model_rows = _model_rows(
          summary, tracking, table, dataset, model, ctx=ctx, task=task, multi=multi
      )
      rows += model_rows
  return header, rows, notes


def markdown_table(
    summary: dict, table: str, *, context: Optional[dict] = None, tracking: Optional[dict] = None
) -> str:
  """The table as GitHub markdown (mean ± std over the n seeds; notes below)."""
  header, rows, notes = build_table(summary, table, context=context, tracking=tracking)
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join('---' for _ in header) + '|']
  lines += ['| ' + ' | '.join(cells) + ' |' for cells in rows]
  lines.append('')
  percent = '; accuracy in %' if any('Accuracy' in h for h in header) else ''
  lines.append(
      f'Mean ± std over seeds (population std, ddof=0){percent}. '
      f'Paper: the value the paper reports ({DASH}: none).'
  )
  lines += ['', *notes] if notes else []
  return '\n'.join(lines) + '\n'


_LATEX_SUBS = (
    ('\\', r'\textbackslash{}'),
    ('&', r'\&'),
    ('%', r'\%'),
    ('$', r'\$'),
    ('#', r'\#'),
    ('_', r'\_'),
    ('{', r'\{'),
    ('}', r'\}'),
    ('~', r'\~{}'),
    ('^', r'\^{}'),
)
_LATEX_UNICODE = (
    ('±', r'$\pm$'),
    ('×', r'$\times$'),
    ('→', r'$\to$'),
    ('—', '---'),
    ('R²', r'$R^2$'),
    ('λ_max', r'$\lambda_{\max}$'),
    ('‖ΔΘ‖_F/‖Θ_0‖_F', r'$\|\Delta\Theta\|_F/\|\Theta_0\|_F$'),
    ('⚠ ', ''),
)


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


def latex_table(
    summary: dict, table: str, *, context: Optional[dict] = None, tracking: Optional[dict] = None
) -> str:
  """The table as a booktabs LaTeX tabular (inside a table environment)."""
  header, rows, notes = build_table(summary, table, context=context, tracking=tracking)
  spec = 'l' * sum(h in ('Dataset', 'Task', 'Model', 'Metric') for h in header)
  spec += 'c' * (len(header) - len(spec))
  lines = [
      r'\begin{table}[t]',
      r'\centering',
      rf'\begin{{tabular}}{{{spec}}}',
      r'\toprule',
      ' & '.join(latex_escape(h) for h in header) + r' \\',
      r'\midrule',
  ]
  lines += [' & '.join(latex_escape(c) for c in cells) + r' \\' for cells in rows]
  lines += [r'\bottomrule', r'\end{tabular}']
  percent = '; accuracy in \\%' if any('Accuracy' in h for h in header) else ''
  caption = ('Table ' + table if table != 'ablation' else 'Ablations') + (
      f': mean $\\pm$ std over seeds (population std){percent}.'
  )
  if notes:
    caption += ' ' + ' '.join(latex_escape(n) for n in notes)
  lines += [rf'\caption{{{caption}}}', r'\end{table}']
  return '\n'.join(lines) + '\n'


# ---------------------------------------------------------------------------------------------
# The paper's claims.


def claim_checks(summary: dict, context: Optional[dict] = None) -> list[tuple[str, str, bool, str]]:
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
    others = {
        b: summary[(dataset, b, metric)]['mean']
        for b in BASELINES
        if (dataset, b, metric) in summary and summary[(dataset, b, metric)]['mean'] is not None
    }
    if not others:
      continue
    beaten_by = [b for b, v in others.items() if (v >= ours if higher else v <= ours)]
    holds = not beaten_by
    config = (context.get(dataset) or {}).get('config')
    vs = ', '.join(
        f'{model_label(b, dataset, config)} {format_value(metric, v)}' for b, v in others.items()
    )
    text = (
        f'{_dataset_label(dataset)}, {_metric_label(metric)} '
        f'({"higher" if higher else "lower"} is better): NTK-ECRN '
        f'{format_value(metric, ours)} vs {vs}: '
        + (
            'holds.'
            if holds
            else 'does not hold (not beaten: '
            + ', '.join(model_label(b, dataset, config) for b in beaten_by)
            + ').'
        )
    )
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
      values.setdefault((row['dataset'], row['metric'], row['model']), {})[row['seed']] = row[
          'value'
      ]
  lines = [
      '| Dataset | Metric | NTK-ECRN − | mean ± std over seeds | NTK-ECRN better |',
      '|---|---|---|---|---|',
  ]
  keys = sorted({(d, m) for (d, m, model) in values if model == 'ntk_ecrn'})
  for dataset, metric in keys:
    ours = values[(dataset, metric, 'ntk_ecrn')]
    config = (context.get(dataset) or {}).get('config')
    others = order_models(
        model for (d, m, model) in values if (d, m) == (dataset, metric) and model != 'ntk_ecrn'
    )
    for other in others:
      theirs = values[(dataset, metric, other)]
      seeds = sorted(set(ours) & set(theirs))
      if not seeds:
        continue
      diff = np.asarray([ours[s] - theirs[s] for s in seeds], np.float64)
      scale = 100.0 if metric == 'accuracy' else 1.0
      wins = int(np.sum(diff > 0) if HIGHER_IS_BETTER[metric] else np.sum(diff < 0))
      ties = int(np.sum(diff == 0))
      lines.append(
          f'| {_dataset_label(dataset)} | '
          f'{_metric_label(metric)} | {model_label(other, dataset, config)}'
          f' | {_number(scale * diff.mean())} ± {_number(scale * diff.std())} | '
          f'{wins} of {len(seeds)}' + (f' ({ties} tied)' if ties else '') + ' |'
      )
  return '\n'.join(lines) + '\n'
