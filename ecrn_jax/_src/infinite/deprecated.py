# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The infinite-kernel functions that `infinite_kernel_fn` and `batch` replace (deprecated).

Each is a thin wrapper over the new entry point and returns the same numbers. They stay for one
release; `ecrn_jax.<name>` warns (DeprecationWarning) with the new spelling.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence, Union

import jax
import numpy as np

from ecrn_jax._src.config import ArchConfig, ECRNConfig
from ecrn_jax._src.infinite.batching import batch
from ecrn_jax._src.infinite.kernel_fn import infinite_kernel_fn
from ecrn_jax._src.infinite.masks import ExpectedKernels
from ecrn_jax._src.infinite.twin import KERNELS, InfiniteKernels
from ecrn_jax._src.validation import check_choice


def infinite_kernels(
    config: ArchConfig,
    x1,
    x2=None,
    *,
    variables: Optional[Mapping[str, Any]] = None,
    mask: Optional[Sequence[float]] = None,
    fourier_limit: bool = False,
    implementation: str = 'native',
) -> InfiniteKernels:
  """Θ∞ and K∞ of the twin: `infinite_kernel_fn(config, ...)(x1, x2)` (deprecated)."""
  return infinite_kernel_fn(
      config,
      variables=variables,
      mask=mask,
      fourier_limit=fourier_limit,
      implementation=implementation,
  )(x1, x2)


def expected_kernels_stochastic_depth(
    config: ECRNConfig,
    x1,
    x2=None,
    *,
    variables: Optional[Mapping[str, Any]] = None,
    method: str = 'exact',
    num_samples: int = 1000,
    key: Optional[jax.Array] = None,
    fourier_limit: bool = False,
    implementation: str = 'native',
) -> ExpectedKernels:
  """E_ξ[K_ξ], E_ξ[Θ_ξ] over drop masks: `infinite_kernel_fn(config, expectation=method,
  ...)(x1, x2)` (deprecated)."""
  return infinite_kernel_fn(
      config,
      variables=variables,
      fourier_limit=fourier_limit,
      implementation=implementation,
      expectation=method,
      num_samples=num_samples,
      key=key,
  )(x1, x2)


def batched_infinite_kernels(
    config: ArchConfig,
    x1,
    x2=None,
    *,
    variables: Optional[Mapping[str, Any]] = None,
    get: Union[str, Sequence[str]] = ('nngp', 'ntk'),
    batch_size: int = 512,
    devices: Union[None, int, Sequence[Any]] = None,
    progress: Union[bool, Callable[[int, int], None]] = False,
    out: Optional[Mapping[str, np.ndarray]] = None,
    fourier_limit: bool = False,
):
  """The twin's kernels in tiles: `batch(infinite_kernel_fn(config, ...), ...)(x1, x2, get)`
  (deprecated)."""
  kernel_fn = infinite_kernel_fn(config, variables=variables, fourier_limit=fourier_limit)
  batched = batch(kernel_fn, batch_size=batch_size, devices=devices, progress=progress)
  return batched(x1, x2, get, out=out)


def batched_infinite_kernel_diagonal(
    config: ArchConfig,
    x,
    *,
    variables: Optional[Mapping[str, Any]] = None,
    get: str = 'nngp',
    batch_size: int = 512,
    fourier_limit: bool = False,
) -> np.ndarray:
  """diag K∞(x, x) or diag Θ∞, (N,): `batch(infinite_kernel_fn(config, ...), ...)(x, get=get,
  diagonal=True)` (deprecated)."""
  check_choice('get', get, KERNELS)
  kernel_fn = infinite_kernel_fn(config, variables=variables, fourier_limit=fourier_limit)
  return batch(kernel_fn, batch_size=batch_size)(x, get=get, diagonal=True)
