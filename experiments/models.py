# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The model registry: every model a benchmark config can name, its kind and its builders.

A *model* is one row of the paper's tables: a network trained with `ecrn_jax.train`
('trained') or kernel regression with an infinite-width kernel ('kernel'). Each reads one
architecture block of the config (`family`): 'ecrn' (`ECRNConfig` fields), 'mlp'
(`MLPConfig` fields) or 'resnet18'. A model and its infinite twin share the family and hence
the initialization key: the twin's Fourier matrix B is drawn from the same key as the trained
ECRN's, but at float64 and with the twin's own selected σ_ff, so the two B agree only where
those do (the finite-vs-infinite job and `ecrn_jax.infinite_kernels` use the network's own B).

Per-unit configs (`model_config`): the config with, in this order, the model's defaults
(`config.model_defaults.BASE`), the selected hyperparameters (experiments/search.py) and the
variant's overrides (`config.variants.NAME = {'base': MODEL, <nested overrides>}`, ablations).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any, Optional

import jax
import ml_collections

import ecrn_jax


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  name: str
  kind: str  # 'trained' or 'kernel'
  family: str  # the architecture block it reads: 'ecrn', 'mlp' or 'resnet18'
  description: str


_SPECS = (
    ModelSpec('mlp', 'trained', 'mlp', 'the trained plain MLP baseline'),
    ModelSpec(
        'resnet18',
        'trained',
        'resnet18',
        'CIFAR ResNet-18 on images; on vectors its 18-layer residual-MLP stand-in',
    ),
    ModelSpec(
        'standard_ntk',
        'kernel',
        'mlp',
        'kernel regression with the infinite-width kernel of the plain MLP',
    ),
    ModelSpec('ntk_ecrn', 'trained', 'ecrn', 'the trained NTK-ECRN (kernel-tracked)'),
    ModelSpec(
        'ntk_ecrn_infinite',
        'kernel',
        'ecrn',
        "kernel regression with the NTK-ECRN's infinite-width twin (B from the same key)",
    ),
)
# Paper row order.
REGISTRY: dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS}
MODELS = tuple(REGISTRY)
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


def default_overrides(config: ml_collections.ConfigDict, name: str) -> dict[str, Any]:
  defaults = config.get('model_defaults') or {}
  base = base_model(config, name)
  return flatten(defaults[base]) if base in defaults else {}


def unit_overrides(
    config: ml_collections.ConfigDict, name: str, selected: Optional[dict[str, Any]] = None
) -> dict[str, Any]:
  """{path: value} of `name`'s defaults, then `selected`, then its variant's overrides."""
  return {
      **default_overrides(config, name),
      **(selected or {}),
      **variant_overrides(config, name),
  }


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
          f'variants.{name}.base must be one of {list(MODELS)}, got ' f'{variant.get("base")!r}.'
      )
  for name in config.models:
    if name not in REGISTRY and name not in variants:
      raise ValueError(
          f'unknown model {name!r} in config.models; valid: {list(MODELS)} and '
          f'the variants {sorted(variants)}.'
      )
  for name in config.models:
    model_config(config, name)


# ---------------------------------------------------------------------------------------------
# Builders.


def fourier_scale(config: ml_collections.ConfigDict, input_dim: int) -> float:
  """config.ecrn.fourier_scale, or fourier_scale_factor/(2π√d) when it is None."""
  scale = config.ecrn.fourier_scale
  if scale is not None:
    return float(scale)
  return float(config.ecrn.get('fourier_scale_factor', 1.0)) / (
      2.0 * math.pi * math.sqrt(input_dim)
  )


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


def model_key(seed: int, name: str, config) -> jax.Array:
  """The initialization key of (seed, model): one per family, so a trained model and its
  infinite twin draw their Fourier matrix B from the same key (the twin at float64)."""
  family = spec(config, name).family
  return jax.random.fold_in(jax.random.PRNGKey(seed), _FAMILY_KEY[family])


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
