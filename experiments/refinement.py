# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Coordinate-wise refinement of a grid, and the extension beyond a selected edge value
(experiments/search.py runs it per model and seed)."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Callable, Optional


def grid_size(axes: dict[str, Any]) -> int:
  return math.prod(len(v) for v in axes.values())


def _is_number(value) -> bool:
  return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _numeric(values) -> bool:
  """Whether `values` is a numeric axis of at least two distinct values."""
  return len(set(values)) >= 2 and all(_is_number(v) for v in values)


def edge(values, value) -> Optional[str]:
  """'lower'/'upper' if `value` is the least/greatest of a numeric axis of ≥ 2 values, else None."""
  if not _numeric(values) or not _is_number(value):
    return None
  if value == min(values):
    return 'lower'
  return 'upper' if value == max(values) else None


def extension(values, side: str):
  """The value beyond the `side` edge of numeric axis `values`, one step of the axis: the
  ratio of the two edge values (both > 0), else their difference; None below a lower edge of
  0 (a bound: drop rates, weight decays) or for a non-numeric axis."""
  if not _numeric(values):
    return None
  ordered = sorted(set(values))
  end, inner = (ordered[-1], ordered[-2]) if side == 'upper' else (ordered[0], ordered[1])
  if side == 'lower' and end == 0:
    return None
  new = end * (end / inner) if min(end, inner) > 0 else end + (end - inner)
  if all(isinstance(v, int) for v in values):
    new = int(round(new))
    return None if new in ordered else new
  return float(f'{new:.6g}')


def score(task: str, metrics: dict) -> tuple:
  """A key to minimize: validation MSE, or (−accuracy, cross-entropy)."""
  if not metrics:
    return (math.inf, math.inf)
  if task == 'regression':
    mse = metrics.get('mse')
    return (mse if mse is not None and math.isfinite(mse) else math.inf, 0.0)
  ce = metrics.get('cross_entropy')
  return (-metrics['accuracy'], ce if ce is not None and math.isfinite(ce) else math.inf)


def key(point) -> str:
  return json.dumps(point, sort_keys=True)


@dataclasses.dataclass
class Refinement:
  """The coordinate-wise refinement of one grid (module docstring). `evaluate(point, phase)`
  runs one trial and returns its score key (lower is better)."""

  axes: dict[str, tuple]
  evaluate: Callable[[dict, str], tuple]
  max_trials: int
  points: list = dataclasses.field(default_factory=list)  # the points tried, in order
  scores: dict = dataclasses.field(default_factory=dict)  # point key → score key
  best: Optional[dict] = None
  capped: bool = False
  rounds_run: int = 0

  def visit(self, point: dict, phase: str) -> Optional[bool]:
    """Tries `point` (once): whether it is the new best; None when the trials cap stops it."""
    k = key(point)
    if k in self.scores:
      return False
    if len(self.points) >= self.max_trials:
      self.capped = True
      return None
    self.scores[k] = self.evaluate(point, phase)
    self.points.append(point)
    if self.best is None or self.scores[k] < self.scores[key(self.best)]:
      self.best = point
      return True
    return False

  def refine(self, start: dict, rounds: int) -> None:
    """From `start`, sweeps each axis in turn with the others at the best so far."""
    self.visit(start, 'start')
    for r in range(1, rounds + 1):
      moved = False
      for path, values in self.axes.items():
        center = dict(self.best)
        for value in values:
          if value != center[path]:
            moved = bool(self.visit({**center, path: value}, f'round {r}: {path}')) or moved
      self.rounds_run = r
      if not moved or self.capped:
        break

  def extend(self, refusal: Callable[[dict], Optional[str]]) -> dict[str, dict]:
    """Tries, once per axis, the value beyond a selected edge value; {path: what was done}."""
    out = {}
    for path, values in self.axes.items():
      side = edge(values, self.best[path])
      if side is None:
        continue
      new = extension(values, side)
      record = {'side': side, 'value': new}
      point = {**self.best, path: new}
      if new is None:
        record['not_run'] = 'no value beyond this edge (the bound of the field)'
      elif error := refusal(point):
        record['not_run'] = f'invalid: {error}'
      elif self.visit(point, f'extension: {path}') is None:
        record['not_run'] = 'the trials cap (search.trials) was reached'
      else:
        record['trial'] = len(self.points) - 1
      out[path] = record
    return out

  def axes_record(self, extensions: dict[str, dict]) -> dict[str, dict]:
    """Per axis: its values, those tried, the selection, its edge and the extension."""
    out = {}
    for path, values in self.axes.items():
      record = extensions.get(path)
      extended = list(values) + ([record['value']] if record and 'trial' in record else [])
      out[path] = {
          'values': list(values),
          'tried': [v for v in extended if any(p[path] == v for p in self.points)],
          'selected': self.best[path],
          'edge': edge(extended, self.best[path]),
          'extension': record,
      }
    return out

  def coverage(self) -> dict:
    """The grid size, the trials run and the fractions of grid points and axis values tried."""
    in_grid = [p for p in self.points if all(p[a] in v for a, v in self.axes.items())]
    size = grid_size(self.axes)
    values = sum(len(v) for v in self.axes.values())
    tried = sum(len({key(p[a]) for p in in_grid}) for a in self.axes)
    return {
        'grid_size': size,
        'trials_run': len(self.points),
        'grid_points_tried': len(in_grid),
        'coverage': len(in_grid) / size,
        'axis_coverage': tried / values if values else 1.0,
    }
