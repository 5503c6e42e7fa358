# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The paper's result tables (I–IV, ablation) as Markdown and LaTeX from report.summarize's
{(dataset, model, metric): {'mean', 'std', 'n', 'values'}}, and the values' formatting."""

from __future__ import annotations

import re
from typing import Optional

# pylint: disable=g-importing-member
from experiments.paper import DATASET_LABELS
from experiments.configs.common import DATASET_NAMES
from experiments.paper import METRIC_LABELS
from experiments.paper import PAPER_CLAIMS
from experiments.paper import is_reference
from experiments.paper import model_label
from experiments.paper import order_models

TABLES = ('I', 'II', 'III', 'IV', 'ablation')
DASH = '—'
REFERENCE_NOTE = (
    "Rows labelled '(reference)': classical references beside the paper's models (each "
    'selects its own hyperparameters on the training split only; Bayes-optimal: the '
    "mixture's known generator); not among the baselines of the claim checks."
)
_TABLE_III_HEADER = ['Dataset', 'Task', 'Model', 'Metric', 'Value', 'Paper', 'n']
_TRACKING_HEADER = ['λ_max init → final', '‖ΔΘ‖_F/‖Θ_0‖_F final']
# Per table: its metrics of (a regression, a classification). The ablations show the train error
# (overfitting is one of the claims), Table IV the train accuracy (does a network fit at all?).
_CLASSIFICATION = ('accuracy', 'cross_entropy')
_TABLE_METRICS = {
    'I': (('mse', 'r2'),) * 2,
    'II': (_CLASSIFICATION,) * 2,
    'III': (('r2',), ('accuracy',)),
    'IV': ((*_CLASSIFICATION, 'train_accuracy'),) * 2,
    'ablation': (('mse', 'r2', 'train_mse'), (*_CLASSIFICATION, 'train_accuracy')),
}


def number(x: float) -> str:
  return f'{x:.3g}' if x != 0 and abs(x) < 1e-2 else f'{x:.3f}'


def format_value(metric: str, mean: Optional[float], std=None, n: Optional[int] = None) -> str:
  """'mean ± std' ('mean (n = 1)' for one seed): accuracy in % with 1 decimal, else 3."""
  if mean is None:
    return DASH
  percent = metric in ('accuracy', 'train_accuracy')
  text = f'{100 * mean:.1f}' if percent else number(mean)
  if std is None:
    return text
  if n == 1:
    return f'{text} (n = 1)'
  return f'{text} ± {100 * std:.1f}' if percent else f'{text} ± {number(std)}'


def dataset_label(dataset: str) -> str:
  return DATASET_LABELS.get(dataset, dataset)


def metric_label(metric: str) -> str:
  return METRIC_LABELS.get(metric, metric)


def _short(stats: dict) -> str:
  if stats['mean'] is None:
    return DASH
  if stats.get('n') == 1:
    return f'{stats["mean"]:.4g} (n = 1)'
  return f'{stats["mean"]:.4g} ± {stats["std"]:.3g}'


def _paper(table: str, dataset: str, metric: str, model: str) -> str:
  value = PAPER_CLAIMS.get(table, {}).get(dataset, {}).get(metric, {}).get(model)
  if value is None:
    return DASH
  return f'{value:.1f}' if metric == 'accuracy' else f'{value:g}'


def _value(summary: dict, dataset: str, model: str, metric: str) -> str:
  stats = summary.get((dataset, model, metric), {})
  return format_value(metric, stats.get('mean'), stats.get('std'), stats.get('n'))


def _tracking_cells(track: Optional[dict]) -> list[str]:
  """The ablation table's kernel cells: λ_max init → final and the relative kernel change."""
  if not track:
    return [DASH, DASH]
  rel = track['relative_delta_frobenius_final']
  return [
      f'{_short(track["lambda_max_init"])} → {_short(track["lambda_max_final"])}',
      format_value('relative_delta_frobenius_final', rel['mean'], rel['std'], rel.get('n')),
  ]


def _model_rows(summary, tracking, table, dataset, model, ctx, task, multi):
  """(header, rows) of one model of one dataset: one row, or one per metric in Table III."""
  metrics = _TABLE_METRICS[table][task != 'regression']
  label = model_label(model, dataset, ctx.get('config'))
  ns = [summary[(dataset, model, m)]['n'] for m in metrics if (dataset, model, m) in summary]
  n, expected = min(ns) if ns else 0, ctx.get('expected_seeds')
  n_cell = f'n = {n} of {expected} seeds' if expected and n < expected else str(n)
  if table == 'III':
    head = [dataset_label(dataset), task.capitalize(), label]
    values = lambda m: [_value(summary, dataset, model, m), _paper(table, dataset, m, model)]
    return _TABLE_III_HEADER, [head + [metric_label(m), *values(m), n_cell] for m in metrics]
  header = ['Dataset', 'Model'] if multi else ['Model']
  cells = [dataset_label(dataset), label] if multi else [label]
  for metric in metrics:
    header.append(metric_label(metric))
    cells.append(_value(summary, dataset, model, metric))
    if table != 'ablation':
      header.append('Paper')
      cells.append(_paper(table, dataset, metric, model))
  if table == 'ablation':
    header += _TRACKING_HEADER
    cells += _tracking_cells(tracking.get((dataset, model)))
  return header + ['n'], [cells + [n_cell]]


