# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Figures from an experiment workdir: the paper's Fig. 2 (kernel evolution) and companions.

`python -m experiments.plots --workdir=DIR --out=DIR [--x_axis=epoch]` writes, of the
kernel-tracked units, kernel_evolution.png (Fig. 2), spectra.png and kernel_growth.md, and
learning_curves.png from metrics.jsonl: means over seeds with a ±std band.
"""

from __future__ import annotations

import os
import textwrap
from typing import Optional, Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np

from ecrn_jax import files
from experiments import kernel_growth
from experiments import paper
from experiments import report
from experiments.configs import common

# A panel's y axis is logarithmic when its curves' positive maxima span more than LOG_SPREAD×
# (λ_max, the spectra and the training losses always are).
LOG_SPREAD = 100.0
# Fig. 2's x axes: (x label, what the title says is compared). By default the fraction of each
# network's schedule, so networks trained for different epochs meet at equal fractions.
X_AXES = {
    'fraction': (
        "fraction of each network's training schedule (epoch / its epochs)",
        "at equal fractions of each network's own schedule",
    ),
    'epoch': ('epoch', 'at equal epochs (schedules of different lengths)'),
}
# Titles show the dataset's fields here always, the other data fields off their default
# (configs/common.py data_config), never those saying where the data live.
_TITLE_FIELDS = {'synthetic_regression': ('frequency_scale',), 'cifar10': ('train_split',)}
_TITLE_SYMBOLS = {'frequency_scale': 's'}
_TITLE_HIDDEN = ('name', 'data_dir', 'source', 'train_npz', 'test_npz', 'csv_path')
_LINESTYLES, _MARKERS = ('-', '--', '-.', ':'), ('o', 's', '^', 'D', 'v', 'P', 'X', '*')
# The spectra's two curves: (record, label, fmt, color).
_SPECTRUM_ENDS = ((0, 'initialization', '--o', 'tab:gray'), (-1, 'end', '-o', 'tab:red'))
# Fig. 2's panels: (field, y label, title, log: True always, None by the LOG_SPREAD rule).
_RELATIVE_CHANGE = r'$\|\Theta_t - \Theta_0\|_F \,/\, \|\Theta_0\|_F$'
_EVOLUTION_PANELS = (
    ('lambda_max', r'$\lambda_{\max}(\Theta_t)$', 'Largest NTK eigenvalue', True),
    ('delta_frobenius', r'$\|\Theta_t - \Theta_0\|_F$', 'Kernel change', None),
    ('relative_delta_frobenius', _RELATIVE_CHANGE, 'Relative kernel change', None),
)


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  return plt


def needs_log_axis(curves: Sequence[np.ndarray], spread: float = LOG_SPREAD) -> bool:
  """Whether the curves' positive maxima span more than `spread` (the LOG_SPREAD rule)."""
  maxima = [float(np.max(c)) for c in curves if len(c) and np.max(c) > 0]
  return len(maxima) > 1 and max(maxima) > spread * min(maxima)


def _format(value) -> str:
  if isinstance(value, float):
    return f'{value:g}'
  if isinstance(value, (list, tuple)):
    return '(' + ', '.join(_format(v) for v in value) + ')'
  return str(value)


def data_settings(data: dict) -> list[str]:
  """'s = 0.1', 'num_train = 64', ...: the data fields of a run's config that tell it apart."""
  name = data.get('name')
  always = [f for f in _TITLE_FIELDS.get(name, ()) if f in data]
  differ = []
  if name in common.DATASET_NAMES:  # else (not a dataset of this version): `always` only
    defaults = files.jsonable(common.data_config(name).to_dict())
    shown = lambda f: f not in always and f not in _TITLE_HIDDEN and defaults.get(f) != data[f]
    differ = sorted(filter(shown, data))
  return [f'{_TITLE_SYMBOLS.get(f, f)} = {_format(data[f])}' for f in always + differ]


