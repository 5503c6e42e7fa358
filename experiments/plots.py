# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Figures from an experiment workdir: the paper's Fig. 2 (kernel evolution) and companions.

`python -m experiments.plots --workdir=DIR --out=DIR [--x_axis=epoch]` writes
kernel_evolution.png, spectra.png and kernel_growth.md (when a model is kernel-tracked) and
learning_curves.png.

Reads: results.json units (their 'tracking' entry marks a kernel-tracked unit; 'files' its
directory, default seed_<s>/<model>/tracking; 'train_config' its epochs), the tracking records
(tracking.npz, else tracking.jsonl: 'epoch', 'lambda_max', 'delta_frobenius',
'relative_delta_frobenius', 'top_eigenvalues') and metrics.jsonl ('seed', 'model', 'epoch',
'train_loss').
Curves are the mean over seeds on the epochs all seeds share, with a ±std band.

Fig. 2's x axis (`x_axis`): by default 'fraction', the fraction of each network's own training
schedule (epoch / its epochs, the unit's `train_config.epochs` in results.json, else its last
tracking record), so networks trained for different numbers of epochs (each with its own cosine
learning rate, 0 at the end) are compared at equal fractions of their schedules; seeds with
different epochs are interpolated onto the union of their fractions. 'epoch' draws against
epochs instead. The figure's title, its x label and kernel_growth.md say which is shown.

Every kernel-tracked unit of results.json is drawn (e.g. NTK-ECRN, MLP and ResNet-18 when all
three are tracked), each model in its own color, line style and marker, the same in every
figure of a workdir. Each figure is titled with the run (`run_title`): the dataset, the data
settings that tell it apart (s = frequency_scale for synthetic regression, and every data field
off its default), the config name and the workdir. A kernel-change panel's y axis is
logarithmic when its curves' maxima span more than LOG_SPREAD = 100× (`needs_log_axis`).
"""

from __future__ import annotations

import os
import textwrap
from typing import Optional, Sequence

from absl import logging
import numpy as np

from ecrn_jax import io
from experiments import input_pipeline
from experiments import paper
from experiments import report
from experiments import tables

TRACKED_FIELDS = (
    'epoch',
    'lambda_max',
    'delta_frobenius',
    'relative_delta_frobenius',
    'top_eigenvalues',
)


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  return plt


# A panel's y axis is logarithmic when the largest of its curves' maxima (positive ones only) is
# more than LOG_SPREAD times the smallest: on a linear axis that curve would flatten the others
# onto zero (the ablations' kernel change, ~1,000× apart). λ_max, the spectra and the training
# losses are always on log axes.
LOG_SPREAD = 100.0

# Title: the data fields always shown (with their symbol), and those never shown (where the data
# live); every other data field is shown when it differs from the dataset's default.
_TITLE_FIELDS = {'synthetic_regression': ('frequency_scale',), 'cifar10': ('train_split',)}
_TITLE_SYMBOLS = {'frequency_scale': 's'}
_TITLE_HIDDEN = ('name', 'data_dir', 'source', 'train_npz', 'test_npz', 'csv_path')
_LINESTYLES = ('-', '--', '-.', ':')
_MARKERS = ('o', 's', '^', 'D', 'v', 'P', 'X', '*')


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
  """'s = 0.1', 'num_train = 64', ...: the data fields of config.json that tell a run apart.

  The dataset's _TITLE_FIELDS always, then (by name) every other field that differs from
  input_pipeline.default_data_config, except where the data live (_TITLE_HIDDEN).
  """
  name = data.get('name')
  try:
    defaults = input_pipeline.default_data_config(name).to_dict()
  except ValueError:  # not a dataset of this version: show only the fixed fields
    defaults = dict(data)
  always = [f for f in _TITLE_FIELDS.get(name, ()) if f in data]
  differ = sorted(
      f
      for f, v in data.items()
      if f not in always and f not in _TITLE_HIDDEN and io.jsonable(defaults.get(f)) != v
  )
  return [f'{_TITLE_SYMBOLS.get(f, f)} = {_format(data[f])}' for f in always + differ]


def _loaded(workdir: str) -> tuple[dict, str, dict]:
  """(report.load_workdir's dict, the dataset name, the run's config dict)."""
  loaded = report.load_workdir(workdir)
  config = (loaded['config'] or {}).get('config') or {}
  units = loaded['results']['units']
  dataset = next(((u.get('dataset') or {}).get('name') for u in units if u.get('dataset')), None)
  return loaded, dataset or (config.get('data') or {}).get('name'), config


def run_title(workdir: str) -> str:
  """'Synthetic regression, s = 0.1 (config synthetic_regression, workdir ablations_f0.1)':
  the dataset, its distinguishing data settings (data_settings) and the run's names."""
  loaded, dataset, config = _loaded(workdir)
  name = report.config_name(loaded, workdir)
  label = paper.DATASET_LABELS.get(dataset, dataset or name)
  where = os.path.basename(os.path.normpath(workdir))
  run = f'config {name}' + (f', workdir {where}' if where != name else '')
  return f'{", ".join([label] + data_settings(config.get("data") or {}))} ({run})'


