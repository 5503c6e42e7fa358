# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""NTK-ECRN minus each other model, tested (significance.py), and the paper's claim that it beats
every baseline, from each unit's predictions.npz and result.json."""

from __future__ import annotations

import functools
import os
from typing import Iterable, Optional

import numpy as np

from ecrn_jax import files
from experiments import significance
from experiments import tables
from experiments.paper import BASELINES
from experiments.paper import HIGHER_IS_BETTER
from experiments.paper import is_reference
from experiments.paper import model_label
from experiments.paper import order_models

DASH = tables.DASH
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


def example_scores(examples: dict, metric: str) -> Optional[np.ndarray]:
  """(M,) per-example values whose mean is the test `metric`, or None (not saved); 'r2':
  1 − e_i/var(y), var(y) of the whole test set, so a resample keeps R²'s denominator."""
  if metric == 'accuracy' and 'correct' in examples:
    return np.asarray(examples['correct'], np.float64)
  if metric == 'cross_entropy' and 'nll' in examples:
    return np.asarray(examples['nll'], np.float64)
  if metric in ('mse', 'r2') and 'predictions' in examples:
    targets = np.asarray(examples['targets'], np.float64)
    error = np.asarray(examples['predictions'], np.float64) - targets
    squared = (error**2).reshape(len(error), -1).mean(axis=1)
    if metric == 'mse':
      return squared
    variance = float(np.var(targets))
    return 1.0 - squared / variance if variance > 0 else None
  return None


def _per_seed(rows: Iterable[dict]) -> tuple[dict, dict]:
  """({(dataset, metric, model): {seed: value}}, {(dataset, model, seed): workdir}) of test rows."""
  values, workdirs = {}, {}
  for row in rows:
    dataset, metric, model, seed = (row[k] for k in ('dataset', 'metric', 'model', 'seed'))
    if row['split'] == 'test' and metric in HIGHER_IS_BETTER and row['value'] is not None:
      values.setdefault((dataset, metric, model), {})[seed] = row['value']
      workdirs[(dataset, model, seed)] = row.get('workdir')
  return values, workdirs


def _unit_reader(workdirs: dict, context: dict):
  """read(dataset, model, seed, name): a unit's file (cached), or None; the unit's workdir is its
  row's, else the dataset's in `context`."""

  @functools.cache
  def read(dataset, model, seed, name):
    workdir = workdirs.get((dataset, model, seed)) or (context.get(dataset) or {}).get('workdir')
    path = workdir and os.path.join(workdir, f'seed_{seed}', model, name)
    if not (path and os.path.exists(path)):
      return None
    return (files.load_npz if name.endswith('.npz') else files.read_json)(path)

  return read


def _sizes(read, dataset: str, units: list, config: Optional[dict]):
  """(n_train, n_test) from the units' result.json (largest n_test/n_train), else the config."""
  records = [(read(dataset, m, s, 'result.json') or {}).get('dataset') or {} for m, s in units]
  sizes = [(r.get('num_train'), r.get('num_test')) for r in records]
  sizes = [size for size in sizes if all(size)]
  if sizes:
    return max(sizes, key=lambda s: s[1] / s[0])
  data = (config or {}).get('data') or {}
  if data.get('num_train') and data.get('num_test'):
    return data['num_train'], data['num_test']
  if data.get('test_fraction'):
    return 1.0 - data['test_fraction'], data['test_fraction']
  return None


def _untested(diff: np.ndarray, why: str) -> significance.TestResult:
  return significance.TestResult(float(diff.mean()), None, None, None, why)


def _over_seeds(diff: np.ndarray, sizes, note: str = '') -> tuple:
  """(TestResult, test cell) of the corrected resampled t-test of the per-seed `diff`."""
  if len(diff) == 1:
    return significance.corrected_resampled_ttest(diff, 1, 1), 'none (n = 1)' + note
  if sizes is None:
    return _untested(diff, 'sizes unknown'), 'none (train/test sizes unknown)' + note
  ratio = sizes[1] / sizes[0]
  test = f'corrected resampled t, J = {len(diff)}, n_test/n_train = {ratio:.3g}' + note
  return significance.corrected_resampled_ttest(diff, *sizes), test


