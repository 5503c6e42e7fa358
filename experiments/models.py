# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The model registry: every model a benchmark config can name, its kind and its builders.

A *model* is one row of the paper's tables: a network trained with `ecrn_jax.train`
('trained') or kernel regression with an infinite-width kernel ('kernel'). Each reads one
architecture block of the config (`family`): 'ecrn' (`ECRNConfig` fields), 'mlp'
(`MLPConfig` fields) or 'resnet18'. A 'reference' (family 'reference', not one of the
paper's models: `REFERENCES`) is a classical estimator fitted by experiments/units.py
(`run_reference`) that selects its own hyperparameters on the training split; the search
skips it. A model and its infinite twins share the family and hence
the initialization key: a kernel unit draws B as the trained network does (same key, the
network's dtype, `kernel_variables`) and computes in float64, so the twin of the tuned
NTK-ECRN has the trained network's B exactly.

Twins (`ModelSpec.twin_of`): `ntk_ecrn_infinite` is the twin of the tuned `ntk_ecrn`: its
family block (ecrn: α, schedule, drop rate, hence the evaluation-mode survival scales, σ_ff
factor, features) is the one the tuned network ran with, for the same seed
(`inherited_overrides`); only the kernel's own settings are searched.
`ntk_ecrn_infinite_self_tuned` is the twin tuned on its own (σ_ff, α, drop rate and diag_reg
searched).

Per-unit configs (`model_config`): the config with, in this order, the model's defaults
(`config.model_defaults.BASE`), the selected hyperparameters of the unit's seed
(experiments/search.py; for a twin, the tuned source's family block first) and the
variant's overrides (`config.variants.NAME = {'base': MODEL, <nested overrides>}`, ablations).

Pinned fields (`config.pinned`, dotted paths; the command line pins every `--config.FIELD` it
sets): neither the model's defaults nor a selected setting replace them (the search leaves them
out of the grid). A variant's own overrides still apply: they are what the variant is; the
run logs, and search.json records, each pinned field that a variant sets.
"""

from __future__ import annotations

import copy
import math
import re
from typing import Any, Optional

import jax
import ml_collections
import numpy as np

import ecrn_jax
from experiments.registry import MODELS  # pylint: disable=unused-import
from experiments.registry import ModelSpec
from experiments.registry import REFERENCES  # pylint: disable=unused-import
from experiments.registry import REGISTRY


def is_reference(config, name: str) -> bool:
  """Whether `name` (a model or a variant) is a reference, not one of the paper's models."""
  return spec(config, name).kind == 'reference'


_FAMILY_KEY = {'ecrn': 0, 'mlp': 1, 'resnet18': 2}


# ---------------------------------------------------------------------------------------------
# Names, variants and per-model configs.


def flatten(block, prefix: str = '') -> dict[str, Any]:
  """{'train': {'learning_rate': v}} → {'train.learning_rate': v} (ConfigDicts or dicts)."""
  if isinstance(block, ml_collections.ConfigDict):
    block = block.to_dict()
  out = {}
  for key, value in block.items():
    path = f'{prefix}{key}'
    if isinstance(value, dict):
      out.update(flatten(value, path + '.'))
    else:
      out[path] = value
  return out


def set_path(config: ml_collections.ConfigDict, path: str, value) -> None:
  """config.<path> = value, failing with the valid fields when `path` names none."""
  *parents, leaf = path.split('.')
  node = config
  for i, name in enumerate(parents):
    if name not in node or not isinstance(node[name], ml_collections.ConfigDict):
      raise ValueError(
          f'{path!r} names no field of the config: {".".join(parents[:i + 1])!r} '
          f'is not a block; valid: {sorted(node.keys())}.'
      )
    node = node[name]
  if leaf not in node:
    raise ValueError(
        f'{path!r} names no field of the config; fields of '
        f'{".".join(parents) or "the config"}: {sorted(node.keys())}.'
    )
  if isinstance(value, list):
    value = tuple(value)
  with node.ignore_type():
    node[leaf] = value


def get_path(config: ml_collections.ConfigDict, path: str):
  """config.<path> (dotted)."""
  node = config
  for name in path.split('.'):
    node = node[name]
  return node


def base_model(config: ml_collections.ConfigDict, name: str) -> str:
  """The registered model that `name` (a model or a variant of one) runs as."""
  variants = config.get('variants') or {}
  return variants[name].base if name in variants else name


def spec(config: ml_collections.ConfigDict, name: str) -> ModelSpec:
  return REGISTRY[base_model(config, name)]


def variant_overrides(config: ml_collections.ConfigDict, name: str) -> dict[str, Any]:
  variants = config.get('variants') or {}
  if name not in variants:
    return {}
  return {k: v for k, v in flatten(variants[name]).items() if k != 'base'}


def pinned(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The dotted paths of config.pinned (none when the config has no such field)."""
  return tuple(config.get('pinned') or ())


def is_pinned(path: str, paths) -> bool:
  """Whether `path` is one of `paths` or lies inside one of them."""
  return any(path == p or path.startswith(p + '.') for p in paths)


def default_overrides(config: ml_collections.ConfigDict, name: str) -> dict[str, Any]:
  """{path: value} of `name`'s model defaults, without the pinned fields."""
  defaults = config.get('model_defaults') or {}
  base = base_model(config, name)
  flat = flatten(defaults[base]) if base in defaults else {}
  return {k: v for k, v in flat.items() if not is_pinned(k, pinned(config))}


def pinned_set_by_variant(config: ml_collections.ConfigDict, name: str) -> dict[str, Any]:
  """{path: value} of the pinned fields that variant `name` sets (its value is used)."""
  return {k: v for k, v in variant_overrides(config, name).items() if is_pinned(k, pinned(config))}


def unit_overrides(
    config: ml_collections.ConfigDict, name: str, selected: Optional[dict[str, Any]] = None
) -> dict[str, Any]:
  """{path: value} of `name`'s defaults, then `selected`, then its variant's overrides; the
  defaults and `selected` never set a pinned field."""
  selected = {k: v for k, v in (selected or {}).items() if not is_pinned(k, pinned(config))}
  return {
      **default_overrides(config, name),
      **selected,
      **variant_overrides(config, name),
  }


def inherited_overrides(
    config: ml_collections.ConfigDict, name: str, source_selected: Optional[dict[str, Any]] = None
) -> dict[str, Any]:
  """{path: value} of the family block that twin `name` takes from its tuned source model: the
  source's defaults and `source_selected` under that block ({} for a model that is no twin)."""
  model = spec(config, name)
  if model.twin_of is None:
    return {}
  prefix = model.family + '.'
  source = unit_overrides(config, model.twin_of, source_selected)
  return {k: v for k, v in source.items() if k.startswith(prefix)}


def with_overrides(config: ml_collections.ConfigDict, overrides: dict[str, Any]):
  """A copy of `config` with each {dotted path: value} set."""
  out = copy.deepcopy(config)
  for path, value in overrides.items():
    set_path(out, path, value)
  return out


def model_config(
    config: ml_collections.ConfigDict, name: str, selected: Optional[dict[str, Any]] = None
) -> ml_collections.ConfigDict:
  """`config` with `name`'s defaults, then `selected`, then its variant's overrides."""
  return with_overrides(config, unit_overrides(config, name, selected))


def check_models(config: ml_collections.ConfigDict) -> None:
  """Every name in config.models is a model or a variant of one; ValueError otherwise."""
  variants = config.get('variants') or {}
  for name, variant in variants.items():
    if variant.get('base') not in REGISTRY:
      raise ValueError(
          f'variants.{name}.base must be one of {list(REGISTRY)}, got ' f'{variant.get("base")!r}.'
      )
  for name in config.models:
    if name not in REGISTRY and name not in variants:
      raise ValueError(
          f'unknown model {name!r} in config.models; valid: {list(REGISTRY)} and '
          f'the variants {sorted(variants)}.'
      )
  for name in config.models:
    model_config(config, name)


# ---------------------------------------------------------------------------------------------
# Builders.


def _check_int(name: str, value, low: int) -> None:
  if isinstance(value, bool) or not isinstance(value, int) or value < low:
    raise ValueError(f'{name} must be an integer >= {low}, got {value!r}.')


def _check_real(name: str, value, low: float, *, low_open: bool = False) -> None:
  bad = isinstance(value, bool) or not isinstance(value, (int, float))
  if bad or not math.isfinite(value) or value < low or (low_open and value == low):
    raise ValueError(
        f'{name} must be a finite number {">" if low_open else ">="} {low}, got {value!r}.'
    )


def fourier_scale(config: ml_collections.ConfigDict, input_dim: int) -> float:
  """config.ecrn.fourier_scale, or fourier_scale_factor/(2π√d) when it is None."""
  scale = config.ecrn.fourier_scale
  if scale is not None:
    return float(scale)
  factor = config.ecrn.get('fourier_scale_factor', 1.0)
  _check_real('fourier_scale_factor', factor, 0.0, low_open=True)
  return float(factor) / (2.0 * math.pi * math.sqrt(input_dim))


def ecrn_config(config, dataset, **changes) -> ecrn_jax.ECRNConfig:
  fields = config.ecrn.to_dict()
  fields.pop('fourier_scale_factor', None)
  fields['fourier_scale'] = fourier_scale(config, dataset.x_train.shape[1])
  for name in ('alpha', 'drop_rate'):
    if isinstance(fields[name], list):
      fields[name] = tuple(fields[name])
  fields.update(out_dim=max(dataset.num_classes, 1), **changes)
  return ecrn_jax.ECRNConfig(**fields)


def mlp_config(config, dataset, **changes) -> ecrn_jax.MLPConfig:
  fields = config.mlp.to_dict()
  if isinstance(fields['hidden_widths'], list):
    fields['hidden_widths'] = tuple(fields['hidden_widths'])
  fields.update(out_dim=max(dataset.num_classes, 1), **changes)
  return ecrn_jax.MLPConfig(**fields)


def arch_config(config, name: str, dataset, **changes) -> ecrn_jax.ArchConfig:
  """The `ECRNConfig` or `MLPConfig` of model `name` (family 'ecrn' or 'mlp')."""
  family = spec(config, name).family
  if family == 'ecrn':
    return ecrn_config(config, dataset, **changes)
  if family == 'mlp':
    return mlp_config(config, dataset, **changes)
  raise ValueError(f'{name!r} has no ECRN/MLP architecture (family {family!r}).')


def train_config(config, loss: str, seed: int) -> ecrn_jax.TrainConfig:
  return ecrn_jax.TrainConfig(**config.train.to_dict(), loss=loss, seed=seed)


def is_tracked(config, name: str) -> bool:
  """Whether the trained unit of `name` is kernel-tracked (it or its base in tracking.models)."""
  return name in config.tracking.models or base_model(config, name) in config.tracking.models


def tracking_config(config, num_train: Optional[int] = None) -> ecrn_jax.TrackingConfig:
  """`TrackingConfig` of config.tracking; probe_size clipped to `num_train` when given."""
  fields = {k: v for k, v in config.tracking.to_dict().items() if k != 'models'}
  tracking = ecrn_jax.TrackingConfig(**fields)
  if num_train is None:
    return tracking
  return tracking.replace(probe_size=min(tracking.probe_size, num_train))


KERNELS = ('ntk', 'nngp')


def check_kernel(config) -> None:
  """The kernel-regression settings (config.kernel); ValueError naming the field."""
  kernel = config.kernel
  if kernel.kernel not in KERNELS:
    raise ValueError(f'kernel must be one of {list(KERNELS)}, got {kernel.kernel!r}.')
  _check_real('diag_reg', kernel.diag_reg, 0.0)
  if kernel.t is not None:
    _check_real('t', kernel.t, 0.0)
  _check_int('batch_size', kernel.batch_size, 1)
  _check_int('calibration_folds', kernel.calibration_folds, 2)


def check_resnet18(config) -> None:
  """The ResNet-18 settings (config.resnet18); ValueError naming the field."""
  cfg = config.resnet18
  _check_int('width', cfg.width, 1)
  widths = cfg.mlp_widths
  if not isinstance(widths, (tuple, list)) or not widths:
    raise ValueError(f'mlp_widths must be a non-empty tuple of integers >= 1, got {widths!r}.')
  for width in widths:
    _check_int('mlp_widths entries', width, 1)
  if not isinstance(cfg.augment, bool):
    raise ValueError(f'augment must be a bool, got {cfg.augment!r}.')
  if cfg.dtype not in ('float32', 'float64'):
    raise ValueError(f"dtype must be 'float32' or 'float64', got {cfg.dtype!r}.")


class _NoData:
  """Stands in for a dataset (one feature, no classes) where a config is checked before any
  data are loaded."""

  x_train = type('Shape', (), {'shape': (1, 1)})()
  num_classes = 0


def _builders(config, name: str) -> list:
  """(block, build) of every library config the unit of `name` builds from `config`."""
  model = spec(config, name)
  if model.kind == 'reference':  # no config block: it selects its own settings
    return []
  if model.family == 'resnet18':
    out = [('resnet18', lambda: check_resnet18(config))]
  else:
    changes = {'dtype': 'float64'} if model.kind == 'kernel' else {}
    out = [(model.family, lambda: arch_config(config, name, _NoData, **changes))]
  if model.kind == 'kernel':
    return out + [('kernel', lambda: check_kernel(config))]
  out.append(('train', lambda: train_config(config, 'mse', 0)))
  if is_tracked(config, name):
    out.append(('tracking', lambda: tracking_config(config)))
  return out


def _read_only_unit(config: ml_collections.ConfigDict, overrides: dict[str, Any]):
  """`with_overrides(config, overrides)` for reading only, made fast: the blocks that
  `overrides` change are copies, the others are `config`'s own."""
  changed = {path.split('.')[0] for path in overrides}
  out = ml_collections.ConfigDict()
  for key in config.keys():
    out[key] = copy.deepcopy(config[key]) if key in changed else config[key]
  for path, value in overrides.items():
    set_path(out, path, value)
  return out


_FIELD = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')


def check_unit(
    config: ml_collections.ConfigDict,
    name: str,
    selected: Optional[dict[str, Any]] = None,
    *,
    sources: Optional[dict[str, str]] = None,
    context: str = '',
) -> None:
  """Builds every library config of `name`'s unit (`model_config(config, name, selected)`)
  without data, so an invalid value fails before any work.

  Raises:
    ValueError: naming the config field, the model, and where the bad value was set:
      `sources` ({path: where}, e.g. the search space for `selected`), the model defaults,
      the variant, else the command line (--config.FIELD).
  """
  unit = _read_only_unit(config, unit_overrides(config, name, selected))
  for block, build in _builders(unit, name):
    try:
      build()
    except (TypeError, ValueError) as e:
      text = str(e).rstrip('.')
      match = _FIELD.match(text)
      if match and match.group() in unit[block]:
        path = f'{block}.{match.group()}'
        text = f'config.{path}{text[match.end():]}'
      else:
        path, text = block, f'config.{block}: {text}'
      base = base_model(config, name)
      where = {p: f'model_defaults.{base}.{p}' for p in default_overrides(config, name)}
      where.update(sources or {})
      where.update({p: f'variants.{name}.{p}' for p in variant_overrides(config, name)})
      raise ValueError(
          f'{text} (model {name}{context}); fix {where.get(path, f"--config.{path}")}.'
      ) from None


def model_key(seed: int, name: str, config) -> jax.Array:
  """The initialization key of (seed, model): one per family, so a trained model and its
  infinite twin draw their Fourier matrix B from the same key (the twin at float64)."""
  family = spec(config, name).family
  return jax.random.fold_in(jax.random.PRNGKey(seed), _FAMILY_KEY[family])


def kernel_variables(config, name: str, dataset, seed: int):
  """The variables (float64) of kernel model `name`'s twin: for the ECRN family, drawn as the
  trained network's (`build_network`: same key, the network's dtype), so B is the same; None
  for the other families."""
  if spec(config, name).family != 'ecrn':
    return None
  network = ecrn_jax.ECRN(ecrn_config(config, dataset))
  variables = network.init(model_key(seed, name, config), dataset.x_train[:1])
  return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), variables)


def is_image_dataset(dataset) -> bool:
  return dataset.info.get('standardize_channels') is not None


def resnet18_module(config, dataset):
  """CIFAR ResNet-18 for images; for vector data its stand-in, the 18-layer residual MLP."""
  from experiments import resnet  # pylint: disable=g-import-not-at-top

  cfg = config.resnet18
  out_dim = max(dataset.num_classes, 1)
  if is_image_dataset(dataset):
    channels = int(dataset.info['standardize_channels'])
    side = int(round(math.sqrt(dataset.x_train.shape[1] / channels)))
    return resnet.ResNet18(
        num_classes=out_dim,
        image_shape=(side, side, channels),
        width=int(cfg.width),
        augment=bool(cfg.augment),
        dtype=cfg.dtype,
    )
  return resnet.ResidualMLP18(out_dim=out_dim, widths=tuple(cfg.mlp_widths), dtype=cfg.dtype)


def build_network(config, name: str, dataset, seed: int):
  """(module, variables) of trained model `name` (or a variant of one), initialized."""
  family = spec(config, name).family
  if family == 'ecrn':
    model = ecrn_jax.ECRN(ecrn_config(config, dataset))
  elif family == 'mlp':
    model = ecrn_jax.MLP(mlp_config(config, dataset))
  else:
    model = resnet18_module(config, dataset)
  return model, model.init(model_key(seed, name, config), dataset.x_train[:1])