def _labeler(workdir: str):
  """model → its legend label in this workdir's dataset and config."""
  _, dataset, config = _loaded(workdir)
  return lambda model: tables.model_label(model, dataset, config)


def model_styles(models: Sequence[str]) -> dict[str, dict]:
  """model → distinct plot keywords (color, linestyle, marker), by position in paper order."""
  cmap = _pyplot().get_cmap('tab10')
  return {
      m: dict(color=cmap(i % 10), linestyle=_LINESTYLES[i % 4], marker=_MARKERS[i % 8])
      for i, m in enumerate(tables.order_models(models))
  }


def _workdir_styles(workdir: str, models: Sequence[str]) -> dict[str, dict]:
  """model_styles of the workdir's trained (or tracked) models and `models`: a model looks the
  same in every figure of the workdir."""
  units = report.load_workdir(workdir)['results']['units']
  drawn = {u['model'] for u in units if u.get('kind') == 'trained network' or u.get('tracking')}
  return model_styles(sorted(drawn | set(models)))


def _suptitle(fig, what: str, workdir: str) -> None:
  """`what` over the run's title (run_title), wrapped to the figure's width."""
  width = max(40, int(fig.get_figwidth() * 12))
  fig.suptitle(f'{what}\n' + textwrap.fill(run_title(workdir), width), fontsize=11)


def _read_records(directory: str) -> dict[str, np.ndarray]:
  """The tracking records of one unit as arrays by field (deduplicated by epoch, sorted)."""
  npz = os.path.join(directory, 'tracking.npz')
  if os.path.exists(npz):
    arrays = io.load_npz(npz)
    records = {k: np.asarray(arrays[k], np.float64) for k in TRACKED_FIELDS if k in arrays}
  else:
    path = os.path.join(directory, 'tracking.jsonl')
    if not os.path.exists(path):
      raise FileNotFoundError(f'no tracking.npz or tracking.jsonl in {directory}')
    by_epoch = {}
    for record in io.read_lines(path):  # lines cut by a kill are skipped
      by_epoch[record['epoch']] = record  # a resumed run may repeat epochs: keep last
    lines = [by_epoch[e] for e in sorted(by_epoch)]
    records = {}
    for k in TRACKED_FIELDS:
      if lines and all(l.get(k) is not None for l in lines):
        records[k] = np.asarray([l[k] for l in lines], np.float64)
  order = np.argsort(records['epoch'], kind='stable')
  return {k: v[order] for k, v in records.items()}


def schedule_epochs(unit: dict, records: dict[str, np.ndarray]) -> float:
  """The epochs of the unit's training schedule: results.json's train_config.epochs, else its
  last tracking record (tracking always records the last epoch)."""
  epochs = (unit.get('train_config') or {}).get('epochs')
  return float(epochs if epochs is not None else records['epoch'][-1])