def run_title(workdir: str) -> str:
  """'Synthetic regression, s = 0.1 (config synthetic_regression, workdir ablations_f0.1)'."""
  loaded, dataset, config = kernel_growth.run_info(workdir)
  name = report.config_name(loaded, workdir)
  label = paper.DATASET_LABELS.get(dataset, dataset or name)
  where = os.path.basename(os.path.normpath(workdir))
  run = f'config {name}' + (f', workdir {where}' if where != name else '')
  return f'{", ".join([label] + data_settings(config.get("data") or {}))} ({run})'


def _labels_and_styles(workdir: str, models: Sequence[str]):
  """(model → legend label, model → style): distinct plot keywords (color, linestyle, marker) by
  position in paper order, a model's style the same in every figure of a run."""
  loaded, dataset, config = kernel_growth.run_info(workdir)
  units = loaded['results']['units']
  drawn = {u['model'] for u in units if u.get('kind') == 'trained network' or u.get('tracking')}
  cmap, ordered = _pyplot().get_cmap('tab10'), enumerate(paper.order_models(drawn | set(models)))
  style = lambda i: dict(color=cmap(i % 10), linestyle=_LINESTYLES[i % 4], marker=_MARKERS[i % 8])
  label = lambda model: paper.model_label(model, dataset, config)
  return label, {m: style(i) for i, m in ordered}


def _suptitle(fig, what: str, workdir: str) -> None:
  width = max(40, int(fig.get_figwidth() * 12))
  fig.suptitle(f'{what}\n' + textwrap.fill(run_title(workdir), width), fontsize=11)


def _spread(per_model: dict) -> str:
  """What a figure's bands are: 'mean ± std over seeds', or 'one seed' when each has one."""
  one = all(len(per_seed) == 1 for per_seed in per_model.values())
  return 'one seed' if one else 'mean ± std over seeds'


def _mean_band(per_seed: dict[int, tuple[np.ndarray, np.ndarray]], interpolate: bool = False):
  """x, mean, std, n over seeds on the x values every seed has; `interpolate`: on the union of
  the seeds' x values within the range they share, each seed linearly interpolated."""
  pairs = per_seed.values()
  if interpolate:
    low, high = max(float(sx.min()) for sx, _ in pairs), min(float(sx.max()) for sx, _ in pairs)
    x = np.unique(np.concatenate([sx for sx, _ in pairs]))
    x = x[(x >= low) & (x <= high)]
    ys = np.stack([np.interp(x, sx, sy) for sx, sy in pairs])
  else:
    x = np.asarray(sorted(set.intersection(*(set(sx.tolist()) for sx, _ in pairs))))
    ys = [dict(zip(sx.tolist(), sy.tolist())) for sx, sy in pairs]
    ys = np.stack([np.asarray([y[v] for v in x]) for y in ys])
  return x, ys.mean(0), ys.std(0), len(per_seed)


def _x_axis(x_axis: str) -> tuple[str, str]:
  """X_AXES[x_axis]: (x label, what is compared); ValueError for an unknown axis."""
  if x_axis not in X_AXES:
    raise ValueError(f'x_axis must be one of {list(X_AXES)}, got {x_axis!r}.')
  return X_AXES[x_axis]


def _curves(per_model: dict, field: str, x_axis: str) -> list[tuple]:
  """[(model, x, mean, std, n)] of `field` against `x_axis`, for the models that record it."""
  schedule = lambda r: 1.0 if x_axis == 'epoch' else max(float(r['schedule_epochs']), 1.0)
  recorded = {
      m: {s: (r['epoch'] / schedule(r), r[field]) for s, r in seeds.items() if field in r}
      for m, seeds in per_model.items()
  }
  return [(m, *_mean_band(p, interpolate=x_axis == 'fraction')) for m, p in recorded.items() if p]


