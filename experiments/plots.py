# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Figures from an experiment workdir: the paper's Fig. 2 (kernel evolution) and companions.

`python -m experiments.plots --workdir=DIR --out=DIR` writes kernel_evolution.png,
spectra.png (when a model is kernel-tracked) and learning_curves.png.

Reads: results.json units (their 'tracking' entry marks a kernel-tracked unit; 'files' its
directory, default seed_<s>/<model>/tracking), the tracking records (tracking.npz, else
tracking.jsonl: 'epoch', 'lambda_max', 'delta_frobenius', 'relative_delta_frobenius',
'top_eigenvalues') and metrics.jsonl ('seed', 'model', 'epoch', 'train_loss').
Curves are the mean over seeds on the epochs all seeds share, with a ±std band.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

from absl import logging
import numpy as np

from ecrn_jax import io
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


def _dataset_title(workdir: str) -> str:
  loaded = report.load_workdir(workdir)
  units = loaded['results']['units']
  name = next(((u.get('dataset') or {}).get('name') for u in units if u.get('dataset')), None)
  name = name or report.config_name(loaded, workdir)
  return paper.DATASET_LABELS.get(name, name)


def _context(workdir: str) -> tuple[Optional[str], dict]:
  loaded = report.load_workdir(workdir)
  units = loaded['results']['units']
  dataset = next(((u.get('dataset') or {}).get('name') for u in units if u.get('dataset')), None)
  return dataset, ((loaded['config'] or {}).get('config') or {})


def _label(workdir: str, model: str) -> str:
  dataset, config = _context(workdir)
  return tables.model_label(model, dataset, config)


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


def tracked_units(workdir: str, models: Optional[Sequence[str]] = None) -> dict:
  """{model: {seed: records}} of the kernel-tracked units of `workdir`, in table order."""
  units = report.load_workdir(workdir)['results']['units']
  out: dict[str, dict] = {}
  for unit in units:
    tracking = unit.get('tracking')
    if not tracking or (models is not None and unit['model'] not in models):
      continue
    files = tracking.get('files') or os.path.join(f'seed_{unit["seed"]}', unit['model'], 'tracking')
    out.setdefault(unit['model'], {})[unit['seed']] = _read_records(os.path.join(workdir, files))
  if not out:
    wanted = f' among {list(models)}' if models is not None else ''
    raise ValueError(
        f'no kernel-tracked model{wanted} in {workdir} (no results.json unit has '
        "a 'tracking' entry): nothing to plot."
    )
  return {m: out[m] for m in tables.order_models(out)}


def _mean_band(per_seed: dict[int, tuple[np.ndarray, np.ndarray]]):
  """x, mean, std over seeds on the x values every seed has."""
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


def _band(ax, x, mean, std, label, color):
  ax.plot(x, mean, label=label, color=color, lw=1.8)
  ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2, lw=0)


def _colors(plt, n):
  cmap = plt.get_cmap('tab10')
  return [cmap(i % 10) for i in range(n)]


