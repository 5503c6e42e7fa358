# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Tests of experiments/plots.py: which curves, axes and titles each figure gets.

Fake workdirs laid out as a run writes them (config.json, results.json, metrics.jsonl and
seed_<s>/<model>/tracking/tracking.npz or tracking.jsonl); the figures' axes are checked, never
their pixels.
"""

import json
import os

import numpy as np
import pytest

from experiments import kernel_growth
from experiments import paper
from experiments import plots
from experiments import tables

EPOCHS = np.arange(0, 11, 2)
# model → (λ_max(Θ_0), scale of ‖Θ_t − Θ_0‖_F, relative change at the end): ResNet-18's kernel
# moves ~1,000× more than the others, its relative change only ~2×.
FAKE_MODELS = {
    'ntk_ecrn': (50.0, 1.0, 0.02),
    'mlp': (40.0, 2.0, 0.03),
    'resnet18': (60.0, 1500.0, 0.05),
}
SEEDS = (0, 1)


def _records(model: str, seed: int, epochs=EPOCHS) -> dict:
  lam0, scale, relative = FAKE_MODELS[model]
  t = epochs / epochs[-1]
  growth = t * (1 + 0.1 * seed)
  return {
      'epoch': epochs,
      'lambda_max': lam0 * (1 + 0.5 * growth),
      'delta_frobenius': scale * growth,
      'relative_delta_frobenius': relative * growth,
      'top_eigenvalues': lam0 * (1 + 0.5 * growth)[:, None] / np.arange(1, 5),
  }


def _write_tracking(directory: str, records: dict, as_jsonl: bool) -> None:
  os.makedirs(directory)
  if not as_jsonl:
    np.savez(os.path.join(directory, 'tracking.npz'), **records)
    return
  with open(os.path.join(directory, 'tracking.jsonl'), 'w') as f:
    for i in range(len(records['epoch'])):
      f.write(json.dumps({k: np.asarray(v[i]).tolist() for k, v in records.items()}) + '\n')


def _unit(model: str, seed: int, dataset: str, epochs=None) -> dict:
  unit = {
      'seed': seed,
      'model': model,
      'kind': 'trained network',
      'test': {'accuracy': 0.5},
      'tracking': {'mode': 'dense', 'files': f'seed_{seed}/{model}/tracking'},
      'dataset': {'name': dataset},
  }
  if epochs is not None:  # as a run writes it: the TrainConfig the unit trained with
    unit['train_config'] = {'optimizer': 'adam', 'epochs': int(epochs)}
  return unit


def make_workdir(
    path, name='cifar_subset', data=None, models=tuple(FAKE_MODELS), epochs=None, seeds=SEEDS
) -> str:
  """A finished run's workdir at `path`: three tracked models (ResNet-18 read from jsonl).

  `epochs`: {(model, seed): tracked epochs, the last the schedule's end}, recorded as the
  unit's train_config.epochs; else EPOCHS and no train_config (an older results.json).
  """
  data = data or {
      'name': 'cifar10',
      'source': 'npz',
      'train_npz': '/x/train.npz',
      'train_split': 'train[:5000]',
      'test_split': 'test',
  }
  config = {'data': data, 'mlp': {'hidden_widths': [512, 512, 512]}, 'seeds': list(seeds)}
  units, metrics = [], []
  for seed in seeds:
    for model in models:
      tracked = EPOCHS if epochs is None else epochs[model, seed]
      records = _records(model, seed, tracked)
      directory = os.path.join(path, f'seed_{seed}', model, 'tracking')
      _write_tracking(directory, records, as_jsonl=model == 'resnet18')
      units.append(_unit(model, seed, data['name'], None if epochs is None else tracked[-1]))
      for epoch in tracked[1:]:
        loss = FAKE_MODELS[model][0] / (epoch + 1)
        metrics.append({'seed': seed, 'model': model, 'epoch': int(epoch), 'train_loss': loss})
  units.append({'seed': 0, 'model': 'standard_ntk', 'kind': 'kernel regression'})
  with open(os.path.join(path, 'config.json'), 'w') as f:
    json.dump({'name': name, 'config': config}, f)
  with open(os.path.join(path, 'results.json'), 'w') as f:
    json.dump({'complete': True, 'units': units}, f)
  with open(os.path.join(path, 'metrics.jsonl'), 'w') as f:
    f.write(''.join(json.dumps(m) + '\n' for m in metrics))
  return str(path)


@pytest.fixture(name='workdir')
def _workdir(tmp_path):
  return make_workdir(tmp_path / 'cifar_subset_gpu')


def _labels(model):
  return f'{tables.model_label(model, "cifar10", {"mlp": {"hidden_widths": [512] * 3}})} (n=2)'


def _title(fig) -> str:
  """The figure's title on one line (it is wrapped to the figure's width)."""
  return ' '.join(fig._suptitle.get_text().split())  # pylint: disable=protected-access


def _styles(ax) -> set:
  return {(line.get_color(), line.get_linestyle(), line.get_marker()) for line in ax.get_lines()}


def test_log_axis_rule():
  assert not plots.needs_log_axis([np.array([0.0, 1.0]), np.array([0.0, 99.0])])
  assert plots.needs_log_axis([np.array([0.0, 1.0]), np.array([0.0, 101.0])])
  assert not plots.needs_log_axis([np.array([0.0, 1e6])])  # one curve: nothing to flatten
  # Curves with no positive value do not count.
  assert not plots.needs_log_axis([np.array([0.0, 1.0]), np.array([-1e6, 0.0]), np.zeros(3)])
  assert plots.needs_log_axis([np.array([1.0]), np.array([2.0])], spread=1.5)


def test_kernel_evolution_draws_every_tracked_model(workdir):
  fig = plots.kernel_evolution_figure(workdir)
  lam, change, relative = fig.axes[:3]
  expected = sorted(_labels(m) for m in FAKE_MODELS)
  for ax in (lam, change, relative):
    assert len(ax.get_lines()) == 3
    assert sorted(ax.get_legend_handles_labels()[1]) == expected
    assert len(_styles(ax)) == 3  # distinct color, line style and marker per model
  assert 'ResNet-18 (n=2)' in expected and 'MLP (3×512) (n=2)' in expected
  # λ_max always log; the kernel change spans 1,000× (log); the relative change 2.5× (linear).
  assert [ax.get_yscale() for ax in (lam, change, relative)] == ['log', 'log', 'linear']
  # On the log panel Θ_0 − Θ_0 = 0 is left out; the linear panel keeps it.
  assert all(len(line.get_ydata()) == len(EPOCHS) - 1 for line in change.get_lines())
  assert all(min(line.get_ydata()) > 0 for line in change.get_lines())
  assert all(len(line.get_ydata()) == len(EPOCHS) for line in relative.get_lines())
  title = _title(fig)
  assert 'CIFAR-10 subset' in title and 'train_split = train[:5000]' in title
  assert 'config cifar_subset' in title and 'workdir cifar_subset_gpu' in title
  assert 'npz' not in title  # where the data live does not tell runs apart


def test_same_model_same_style_in_every_figure(workdir):
  evolution = plots.kernel_evolution_figure(workdir)
  curves = plots.learning_curves_figure(workdir)
  style = lambda ax: {
      label: (line.get_color(), line.get_linestyle(), line.get_marker())
      for line, label in zip(*ax.get_legend_handles_labels())
  }
  assert style(evolution.axes[0]) == style(curves.axes[0])
  assert len(curves.axes[0].get_lines()) == 3 and curves.axes[0].get_yscale() == 'log'
  assert 'Learning curves' in _title(curves) and 'workdir cifar_subset_gpu' in _title(curves)


def test_linear_kernel_change_when_curves_are_close(tmp_path):
  workdir = make_workdir(tmp_path / 'w', models=('ntk_ecrn', 'mlp'))
  fig = plots.kernel_evolution_figure(workdir)
  assert [ax.get_yscale() for ax in fig.axes[:3]] == ['log', 'linear', 'linear']
  assert len(fig.axes[1].get_lines()) == 2
  only = plots.kernel_evolution_figure(workdir, models=('mlp',))
  assert [len(ax.get_lines()) for ax in only.axes[:3]] == [1, 1, 1]


def test_spectra_one_panel_per_tracked_model(workdir):
  fig = plots.spectra_figure(workdir)
  visible = [ax for ax in fig.axes if ax.get_visible()]
  assert sorted(ax.get_title() for ax in visible) == sorted(_labels(m) for m in FAKE_MODELS)
  assert all(ax.get_yscale() == 'log' for ax in visible)
  assert 'NTK spectrum' in _title(fig) and 'config cifar_subset' in _title(fig)


def test_synthetic_runs_get_their_own_titles(tmp_path):
  """The three synthetic-regression figures of Section VI: one config name, three runs."""
  data = {'name': 'synthetic_regression', 'frequency_scale': 0.25, 'num_train': 1000}
  runs = {
      'synthetic_regression': 0.25,
      'synthetic_regression_f0.1': 0.1,
      'ablations_f0.1': 0.1,
  }
  titles = {}
  for directory, s in runs.items():
    (tmp_path / directory).mkdir()
    workdir = make_workdir(
        tmp_path / directory, 'synthetic_regression', dict(data, frequency_scale=s)
    )
    titles[directory] = _title(plots.kernel_evolution_figure(workdir))
    assert f's = {s:g}' in titles[directory] and 'Synthetic regression' in titles[directory]
    assert 'config synthetic_regression' in titles[directory]
    assert 'num_train' not in titles[directory]  # the default 1,000
  assert 'workdir' not in titles['synthetic_regression']  # the workdir is named like the config
  assert 'workdir ablations_f0.1' in titles['ablations_f0.1']
  assert len(set(titles.values())) == 3
  smoke = plots.data_settings(dict(data, num_train=64, data_dir='/data'))
  assert smoke == ['s = 0.25', 'num_train = 64']


def test_make_figures_titles_the_numbers_too(workdir, tmp_path):
  paths = plots.make_figures(workdir, str(tmp_path / 'figures'))
  assert sorted(os.path.basename(p) for p in paths) == [
      'kernel_evolution.png',
      'kernel_growth.md',
      'learning_curves.png',
      'spectra.png',
  ]
  with open(paths[-1]) as f:
    heading = f.readline()
  assert heading.startswith('## Kernel evolution in numbers: CIFAR-10 subset')
  assert 'workdir cifar_subset_gpu' in heading


def _schedules(ecrn_seed1_epochs=25):
  """NTK-ECRN tracked every 5 of its 25 epochs (seed 1: `ecrn_seed1_epochs`), the MLP 50."""
  epochs = {('mlp', s): np.arange(0, 51, 5) for s in SEEDS}
  epochs['ntk_ecrn', 0] = np.arange(0, 26, 5)
  epochs['ntk_ecrn', 1] = np.append(np.arange(0, ecrn_seed1_epochs, 5), ecrn_seed1_epochs)
  return epochs


def test_kernel_change_at_equal_fractions_of_each_schedule(tmp_path):
  """NTK-ECRN trained 25 epochs, the MLP 50: both end at 1.0 (their schedules' ends)."""
  workdir = make_workdir(tmp_path / 'w', models=('ntk_ecrn', 'mlp'), epochs=_schedules())
  fig = plots.kernel_evolution_figure(workdir)
  label = "fraction of each network's training schedule (epoch / its epochs)"
  assert [ax.get_xlabel() for ax in fig.axes[:3]] == [label] * 3
  assert "equal fractions of each network's own schedule" in _title(fig)
  for ax in fig.axes[:3]:
    ends = [line.get_xdata()[-1] for line in ax.get_lines()]
    assert ends == pytest.approx([1.0, 1.0])
  relative = {
      line.get_label(): (line.get_xdata(), line.get_ydata()) for line in fig.axes[2].get_lines()
  }
  x, y = relative[_labels('ntk_ecrn')]
  assert x == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
  # The fake change grows linearly to relative × (1 + 0.1 seed) at each schedule's end.
  assert y[-1] == pytest.approx(FAKE_MODELS['ntk_ecrn'][2] * 1.05)
  x, _ = relative[_labels('mlp')]
  assert x == pytest.approx(np.arange(0, 51, 5) / 50)
  by_epoch = plots.kernel_evolution_figure(workdir, x_axis='epoch')
  assert by_epoch.axes[0].get_xlabel() == 'epoch' and 'equal epochs' in _title(by_epoch)
  ends = {l.get_label(): l.get_xdata()[-1] for l in by_epoch.axes[0].get_lines()}
  assert ends == {_labels('ntk_ecrn'): 25, _labels('mlp'): 50}
  with pytest.raises(ValueError, match='x_axis'):
    plots.kernel_evolution_figure(workdir, x_axis='step')


def test_seeds_with_different_schedules_are_interpolated(tmp_path):
  """Seed 1's NTK-ECRN trained 30 epochs: its fractions 0, 1/6, …, 1 and seed 0's 0, 0.2, …
  are merged; the mean at each is of both seeds' curves interpolated there."""
  workdir = make_workdir(tmp_path / 'w', models=('ntk_ecrn', 'mlp'), epochs=_schedules(30))
  fig = plots.kernel_evolution_figure(workdir, models=('ntk_ecrn',))
  (line,) = fig.axes[2].get_lines()
  expected = np.union1d(np.arange(0, 26, 5) / 25, np.arange(0, 31, 5) / 30)
  assert line.get_xdata() == pytest.approx(expected)
  # Both seeds' fake curves are linear in the fraction: relative × (1 + 0.1 seed) × fraction.
  assert line.get_ydata() == pytest.approx(FAKE_MODELS['ntk_ecrn'][2] * 1.05 * expected)


def test_growth_note_says_which_comparison(tmp_path):
  workdir = make_workdir(tmp_path / 'w', models=('ntk_ecrn', 'mlp'), epochs=_schedules())
  for x_axis, says in (('fraction', 'equal fractions'), ('epoch', 'equal epochs')):
    out = tmp_path / x_axis
    plots.make_figures(workdir, str(out), x_axis=x_axis)
    text = (out / 'kernel_growth.md').read_text()
    assert says in text and 'Θ_T is each network' in text
  header, *rows = [l for l in text.splitlines() if l.startswith('| ')]
  assert header.endswith('| epochs | n |')
  rows = {row.split(' | ')[0][2:]: row for row in rows}
  assert rows['NTK-ECRN'].endswith('| 25 ± 0 | 2 |')
  assert rows['MLP (3×512)'].endswith('| 50 ± 0 | 2 |')
  # Without train_config (an older results.json): the schedule ends at the last record.
  assert '| 10 ± 0 | 2 |' in kernel_growth.kernel_growth_table(make_workdir(tmp_path / 'old'))


def test_one_seed_is_shown_without_a_spread(tmp_path):
  """One seed has no std: its values alone (n = 1), and the figures say 'one seed'."""
  workdir = make_workdir(tmp_path / 'w', seeds=(0,))
  rows = [l for l in kernel_growth.kernel_growth_table(workdir).splitlines()[2:] if l]
  assert len(rows) == len(FAKE_MODELS)
  assert all('±' not in row and row.endswith('| 10 | 1 |') for row in rows)
  for figure in (plots.kernel_evolution_figure, plots.learning_curves_figure):
    title = figure(workdir)._suptitle.get_text()
    assert 'one seed' in title and 'over seeds' not in title
  two = plots.kernel_evolution_figure(make_workdir(tmp_path / 'two'))._suptitle.get_text()
  assert 'mean ± std over seeds' in two
