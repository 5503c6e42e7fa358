# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The typed blocks of a unit plan, each built from its config block with its values checked (a
ValueError that starts with the field: `RunPlan.unit` adds the config path, model and source)."""

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


def is_int(value, low: int) -> bool:
  return not isinstance(value, bool) and isinstance(value, int) and value >= low


def is_real(value, low: float, high: float = math.inf, open_low=False, open_high=False) -> bool:
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
    return False
  return (value > low if open_low else value >= low) and (
      value < high if open_high else value <= high
  )


def require(field: str, value, valid, expected: str) -> None:
  """ValueError '`field` must be `expected`, got `value`.' unless `valid`."""
  if not valid:
    raise ValueError(f'{field} must be {expected}, got {value!r}.')


def arch(family: str, fields: dict, dtype: Optional[str]) -> tuple[Any, Optional[float]]:
  """(ECRNConfig or MLPConfig for d = 1, out_dim 1; the σ_ff factor, None given fourier_scale)."""
  fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
  fields.update(out_dim=1, **({'dtype': dtype} if dtype else {}))
  if family == 'mlp':
    return ecrn_jax.MLPConfig(**fields), None
  factor = fields.pop('fourier_scale_factor', 1.0)
  if fields['fourier_scale'] is None:
    valid = is_real(factor, 0.0, open_low=True)
    require('fourier_scale_factor', factor, valid, 'a finite number > 0.0')
    fields['fourier_scale'], factor = float(factor) / (2.0 * math.pi), float(factor)
  else:
    fields['fourier_scale'], factor = float(fields['fourier_scale']), None
  return ecrn_jax.ECRNConfig(**fields), factor


def resnet18(cfg: dict) -> ResNetSettings:
  """The `resnet18` block, checked."""
  width, widths, augment, dtype = cfg['width'], cfg['mlp_widths'], cfg['augment'], cfg['dtype']
  require('width', width, is_int(width, 1), 'an integer >= 1')
  valid = isinstance(widths, (tuple, list)) and widths
  require('mlp_widths', widths, valid, 'a non-empty tuple of integers >= 1')
  for entry in widths:
    require('mlp_widths entries', entry, is_int(entry, 1), 'an integer >= 1')
  require('augment', augment, isinstance(augment, bool), 'a bool')
  require('dtype', dtype, dtype in ('float32', 'float64'), "'float32' or 'float64'")
  return ResNetSettings(width, augment, tuple(widths), dtype)


def kernel(cfg: dict) -> KernelSettings:
  """The `kernel` block, checked."""
  t, diag_reg = cfg['t'], cfg['diag_reg']
  require('kernel', cfg['kernel'], cfg['kernel'] in KERNELS, f'one of {list(KERNELS)}')
  require('diag_reg', diag_reg, is_real(diag_reg, 0.0), 'a finite number >= 0.0')
  require('t', t, t is None or is_real(t, 0.0), 'None or a finite number >= 0.0')
  for field, low in (('batch_size', 1), ('calibration_folds', 2)):
    require(field, cfg[field], is_int(cfg[field], low), f'an integer >= {low}')
  return KernelSettings(**{f.name: cfg[f.name] for f in dataclasses.fields(KernelSettings)})


def reference(cfg: dict) -> ReferenceSettings:
  restarts = cfg.get('gp_restarts', ReferenceSettings.gp_restarts)
  return ReferenceSettings(int(restarts), cfg.get('gp_max_train'))