def tracked_units(workdir: str, models: Optional[Sequence[str]] = None) -> dict:
  """{model: {seed: records}} of the kernel-tracked units of `workdir`, in table order; records
  also hold 'schedule_epochs' (schedule_epochs)."""
  units = report.load_workdir(workdir)['results']['units']
  out: dict[str, dict] = {}
  for unit in units:
    tracking = unit.get('tracking')
    if not tracking or (models is not None and unit['model'] not in models):
      continue
    files = tracking.get('files') or os.path.join(f'seed_{unit["seed"]}', unit['model'], 'tracking')
    records = _read_records(os.path.join(workdir, files))
    records['schedule_epochs'] = np.float64(schedule_epochs(unit, records))
    out.setdefault(unit['model'], {})[unit['seed']] = records
  if not out:
    wanted = f' among {list(models)}' if models is not None else ''
    raise ValueError(
        f'no kernel-tracked model{wanted} in {workdir} (no results.json unit has '
        "a 'tracking' entry): nothing to plot."
    )
  return {m: out[m] for m in tables.order_models(out)}


def _mean_band(per_seed: dict[int, tuple[np.ndarray, np.ndarray]], interpolate: bool = False):
  """x, mean, std over seeds on the x values every seed has; `interpolate`: on the union of the
  seeds' x values within the range they share, each seed linearly interpolated."""
  if interpolate:
    low = max(float(sx.min()) for sx, _ in per_seed.values())
    high = min(float(sx.max()) for sx, _ in per_seed.values())
    x = np.unique(np.concatenate([sx for sx, _ in per_seed.values()]))
    x = x[(x >= low) & (x <= high)]
    ys = np.stack([np.interp(x, sx, sy) for sx, sy in per_seed.values()])
    return x, ys.mean(0), ys.std(0), len(per_seed)
  common = None
  for x, _ in per_seed.values():
    common = set(x.tolist()) if common is None else common & set(x.tolist())
  x = np.asarray(sorted(common))
  ys = np.stack(
      [
          np.asarray([dict(zip(sx.tolist(), sy.tolist()))[v] for v in x])
          for sx, sy in per_seed.values()
      ]
  )
  return x, ys.mean(0), ys.std(0), len(per_seed)


