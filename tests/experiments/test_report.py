# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""experiments.report and experiments.plots on a real two-seed Iris smoke run (the shared
`iris_smoke_workdir` of conftest.py)."""

import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import scipy.stats
import utils

from ecrn_jax import files
from experiments import evaluation
from experiments import paired
from experiments import plots
from experiments import report
from experiments import search_tables
from experiments import tables

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
PAPER_ORDER = (
    'mlp',
    'resnet18',
    'standard_ntk',
    'ntk_ecrn',
    'ntk_ecrn_infinite',
    'ntk_ecrn_infinite_self_tuned',
)
LABELS = {
    'mlp': 'MLP (3×32)',
    'resnet18': 'ResNet-18 (residual MLP stand-in)',
    'standard_ntk': 'Standard NTK',
    'ntk_ecrn': 'NTK-ECRN',
    'ntk_ecrn_infinite': 'NTK-ECRN infinite twin',
    'ntk_ecrn_infinite_self_tuned': 'NTK-ECRN infinite twin, tuned on its own',
}


@pytest.fixture
def workdir(iris_smoke_workdir):
  return iris_smoke_workdir


def _results(directory):
  with open(os.path.join(directory, 'results.json')) as f:
    return json.load(f)


def _markdown_rows(text):
  """The first markdown table of `text` as a list of {header: cell} dicts."""
  all_lines = text.splitlines()
  start = next(i for i, l in enumerate(all_lines) if l.startswith('|'))
  lines = []
  for line in all_lines[start:]:
    if not line.startswith('|'):
      break
    lines.append(line)
  header = [c.strip() for c in lines[0].strip('|').split('|')]
  rows = []
  for line in lines[2:]:
    cells = [c.strip() for c in line.strip('|').split('|')]
    rows.append(list(zip(header, cells)))
  return rows


def _cell(row, name, occurrence=0):
  return [c for h, c in row if h == name][occurrence]


def _parse(cell):
  mean, std = cell.split('±')
  return float(mean), float(std)


def _interval(cell):
  """(mean, low, high) of a '+1.2 [-0.3, +2.7]' cell."""
  mean, interval = cell.split('[')
  low, high = interval.rstrip(']').split(',')
  return float(mean), float(low), float(high)


def _expected(units, model, metric):
  values = [u['test'][metric] for u in units if u['model'] == model]
  values = [v for v in values if v is not None]
  return (np.mean(values), np.std(values)) if values else None


def test_csv_and_table_match_results(workdir, tmp_path):
  results = _results(workdir)
  units = results['units']
  models = {u['model'] for u in units}
  seeds = {u['seed'] for u in units}
  metrics = {m for u in units for m in u['test']}
  paths = report.write_report([workdir], str(tmp_path), 'II')

  with open(paths['csv']) as f:
    rows = list(csv.DictReader(f))
  assert len(seeds) == 2 and metrics == {'accuracy', 'cross_entropy'}
  assert len(rows) == len(models) * len(seeds) * 2 * len(metrics)
  for row in rows:
    unit = next(u for u in units if u['model'] == row['model'] and u['seed'] == int(row['seed']))
    value = unit[row['split']][row['metric']]
    assert row['value'] == ('' if value is None else str(value))

  with open(paths['markdown']) as f:
    table_rows = _markdown_rows(f.read())
  by_label = {_cell(r, 'Model'): r for r in table_rows}
  order = [m for m in PAPER_ORDER if m in models] + sorted(models - set(PAPER_ORDER))
  labels = [LABELS.get(m, m) for m in order]
  assert [_cell(r, 'Model') for r in table_rows] == labels  # paper order
  for model, label in zip(order, labels):
    row = by_label[label]
    assert _cell(row, 'n') == '2'
    mean, std = _expected(units, model, 'accuracy')
    got_mean, got_std = _parse(_cell(row, 'Accuracy (%)'))
    assert abs(got_mean - 100 * mean) <= 0.05 + 1e-9 and abs(got_std - 100 * std) <= 0.05 + 1e-9
    expected = _expected(units, model, 'cross_entropy')
    if expected is None:
      assert _cell(row, 'Cross-Entropy') == '—'
    else:
      got_mean, got_std = _parse(_cell(row, 'Cross-Entropy'))
      np.testing.assert_allclose([got_mean, got_std], expected, rtol=5e-3, atol=5e-4)
    assert _cell(row, 'Paper') == '—'  # Table II: the paper's cells are empty

  with open(paths['latex']) as f:
    tex = f.read()
  for rule in (r'\toprule', r'\midrule', r'\bottomrule'):
    assert tex.count(rule) == 1
  assert r'\pm' in tex and '±' not in tex


def test_paper_column_and_claims(workdir, tmp_path):
  paths = report.write_report([workdir], str(tmp_path), 'III')
  with open(paths['markdown']) as f:
    text = f.read()
  rows = {_cell(r, 'Model'): r for r in _markdown_rows(text)}
  assert _cell(rows['NTK-ECRN'], 'Paper') == '96.1'
  assert _cell(rows['MLP (3×32)'], 'Paper') == '94.2'
  assert _cell(rows['Standard NTK'], 'Paper') == '93.5'
  assert _cell(rows['NTK-ECRN infinite twin'], 'Paper') == '—'
  assert {_cell(r, 'Dataset') for r in rows.values()} == {'Iris'}
  assert {_cell(r, 'Metric') for r in rows.values()} == {'Accuracy (%)'}

  units = _results(workdir)['units']
  summary = report.summarize(report.results_rows(workdir))
  checks = {(d, m): holds for d, m, holds, _ in paired.claim_checks(summary)}
  for metric, higher in (('accuracy', True), ('cross_entropy', False)):
    ours = _expected(units, 'ntk_ecrn', metric)[0]
    baselines = [
        _expected(units, b, metric)
        for b in ('mlp', 'resnet18', 'standard_ntk')
        if any(u['model'] == b for u in units)
    ]
    baselines = [b[0] for b in baselines if b is not None]
    holds = all((ours > b) if higher else (ours < b) for b in baselines)
    assert checks[('iris', metric)] == holds
    assert ('✓' if holds else '✗') in text
  # By the one rule: holds only when every baseline's verdict is 'better'.
  rows = report.results_rows(workdir)
  context = report.workdir_context([workdir])
  verdicts = {}
  for c in paired.paired_comparisons(rows, context):
    if c['other'] in ('mlp', 'resnet18', 'standard_ntk'):
      verdicts.setdefault(c['metric'], []).append(c['verdict'])
  for dataset, metric, holds, claim in paired.claim_checks(summary, context, rows):
    assert holds == all(v == 'better' for v in verdicts[metric])
    assert all(v in claim for v in verdicts[metric])


def test_unknown_models_incomplete_runs_and_search(workdir, tmp_path):
  copy = str(tmp_path / 'copy')
  shutil.copytree(workdir, copy)
  results = _results(copy)
  extra = [
      dict(
          u, model='my_ecrn_variant', test={'accuracy': 0.5 + 0.1 * u['seed'], 'cross_entropy': 1.0}
      )
      for u in results['units']
      if u['model'] == 'ntk_ecrn' and u['seed'] == 0
  ]
  results['units'] += extra
  results['complete'] = False
  with open(os.path.join(copy, 'results.json'), 'w') as f:
    json.dump(results, f)
  search = {
      'budget': {'trials': 2},
      'models': {
          'mlp': {
              'selected': {'train.learning_rate': 0.01},
              'trials': [
                  {
                      'overrides': {'train.learning_rate': 0.001},
                      'validation': {'accuracy': 0.5},
                      'seconds': 1.0,
                  },
                  {
                      'overrides': {'train.learning_rate': 0.01},
                      'validation': {'accuracy': 0.75},
                      'seconds': 1.0,
                  },
              ],
              'seconds': 2.0,
          }
      },
  }
  with open(os.path.join(copy, 'search.json'), 'w') as f:
    json.dump(search, f)

  paths = report.write_report([copy], str(tmp_path / 'out'), 'ablation')
  with open(paths['markdown']) as f:
    text = f.read()
  rows = _markdown_rows(text)
  assert _cell(rows[-1], 'Model') == 'my_ecrn_variant'  # unknown models: by name, last
  assert _cell(rows[-1], 'n') == 'n = 1 of 2 seeds'
  assert 'incomplete' in text
  ecrn = next(r for r in rows if _cell(r, 'Model') == 'NTK-ECRN')
  init = [
      u['tracking']['lambda_max_init']
      for u in results['units']
      if u['model'] == 'ntk_ecrn' and 'tracking' in u
  ]
  assert float(_cell(ecrn, 'λ_max init → final').split('±')[0]) == pytest.approx(
      np.mean(init), rel=1e-3
  )
  with open(paths['latex']) as f:
    tex = f.read()
  assert r'my\_ecrn\_variant' in tex and 'my_ecrn' not in tex
  with open(paths['search']) as f:
    search_md = f.read()
  assert 'train.learning_rate = 0.01' in search_md and '75.0' in search_md
  assert '| 2 |' in search_md


def test_figures(workdir, tmp_path):
  paths = plots.make_figures(workdir, str(tmp_path))
  assert sorted(os.path.basename(p) for p in paths) == [
      'kernel_evolution.png',
      'kernel_growth.md',
      'learning_curves.png',
      'spectra.png',
  ]
  with open(os.path.join(str(tmp_path), 'kernel_growth.md')) as f:
    growth = _markdown_rows(f.read())
  for model in ('ntk_ecrn', 'mlp'):
    lams = []
    for unit in _results(workdir)['units']:
      if unit['model'] == model:
        with np.load(os.path.join(workdir, unit['tracking']['files'], 'tracking.npz')) as z:
          lams.append(z['lambda_max'])
    row = next(
        r
        for r in growth
        if _cell(r, 'Model')
        == tables.model_label(
            model, 'iris', json.load(open(os.path.join(workdir, 'config.json')))['config']
        )
    )
    ratio = float(_cell(row, 'ratio').split('±')[0])
    assert ratio == pytest.approx(np.mean([l[-1] / l[0] for l in lams]), abs=1e-3)
    fall = float(_cell(row, 'largest fall / λ_max(Θ_0)').split('±')[0])
    assert fall == pytest.approx(
        np.mean([max(0, -np.diff(l).min()) / l[0] for l in lams]), abs=1e-3
    )
  for path in [p for p in paths if p.endswith('.png')]:
    with open(path, 'rb') as f:
      data = f.read()
    assert data[:8] == PNG_SIGNATURE and len(data) > 5000


def test_no_tracked_model(workdir, tmp_path):
  copy = str(tmp_path / 'untracked')
  shutil.copytree(workdir, copy)
  results = _results(copy)
  for unit in results['units']:
    unit.pop('tracking', None)
  with open(os.path.join(copy, 'results.json'), 'w') as f:
    json.dump(results, f)
  with pytest.raises(ValueError, match='no kernel-tracked model'):
    plots.kernel_evolution_figure(copy)
  paths = plots.make_figures(copy, str(tmp_path / 'figs'))
  assert [os.path.basename(p) for p in paths] == ['learning_curves.png']


def test_reporting_imports_no_runner_module():
  """The report and the figures import only the reporting modules and data (the model registry,
  the configs' dataset names and defaults): never a runner module (nor its dependencies)."""
  code = (
      'import sys, experiments.report, experiments.plots; '
      'print(" ".join(m for m in sys.modules if m.startswith("experiments.")))'
  )
  proc = subprocess.run(
      [sys.executable, '-c', code], cwd=utils.REPO, capture_output=True, text=True, timeout=300
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  reporting = (
      'registry configs configs.common paper significance tables paired search_tables report '
      'kernel_growth plots'
  )
  assert set(proc.stdout.split()) == {f'experiments.{m}' for m in reporting.split()}


def test_import_defines_no_flags():
  from absl import flags  # pylint: disable=g-import-not-at-top

  assert 'workdirs' not in flags.FLAGS and 'table' not in flags.FLAGS


def test_ablation_variant_labels():
  assert tables.model_label('ntk_ecrn_sigma_ff_x0p25') == 'NTK-ECRN, σ_ff = 0.25/(2π√d)'
  assert tables.model_label('ntk_ecrn_no_fourier') == 'NTK-ECRN without Fourier features'
  assert tables.model_label('resnet18', 'iris') == 'ResNet-18 (residual MLP stand-in)'
  assert tables.model_label('resnet18', 'cifar10') == 'ResNet-18'


def _rows(dataset, pairs, metric='accuracy'):
  """Test rows of NTK-ECRN and the MLP, one (ours, mlp) value pair per seed."""
  return [
      dict(config='x', dataset=dataset, model=m, seed=s, split='test', metric=metric, value=v)
      for s, pair in enumerate(pairs)
      for m, v in zip(('ntk_ecrn', 'mlp'), pair)
  ]


def test_paired_differences_are_per_seed():
  rows = _rows('iris', [(0.9, 0.8), (0.7, 0.75), (0.8, 0.6)])
  rows.append(
      dict(
          config='x', dataset='iris', model='mlp', seed=7, split='test', metric='accuracy', value=0
      )
  )  # no NTK-ECRN on seed 7: not paired
  context = {'iris': {'config': {'data': {'name': 'iris', 'test_fraction': 0.2}}}}
  (row,) = _markdown_rows(paired.paired_differences(rows, context))
  assert _cell(row, 'NTK-ECRN better') == '2 of 3' and _cell(row, 'n') == '3'
  # The corrected resampled t-test by hand: n_test/n_train = 0.2/0.8, J = 3.
  diff = np.array([0.1, -0.05, 0.2])
  se = np.sqrt((1 / 3 + 0.25) * np.var(diff, ddof=1))
  half = scipy.stats.t.ppf(0.975, 2) * se
  mean, low, high = _interval(_cell(row, 'difference [95 % CI]'))
  assert mean == pytest.approx(100 * diff.mean(), abs=0.05)
  assert (low, high) == pytest.approx(
      (100 * (diff.mean() - half), 100 * (diff.mean() + half)), abs=0.05
  )
  p = 2 * scipy.stats.t.sf(abs(diff.mean() / se), 2)
  assert float(_cell(row, 'p')) == pytest.approx(p, rel=0.05)
  assert _cell(row, 'verdict') == 'no significant difference'
  assert 'corrected resampled t' in _cell(row, 'test')


@pytest.mark.parametrize(
    'pairs, context, better, verdict, test',
    [
        ([(0.9, 0.9), (0.8, 0.9)], None, '0 of 2 (1 tied)', 'no test', 'sizes unknown'),
        ([(0.9, 0.8)], None, '1 of 1', 'no test', 'n = 1'),
        (
            [(0.9, 0.8), (0.91, 0.8), (0.9, 0.81), (0.92, 0.8), (0.9, 0.8)],
            {'wine': {'config': {'data': {'num_train': 900, 'num_test': 100}}}},
            '5 of 5',
            'better',
            'J = 5, n_test/n_train = 0.111',
        ),
    ],
)
def test_paired_difference_rows(pairs, context, better, verdict, test):
  (row,) = _markdown_rows(paired.paired_differences(_rows('wine', pairs), context))
  assert _cell(row, 'NTK-ECRN better') == better
  assert _cell(row, 'verdict') == verdict and test in _cell(row, 'test')
  if len(pairs) == 1:
    assert _cell(row, 'n') == 'n = 1' and '[' not in _cell(row, 'difference [95 % CI]')


def test_one_seed_cells_say_n_1():
  assert tables.format_value('accuracy', 0.475, 0.0, 1) == '47.5 (n = 1)'
  assert tables.format_value('cross_entropy', 1.42, 0.0, 1) == '1.420 (n = 1)'
  assert tables.format_value('accuracy', 0.475, 0.004, 5) == '47.5 ± 0.4'
  summary = {('cifar10', 'resnet18', 'accuracy'): {'mean': 0.475, 'std': 0.0, 'n': 1}}
  (row,) = tables.build_table(summary, 'IV')[1]
  assert '47.5 (n = 1)' in row and not any('± 0.0' in c for c in row)


def test_report_on_smoke_run_has_tests_and_predictions(workdir, tmp_path):
  """Every unit has predictions.npz (and no search trial has one) and it agrees with its
  result; the report gives a CI, a test and a verdict per paired row."""
  units = _results(workdir)['units']
  for unit in units:
    examples = files.load_npz(
        os.path.join(workdir, f'seed_{unit["seed"]}', unit['model'], evaluation.PREDICTIONS_FILE)
    )
    assert examples is not None and examples['correct'].dtype == bool
    assert examples['correct'].mean() == pytest.approx(unit['test']['accuracy'])
    assert len(examples['targets']) == unit['dataset']['num_test']
    if unit['test']['cross_entropy'] is not None:
      assert examples['nll'].mean() == pytest.approx(unit['test']['cross_entropy'], rel=1e-9)
  for root, _, names in os.walk(os.path.join(workdir, 'search')):
    assert evaluation.PREDICTIONS_FILE not in names, root
  paths = report.write_report([workdir], str(tmp_path), 'II')
  with open(paths['markdown']) as f:
    text = f.read()
  paired = _markdown_rows(text[text.index('### Paired') :])
  others = {u['model'] for u in units} - {'ntk_ecrn'}
  assert len(paired) == 2 * len(others)
  for row in paired:
    assert _cell(row, 'n') == '2' and '[' in _cell(row, 'difference [95 % CI]')
    assert 'corrected resampled t, J = 2, n_test/n_train = 0.25' in _cell(row, 'test')
    assert _cell(row, 'verdict') in ('better', 'worse', 'no significant difference')
  assert 'One rule for every row' in text


def _fixed_test_set_workdir(directory, model_accuracy, seeds=(0, 1), m=400, targets_seed=0):
  """A CIFAR-like workdir (one fixed test set, targets drawn from `targets_seed`) written by
  hand: per model and seed, M independent correct/incorrect draws with the model's accuracy
  and the unit's result. Returns {(model, seed): correct (M,)}."""
  targets = np.random.default_rng(targets_seed).integers(0, 10, m)
  rng = np.random.default_rng(len(model_accuracy))
  data = {'name': 'cifar10', 'train_split': 'train[:64]', 'test_split': f'test[:{m}]'}
  units, correct = [], {}
  for seed in seeds:
    for model, accuracy in model_accuracy.items():
      right = rng.random(m) < accuracy
      correct[(model, seed)] = right
      predicted = np.where(right, targets, (targets + 1) % 10)
      unit_dir = os.path.join(directory, f'seed_{seed}', model)
      os.makedirs(unit_dir, exist_ok=True)
      evaluation.save_predictions(
          unit_dir, evaluation.classification_examples(None, np.eye(10)[predicted], targets)
      )
      record = {'name': 'cifar10', 'task': 'classification', 'num_train': 64, 'num_test': m}
      units.append(
          dict(seed=seed, model=model, test={'accuracy': float(right.mean())}, dataset=record)
      )
  config = {'name': 'c', 'config': {'seeds': list(seeds), 'data': data}}
  files.write_json(os.path.join(directory, 'config.json'), config)
  files.write_json(os.path.join(directory, 'results.json'), {'complete': True, 'units': units})
  return correct


def _by_other(text):
  return {_cell(r, 'NTK-ECRN −'): r for r in _markdown_rows(text)}


def test_fixed_test_set_uses_the_test_examples(tmp_path):
  workdir = str(tmp_path / 'cifar')
  correct = _fixed_test_set_workdir(workdir, {'ntk_ecrn': 0.45, 'mlp': 0.35, 'standard_ntk': 0.45})
  rows, context = report.results_rows(workdir), report.workdir_context([workdir])
  table = _by_other(paired.paired_differences(rows, context))
  for other, label in (('mlp', 'MLP (3×512)'), ('standard_ntk', 'Standard NTK')):
    row = table[label]
    assert _cell(row, 'test') == 'paired bootstrap, 400 test examples × 2 seeds'
    ours, theirs = [correct[('ntk_ecrn', s)] for s in (0, 1)], [correct[(other, s)] for s in (0, 1)]
    mcnemar = [
        scipy.stats.binomtest(int(np.sum(a & ~b)), int(np.sum(a != b))).pvalue
        for a, b in zip(ours, theirs)
    ]
    assert _cell(row, 'McNemar p by seed') == ', '.join(paired._p(p) for p in mcnemar)
    mean, low, high = _interval(_cell(row, 'difference [95 % CI]'))
    d = np.mean([a * 1.0 - b for a, b in zip(ours, theirs)], axis=0)  # (M,) mean over seeds
    assert mean == pytest.approx(100 * d.mean(), abs=0.05)
    # The half-width against the normal approximation of a mean of 400 differences.
    assert (high - low) / 2 == pytest.approx(100 * 1.96 * d.std() / np.sqrt(400), rel=0.15)
    expected = 'better' if low > 0 else 'worse' if high < 0 else 'no significant difference'
    assert _cell(row, 'verdict') == expected
  assert _cell(table['MLP (3×512)'], 'verdict') == 'better'  # 10 points on 400 images × 2
  # A unit without predictions.npz (a workdir from before them): said, and no test.
  os.remove(os.path.join(workdir, 'seed_1', 'mlp', evaluation.PREDICTIONS_FILE))
  text = paired.paired_differences(rows, context)
  row = _by_other(text)['MLP (3×512)']
  assert 'per-example predictions missing (seed_1/mlp)' in _cell(row, 'test')
  assert _cell(row, 'verdict') == 'no test' and 'Per-example predictions missing' in text


def test_fixed_test_set_across_workdirs(tmp_path):
  """ResNet-18 in a workdir of its own (as the CIFAR runs): rows that carry their 'workdir'
  find each unit's predictions.npz; test targets that differ fall back to the t-test."""
  main, extra = str(tmp_path / 'main'), str(tmp_path / 'extra')
  _fixed_test_set_workdir(main, {'ntk_ecrn': 0.6, 'mlp': 0.4}, seeds=(0, 1))
  _fixed_test_set_workdir(extra, {'resnet18': 0.2}, seeds=(0,))
  rows = [dict(r, workdir=w) for w in (main, extra) for r in report.results_rows(w)]
  context = report.workdir_context([main, extra])
  resnet = _by_other(paired.paired_differences(rows, context))['ResNet-18']
  assert _cell(resnet, 'n') == 'n = 1' and 'paired bootstrap' in _cell(resnet, 'test')
  assert _cell(resnet, 'verdict') == 'better'  # 60 % vs 20 % on 400 images
  _fixed_test_set_workdir(extra, {'resnet18': 0.2}, seeds=(0,), targets_seed=1)
  resnet = _by_other(paired.paired_differences(rows, context))['ResNet-18']
  assert 'test targets differ' in _cell(resnet, 'test') and _cell(resnet, 'verdict') == 'no test'


def test_grid_positions_place_every_selected_value_on_its_axis():
  entry = {
      'axes': {
          'train.learning_rate': {
              'values': [1e-4, 1e-3, 1e-2],
              'selected': 1e-2,
              'edge': None,  # extended once beyond 1e-2, not better: no longer on an edge
              'extension': {'trial': 5, 'value': 1e-1, 'side': 'upper'},
          },
          'ecrn.drop_rate': {
              'values': [0.1, 0.0],
              'selected': 0.0,
              'edge': 'lower',
              'extension': {'not_run': 'nothing below a lower edge of 0'},
          },
          'resnet18.augment': {'values': [True, False], 'selected': False, 'edge': None},
      }
  }
  assert search_tables.grid_positions(entry) == [
      'train.learning_rate = 0.01 (3/4)',
      '**ecrn.drop_rate = 0 (1/2)**',
      'resnet18.augment = False (2/2)',
  ]
  row = search_tables.search_table({'seeds': {'0': {'models': {'mlp': entry}}}})
  assert '(3/4)' in row and 'Grid position' in row


def test_trials_table_lists_every_trial_with_its_swept_value_and_both_scores():
  entry = {
      'selected_trial': 1,
      'trials': [
          {
              'phase': 'start',
              'point': {'train.learning_rate': 1e-3, 'ecrn.alpha': 1.0},
              'validation': {'accuracy': 0.5},
              'train': {'accuracy': 0.6},
              'seconds': 2.0,
          },
          {
              'phase': 'round 1: ecrn.alpha',
              'point': {'train.learning_rate': 1e-3, 'ecrn.alpha': 0.5},
              'validation': {'accuracy': 0.75},
              'train': {'accuracy': 0.9},
              'seconds': 3.0,
          },
      ],
  }
  text = search_tables.trials_table(
      {'seeds': {'0': {'models': {'ntk_ecrn': entry, 'mlp': entry}}}}, ['ntk_ecrn']
  )
  rows = [line for line in text.splitlines() if line.startswith('| 0') or line.startswith('| 1')]
  assert len(rows) == 2 and 'MLP' not in text
  assert 'train.learning_rate = 0.001, ecrn.alpha = 1 ' in rows[0] and 'accuracy = 50.0%' in rows[0]
  assert '**ecrn.alpha = 0.5** (selected)' in rows[1] and 'learning_rate' not in rows[1]
  assert 'accuracy = 75.0%' in rows[1] and 'accuracy = 90.0%' in rows[1]


def test_a_workdir_can_give_only_some_of_its_models(workdir, tmp_path):
  assert report.parse_workdir('runs/a') == ('runs/a', None)
  assert report.parse_workdir('runs/a@resnet18+mlp') == ('runs/a', ('resnet18', 'mlp'))
  assert report.parse_workdir('runs/x@y/b') == ('runs/x@y/b', None)  # an @ inside a path
  with pytest.raises(ValueError, match='no model after @'):
    report.parse_workdir('runs/a@')
  paths = report.write_report([f'{workdir}@mlp+ntk_ecrn'], str(tmp_path), 'II')
  with open(paths['csv']) as f:
    assert {row['model'] for row in csv.DictReader(f)} == {'mlp', 'ntk_ecrn'}
  with open(paths['markdown']) as f:
    labels = [_cell(r, 'Model') for r in _markdown_rows(f.read())]
  assert labels == [LABELS['mlp'], LABELS['ntk_ecrn']]


@pytest.mark.parametrize('content', ['null', '{}', '[1, 2]'])
def test_a_results_json_without_units_is_named(tmp_path, content):
  (tmp_path / 'results.json').write_text(content)
  with pytest.raises(ValueError, match=r"results\.json holds no 'units'"):
    report.load_workdir(str(tmp_path))
  with pytest.raises(FileNotFoundError, match='has no results.json'):
    report.load_workdir(str(tmp_path / 'missing'))