def _draw(ax, curves: list[tuple], styles: dict, label, log: Optional[bool] = None) -> None:
  """Mean ± std bands of `curves`; log None: by the LOG_SPREAD rule. On a log axis the points
  whose mean is not positive (Θ_0 − Θ_0 = 0) are left out."""
  if log is None:
    log = needs_log_axis([mean for _, _, mean, _, _ in curves])
  for model, x, mean, std, n in curves:
    keep = mean > 0 if log else np.ones(len(mean), bool)
    x, mean, std, style = x[keep], mean[keep], std[keep], styles[model]
    line = dict(label=f'{label(model)} (n={n})', lw=1.8, ms=4, markevery=max(1, len(x) // 10))
    ax.plot(x, mean, **line, **style)
    ax.fill_between(x, mean - std, mean + std, color=style['color'], alpha=0.2, lw=0)
  if log:
    ax.set_yscale('log')


def kernel_evolution_figure(workdir: str, models: Optional[Sequence] = None, x_axis='fraction'):
  """Fig. 2: λ_max(Θ_t), ‖Θ_t − Θ_0‖_F and its ratio to ‖Θ_0‖_F against `x_axis` (X_AXES)."""
  xlabel, compared = _x_axis(x_axis)
  tracked = kernel_growth.tracked_units(workdir, models)
  label, styles = _labels_and_styles(workdir, list(tracked))
  fig, axes = _pyplot().subplots(1, 3, figsize=(15, 4.6))
  for ax, (field, ylabel, title, log) in zip(axes, _EVOLUTION_PANELS):
    _draw(ax, _curves(tracked, field, x_axis), styles, label, log)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3, which='both')
  _suptitle(fig, f'NTK evolution during training, {compared} ({_spread(tracked)})', workdir)
  if len(tracked) <= 3:
    axes[0].legend(fontsize=9)
    fig.tight_layout()
  else:  # many models (ablations): one legend under the panels, clear of the curves
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc='lower center', ncol=3, fontsize=9)
    fig.tight_layout(rect=(0, 0.06 * -(-len(labels) // 3), 1, 1))
  return fig


def spectra_figure(workdir: str, models: Optional[Sequence[str]] = None):
  """The figure of the top-k NTK eigenvalues at the first and the last record, per tracked model."""
  tracked = kernel_growth.tracked_units(workdir, models)
  tracked = {m: s for m, s in tracked.items() if all('top_eigenvalues' in r for r in s.values())}
  if not tracked:
    raise ValueError(f'no tracked model of {workdir} has top_eigenvalues records.')
  label, _ = _labels_and_styles(workdir, list(tracked))
  cols = min(len(tracked), 4)
  rows = -(-len(tracked) // cols)
  fig, axes = _pyplot().subplots(
      rows, cols, figsize=(4.6 * cols, 3.9 * rows + 0.4), sharey=True, squeeze=False
  )
  for ax, (model, seeds) in zip(axes.flat, tracked.items()):
    for i, what, fmt, color in _SPECTRUM_ENDS:
      spectra = [records['top_eigenvalues'][i] for records in seeds.values()]
      epochs = [int(records['epoch'][i]) for records in seeds.values()]
      k = min(len(s) for s in spectra)
      spectra = np.stack([s[:k] for s in spectra])
      when = f'epochs {min(epochs)}–{max(epochs)}' if len(set(epochs)) > 1 else f'epoch {epochs[0]}'
      style = dict(fmt=fmt, color=color, ms=3.5, capsize=2, lw=1.3, label=f'{what} ({when})')
      ax.errorbar(np.arange(1, k + 1), spectra.mean(0), yerr=spectra.std(0), **style)
      ax.set_xticks(np.arange(1, k + 1))
    ax.set(yscale='log', xlabel='eigenvalue index $i$')
    ax.set_title(f'{label(model)} (n={len(seeds)})', fontsize=10)
    ax.grid(alpha=0.3, which='both')
    ax.legend(fontsize=8)
  for ax in axes[:, 0]:
    ax.set_ylabel(r'$\lambda_i(\Theta)$ (probe-set NTK)')
  for ax in list(axes.flat)[len(tracked) :]:
    ax.set_visible(False)
  _suptitle(fig, f'NTK spectrum at initialization and after training ({_spread(tracked)})', workdir)
  fig.tight_layout()
  return fig


def learning_curves(workdir: str, models: Optional[Sequence[str]] = None) -> dict:
  """{model: {seed: (epochs, train_loss)}} from metrics.jsonl (last line per epoch wins)."""
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    raise FileNotFoundError(f'{workdir} has no metrics.jsonl')
  losses = {}
  for r in files.read_lines(path):  # lines cut by a kill are skipped
    if r.get('epoch') is not None and r.get('train_loss') is not None:
      if models is None or r['model'] in models:
        losses.setdefault(r['model'], {}).setdefault(r['seed'], {})[r['epoch']] = r['train_loss']
  as_arrays = lambda e: tuple(np.asarray(v, np.float64) for v in zip(*sorted(e.items())))
  return {m: {s: as_arrays(e) for s, e in losses[m].items()} for m in paper.order_models(losses)}


def learning_curves_figure(workdir: str, models: Optional[Sequence[str]] = None):
  """The figure of every trained model's training loss per epoch (mean ± std over seeds, log y)."""
  curves = learning_curves(workdir, models)
  if not curves:
    raise ValueError(f'no trained model with train_loss lines in {workdir}/metrics.jsonl.')
  fig, ax = _pyplot().subplots(figsize=(7.5, 4.8))
  bands = [(model, *_mean_band(seeds)) for model, seeds in curves.items()]
  label, styles = _labels_and_styles(workdir, list(curves))
  _draw(ax, bands, styles, label, log=True)
  ax.set(xlabel='epoch', ylabel='training loss (epoch mean)')
  ax.grid(alpha=0.3, which='both')
  ax.legend(fontsize=9)
  _suptitle(fig, f'Learning curves ({_spread(curves)})', workdir)
  fig.tight_layout()
  return fig


def make_figures(workdir: str, out_dir: str, x_axis: str = 'fraction') -> list[str]:
  """Writes the figures the workdir supports and kernel_growth.md into `out_dir` (the others
  skipped with a logged warning); returns their paths. `x_axis`: Fig. 2's (X_AXES)."""
  xlabel, compared = _x_axis(x_axis)  # an unknown axis fails here, before any figure is skipped
  os.makedirs(out_dir, exist_ok=True)
  paths = []
  for name, figure in (
      ('kernel_evolution.png', lambda w: kernel_evolution_figure(w, x_axis=x_axis)),
      ('spectra.png', spectra_figure),
      ('learning_curves.png', learning_curves_figure),
  ):
    try:
      fig = figure(workdir)
    except ValueError as e:
      logging.warning('skipped %s: %s', name, e)
      continue
    paths.append(os.path.join(out_dir, name))
    fig.savefig(paths[-1], dpi=120)
    _pyplot().close(fig)
  try:
    table = kernel_growth.kernel_growth_table(workdir)
  except ValueError as e:
    logging.warning('skipped kernel_growth.md: %s', e)
  else:
    paths.append(os.path.join(out_dir, 'kernel_growth.md'))
    with files.atomic_open(paths[-1]) as f:
      f.write(f'## Kernel evolution in numbers: {run_title(workdir)}\n\n')
      f.write(
          f'Fig. 2 (kernel_evolution.png) compares the kernels {compared}: its x axis is the '
          f"{xlabel}. The table's Θ_T is each network's last record, the end of its own schedule "
          f'(epochs column).\n\n{table}'
      )
  return paths


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  for path in make_figures(flags.FLAGS.workdir, flags.FLAGS.out, flags.FLAGS.x_axis):
    print(path)


if __name__ == '__main__':
  # Defined only when run as a program, so importing this module registers no flag.
  flags.DEFINE_string('workdir', None, 'Experiment workdir.')
  flags.DEFINE_string('out', None, 'Output directory for the PNGs.')
  x_axis_help = "Fig. 2's x axis: the fraction of each network's schedule, or the epoch."
  flags.DEFINE_enum('x_axis', 'fraction', list(X_AXES), x_axis_help)
  flags.mark_flags_as_required(['workdir', 'out'])
  app.run(main)
