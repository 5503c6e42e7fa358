# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""experiments.report and experiments.plots on a real two-seed Iris smoke run (the shared
`iris_smoke_workdir` of conftest.py)."""

import csv
import json
import os
import shutil

import numpy as np
import pytest

from experiments import plots
from experiments import report
from experiments import tables

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
PAPER_ORDER = ('mlp', 'resnet18', 'standard_ntk', 'ntk_ecrn', 'ntk_ecrn_infinite')
LABELS = {
    'mlp': 'MLP (3×32)',
    'resnet18': 'ResNet-18 (residual MLP stand-in)',
    'standard_ntk': 'Standard NTK',
    'ntk_ecrn': 'NTK-ECRN',
    'ntk_ecrn_infinite': 'NTK-ECRN infinite twin',
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
  checks = {(d, m): holds for d, m, holds, _ in tables.claim_checks(summary)}
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
    plots.plot_kernel_evolution(copy, str(tmp_path / 'k.png'))
  paths = plots.make_figures(copy, str(tmp_path / 'figs'))
  assert [os.path.basename(p) for p in paths] == ['learning_curves.png']


def test_import_defines_no_flags():
  from absl import flags  # pylint: disable=g-import-not-at-top

  assert 'workdirs' not in flags.FLAGS and 'table' not in flags.FLAGS


def test_ablation_variant_labels():
  assert tables.model_label('ntk_ecrn_sigma_ff_x0p25') == 'NTK-ECRN, σ_ff = 0.25/(2π√d)'
  assert tables.model_label('ntk_ecrn_no_fourier') == 'NTK-ECRN without Fourier features'
  assert tables.model_label('resnet18', 'iris') == 'ResNet-18 (residual MLP stand-in)'
  assert tables.model_label('resnet18', 'cifar10') == 'ResNet-18'


def test_paired_differences_are_per_seed():
  rows = []
  for seed, (ours, mlp) in enumerate([(0.9, 0.8), (0.7, 0.75), (0.8, 0.6)]):
    for model, value in (('ntk_ecrn', ours), ('mlp', mlp)):
      rows.append(
          dict(
              config='x',
              dataset='iris',
              model=model,
              seed=seed,
              split='test',
              metric='accuracy',
              value=value,
          )
      )
  rows.append(
      dict(
          config='x',
          dataset='iris',
          model='mlp',
          seed=7,
          split='test',
          metric='accuracy',
          value=0.0,
      )
  )  # no NTK-ECRN on seed 7: not paired
  table = _markdown_rows(tables.paired_differences(rows))
  (row,) = table
  diff = 100 * np.array([0.1, -0.05, 0.2])
  assert _cell(row, 'NTK-ECRN better') == '2 of 3'
  mean, std = (float(v) for v in _cell(row, 'mean ± std over seeds').split('±'))
  assert mean == pytest.approx(diff.mean(), abs=1e-3) and std == pytest.approx(diff.std(), abs=1e-3)


def test_paired_differences_count_ties():
  rows = [
      dict(config='x', dataset='wine', model=m, seed=s, split='test', metric='accuracy', value=v)
      for s, pair in enumerate([(0.9, 0.9), (0.8, 0.9)])
      for m, v in zip(('ntk_ecrn', 'mlp'), pair)
  ]
  (row,) = _markdown_rows(tables.paired_differences(rows))
  assert _cell(row, 'NTK-ECRN better') == '0 of 2 (1 tied)'
