# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The plan of a benchmark run, read once from its config.

`build(config)` is the one place the runner reads the config: a frozen `RunPlan`, checked
(experiments/checks.py), whose `unit` gives the `UnitPlan`s that `units.run_unit` runs. A unit's
settings, in order: the config; its model's defaults; its seed's selection (a twin's inherited
block first); its variant's overrides. A pinned field (set on the command line) is replaced by
neither defaults nor selections and leaves every grid (README.md); a variant's own overrides
still apply. Data locations and checkpoint_every are never pinned.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Mapping, Optional

import ecrn_jax
from ecrn_jax import files
from experiments import checks
from experiments import settings
from experiments.registry import ModelSpec
from experiments.registry import REGISTRY

EPOCHS_FRACTION = 'train.epochs_fraction'
# Swept first: the settings that scale every fit; the other axes follow by name.
FIRST_AXES = ('train.learning_rate', 'kernel.diag_reg')
# Swept last: the axis whose large values cost the most (the first layer grows with it).
LAST_AXES = ('ecrn.fourier_features',)
_FIELD = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')


@dataclasses.dataclass(frozen=True)
class UnitPlan:
  """Everything one unit runs with. Before `for_data`, `arch` has out_dim 1 and σ_ff for d = 1,
  and `train` the MSE loss: the data set fixes them."""

  model: str  # a registered model or a variant of one
  base: str  # the registered model it runs as
  seed: int
  directory: str
  label: str
  metrics: str  # the metrics.jsonl it appends to
  arch: Any = None  # ECRNConfig or MLPConfig (a kernel unit's: float64), settings.ResNetSettings
  network_dtype: Optional[str] = None  # the family's trained network's (a twin draws B in it)
  fourier_scale_factor: Optional[float] = None  # σ_ff = factor/(2π√d); None: arch's own
  train: Optional[ecrn_jax.TrainConfig] = None
  tracking: Optional[ecrn_jax.TrackingConfig] = None
  kernel: Optional[settings.KernelSettings] = None
  reference: Optional[settings.ReferenceSettings] = None
  checkpoint_every: int = 1
  eval_batch_size: int = 1024
  overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # for the record

  @property
  def spec(self) -> ModelSpec:
    return REGISTRY[self.base]

  def for_data(self, dataset) -> UnitPlan:
    """The plan with the data set's output count, input dimension, loss and probe count."""
    changes = {}
    if isinstance(self.arch, (ecrn_jax.ECRNConfig, ecrn_jax.MLPConfig)):
      arch = {'out_dim': max(dataset.num_classes, 1)}
      if self.fourier_scale_factor is not None:
        d = dataset.x_train.shape[1]
        arch['fourier_scale'] = float(self.fourier_scale_factor) / (2.0 * math.pi * math.sqrt(d))
      changes['arch'] = self.arch.replace(**arch)
    if self.train is not None:
      loss = 'mse' if dataset.task == 'regression' else 'cross_entropy'
      changes['train'] = self.train.replace(loss=loss)
    if self.tracking is not None:
      probes = min(self.tracking.probe_size, len(dataset.x_train))
      changes['tracking'] = self.tracking.replace(probe_size=probes)
    return dataclasses.replace(self, **changes)

  def to_json(self) -> dict:
    fields = dataclasses.asdict(self)
    del fields['directory'], fields['metrics']  # where plan.json lies, the workdir's log
    return files.jsonable({'kind': self.spec.kind, **fields})


def flatten(block, prefix: str = '') -> dict[str, Any]:
  """{'train': {'learning_rate': v}} → {'train.learning_rate': v} (dicts or ConfigDicts)."""
  block = block.to_dict() if hasattr(block, 'to_dict') else block
  out = {}
  for key, value in block.items():
    out.update(
        flatten(value, f'{prefix}{key}.') if isinstance(value, dict) else {prefix + key: value}
    )
  return out


def _blocks(tree: dict, prefix: str = '') -> list[str]:
  nested = [(prefix + key, value) for key, value in tree.items() if isinstance(value, dict)]
  return [p for path, value in nested for p in (path, *_blocks(value, path + '.'))]


def is_pinned(path: str, paths) -> bool:
  """Whether `path` is one of `paths` or lies inside one of them."""
  return any(path == p or path.startswith(p + '.') for p in paths)


def sets(path: str) -> str:
  """The field that grid axis `path` sets (train.epochs_fraction sets train.epochs)."""
  return 'train.epochs' if path == EPOCHS_FRACTION else path


def _block(values: Mapping[str, Any], name: str) -> dict[str, Any]:
  n = len(name) + 1
  return {k[n:]: v for k, v in values.items() if k.startswith(name + '.')}


