# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""A run's search.json as Markdown: search.md (per seed and model) and search_trials.md."""

from __future__ import annotations

from typing import Optional, Sequence

from experiments import tables

DASH = tables.DASH


def search_entries(search: dict) -> list[tuple[Optional[str], str, dict]]:
  """(seed, model, entry) of a search.json; seed None in an older file's one 'models' selection."""
  if 'seeds' in search:
    return [
        (seed, model, entry or {})
        for seed, per_seed in (search.get('seeds') or {}).items()
        for model, entry in ((per_seed or {}).get('models') or {}).items()
    ]
  return [(None, model, entry or {}) for model, entry in (search.get('models') or {}).items()]


def _short(value) -> str:
  return f'{value:.4g}' if isinstance(value, float) else str(value)


def _fields(values: dict) -> str:
  return ', '.join(f'{k} = {_short(v)}' for k, v in values.items())


def _seconds(seconds) -> str:
  return f'{seconds:.1f}' if isinstance(seconds, (int, float)) else DASH


def edge_notes(entry: dict) -> list[str]:
  """A note per searched axis whose selected value is on a grid edge (bold) or was extended."""
  notes = []
  for path, axis in (entry.get('axes') or {}).items():
    extension = axis.get('extension') or {}
    if axis.get('edge'):
      why = f'not extended: {extension.get("not_run", "no extension")}'
      if 'trial' in extension:
        beyond = (min if axis['edge'] == 'lower' else max)(axis['values'])
        why = f'the one extension beyond the grid edge {_short(beyond)}: better'
      selected = _short(axis.get('selected'))
      notes.append(f'**{path} = {selected} on the {axis["edge"]} edge** ({why})')
    elif 'trial' in extension:
      value, side = _short(extension['value']), extension['side']
      notes.append(f'{path}: extended once to {value} ({side} edge), not better')
  return notes


def grid_positions(entry: dict) -> list[str]:
  """'path = value (k/n)': the selected value's place among the axis' values tried, lowest
  first (bold on an edge)."""
  out = []
  for path, axis in (entry.get('axes') or {}).items():
    values = list(axis.get('values') or [])
    extension = axis.get('extension') or {}
    if 'trial' in extension:
      values.append(extension['value'])
    selected = axis.get('selected')
    if selected not in values:
      continue
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
      values = sorted(values)
    text = f'{path} = {_short(selected)} ({values.index(selected) + 1}/{len(values)})'
    out.append(f'**{text}**' if axis.get('edge') and len(values) > 1 else text)
  return out


def _scores_text(scores) -> str:
  if not isinstance(scores, dict) or not scores:
    return DASH
  return ', '.join(
      f'{k} = {tables.format_value(k, v)}' + ('%' if k == 'accuracy' else '')
      for k, v in scores.items()
  )


def _search_row(seed: Optional[str], model: str, entry: dict) -> str:
  selected, inherited = entry.get('selected') or {}, entry.get('inherited')
  text = _fields(selected) or DASH
  if inherited:
    text += f'; from the tuned {entry.get("inherited_from")}: ' + _fields(inherited)
  # The validation scores: the selected trial's, else those of the trial matching 'selected'.
  trials = entry.get('trials') or []
  chosen = [
      t for t in trials if all((t.get('overrides') or {}).get(k) == v for k, v in selected.items())
  ]
  validation = entry.get('selected_validation') or (chosen[:1] or [{}])[0].get('validation')
  coverage = entry.get('coverage')
  if coverage is not None:
    coverage = f'{coverage:.1%} of points, {entry.get("axis_coverage", 0):.0%} of axis values'
  cells = [DASH if seed is None else seed, tables.model_label(model), text, str(len(trials))]
  cells += [str(entry.get('grid_size', DASH)), coverage or DASH]
  cells += ['; '.join(grid_positions(entry)) or DASH, '; '.join(edge_notes(entry)) or DASH]
  cells += [_scores_text(validation), _seconds(entry.get('seconds'))]
  return '| ' + ' | '.join(cells) + ' |'


def search_table(search: dict) -> str:
  """Markdown of a search.json: per seed and model the selection, its grid and its validation."""
  lines = []
  if search.get('budget'):
    lines += ['Budget: ' + ', '.join(f'{k} = {v}' for k, v in search['budget'].items()), '']
  lines += [
      '| Seed | Model | Selected | Trials | Grid | Coverage | Grid position (k/n, lowest = 1) | '
      'Grid edges | Validation (selected) | Seconds |',
      '|---|---|---|---|---|---|---|---|---|---|',
  ]
  entries = search_entries(search)
  order = tables.order_models({model for _, model, _ in entries})
  entries.sort(key=lambda e: (int(e[0]) if e[0] is not None else -1, order.index(e[1])))
  lines += [_search_row(*e) for e in entries]
  axes = [a for _, _, e in entries for a in (e.get('axes') or {}).values()]
  if axes:
    flagged = sum(1 for a in axes if a.get('edge'))
    lines += [
        '',
        f'Selected values on a grid edge: {flagged} of {len(axes)} (seed × model × axis); each '
        'was extended once where a value beyond it exists.',
    ]
  return '\n'.join(lines) + '\n'


def trials_table(search: dict, models: Optional[Sequence[str]] = None) -> str:
  """Markdown of every search trial, per seed and model in the order run."""
  lines = []
  for seed, model, entry in search_entries(search):
    if models is not None and model not in models:
      continue
    lines += [f'### Seed {seed}, {tables.model_label(model)}', '']
    lines += ['| Trial | Phase | Tried | Validation | Training part | Seconds |', '|---' * 6 + '|']
    for k, trial in enumerate(entry.get('trials') or []):
      phase, point = trial.get('phase') or '', trial.get('point') or {}
      axis = phase.split(': ', 1)[1] if ': ' in phase else None
      shown = {axis: point[axis]} if axis in point else point
      tried = _fields(shown) or DASH
      if k == entry.get('selected_trial'):
        tried = f'**{tried}** (selected)'
      cells = [str(k), phase.split(':')[0], tried, _scores_text(trial.get('validation'))]
      cells += [_scores_text(trial.get('train')), _seconds(trial.get('seconds'))]
      lines.append('| ' + ' | '.join(cells) + ' |')
    lines.append('')
  return '\n'.join(lines)
