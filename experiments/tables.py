# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The paper's result tables (I–IV and an ablation table), paired tests and its claims.

`experiments/report.py` reads the workdirs, summarizes them (`summarize`: {(dataset, model,
metric): {'mean', 'std', 'n', 'values'}}) and writes what these functions return. Here:
value formatting, the table layouts and the checks of the paper's claims; the paper's own
vocabulary (labels, row order, its printed values) is in `experiments/paper.py`.
"""

from __future__ import annotations

import os
from typing import Iterable, Optional

import numpy as np

from ecrn_jax import io
from experiments import evaluation
from experiments import statistics
from experiments.paper import BASELINES
from experiments.paper import DATASET_LABELS
from experiments.paper import DATASET_ORDER
from experiments.paper import HIGHER_IS_BETTER
from experiments.paper import METRIC_LABELS
from experiments.paper import PAPER_CLAIMS
from experiments.paper import is_reference
from experiments.paper import model_label
from experiments.paper import order_models

TABLES = ('I', 'II', 'III', 'IV', 'ablation')
DASH = '—'

_TABLE_III_HEADER = ['Dataset', 'Task', 'Model', 'Metric', 'Value', 'Paper', 'n']
_TRACKING_HEADER = ['λ_max init → final', '‖ΔΘ‖_F/‖Θ_0‖_F final']
REFERENCE_NOTE = (
    "Rows labelled '(reference)': classical references beside the paper's models (each "
    'selects its own hyperparameters on the training split only; Bayes-optimal: the '
    "mixture's known generator); not among the baselines of the claim checks."
)


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


def format_value(
    metric: str, mean: Optional[float], std: Optional[float] = None, n: Optional[int] = None
) -> str:
  """'mean ± std' ('mean (n = 1)' for one seed, which has no spread): accuracy in % with 1
  decimal, other metrics 3 decimals."""
  if mean is None:
    return DASH
  percent = metric in ('accuracy', 'train_accuracy')
  text = f'{100 * mean:.1f}' if percent else _number(mean)
  if std is None:
    return text
  if n == 1:
    return f'{text} (n = 1)'
  return f'{text} ± {100 * std:.1f}' if percent else f'{text} ± {_number(std)}'


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
  return format_value(metric, stats.get('mean'), stats.get('std'), stats.get('n'))


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
  if table == 'IV':  # the training accuracy too: does a network fit the 5,000 images at all?
    return ['accuracy', 'cross_entropy', 'train_accuracy']
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
      format_value('relative_delta_frobenius_final', rel['mean'], rel['std'], rel.get('n')),
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
  if any(is_reference(m) for (_, m, _) in summary):
    notes.append(REFERENCE_NOTE)
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
      f'Mean ± std over seeds (population std, ddof=0; n = 1: one seed, no spread){percent}. '
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
# Paired comparisons: NTK-ECRN minus each other model (experiments/statistics.py).

RESAMPLES = 10_000  # bootstrap resamples of the test examples
RULE = (
    'One rule for every row: a difference is significant at α = 0.05 when its 95 % CI '
    'excludes 0 (the p-value of the same procedure is then < 0.05, and only then); '
    "better/worse say which way for NTK-ECRN, given the metric's direction. One fixed test "
    'set for every seed (CIFAR-10; or a fixed data_seed): paired bootstrap over the test '
    f'examples ({RESAMPLES:,} resamples, seeds kept), with the exact McNemar p of each seed '
    'beside it; a train/test split per seed (UCI, synthetic): the corrected resampled t-test '
    'over seeds (Nadeau & Bengio 2003; variance (1/J + n_test/n_train)·s², J − 1 dof). '
    'Accuracy differences in percentage points.'
)


def _per_seed(rows: Iterable[dict]) -> tuple[dict, dict]:
  """({(dataset, metric, model): {seed: value}}, {(dataset, model, seed): the row's workdir})
  of the test rows with a value."""
  values: dict[tuple, dict] = {}
  workdirs: dict[tuple, Optional[str]] = {}
  for row in rows:
    if row['split'] == 'test' and row['metric'] in HIGHER_IS_BETTER and row['value'] is not None:
      key = (row['dataset'], row['metric'], row['model'])
      values.setdefault(key, {})[row['seed']] = row['value']
      workdirs[(row['dataset'], row['model'], row['seed'])] = row.get('workdir')
  return values, workdirs


class _UnitFiles:
  """A unit's predictions.npz and result.json, found from its row's 'workdir' (else the
  dataset's workdir in `context`) and read once."""

  def __init__(self, workdirs: dict, context: dict):
    self.workdirs, self.context, self.cache = workdirs, context, {}

  def directory(self, dataset: str, model: str, seed) -> Optional[str]:
    workdir = self.workdirs.get((dataset, model, seed))
    workdir = workdir or (self.context.get(dataset) or {}).get('workdir')
    return os.path.join(workdir, f'seed_{seed}', model) if workdir else None

  def read(self, dataset: str, model: str, seed, what: str) -> Optional[dict]:
    """The unit's predictions (`what` = 'predictions') or result.json ('result'), or None."""
    key = (dataset, model, seed, what)
    if key not in self.cache:
      directory = self.directory(dataset, model, seed)
      found = None
      if directory is not None and what == 'predictions':
        found = evaluation.load_predictions(directory)
      elif directory is not None and os.path.exists(os.path.join(directory, 'result.json')):
        found = io.read_json(os.path.join(directory, 'result.json'))
      self.cache[key] = found
    return self.cache[key]


def _fixed_test_set(config: Optional[dict]) -> bool:
  """Whether every seed of the config is tested on the same examples (CIFAR-10's test_split;
  or a data_seed that fixes the data and split)."""
  data = (config or {}).get('data') or {}
  return 'test_split' in data or data.get('data_seed') is not None


def _sizes(files: _UnitFiles, dataset: str, units: list, config: Optional[dict]):
  """(n_train, n_test) of the units' splits: their result.json 'dataset' record (the
  largest n_test/n_train when they differ), else the config's sizes or test_fraction."""
  sizes = []
  for model, seed in units:
    record = (files.read(dataset, model, seed, 'result') or {}).get('dataset') or {}
    if record.get('num_train') and record.get('num_test'):
      sizes.append((record['num_train'], record['num_test']))
  if sizes:
    return max(sizes, key=lambda s: s[1] / s[0])
  data = (config or {}).get('data') or {}
  if data.get('num_train') and data.get('num_test'):
    return data['num_train'], data['num_test']
  if data.get('test_fraction'):
    return 1.0 - data['test_fraction'], data['test_fraction']
  return None


def _over_seeds(diff: np.ndarray, sizes, note: str = '') -> tuple:
  """(TestResult, test cell) of the corrected resampled t-test of the per-seed `diff`."""
  if len(diff) == 1:
    return statistics.corrected_resampled_ttest(diff, 1, 1), 'none (n = 1)' + note
  if sizes is None:
    result = statistics.TestResult(float(diff.mean()), None, None, None, 'sizes unknown')
    return result, 'none (train/test sizes unknown)' + note
  result = statistics.corrected_resampled_ttest(diff, *sizes)
  ratio = sizes[1] / sizes[0]
  return result, f'corrected resampled t, J = {len(diff)}, n_test/n_train = {ratio:.3g}' + note


def _on_test_examples(files, dataset, metric, models, seeds, diff, sizes) -> tuple:
  """(TestResult, test cell, McNemar p by seed) on one fixed test set: paired bootstrap over
  its examples; the t-test over seeds when the units' test targets differ."""
  examples = {(m, s): files.read(dataset, m, s, 'predictions') for m in models for s in seeds}
  missing = [f'seed_{s}/{m}' for (m, s), e in examples.items() if e is None]
  if missing:
    result = statistics.TestResult(float(diff.mean()), None, None, None, 'missing')
    return result, 'none: per-example predictions missing (' + ', '.join(missing) + ')', None
  targets = [e['targets'] for e in examples.values()]
  if any(t.shape != targets[0].shape or not np.array_equal(t, targets[0]) for t in targets):
    return (*_over_seeds(diff, sizes, " (the units' test targets differ)"), None)
  scores = {m: [evaluation.example_scores(examples[(m, s)], metric) for s in seeds] for m in models}
  if any(v is None for m in models for v in scores[m]):
    result = statistics.TestResult(float(diff.mean()), None, None, None, 'missing')
    return result, f'none: per-example {metric} not saved', None
  result = statistics.paired_bootstrap(
      np.stack(scores[models[0]]), np.stack(scores[models[1]]), num_resamples=RESAMPLES
  )
  test = f'paired bootstrap, {len(targets[0])} test examples × {len(seeds)} seeds'
  if len(seeds) == 1:
    test = f'paired bootstrap, {len(targets[0])} test examples × 1 seed (seed variation untested)'
  mcnemar = None
  if metric == 'accuracy':
    mcnemar = [
        statistics.mcnemar(
            examples[(models[0], s)]['correct'], examples[(models[1], s)]['correct']
        ).p_value
        for s in seeds
    ]
  return result, test, mcnemar


def paired_comparisons(rows: Iterable[dict], context: Optional[dict] = None) -> list[dict]:
  """NTK-ECRN minus each other model, per dataset × metric, on the seeds both have.

  Each entry: 'dataset', 'metric', 'other', 'seeds', 'result' (statistics.TestResult of
  NTK-ECRN − other, in the metric's units), 'test' (the procedure, in words), 'mcnemar'
  (exact McNemar p per seed, or None), 'verdict' (statistics.verdict), 'wins', 'ties'.
  """
  context = context or {}
  values, workdirs = _per_seed(rows)
  files = _UnitFiles(workdirs, context)
  out = []
  for dataset, metric in sorted({(d, m) for (d, m, model) in values if model == 'ntk_ecrn'}):
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
      models = ('ntk_ecrn', other)
      sizes = _sizes(files, dataset, [(m, s) for m in models for s in seeds], config)
      if _fixed_test_set(config):
        result, test, mcnemar = _on_test_examples(
            files, dataset, metric, models, seeds, diff, sizes
        )
      else:
        (result, test), mcnemar = _over_seeds(diff, sizes), None
      higher = HIGHER_IS_BETTER[metric]
      out.append(
          dict(
              dataset=dataset,
              metric=metric,
              other=other,
              seeds=seeds,
              result=result,
              test=test,
              mcnemar=mcnemar,
              verdict=statistics.verdict(result.ci_low, result.ci_high, result.p_value, higher),
              wins=int(np.sum(diff > 0) if higher else np.sum(diff < 0)),
              ties=int(np.sum(diff == 0)),
          )
      )
  return out


def _p(p: Optional[float]) -> str:
  if p is None:
    return DASH
  return '< 0.001' if p < 1e-3 else f'{p:.2g}'


def _signed(metric: str, x: float) -> str:
  """A signed difference: accuracy in percentage points with 1 decimal, else `_number`."""
  if metric == 'accuracy':
    return f'{100 * x:+.1f}'
  return ('+' if x >= 0 else '-') + _number(abs(x))


def _difference(metric: str, result) -> str:
  """'mean [low, high]' (accuracy in percentage points), or 'mean' without an interval."""
  text = _signed(metric, result.mean)
  if result.ci_low is None:
    return text
  return f'{text} [{_signed(metric, result.ci_low)}, {_signed(metric, result.ci_high)}]'


def paired_differences(rows: Iterable[dict], context: Optional[dict] = None) -> str:
  """Markdown: NTK-ECRN minus each other model (same data, split and seed), per dataset ×
  metric × other model: the mean difference with its 95 % CI, the test and its p-value, the
  verdict of the one rule (`RULE`, statistics.verdict), and on how many seeds NTK-ECRN is
  better (not evidence alone: 5 of 5 has p = 0.0625 by a sign test).

  `rows`: report.results_rows (a 'workdir' key, when present, locates the units'
  predictions.npz; else context[dataset]['workdir']). `context`: report.workdir_context.
  """
  context = context or {}
  lines = [
      '| Dataset | Metric | NTK-ECRN − | n | difference [95 % CI] | test | p '
      '| McNemar p by seed | verdict | NTK-ECRN better |',
      '|---|---|---|---|---|---|---|---|---|---|',
  ]
  missing = references = False
  for c in paired_comparisons(rows, context):
    references = references or is_reference(c['other'])
    config = (context.get(c['dataset']) or {}).get('config')
    n = len(c['seeds'])
    mcnemar = ', '.join(_p(p) for p in c['mcnemar']) if c['mcnemar'] else DASH
    better = f'{c["wins"]} of {n}' + (f' ({c["ties"]} tied)' if c['ties'] else '')
    missing = missing or 'predictions missing' in c['test']
    cells = [
        _dataset_label(c['dataset']),
        _metric_label(c['metric']),
        model_label(c['other'], c['dataset'], config),
        f'n = {n}' if n == 1 else str(n),
        _difference(c['metric'], c['result']),
        c['test'],
        _p(c['result'].p_value),
        mcnemar,
        c['verdict'],
        better,
    ]
    lines.append('| ' + ' | '.join(cells) + ' |')
  lines += ['', RULE]
  if references:
    lines += ['', REFERENCE_NOTE]
  if missing:
    lines.append(
        'Per-example predictions missing: units finished before predictions.npz was written '
        '(rerun them for a test over the test examples).'
    )
  return '\n'.join(lines) + '\n'


# ---------------------------------------------------------------------------------------------
# The paper's claims.


def _claim_head(dataset: str, metric: str, ours: float) -> str:
  higher = HIGHER_IS_BETTER[metric]
  return (
      f'{_dataset_label(dataset)}, {_metric_label(metric)} '
      f'({"higher" if higher else "lower"} is better): NTK-ECRN {format_value(metric, ours)} vs '
  )


def _claim_by_means(dataset, metric, ours, others, config) -> tuple[bool, str]:
  """(holds, text) by the means alone: NTK-ECRN's mean better than each baseline's."""
  higher = HIGHER_IS_BETTER[metric]
  beaten_by = [b for b, v in others.items() if (v >= ours if higher else v <= ours)]
  vs = ', '.join(
      f'{model_label(b, dataset, config)} {format_value(metric, v)}' for b, v in others.items()
  )
  tail = 'holds by the means'
  if beaten_by:
    labels = ', '.join(model_label(b, dataset, config) for b in beaten_by)
    tail = f'does not hold by the means (not beaten: {labels})'
  text = _claim_head(dataset, metric, ours) + vs + f': {tail} (means only: no per-seed test).'
  return not beaten_by, text


def _claim_by_tests(dataset, metric, ours, others, config, comparisons) -> tuple[bool, str]:
  """(holds, text) by the one rule: holds when NTK-ECRN is significantly better than each
  baseline of `others`; `comparisons`: {baseline: paired_comparisons entry}."""
  parts, worse, undecided = [], [], []
  for b, mean in others.items():
    label = model_label(b, dataset, config)
    c = comparisons.get(b)
    if c is None:
      parts.append(f'{label} {format_value(metric, mean)} (no common seed: no test)')
      undecided.append(label)
      continue
    parts.append(
        f'{label} {format_value(metric, mean)} ({_difference(metric, c["result"])}, '
        f'p = {_p(c["result"].p_value)}: {c["verdict"]})'
    )
    if c['verdict'] == statistics.WORSE:
      worse.append(label)
    elif c['verdict'] != statistics.BETTER:
      undecided.append(label)
  if worse:
    tail = 'does not hold (significantly worse than: ' + ', '.join(worse) + ').'
  elif undecided:
    tail = 'not shown (no significant difference or no test: ' + ', '.join(undecided) + ').'
  else:
    tail = 'holds (significantly better than every baseline).'
  return (
      not (worse or undecided),
      _claim_head(dataset, metric, ours) + ', '.join(parts) + ': ' + tail,
  )


def claim_checks(
    summary: dict, context: Optional[dict] = None, rows: Optional[Iterable[dict]] = None
) -> list[tuple[str, str, bool, str]]:
  """(dataset, metric, holds, text) of "NTK-ECRN beats every baseline" per dataset × metric.

  With `rows` (report.results_rows), by the one rule of `paired_differences`: holds when
  NTK-ECRN is significantly better than each baseline present (mlp, resnet18,
  standard_ntk; never the references); 'not shown' when none is significantly better than
  it but some difference is not significant (or untested). Without `rows`: by the means alone
  (said in the text).
  A dataset × metric with no baseline is left out.
  """
  context = context or {}
  comparisons = None
  if rows is not None:
    comparisons = {}
    for c in paired_comparisons(rows, context):
      if c['other'] in BASELINES:
        comparisons.setdefault((c['dataset'], c['metric']), {})[c['other']] = c
  out = []
  for (dataset, model, metric), stats in sorted(summary.items()):
    if model != 'ntk_ecrn' or metric not in HIGHER_IS_BETTER or stats['mean'] is None:
      continue
    others = {
        b: summary[(dataset, b, metric)]['mean']
        for b in BASELINES
        if (dataset, b, metric) in summary and summary[(dataset, b, metric)]['mean'] is not None
    }
    if not others:
      continue
    config = (context.get(dataset) or {}).get('config')
    if comparisons is None:
      holds, text = _claim_by_means(dataset, metric, stats['mean'], others, config)
    else:
      tested = comparisons.get((dataset, metric), {})
      holds, text = _claim_by_tests(dataset, metric, stats['mean'], others, config, tested)
    out.append((dataset, metric, holds, text))
  return out