def _on_test_examples(read, dataset, metric, models, seeds, diff, sizes) -> tuple:
  """(TestResult, test cell, McNemar p by seed): paired bootstrap over one fixed test set's
  examples, or the t-test over seeds when the units' test targets differ."""
  examples = {(m, s): read(dataset, m, s, 'predictions.npz') for m in models for s in seeds}
  missing = [f'seed_{s}/{m}' for (m, s), e in examples.items() if e is None]
  if missing:
    test = 'none: per-example predictions missing (' + ', '.join(missing) + ')'
    return _untested(diff, 'missing'), test, None
  targets = [e['targets'] for e in examples.values()]
  if any(t.shape != targets[0].shape or not np.array_equal(t, targets[0]) for t in targets):
    return (*_over_seeds(diff, sizes, " (the units' test targets differ)"), None)
  scores = {m: [example_scores(examples[(m, s)], metric) for s in seeds] for m in models}
  if any(v is None for m in models for v in scores[m]):
    return _untested(diff, 'missing'), f'none: per-example {metric} not saved', None
  a, b = (np.stack(scores[m]) for m in models)
  result = significance.paired_bootstrap(a, b, num_resamples=RESAMPLES)
  test = f'paired bootstrap, {len(targets[0])} test examples × {len(seeds)} seed'
  test += ' (seed variation untested)' if len(seeds) == 1 else 's'
  mcnemar = None
  if metric == 'accuracy':
    pairs = [(examples[(models[0], s)], examples[(models[1], s)]) for s in seeds]
    mcnemar = [significance.mcnemar(x['correct'], y['correct']).p_value for x, y in pairs]
  return result, test, mcnemar


def paired_comparisons(rows: Iterable[dict], context: Optional[dict] = None) -> list[dict]:
  """NTK-ECRN minus each other model per dataset × metric, on the seeds both have (`rows`:
  report.results_rows; `context`: report.workdir_context). Per comparison: 'dataset', 'metric',
  'other', 'seeds', 'result' (TestResult of NTK-ECRN − other), 'test' (in words), 'mcnemar' (p
  per seed, or None), 'verdict', 'wins' and 'ties'."""
  context = context or {}
  values, workdirs = _per_seed(rows)
  read = _unit_reader(workdirs, context)
  out = []
  for dataset, metric in sorted({(d, m) for (d, m, model) in values if model == 'ntk_ecrn'}):
    ours = values[(dataset, metric, 'ntk_ecrn')]
    config = (context.get(dataset) or {}).get('config')
    data = (config or {}).get('data') or {}
    fixed = 'test_split' in data or data.get('data_seed') is not None  # one test set
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
      sizes = _sizes(read, dataset, [(m, s) for m in models for s in seeds], config)
      if fixed:
        result, test, mcnemar = _on_test_examples(read, dataset, metric, models, seeds, diff, sizes)
      else:
        (result, test), mcnemar = _over_seeds(diff, sizes), None
      higher = HIGHER_IS_BETTER[metric]
      verdict = significance.verdict(result.ci_low, result.ci_high, result.p_value, higher)
      wins, ties = int(np.sum(diff > 0) if higher else np.sum(diff < 0)), int(np.sum(diff == 0))
      out.append(dict(dataset=dataset, metric=metric, other=other, seeds=seeds, result=result))
      out[-1].update(test=test, mcnemar=mcnemar, verdict=verdict, wins=wins, ties=ties)
  return out


def _p(p: Optional[float]) -> str:
  if p is None:
    return DASH
  return '< 0.001' if p < 1e-3 else f'{p:.2g}'


def _signed(metric: str, x: float) -> str:
  """A signed difference: accuracy in percentage points with 1 decimal, else tables.number."""
  if metric == 'accuracy':
    return f'{100 * x:+.1f}'
  return ('+' if x >= 0 else '-') + tables.number(abs(x))


def _difference(metric: str, result) -> str:
  """'mean [low, high]' (accuracy in percentage points), or 'mean' without an interval."""
  text = _signed(metric, result.mean)
  if result.ci_low is None:
    return text
  return f'{text} [{_signed(metric, result.ci_low)}, {_signed(metric, result.ci_high)}]'