def build_table(summary: dict, table: str, *, context=None, tracking=None) -> tuple:
  """(header, rows of cells, notes) of `table` (one of TABLES); `context`:
  report.workdir_context, `tracking`: report.tracking_summary (ablation table)."""
  if table not in TABLES:
    raise ValueError(f'unknown table {table!r}; valid: {list(TABLES)}')
  context, tracking = context or {}, tracking or {}
  datasets = {d for (d, _, _) in summary} | {d for (d, _) in tracking}
  datasets = [d for d in DATASET_NAMES if d in datasets] + sorted(datasets - set(DATASET_NAMES))
  if not datasets:
    raise ValueError('no results to tabulate')
  multi = len(datasets) > 1 or table == 'III'
  notes, header, rows = [], [], []
  for dataset in datasets:
    ctx = context.get(dataset) or {}
    metrics = {m for (d, _, m) in summary if d == dataset}
    task = ctx.get('task') or ('classification' if 'accuracy' in metrics else 'regression')
    tracked = {m for (d, m) in tracking if d == dataset and table == 'ablation'}
    models = order_models({m for (d, m, _) in summary if d == dataset} | tracked)
    if ctx and not ctx.get('complete', True):
      notes.append(
          f'⚠ incomplete run: {ctx["workdir"]} (results.json complete = false); '
          f'the n column gives the seeds finished of {ctx.get("expected_seeds")}.'
      )
    for model in models:
      header, model_rows = _model_rows(summary, tracking, table, dataset, model, ctx, task, multi)
      rows += model_rows
  if any(is_reference(m) for (_, m, _) in summary):
    notes.append(REFERENCE_NOTE)
  return header, rows, notes


def _percent(header: list[str]) -> bool:
  return any('Accuracy' in h for h in header)


def markdown_table(header: list[str], rows: list[list[str]], notes: list[str]) -> str:
  """`build_table`'s table as GitHub markdown (mean ± std over the n seeds; notes below)."""
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join('---' for _ in header) + '|']
  lines += ['| ' + ' | '.join(cells) + ' |' for cells in rows]
  percent = '; accuracy in %' if _percent(header) else ''
  lines += [
      '',
      f'Mean ± std over seeds (population std, ddof=0; n = 1: one seed, no spread){percent}. '
      f'Paper: the value the paper reports ({DASH}: none).',
  ]
  lines += ['', *notes] if notes else []
  return '\n'.join(lines) + '\n'


# LaTeX specials (a backslash as if the braces were escaped after it: a known quirk), then the
# unicode we use as math.
_LATEX = {'\\': r'\textbackslash\{\}', **{c: '\\' + c for c in '&%$#_{}'}, '~': r'\~{}'}
_LATEX.update({'^': r'\^{}', '±': r'$\pm$', '×': r'$\times$', '→': r'$\to$', '—': '---'})
_LATEX.update({'R²': r'$R^2$', 'λ_max': r'$\lambda_{\max}$', '⚠ ': ''})
_LATEX['‖ΔΘ‖_F/‖Θ_0‖_F'] = r'$\|\Delta\Theta\|_F/\|\Theta_0\|_F$'
_LATEX_PATTERN = re.compile('|'.join(map(re.escape, sorted(_LATEX, key=len, reverse=True))))


def latex_escape(text: str) -> str:
  """Escapes LaTeX specials (underscores included) and maps the unicode we use to math."""
  return _LATEX_PATTERN.sub(lambda match: _LATEX[match.group()], text)


def latex_table(table: str, header: list[str], rows: list[list[str]], notes: list[str]) -> str:
  """`build_table`'s `table` as a booktabs LaTeX tabular (inside a table environment)."""
  spec = 'l' * sum(h in ('Dataset', 'Task', 'Model', 'Metric') for h in header)
  spec += 'c' * (len(header) - len(spec))
  row = lambda cells: ' & '.join(latex_escape(c) for c in cells) + r' \\'
  lines = [r'\begin{table}[t]', r'\centering', rf'\begin{{tabular}}{{{spec}}}', r'\toprule']
  lines += [row(header), r'\midrule', *map(row, rows), r'\bottomrule', r'\end{tabular}']
  percent = '; accuracy in \\%' if _percent(header) else ''
  name = 'Table ' + table if table != 'ablation' else 'Ablations'
  caption = f'{name}: mean $\\pm$ std over seeds (population std){percent}.'
  caption += ''.join(' ' + latex_escape(n) for n in notes)
  lines += [rf'\caption{{{caption}}}', r'\end{table}']
  return '\n'.join(lines) + '\n'
