# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Configurations of the NTK-ECRN and of the plain MLP baseline (docs/spec.md §1)."""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Union

import numpy as np

from ecrn_jax._src.validation import check_choice, check_int, check_real

ACTIVATIONS = ('gelu', 'erf', 'relu')
ALPHA_SCHEDULES = ('constant', 'inverse_sqrt_depth')
PARAMETERIZATIONS = ('ntk', 'standard')
DTYPES = ('float32', 'float64')


def _normalize_dtype(value) -> str:
  try:
    name = np.dtype(value).name
  except TypeError:
    name = str(value)
  if name not in DTYPES:
    raise ValueError(f'dtype must be one of {list(DTYPES)}, got {value!r}.')
  return name


def _per_block(
    name: str, value, depth: int, low: float, high: float, high_open: bool
) -> tuple[float, ...]:
  """A float or a sequence of `depth` floats, validated, as a tuple."""
  if isinstance(value, (list, tuple, np.ndarray)):
    values = tuple(float(v) for v in value)
    if len(values) != depth:
      raise ValueError(
          f'{name} given per block must have depth={depth} entries, got {len(values)}.'
      )
  else:
    check_real(name, value, low, high, high_open=high_open)
    values = (float(value),) * depth
  for v in values:
    check_real(name, v, low, high, high_open=high_open)
  return values


@dataclasses.dataclass(frozen=True)
class ECRNConfig:
  """Every hyperparameter of the NTK-ECRN (docs/spec.md §1).

  Attributes:
    width: hidden width n (>= 1).
    depth: number of residual blocks L (>= 0).
    alpha: residual scale: a float, or a tuple of `depth` floats (one per block).
    alpha_schedule: 'constant' (α_l = alpha) or 'inverse_sqrt_depth' (α_l = alpha/√L).
    activation: 'gelu' (exact, erf form), 'erf' or 'relu'.
    fourier_features: m, the number of frequencies of γ (γ(x) ∈ R^{2m}); None for no embedding.
    fourier_scale: σ_ff, the standard deviation of the entries of B (> 0).
    fourier_trainable: whether B lives in `params` (and so in the empirical NTK).
    drop_rate: stochastic-depth drop probability p ∈ [0, 1), a float or one per block.
    out_dim: number of outputs C.
    parameterization: 'ntk' or 'standard' (neural-tangents' conventions).
    w_std: σ_w of every Dense layer (> 0).
    b_std: σ_b of every Dense layer (>= 0).
    dtype: 'float32' or 'float64' (float64 needs `jax_enable_x64`).
  """

  width: int = 512
  depth: int = 4
  alpha: Union[float, tuple[float, ...]] = 1.0
  alpha_schedule: str = 'inverse_sqrt_depth'
  activation: str = 'gelu'
  fourier_features: Optional[int] = 256
  fourier_scale: float = 1.0
  fourier_trainable: bool = False
  drop_rate: Union[float, tuple[float, ...]] = 0.0
  out_dim: int = 1
  parameterization: str = 'ntk'
  w_std: float = math.sqrt(2.0)
  b_std: float = 0.1
  dtype: str = 'float32'

  def __post_init__(self):
    check_int('width', self.width, 1)
    check_int('depth', self.depth, 0)
    check_choice('alpha_schedule', self.alpha_schedule, ALPHA_SCHEDULES)
    check_choice('activation', self.activation, ACTIVATIONS)
    if self.fourier_features is not None:
      check_int('fourier_features', self.fourier_features, 1)
    check_real('fourier_scale', self.fourier_scale, 0.0, low_open=True)
    if not isinstance(self.fourier_trainable, (bool, np.bool_)):
      raise ValueError(f'fourier_trainable must be a bool, got {self.fourier_trainable!r}.')
    check_int('out_dim', self.out_dim, 1)
    check_choice('parameterization', self.parameterization, PARAMETERIZATIONS)
    check_real('w_std', self.w_std, 0.0, low_open=True)
    check_real('b_std', self.b_std, 0.0)
    # Normalize sequences to hashable tuples so the config can be a static jit argument.
    if isinstance(self.alpha, (list, tuple, np.ndarray)):
      object.__setattr__(
          self, 'alpha', _per_block('alpha', self.alpha, self.depth, -math.inf, math.inf, False)
      )
    else:
      check_real('alpha', self.alpha, -math.inf)
    if isinstance(self.drop_rate, (list, tuple, np.ndarray)):
      object.__setattr__(
          self, 'drop_rate', _per_block('drop_rate', self.drop_rate, self.depth, 0.0, 1.0, True)
      )
    else:
      check_real('drop_rate', self.drop_rate, 0.0, 1.0, high_open=True)
    object.__setattr__(self, 'dtype', _normalize_dtype(self.dtype))

  @property
  def alphas(self) -> tuple[float, ...]:
    """α_l for l = 1..L, after the schedule."""
    if isinstance(self.alpha, tuple):
      base = self.alpha
    else:
      base = (float(self.alpha),) * self.depth
    if self.alpha_schedule == 'inverse_sqrt_depth' and self.depth > 0:
      return tuple(a / math.sqrt(self.depth) for a in base)
    return tuple(base)

  @property
  def drop_rates(self) -> tuple[float, ...]:
    """p_l for l = 1..L."""
    if isinstance(self.drop_rate, tuple):
      return self.drop_rate
    return (float(self.drop_rate),) * self.depth

  @property
  def survival_probs(self) -> tuple[float, ...]:
    """q_l = 1 − p_l for l = 1..L."""
    return tuple(1.0 - p for p in self.drop_rates)

  def replace(self, **changes) -> 'ECRNConfig':
    return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class MLPConfig:
  """The plain fully connected baseline: Dense → φ → … → Dense(out_dim).

  Attributes:
    hidden_widths: widths of the hidden layers (the paper's baseline is (512, 512, 512)).
    out_dim, activation, parameterization, w_std, b_std, dtype: as in `ECRNConfig`.
  """

  hidden_widths: tuple[int, ...] = (512, 512, 512)
  out_dim: int = 1
  activation: str = 'relu'
  parameterization: str = 'ntk'
  w_std: float = math.sqrt(2.0)
  b_std: float = 0.1
  dtype: str = 'float32'

  def __post_init__(self):
    if isinstance(self.hidden_widths, (int, np.integer)) and not isinstance(
        self.hidden_widths, bool
    ):
      object.__setattr__(self, 'hidden_widths', (int(self.hidden_widths),))
    if not isinstance(self.hidden_widths, (list, tuple)):
      raise ValueError(
          f'hidden_widths must be a tuple of positive integers, got {self.hidden_widths!r}.'
      )
    for w in self.hidden_widths:
      check_int('hidden_widths entries', w, 1)
    object.__setattr__(self, 'hidden_widths', tuple(int(w) for w in self.hidden_widths))
    check_int('out_dim', self.out_dim, 1)
    check_choice('activation', self.activation, ACTIVATIONS)
    check_choice('parameterization', self.parameterization, PARAMETERIZATIONS)
    check_real('w_std', self.w_std, 0.0, low_open=True)
    check_real('b_std', self.b_std, 0.0)
    object.__setattr__(self, 'dtype', _normalize_dtype(self.dtype))

  def replace(self, **changes) -> 'MLPConfig':
    return dataclasses.replace(self, **changes)


# An architecture with an infinite-width twin: the NTK-ECRN or the plain MLP.
ArchConfig = Union[ECRNConfig, MLPConfig]