def plot_kernel_evolution(workdir: str, path: str, models: Optional[Sequence[str]] = None) -> str:
  """Fig. 2: λ_max(Θ_t), ‖Θ_t − Θ_0‖_F and ‖Θ_t − Θ_0‖_F/‖Θ_0‖_F vs epoch (1×3 panels)."""
  tracked = tracked_units(workdir, models)
  plt = _pyplot()
  fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
  panels = (
      ('lambda_max', r'$\lambda_{\max}(\Theta_t)$', 'Largest NTK eigenvalue', True),
      ('delta_frobenius', r'$\|\Theta_t - \Theta_0\|_F$', 'Kernel change', False),
      (
          'relative_delta_frobenius',
          r'$\|\Theta_t - \Theta_0\|_F \,/\, \|\Theta_0\|_F$',
          'Relative kernel change',
          False,
      ),
  )
  for color, (model, seeds) in zip(_colors(plt, len(tracked)), tracked.items()):
    for ax, (field, ylabel, title, log) in zip(axes, panels):
      per_seed = {s: (r['epoch'], r[field]) for s, r in seeds.items() if field in r}
      if not per_seed:
        continue
      x, mean, std, n = _mean_band(per_seed)
      _band(ax, x, mean, std, f'{_label(workdir, model)} (n={n})', color)
      ax.set_ylabel(ylabel)
      ax.set_title(title)
      if log:
        ax.set_yscale('log')
  for ax in axes:
    ax.set_xlabel('epoch')
    ax.grid(alpha=0.3)
  fig.suptitle(
      f'NTK evolution during training: {_dataset_title(workdir)} ' '(mean ± std over seeds)'
  )
  if len(tracked) <= 3:
    axes[0].legend(fontsize=9)
    fig.tight_layout()
  else:  # many models (ablations): one legend under the panels, clear of the curves
    handles, labels = axes[0].get_legend_handles_labels()
    rows = -(-len(labels) // 3)
    fig.legend(handles, labels, loc='lower center', ncol=3, fontsize=9)
    fig.tight_layout(rect=(0, 0.06 * rows, 1, 1))
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


def plot_spectra(workdir: str, path: str, models: Optional[Sequence[str]] = None) -> str:
  """Top-k NTK eigenvalues at initialization and at the last record, one panel per model."""
  tracked = tracked_units(workdir, models)
  tracked = {m: s for m, s in tracked.items() if all('top_eigenvalues' in r for r in s.values())}
  if not tracked:
    raise ValueError(f'no tracked model of {workdir} has top_eigenvalues records.')
  plt = _pyplot()
  n = len(tracked)
  cols = min(n, 4)
  rows = -(-n // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.9 * rows), sharey=True, squeeze=False)
  for ax, (model, seeds) in zip(axes.flat, tracked.items()):
    for which, style, color in (('init', '--o', 'tab:gray'), ('final', '-o', 'tab:red')):
      spectra = []
      epochs = []
      for records in seeds.values():
        i = 0 if which == 'init' else -1
        spectra.append(records['top_eigenvalues'][i])
        epochs.append(int(records['epoch'][i]))
      k = min(len(s) for s in spectra)
      spectra = np.stack([s[:k] for s in spectra])
      index = np.arange(1, k + 1)
      mean, std = spectra.mean(0), spectra.std(0)
      epoch_text = (
          f'epoch {epochs[0]}' if len(set(epochs)) == 1 else f'epochs {min(epochs)}–{max(epochs)}'
      )
      ax.errorbar(
          index,
          mean,
          yerr=std,
          fmt=style,
          color=color,
          ms=3.5,
          capsize=2,
          lw=1.3,
          label=f'{"initialization" if which == "init" else "end"} ({epoch_text})',
      )
    ax.set_yscale('log')
    ax.set_title(f'{_label(workdir, model)} (n={len(seeds)} seeds)', fontsize=10)
    ax.set_xlabel('eigenvalue index $i$')
    ax.set_xticks(index)
    ax.grid(alpha=0.3, which='both')
    ax.legend(fontsize=8)
  for ax in axes[:, 0]:
    ax.set_ylabel(r'$\lambda_i(\Theta)$ (probe-set NTK)')
  for ax in list(axes.flat)[n:]:
    ax.set_visible(False)
  fig.suptitle(
      f'NTK spectrum at initialization and after training: '
      f'{_dataset_title(workdir)} (mean ± std over seeds)'
  )
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


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


def plot_learning_curves(workdir: str, path: str, models: Optional[Sequence[str]] = None) -> str:
  """Training loss per epoch of every trained model (mean ± std over seeds, log y)."""
  curves = learning_curves(workdir, models)
  if not curves:
    raise ValueError(f'no trained model with train_loss lines in {workdir}/metrics.jsonl.')
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(7, 4.4))
  for color, (model, seeds) in zip(_colors(plt, len(curves)), curves.items()):
    x, mean, std, n = _mean_band(seeds)
    _band(ax, x, mean, std, f'{_label(workdir, model)} (n={n})', color)
  ax.set_yscale('log')
  ax.set_xlabel('epoch')
  ax.set_ylabel('training loss (epoch mean)')
  ax.grid(alpha=0.3, which='both')
  ax.legend(fontsize=9)
  ax.set_title(f'Learning curves: {_dataset_title(workdir)} (mean ± std over seeds)')
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


def kernel_growth_table(workdir: str, models: Optional[Sequence[str]] = None) -> str:
  """Markdown: Fig. 2's claims in numbers, mean ± std over seeds, per tracked model.

  Columns: λ_max(Θ_0), λ_max(Θ_T), their ratio, the largest fall of λ_max between two
  consecutive records (relative to λ_max(Θ_0); 0 for a monotone rise: a measure of
  oscillation), the number of direction changes of λ_max over the records, and
  ‖Θ_T − Θ_0‖_F/‖Θ_0‖_F.
  """
  units = tracked_units(workdir, models)
  lines = [
      '| Model | λ_max(Θ_0) | λ_max(Θ_T) | ratio | largest fall / λ_max(Θ_0) | '
      'direction changes | ‖Θ_T − Θ_0‖_F/‖Θ_0‖_F | n |',
      '|---|---|---|---|---|---|---|---|',
  ]

  def cell(values, fmt='{:.4g}'):
    values = np.asarray(values, np.float64)
    return f'{fmt.format(values.mean())} ± {fmt.format(values.std())}'

  for model, per_seed in units.items():
    init, final, ratio, fall, turns, rel = [], [], [], [], [], []
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
    lines.append(
        f'| {_label(workdir, model)} | {cell(init)} | {cell(final)} | '
        f'{cell(ratio, "{:.3f}")} | {cell(fall, "{:.3f}")} | {cell(turns, "{:.1f}")} | '
        f'{cell(rel, "{:.3f}")} | {len(per_seed)} |'
    )
  return '\n'.join(lines) + '\n'


def make_figures(workdir: str, out_dir: str) -> list[str]:
  """Writes every figure that the workdir supports into `out_dir` (and kernel_growth.md, the
  numbers behind Fig. 2); returns their paths.

  Kernel figures are skipped, with a logged message, when no model is kernel-tracked.
  """
  os.makedirs(out_dir, exist_ok=True)
  paths = []
  for name, fn in (
      ('kernel_evolution.png', plot_kernel_evolution),
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
      f.write(f'## Kernel evolution in numbers: {_dataset_title(workdir)}\n\n{table}')
  return paths


def main(argv):
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top

  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  for path in make_figures(flags.FLAGS.workdir, flags.FLAGS.out):
    print(path)


def _define_flags():
  # Defined only when run as a program, so importing this module registers no flag.
  from absl import flags  # pylint: disable=g-import-not-at-top

  flags.DEFINE_string('workdir', None, 'Experiment workdir.')
  flags.DEFINE_string('out', None, 'Output directory for the PNGs.')
  flags.mark_flags_as_required(['workdir', 'out'])


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top

  _define_flags()
  app.run(main)
