# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The kernel-tracked units of a workdir (results.json units with a 'tracking' entry) and the
numbers behind Fig. 2 (kernel_growth.md); plots.py draws them."""

from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from ecrn_jax import files
from experiments import paper
from experiments import report

TRACKED_FIELDS = tuple(
    'epoch lambda_max delta_frobenius relative_delta_frobenius top_eigenvalues'.split()
)


def run_info(workdir: str) -> tuple[dict, str, dict]:
  """(report.load_workdir's dict, the dataset name, the run's config dict)."""
  loaded = report.load_workdir(workdir)
  config = (loaded['config'] or {}).get('config') or {}
  units = loaded['results']['units']
  dataset = next(((u.get('dataset') or {}).get('name') for u in units if u.get('dataset')), None)
  return loaded, dataset or (config.get('data') or {}).get('name'), config


def _read_records(directory: str) -> dict[str, np.ndarray]:
  """One unit's tracking records (tracking.npz, else tracking.jsonl) by field, by epoch."""
  npz, jsonl = (os.path.join(directory, f'tracking.{e}') for e in ('npz', 'jsonl'))
  if os.path.exists(npz):
    arrays = files.load_npz(npz)
    records = {k: np.asarray(arrays[k], np.float64) for k in TRACKED_FIELDS if k in arrays}
  elif os.path.exists(jsonl):
    # Lines cut by a kill are skipped; an epoch repeated by a resumed run: the last line.
    by_epoch = {record['epoch']: record for record in files.read_lines(jsonl)}
    lines = [by_epoch[e] for e in sorted(by_epoch)]
    records = {
        k: np.asarray([l[k] for l in lines], np.float64)
        for k in TRACKED_FIELDS
        if lines and all(l.get(k) is not None for l in lines)
    }
  else:
    raise FileNotFoundError(f'no tracking.npz or tracking.jsonl in {directory}')
  order = np.argsort(records['epoch'], kind='stable')
  return {k: v[order] for k, v in records.items()}


def tracked_units(workdir: str, models: Optional[Sequence[str]] = None) -> dict:
  """{model: {seed: records}} of the kernel-tracked units, in table order; records also hold
  'schedule_epochs': results.json's train_config.epochs, else the last record's epoch."""
  out = {}
  for unit in report.load_workdir(workdir)['results']['units']:
    tracking = unit.get('tracking')
    if not tracking or (models is not None and unit['model'] not in models):
      continue
    default = os.path.join(f'seed_{unit["seed"]}', unit['model'], 'tracking')
    records = _read_records(os.path.join(workdir, tracking.get('files') or default))
    epochs = (unit.get('train_config') or {}).get('epochs')
    records['schedule_epochs'] = np.float64(epochs if epochs is not None else records['epoch'][-1])
    out.setdefault(unit['model'], {})[unit['seed']] = records
  if not out:
    wanted = f' among {list(models)}' if models is not None else ''
    raise ValueError(
        f'no kernel-tracked model{wanted} in {workdir} (no results.json unit has '
        "a 'tracking' entry): nothing to plot."
    )
  return {m: out[m] for m in paper.order_models(out)}


def kernel_growth_table(workdir: str, models: Optional[Sequence[str]] = None) -> str:
  """Markdown: Fig. 2's claims in numbers, mean ± std over seeds, per tracked model. 'largest
  fall': of λ_max between two records (0 for a monotone rise); Θ_T: the schedule's end."""
  _, dataset, config = run_info(workdir)
  label = lambda model: paper.model_label(model, dataset, config)
  lines = [
      '| Model | λ_max(Θ_0) | λ_max(Θ_T) | ratio | largest fall / λ_max(Θ_0) | '
      'direction changes | ‖Θ_T − Θ_0‖_F/‖Θ_0‖_F | epochs | n |',
      '|---|---|---|---|---|---|---|---|---|',
  ]

  def cell(values, fmt):  # one seed has no spread: its value alone (n column: 1)
    values = np.asarray(values, np.float64)
    if values.size == 1:
      return fmt.format(values[0])
    return f'{fmt.format(values.mean())} ± {fmt.format(values.std())}'

  for model, per_seed in tracked_units(workdir, models).items():
    columns = []
    for records in per_seed.values():
      lam = records['lambda_max']
      steps = np.diff(lam)
      signs = np.sign(steps[steps != 0])
      fall = max(0.0, -steps.min()) / lam[0] if len(steps) else 0.0
      turns = int(np.sum(signs[1:] != signs[:-1]))
      ends = (records['relative_delta_frobenius'][-1], records['schedule_epochs'])
      columns.append((lam[0], lam[-1], lam[-1] / lam[0], fall, turns, *ends))
    formats = ('{:.4g}', '{:.4g}', '{:.3f}', '{:.3f}', '{:.1f}', '{:.3f}', '{:.4g}')
    cells = [cell(values, fmt) for values, fmt in zip(zip(*columns), formats)]
    lines.append(f'| {label(model)} | ' + ' | '.join(cells) + f' | {len(per_seed)} |')
  return '\n'.join(lines) + '\n'