@dataclasses.dataclass(frozen=True)
class RunPlan:
  """A benchmark config, read: its fields flat ({dotted path: value}), with what they mean."""

  fields: Mapping[str, Any]  # every field of the config
  blocks: frozenset  # the dotted paths of its blocks
  models: tuple
  seeds: tuple
  data: Mapping[str, Any]
  pinned: tuple
  defaults: Mapping[str, Mapping[str, Any]]  # model → its model_defaults, flat
  variants: Mapping[str, Mapping[str, Any]]  # variant → {'base': model, path: value}
  search: Optional[settings.SearchSettings]

  def value(self, path: str):
    """The value of field `path`, or block `path` as a nested dict."""
    if path in self.fields:
      return self.fields[path]
    children = dict.fromkeys(key.split('.')[0] for key in _block(self.fields, path))
    return {child: self.value(f'{path}.{child}') for child in children}

  def has(self, path: str) -> bool:
    return path in self.fields or path in self.blocks

  def base_model(self, name: str) -> str:
    """The registered model that `name` (a model or a variant of one) runs as."""
    return self.variants[name]['base'] if name in self.variants else name

  def spec(self, name: str) -> ModelSpec:
    return REGISTRY[self.base_model(name)]

  def variant_overrides(self, name: str) -> dict[str, Any]:
    return {k: v for k, v in self.variants.get(name, {}).items() if k != 'base'}

  def default_overrides(self, name: str) -> dict[str, Any]:
    """{path: value} of `name`'s model defaults, without the pinned fields."""
    flat = self.defaults.get(self.base_model(name)) or {}
    return {k: v for k, v in flat.items() if not is_pinned(k, self.pinned)}

  def unit_overrides(self, name: str, selected: Optional[dict] = None) -> dict[str, Any]:
    """{path: value} of `name`'s defaults, then `selected`, then its variant's overrides; the
    defaults and `selected` never set a pinned field."""
    selected = {k: v for k, v in (selected or {}).items() if not is_pinned(k, self.pinned)}
    return {**self.default_overrides(name), **selected, **self.variant_overrides(name)}

  def inherited_overrides(self, name: str, source_selected: Optional[dict] = None) -> dict:
    """{path: value} of the family block that twin `name` takes from its tuned source: the
    source's defaults and `source_selected` under that block ({} for a model that is no twin)."""
    spec = self.spec(name)
    if spec.twin_of is None:
      return {}
    source = self.unit_overrides(spec.twin_of, source_selected)
    return {k: v for k, v in source.items() if k.startswith(spec.family + '.')}

  def values(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The fields with `overrides` set, each naming a field of the config (ValueError)."""
    out = dict(self.fields)
    for path, value in overrides.items():
      parts = path.split('.')
      for i, part in enumerate(parts):  # each parent a block, and the path a field or block
        known, block = '.'.join(parts[: i + 1]), '.'.join(parts[:i])
        if known not in self.blocks and not (i == len(parts) - 1 and known in self.fields):
          n, paths = len(block) + 1 if block else 0, [*self.fields, *self.blocks]
          inside = {p[n:].split('.')[0] for p in paths if not block or p.startswith(block + '.')}
          raise ValueError(
              f'{path!r} names no field of the config: {block or "the config"} has no '
              f'{part!r}; its fields: {sorted(inside)}.'
          )
      out[path] = tuple(value) if isinstance(value, list) else value
    return out

  def grid(self, model: str) -> tuple[dict[str, tuple], list[str]]:
    """(`model`'s grid {path: candidate values} without the pinned fields, in sweep order; the
    paths removed)."""
    full = self.search.space.get(model) or {} if self.search else {}
    removed = sorted(p for p in full if is_pinned(sets(p), self.pinned))
    k = len(FIRST_AXES)
    rank = lambda p: FIRST_AXES.index(p) if p in FIRST_AXES else k + (p in LAST_AXES)
    paths = sorted((p for p in full if p not in removed), key=lambda p: (rank(p), p))
    return {p: tuple(full[p]) for p in paths}, removed

  def start_point(self, model: str, axes: dict) -> dict[str, Any]:
    """On each axis the model's configured value when the axis holds it, else its middle value
    (train.epochs_fraction: 1, the configured epochs)."""
    values = {**self.fields, **self.unit_overrides(model)}
    point = {}
    for path, candidates in axes.items():
      current = 1.0 if path == EPOCHS_FRACTION else values.get(path)
      current = tuple(current) if isinstance(current, list) else current
      point[path] = current if current in candidates else candidates[(len(candidates) - 1) // 2]
    return point

  def resolve_epochs(self, model: str, point: dict) -> dict[str, Any]:
    """`point` with train.epochs_fraction f replaced by train.epochs = max(1, ⌊f · epochs⌋)."""
    if EPOCHS_FRACTION not in point:
      return point
    point = dict(point)
    fraction = point.pop(EPOCHS_FRACTION)
    if not settings.is_real(fraction, 0, open_low=True):
      raise ValueError(
          f'search.space.{model}.{EPOCHS_FRACTION} values must be finite numbers > 0, got '
          f'{fraction!r}.'
      )
    epochs = int(self.unit_overrides(model).get('train.epochs', self.fields['train.epochs']))
    point['train.epochs'] = max(1, int(fraction * epochs))
    return point

  def unit_selection(self, model: str, point: dict, inherited: Optional[dict] = None) -> dict:
    """The selected overrides of `model`'s units at grid `point` (epochs resolved): for a twin,
    the inherited block first (`inherited`, else from the source's axes in `point`)."""
    spec = REGISTRY[model]
    if spec.twin_of is None:
      return self.resolve_epochs(model, point)
    prefix = spec.family + '.'
    if inherited is None:
      source = {p: v for p, v in point.items() if p.startswith(prefix)}
      inherited = self.inherited_overrides(model, source)
    own = {p: v for p, v in point.items() if not p.startswith(prefix)}
    return {**inherited, **self.resolve_epochs(model, own)}

  def searched_models(self) -> list[str]:
    """The base models searched, in order, a twin's source first (searched for the twin alone
    when it is not among the models and has a grid); references are not."""
    bases = dict.fromkeys(self.base_model(m) for m in self.models)
    bases = [m for m in bases if REGISTRY[m].kind != 'reference']
    out = []
    for base in bases:
      source = REGISTRY[base].twin_of
      if source is not None and source not in out and (source in bases or self.grid(source)[0]):
        out.append(source)
      if base not in out:
        out.append(base)
    return out

  def unit(
      self,
      name: str,
      seed: int = 0,
      selected: Optional[dict] = None,
      *,
      directory: str = '',
      label: str = '',
      metrics: str = '',
      trial: bool = False,
      sources: Optional[dict[str, str]] = None,
      context: str = '',
  ) -> UnitPlan:
    """The plan of `name`'s unit of `seed` with `selected` (a search trial's when `trial`: not
    tracked, at most four checkpoints). A ValueError names the config field, the model and where
    the bad value was set: `sources` ({path: where}), the model defaults, the variant, else the
    command line (--config.FIELD)."""
    overrides = self.unit_overrides(name, selected)
    values = self.values(overrides)
    spec = self.spec(name)

    def settle(block, make):
      try:
        return make(_block(values, block))
      except (TypeError, ValueError) as e:
        text = str(e).rstrip('.')
        match = _FIELD.match(text)
        if match and f'{block}.{match.group()}' in values:
          path, text = f'{block}.{match.group()}', f'config.{block}.{text}'
        else:
          path, text = block, f'config.{block}: {text}'
        where = {p: f'model_defaults.{spec.name}.{p}' for p in self.default_overrides(name)}
        where.update(sources or {})
        where.update({p: f'variants.{name}.{p}' for p in self.variant_overrides(name)})
        raise ValueError(
            f'{text} (model {name}{context}); fix {where.get(path, f"--config.{path}")}.'
        ) from None

    out = {}
    kernel = spec.kind == 'kernel'
    if spec.family == 'resnet18':
      out['arch'] = settle('resnet18', settings.resnet18)
    elif spec.kind != 'reference':
      dtype = 'float64' if kernel else None
      arch = settle(spec.family, lambda b: settings.arch(spec.family, b, dtype))
      out.update(arch=arch[0], fourier_scale_factor=arch[1])
      out['network_dtype'] = values[f'{spec.family}.dtype']
    if kernel:
      out['kernel'] = settle('kernel', settings.kernel)
    elif spec.kind == 'reference':
      out['reference'] = settle('reference', settings.reference)
    else:  # the MSE loss until `for_data` sets the data set's
      train = lambda b: ecrn_jax.TrainConfig(**b, loss='mse', seed=int(seed))
      out['train'] = settle('train', train)
      tracked = values.get('tracking.models') or ()
      if not trial and (name in tracked or spec.name in tracked):
        track = lambda b: ecrn_jax.TrackingConfig(**{k: v for k, v in b.items() if k != 'models'})
        out['tracking'] = settle('tracking', track)
    every = int(values['checkpoint_every'])
    if trial:  # a trial's checkpoints go when it ends: at most four saves (epoch 0 aside)
      every = max(every, -(-int(values['train.epochs']) // 4))
    out.update(checkpoint_every=every, eval_batch_size=int(values['eval_batch_size']))
    return UnitPlan(
        name, spec.name, int(seed), directory, label, metrics, **out, overrides=overrides
    )


def read(config) -> RunPlan:
  """The config's fields as a `RunPlan`, unchecked (`build` checks them)."""
  tree = config.to_dict()
  search, fields = tree.get('search'), flatten(tree)
  if isinstance(fields.get('tracking.models'), str):  # one name, never matched as a substring
    fields['tracking.models'] = (fields['tracking.models'],)
  each = lambda blocks: {name: flatten(block) for name, block in (blocks or {}).items()}
  if search:
    names = ('enabled', 'validation_fraction', 'trials', 'rounds', 'seeds')
    space = each(search.get('space'))
    search = settings.SearchSettings(**{k: search.get(k) for k in names}, space=space)
  models, seeds, data = tuple(tree['models']), tuple(tree['seeds']), dict(tree['data'])
  pinned, blocks = tuple(tree.get('pinned') or ()), frozenset(_blocks(tree))
  overrides = each(tree.get('model_defaults')), each(tree.get('variants'))
  return RunPlan(fields, blocks, models, seeds, data, pinned, *overrides, search)


def build(config) -> RunPlan:
  """The checked plan of a benchmark config; ValueError naming the field of the first problem."""
  run = read(config)
  checks.check(run)
  return run