def _band(ax, x, mean, std, label, style):
  ax.plot(x, mean, label=label, lw=1.8, ms=4, markevery=max(1, len(x) // 10), **style)
  ax.fill_between(x, mean - std, mean + std, color=style['color'], alpha=0.2, lw=0)


# Fig. 2's x axes: (x label, what the title says is compared).
X_AXES = {
    'fraction': (
        "fraction of each network's training schedule (epoch / its epochs)",
        "at equal fractions of each network's own schedule",
    ),
    'epoch': ('epoch', 'at equal epochs (schedules of different lengths)'),
}


def _check_x_axis(x_axis: str) -> None:
  if x_axis not in X_AXES:
    raise ValueError(f'x_axis must be one of {list(X_AXES)}, got {x_axis!r}.')


def _x(records: dict, x_axis: str) -> np.ndarray:
  """A unit's x values: its epochs, or epoch / its schedule's epochs (X_AXES)."""
  _check_x_axis(x_axis)
  if x_axis == 'epoch':
    return records['epoch']
  return records['epoch'] / max(float(records['schedule_epochs']), 1.0)


def _curves(per_model: dict, field: str, x_axis: str = 'epoch') -> list[tuple]:
  """[(model, x, mean, std, n)] of `field` against `x_axis` (X_AXES), for the models that
  record it."""
  out = []
  for model, seeds in per_model.items():
    per_seed = {s: (_x(r, x_axis), r[field]) for s, r in seeds.items() if field in r}
    if per_seed:
      out.append((model, *_mean_band(per_seed, interpolate=x_axis == 'fraction')))
  return out


def _draw(ax, curves: list[tuple], styles: dict, label, log: Optional[bool] = None) -> None:
  """Mean ± std bands of `curves`; log None: a log y axis by the LOG_SPREAD rule (needs_log_axis).

  On a log axis the points whose mean is not positive (Θ_0 − Θ_0 = 0) are left out.
  """
  if log is None:
    log = needs_log_axis([mean for _, _, mean, _, _ in curves])
  for model, x, mean, std, n in curves:
    keep = mean > 0 if log else np.ones(len(mean), bool)
    _band(ax, x[keep], mean[keep], std[keep], f'{label(model)} (n={n})', styles[model])
  if log:
    ax.set_yscale('log')


def _save(fig, path: str) -> str:
  fig.savefig(path, dpi=120)
  _pyplot().close(fig)
  return path


# Fig. 2's panels: (field, y label, title, log: True always, None by the LOG_SPREAD rule).
_EVOLUTION_PANELS = (
    ('lambda_max', r'$\lambda_{\max}(\Theta_t)$', 'Largest NTK eigenvalue', True),
    ('delta_frobenius', r'$\|\Theta_t - \Theta_0\|_F$', 'Kernel change', None),
    (
        'relative_delta_frobenius',
        r'$\|\Theta_t - \Theta_0\|_F \,/\, \|\Theta_0\|_F$',
        'Relative kernel change',
        None,
    ),
)


def kernel_evolution_figure(
    workdir: str, models: Optional[Sequence[str]] = None, x_axis: str = 'fraction'
):
  """Fig. 2: λ_max(Θ_t), ‖Θ_t − Θ_0‖_F and ‖Θ_t − Θ_0‖_F/‖Θ_0‖_F (1×3 panels) against the
  fraction of each network's schedule or the epoch (`x_axis`, X_AXES), one curve per
  kernel-tracked model of the workdir; returns the matplotlib figure."""
  _check_x_axis(x_axis)
  tracked = tracked_units(workdir, models)
  styles, label = _workdir_styles(workdir, list(tracked)), _labeler(workdir)
  xlabel, compared = X_AXES[x_axis]
  plt = _pyplot()
  fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
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
    rows = -(-len(labels) // 3)
    fig.legend(handles, labels, loc='lower center', ncol=3, fontsize=9)
    fig.tight_layout(rect=(0, 0.06 * rows, 1, 1))
  return fig


def plot_kernel_evolution(
    workdir: str, path: str, models: Optional[Sequence[str]] = None, x_axis: str = 'fraction'
) -> str:
  """Writes kernel_evolution_figure to `path`; returns `path`."""
  return _save(kernel_evolution_figure(workdir, models, x_axis), path)


def _spectrum_panel(ax, seeds: dict) -> None:
  """Top-k eigenvalues at the first and the last record of every seed (mean ± std)."""
  for which, style, color in (('init', '--o', 'tab:gray'), ('final', '-o', 'tab:red')):
    i = 0 if which == 'init' else -1
    spectra = [records['top_eigenvalues'][i] for records in seeds.values()]
    epochs = [int(records['epoch'][i]) for records in seeds.values()]
    k = min(len(s) for s in spectra)
    spectra = np.stack([s[:k] for s in spectra])
    index = np.arange(1, k + 1)
    epoch_text = (
        f'epoch {epochs[0]}' if len(set(epochs)) == 1 else f'epochs {min(epochs)}–{max(epochs)}'
    )
    ax.errorbar(
        index,
        spectra.mean(0),
        yerr=spectra.std(0),
        fmt=style,
        color=color,
        ms=3.5,
        capsize=2,
        lw=1.3,
        label=f'{"initialization" if which == "init" else "end"} ({epoch_text})',
    )
    ax.set_xticks(index)


def spectra_figure(workdir: str, models: Optional[Sequence[str]] = None):
  """Top-k NTK eigenvalues at initialization and at the last record, one panel per model;
  returns the matplotlib figure."""
  tracked = tracked_units(workdir, models)
  tracked = {m: s for m, s in tracked.items() if all('top_eigenvalues' in r for r in s.values())}
  if not tracked:
    raise ValueError(f'no tracked model of {workdir} has top_eigenvalues records.')
  label = _labeler(workdir)
  n = len(tracked)
  cols = min(n, 4)
  rows = -(-n // cols)
  fig, axes = _pyplot().subplots(
      rows, cols, figsize=(4.6 * cols, 3.9 * rows + 0.4), sharey=True, squeeze=False
  )
  for ax, (model, seeds) in zip(axes.flat, tracked.items()):
    _spectrum_panel(ax, seeds)
    ax.set_yscale('log')
    ax.set_title(f'{label(model)} (n={len(seeds)})', fontsize=10)
    ax.set_xlabel('eigenvalue index $i$')
    ax.grid(alpha=0.3, which='both')
    ax.legend(fontsize=8)
  for ax in axes[:, 0]:
    ax.set_ylabel(r'$\lambda_i(\Theta)$ (probe-set NTK)')
  for ax in list(axes.flat)[n:]:
    ax.set_visible(False)
  _suptitle(fig, f'NTK spectrum at initialization and after training ({_spread(tracked)})', workdir)
  fig.tight_layout()
  return fig


def plot_spectra(workdir: str, path: str, models: Optional[Sequence[str]] = None) -> str:
  """Writes spectra_figure to `path`; returns `path`."""
  return _save(spectra_figure(workdir, models), path)


def learning_curves(workdir: str, models: Optional[Sequence[str]] = None) -> dict:
  """{model: {seed: (epochs, train_loss)}} from metrics.jsonl (last line per epoch wins)."""
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    raise FileNotFoundError(f'{workdir} has no metrics.jsonl')
  losses: dict[str, dict[int, dict[int, float]]] = {}
  for record in io.read_lines(path):  # lines cut by a kill are skipped
    if record.get('epoch') is None or record.get('train_loss') is None:
      continue
    if models is not None and record['model'] not in models:
      continue
    losses.setdefault(record['model'], {}).setdefault(record['seed'], {})[record['epoch']] = record[
        'train_loss'
    ]
  out = {}
  for model in tables.order_models(losses):
    out[model] = {
        seed: (np.asarray(sorted(e), np.float64), np.asarray([e[k] for k in sorted(e)], np.float64))
        for seed, e in losses[model].items()
    }
  return out


def learning_curves_figure(workdir: str, models: Optional[Sequence[str]] = None):
  """Training loss per epoch of every trained model (mean ± std over seeds, log y); returns the
  matplotlib figure."""
  curves = learning_curves(workdir, models)
  if not curves:
    raise ValueError(f'no trained model with train_loss lines in {workdir}/metrics.jsonl.')
  fig, ax = _pyplot().subplots(figsize=(7.5, 4.8))
  bands = [(model, *_mean_band(seeds)) for model, seeds in curves.items()]
  _draw(ax, bands, _workdir_styles(workdir, list(curves)), _labeler(workdir), log=True)
  ax.set_xlabel('epoch')
  ax.set_ylabel('training loss (epoch mean)')
  ax.grid(alpha=0.3, which='both')
  ax.legend(fontsize=9)
  _suptitle(fig, f'Learning curves ({_spread(curves)})', workdir)
  fig.tight_layout()
  return fig


def plot_learning_curves(workdir: str, path: str, models: Optional[Sequence[str]] = None) -> str:
  """Writes learning_curves_figure to `path`; returns `path`."""
  return _save(learning_curves_figure(workdir, models), path)


def _spread(tracked: dict) -> str:
  """What a figure's bands are: 'mean ± std over seeds', or 'one seed' when each has one."""
  if all(len(per_seed) == 1 for per_seed in tracked.values()):
    return 'one seed'
  return 'mean ± std over seeds'


def kernel_growth_table(workdir: str, models: Optional[Sequence[str]] = None) -> str:
  """Markdown: Fig. 2's claims in numbers, mean ± std over seeds, per tracked model.

  Columns: λ_max(Θ_0), λ_max(Θ_T), their ratio, the largest fall of λ_max between two
  consecutive records (relative to λ_max(Θ_0); 0 for a monotone rise: a measure of
  oscillation), the number of direction changes of λ_max over the records,
  ‖Θ_T − Θ_0‖_F/‖Θ_0‖_F, and the epochs of the network's schedule (Θ_T: its end).
  """
  units = tracked_units(workdir, models)
  label = _labeler(workdir)
  lines = [
      '| Model | λ_max(Θ_0) | λ_max(Θ_T) | ratio | largest fall / λ_max(Θ_0) | '
      'direction changes | ‖Θ_T − Θ_0‖_F/‖Θ_0‖_F | epochs | n |',
      '|---|---|---|---|---|---|---|---|---|',
  ]

  def cell(values, fmt='{:.4g}'):  # one seed has no spread: its value alone (n column: 1)
    values = np.asarray(values, np.float64)
    if values.size == 1:
      return fmt.format(values[0])
    return f'{fmt.format(values.mean())} ± {fmt.format(values.std())}'

  for model, per_seed in units.items():
    init, final, ratio, fall, turns, rel, epochs = [], [], [], [], [], [], []
    for records in per_seed.values():
      lam = records['lambda_max']
      steps = np.diff(lam)
      init.append(lam[0])
      final.append(lam[-1])
      ratio.append(lam[-1] / lam[0])
      fall.append(max(0.0, -steps.min()) / lam[0] if len(steps) else 0.0)
      signs = np.sign(steps[steps != 0])
      turns.append(int(np.sum(signs[1:] != signs[:-1])))
      rel.append(records['relative_delta_frobenius'][-1])
      epochs.append(records['schedule_epochs'])
    lines.append(
        f'| {label(model)} | {cell(init)} | {cell(final)} | '
        f'{cell(ratio, "{:.3f}")} | {cell(fall, "{:.3f}")} | {cell(turns, "{:.1f}")} | '
        f'{cell(rel, "{:.3f}")} | {cell(epochs, "{:.4g}")} | {len(per_seed)} |'
    )
  return '\n'.join(lines) + '\n'


def comparison_note(x_axis: str = 'fraction') -> str:
  """kernel_growth.md's sentence on what Fig. 2 compares (`x_axis`, X_AXES)."""
  _check_x_axis(x_axis)
  xlabel, compared = X_AXES[x_axis]
  return (
      f'Fig. 2 (kernel_evolution.png) compares the kernels {compared}: its x axis is the '
      f"{xlabel}. The table's Θ_T is each network's last record, the end of its own schedule "
      '(epochs column).'
  )


def make_figures(workdir: str, out_dir: str, x_axis: str = 'fraction') -> list[str]:
  """Writes every figure that the workdir supports into `out_dir` (and kernel_growth.md, the
  numbers behind Fig. 2, with comparison_note); returns their paths. `x_axis`: Fig. 2's.

  Kernel figures are skipped, with a logged message, when no model is kernel-tracked.
  """
  _check_x_axis(x_axis)
  os.makedirs(out_dir, exist_ok=True)
  paths = []
  evolution = lambda w, path: plot_kernel_evolution(w, path, x_axis=x_axis)
  for name, fn in (
      ('kernel_evolution.png', evolution),
      ('spectra.png', plot_spectra),
      ('learning_curves.png', plot_learning_curves),
  ):
    try:
      paths.append(fn(workdir, os.path.join(out_dir, name)))
    except ValueError as e:
      logging.warning('skipped %s: %s', name, e)
  try:
    table = kernel_growth_table(workdir)
  except ValueError as e:
    logging.warning('skipped kernel_growth.md: %s', e)
  else:
    paths.append(os.path.join(out_dir, 'kernel_growth.md'))
    with io.atomic_open(paths[-1]) as f:
      f.write(f'## Kernel evolution in numbers: {run_title(workdir)}\n\n')
      f.write(f'{comparison_note(x_axis)}\n\n{table}')
  return paths


def main(argv):
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top

  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  for path in make_figures(flags.FLAGS.workdir, flags.FLAGS.out, flags.FLAGS.x_axis):
    print(path)


def _define_flags():
  # Defined only when run as a program, so importing this module registers no flag.
  from absl import flags  # pylint: disable=g-import-not-at-top

  flags.DEFINE_string('workdir', None, 'Experiment workdir.')
  flags.DEFINE_string('out', None, 'Output directory for the PNGs.')
  flags.DEFINE_enum(
      'x_axis',
      'fraction',
      list(X_AXES),
      "Fig. 2's x axis: the fraction of each network's schedule, or the epoch.",
  )
  flags.mark_flags_as_required(['workdir', 'out'])


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top

  _define_flags()
  app.run(main)
