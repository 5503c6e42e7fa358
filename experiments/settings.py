# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The typed blocks of a unit plan, each built from its config block with the checks of its
values (a ValueError whose message starts with the field: `RunPlan.unit` names the config field,
the model and where the value was set)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Optional

import ecrn_jax

KERNELS = ('ntk', 'nngp')


@dataclasses.dataclass(frozen=True)
class KernelSettings:
  """Kernel regression: the kernel ('ntk', 'nngp'), t (None: converged), the ridge relative to
  the mean kernel diagonal, the kernel tile edge and the calibration's folds."""

  kernel: str
  t: Optional[float]
  diag_reg: float
  batch_size: int
  calibration_folds: int


@dataclasses.dataclass(frozen=True)
class ResNetSettings:
  width: int
  augment: bool
  mlp_widths: tuple
  dtype: str


@dataclasses.dataclass(frozen=True)
class ReferenceSettings:
  gp_restarts: int = 2
  gp_max_train: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class SearchSettings:
  enabled: bool
  validation_fraction: float
  trials: int
  rounds: int
  seeds: Optional[tuple]
  space: Mapping[str, Mapping[str, Any]]  # model → {dotted path: candidate values}


def check_int(name: str, value, low: int) -> None:
  if isinstance(value, bool) or not isinstance(value, int) or value < low:
    raise ValueError(f'{name} must be an integer >= {low}, got {value!r}.')


def check_real(name: str, value, low: float, *, low_open: bool = False) -> None:
  bad = isinstance(value, bool) or not isinstance(value, (int, float))
  if bad or not math.isfinite(value) or value < low or (low_open and value == low):
    sign = '>' if low_open else '>='
    raise ValueError(f'{name} must be a finite number {sign} {low}, got {value!r}.')


def arch(family: str, fields: dict, dtype: Optional[str]) -> tuple[Any, Optional[float]]:
  """(ECRNConfig or MLPConfig for d = 1 and out_dim 1; the σ_ff factor, None when the config
  gives fourier_scale)."""
  fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
  fields.update(out_dim=1, **({'dtype': dtype} if dtype else {}))
  if family == 'mlp':
    return ecrn_jax.MLPConfig(**fields), None
  factor = fields.pop('fourier_scale_factor', 1.0)
  if fields['fourier_scale'] is None:
    check_real('fourier_scale_factor', factor, 0.0, low_open=True)
    fields['fourier_scale'], factor = float(factor) / (2.0 * math.pi), float(factor)
  else:
    fields['fourier_scale'], factor = float(fields['fourier_scale']), None
  return ecrn_jax.ECRNConfig(**fields), factor


def resnet18(cfg: dict) -> ResNetSettings:
  """The `resnet18` block, checked."""
  check_int('width', cfg['width'], 1)
  widths = cfg['mlp_widths']
  if not isinstance(widths, (tuple, list)) or not widths:
    raise ValueError(f'mlp_widths must be a non-empty tuple of integers >= 1, got {widths!r}.')
  for width in widths:
    check_int('mlp_widths entries', width, 1)
  if not isinstance(cfg['augment'], bool):
    raise ValueError(f'augment must be a bool, got {cfg["augment"]!r}.')
  if cfg['dtype'] not in ('float32', 'float64'):
    raise ValueError(f"dtype must be 'float32' or 'float64', got {cfg['dtype']!r}.")
  return ResNetSettings(cfg['width'], cfg['augment'], tuple(widths), cfg['dtype'])


def kernel(cfg: dict) -> KernelSettings:
  if cfg['kernel'] not in KERNELS:
    raise ValueError(f'kernel must be one of {list(KERNELS)}, got {cfg["kernel"]!r}.')
  check_real('diag_reg', cfg['diag_reg'], 0.0)
  if cfg['t'] is not None:
    check_real('t', cfg['t'], 0.0)
  check_int('batch_size', cfg['batch_size'], 1)
  check_int('calibration_folds', cfg['calibration_folds'], 2)
  return KernelSettings(**{f.name: cfg[f.name] for f in dataclasses.fields(KernelSettings)})


def reference(cfg: dict) -> ReferenceSettings:
  restarts = cfg.get('gp_restarts', ReferenceSettings.gp_restarts)
  return ReferenceSettings(int(restarts), cfg.get('gp_max_train'))


def train(cfg: dict, seed: int) -> ecrn_jax.TrainConfig:
  """The `TrainConfig` of the train block, with the MSE loss (`UnitPlan.for_data` sets it)."""
  return ecrn_jax.TrainConfig(**cfg, loss='mse', seed=seed)


def tracking(cfg: dict) -> ecrn_jax.TrackingConfig:
  """The `TrackingConfig` of the tracking block (`models`, the tracked models, aside)."""
  return ecrn_jax.TrackingConfig(**{k: v for k, v in cfg.items() if k != 'models'})