def paired_differences(rows: Iterable[dict], context: Optional[dict] = None) -> str:
  """Markdown of paired_comparisons: difference [95 % CI], test, p, verdict (`RULE`), wins."""
  context = context or {}
  lines = [
      '| Dataset | Metric | NTK-ECRN − | n | difference [95 % CI] | test | p '
      '| McNemar p by seed | verdict | NTK-ECRN better |',
      '|---|---|---|---|---|---|---|---|---|---|',
  ]
  missing = references = False
  for c in paired_comparisons(rows, context):
    references = references or is_reference(c['other'])
    missing = missing or 'predictions missing' in c['test']
    n, result, ctx = len(c['seeds']), c['result'], context.get(c['dataset']) or {}
    label = model_label(c['other'], c['dataset'], ctx.get('config'))
    cells = [tables.dataset_label(c['dataset']), tables.metric_label(c['metric']), label]
    cells += [f'n = {n}' if n == 1 else str(n), _difference(c['metric'], result), c['test']]
    cells += [_p(result.p_value), ', '.join(map(_p, c['mcnemar'] or ())) or DASH, c['verdict']]
    cells.append(f'{c["wins"]} of {n}' + (f' ({c["ties"]} tied)' if c['ties'] else ''))
    lines.append('| ' + ' | '.join(cells) + ' |')
  lines += ['', RULE]
  if references:
    lines += ['', tables.REFERENCE_NOTE]
  if missing:
    lines.append(
        'Per-example predictions missing: units finished before predictions.npz was written '
        '(rerun them for a test over the test examples).'
    )
  return '\n'.join(lines) + '\n'


def _claim(dataset, metric, ours, others, config, comparisons) -> tuple[bool, str]:
  """(holds, text) of one claim: by the means (`comparisons` None), else by the one rule."""
  higher = HIGHER_IS_BETTER[metric]
  head = (
      f'{tables.dataset_label(dataset)}, {tables.metric_label(metric)} '
      f'({"higher" if higher else "lower"} is better): NTK-ECRN '
      f'{tables.format_value(metric, ours)} vs '
  )
  label = lambda b: model_label(b, dataset, config)
  if comparisons is None:
    beaten_by = [label(b) for b, v in others.items() if (v >= ours if higher else v <= ours)]
    tail = 'holds by the means'
    if beaten_by:
      tail = f'does not hold by the means (not beaten: {", ".join(beaten_by)})'
    vs = ', '.join(f'{label(b)} {tables.format_value(metric, v)}' for b, v in others.items())
    return not beaten_by, head + vs + f': {tail} (means only: no per-seed test).'
  parts, worse, undecided = [], [], []
  for b, mean in others.items():
    c = comparisons.get(b)
    test = 'no common seed: no test'
    if c is not None:
      test = f'{_difference(metric, c["result"])}, p = {_p(c["result"].p_value)}: {c["verdict"]}'
    parts.append(f'{label(b)} {tables.format_value(metric, mean)} ({test})')
    verdict = c and c['verdict']
    if verdict == significance.WORSE:
      worse.append(label(b))
    elif verdict != significance.BETTER:
      undecided.append(label(b))
  if worse:
    tail = 'does not hold (significantly worse than: ' + ', '.join(worse) + ').'
  elif undecided:
    tail = 'not shown (no significant difference or no test: ' + ', '.join(undecided) + ').'
  else:
    tail = 'holds (significantly better than every baseline).'
  return not (worse or undecided), head + ', '.join(parts) + ': ' + tail


def claim_checks(summary: dict, context: Optional[dict] = None, rows=None) -> list[tuple]:
  """(dataset, metric, holds, text) of "NTK-ECRN beats every baseline" (BASELINES) per dataset ×
  metric: by `paired_differences`' rule with `rows` (report.results_rows), else by the means."""
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
    means = {b: (summary.get((dataset, b, metric)) or {}).get('mean') for b in BASELINES}
    others = {b: mean for b, mean in means.items() if mean is not None}
    if not others:
      continue
    config = (context.get(dataset) or {}).get('config')
    tested = None if comparisons is None else comparisons.get((dataset, metric), {})
    out.append((dataset, metric, *_claim(dataset, metric, stats['mean'], others, config, tested)))
  return out
