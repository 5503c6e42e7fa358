# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""`infinite_kernel_fn`: the one entry point to the kernels of the infinite-width twin.

The twin (docs/spec.md §2.3) is the NTK-ECRN (or MLP) at infinite width: its NNGP K∞ and NTK
Θ∞ (Jacot et al. 2018; computed exactly layer by layer as in Arora et al. 2019, "On Exact
Computation with an Infinitely Wide Neural Net") acting on the Fourier features γ(x) of
Tancik et al. (2020) with the finite network's B. One function builds every variant:

- the evaluation-mode kernel (survival scale q_l), or the kernel of one drop mask (`mask`);
- the expectation over drop masks (`expectation='exact'` or `'mc'`, docs/spec.md §2.5);
- infinitely many Fourier features (`fourier_limit`, docs/spec.md §2.4);
- the native JAX recursions (the default) or the neural-tangents `stax` reference.

`batch(kernel_fn, ...)` (`batching.py`) computes a native kernel function's kernels in tiles
sharded over devices, as `neural_tangents.batch` does.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence

import jax

from ecrn_jax._src.config import ArchConfig, ECRNConfig
from ecrn_jax._src.infinite.masks import ExpectedKernels, expected_kernels
from ecrn_jax._src.infinite.reference import check_implementation, stax_inputs, stax_kernels
from ecrn_jax._src.infinite.twin import (
    KERNELS,
    InfiniteKernels,
    canonical_get,
    check_config,
    native_kernel_fn,
)

EXPECTATIONS = ('exact', 'mc')


class TwinSpec(NamedTuple):
  """The twin a native kernel function computes (its `twin` attribute), which `batch` tiles."""

  config: ArchConfig
  variables: Optional[Mapping[str, Any]]
  mask: Optional[Sequence[float]]
  fourier_limit: bool


def infinite_kernel_fn(
    config: ArchConfig,
    *,
    variables: Optional[Mapping[str, Any]] = None,
    mask: Optional[Sequence[float]] = None,
    fourier_limit: bool = False,
    implementation: str = 'native',
    expectation: Optional[str] = None,
    num_samples: int = 1000,
    key: Optional[jax.Array] = None,
) -> Callable[..., Any]:
  """The twin's kernel function `kernel_fn(x1, x2=None, get=('nngp', 'ntk'))` (docs/spec.md §2.3).

  K∞ and Θ∞ of the infinitely wide network (Jacot et al. 2018; exact recursions as in Arora
  et al. 2019) on γ(x₁), γ(x₂), the Fourier features of Tancik et al. (2020) with the finite
  network's B.

  Args:
    config: an `ECRNConfig` or `MLPConfig` (its dtype is the kernels' dtype).
    variables: the finite network's variables, for B, when the config has Fourier features
      (not needed with `fourier_limit=True`).
    mask: ECRN only: one drop mask ξ ∈ {0, 1}^L (the kernel of that mask) instead of the
      evaluation-mode survival scale q_l.
    fourier_limit: infinitely many Fourier features, B ~ N(0, σ_ff²) (docs/spec.md §2.4; native
      only).
    implementation: 'native' (closed-form recursions in JAX) or 'neural_tangents' (the same
      twin in `stax`, for checking; needs the reference extra).
    expectation: None, or the expectation over stochastic-depth drop masks (ECRN only,
      docs/spec.md §2.5): 'exact' enumerates the masks of the blocks with p_l > 0, 'mc' draws
      `num_samples` masks from `key` and reports standard errors.
    num_samples, key: for expectation='mc'.
  Returns:
    `kernel_fn(x1, x2=None, get=('nngp', 'ntk'))`: x1 (N₁, ...) and x2 (N₂, ...) raw inputs
    (γ is applied inside), x2=None for x1; an (N₁, N₂) array when `get` is a string, else
    `InfiniteKernels(nngp, ntk)`; with `expectation`, `ExpectedKernels` (both kernels and
    their standard errors). The native kernel function (no expectation) is a pure JAX function
    of x1 and x2: jit it (with `get` static), vmap it, or tile and shard it with `batch`.
    Concrete inputs with NaN/inf raise ValueError.

  >>> import jax, numpy as np, ecrn_jax
  >>> config = ecrn_jax.ECRNConfig(width=8, depth=2, fourier_features=4)
  >>> x = np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(3, 2)
  >>> variables = ecrn_jax.ECRN(config).init(jax.random.PRNGKey(0), x)
  >>> kernel_fn = ecrn_jax.infinite_kernel_fn(config, variables=variables)
  >>> kernel_fn(x, get='ntk').shape
  (3, 3)
  >>> kernels = kernel_fn(x, x[:2])
  >>> kernels.nngp.shape, kernels.ntk.shape
  ((3, 2), (3, 2))
  """
  if expectation is not None:
    return _expected_kernel_fn(
        config, variables, mask, fourier_limit, implementation, expectation, num_samples, key
    )
  check_config(config)
  check_implementation(implementation)
  if implementation == 'native':
    kernel_fn = native_kernel_fn(
        config, variables=variables, mask=mask, fourier_limit=fourier_limit
    )
    # An attribute on a function, which mypy does not model; `batch` reads it with getattr.
    kernel_fn.twin = TwinSpec(config, variables, mask, fourier_limit)  # type: ignore[attr-defined]
    return kernel_fn
  return _reference_kernel_fn(config, variables, mask, fourier_limit)


def _reference_kernel_fn(config, variables, mask, fourier_limit):
  """The kernel function of the neural-tangents `stax` twin (`reference.stax_twin`)."""
  if mask is not None and not isinstance(config, ECRNConfig):
    raise ValueError('mask applies to ECRNConfig only (an MLP has no stochastic depth).')

  def kernel_fn(x1, x2=None, get=('nngp', 'ntk')):
    names, single = canonical_get(get)
    g1, g2 = stax_inputs(config, x1, x2, variables, fourier_limit)
    k = stax_kernels(config, g1, g2, mask, names)
    if single:
      return k[names[0]]
    return InfiniteKernels(nngp=k.get('nngp'), ntk=k.get('ntk'))

  return kernel_fn


def _expected_kernel_fn(
    config, variables, mask, fourier_limit, implementation, expectation, num_samples, key
):
  """The kernel function of the expectation over drop masks (`masks.expected_kernels`)."""
  if not isinstance(config, ECRNConfig):
    raise TypeError('stochastic depth applies to ECRNConfig only.')
  if expectation not in EXPECTATIONS:
    raise ValueError(
        "expectation (the method of the expectation over drop masks) must be None, 'exact' or "
        f"'mc', got {expectation!r}."
    )
  check_implementation(implementation)
  if mask is not None:
    raise ValueError('pass mask (the kernel of one mask) or expectation (over masks), not both.')

  def kernel_fn(x1, x2=None, get=('nngp', 'ntk')) -> ExpectedKernels:
    if canonical_get(get)[0] != KERNELS:
      raise ValueError(f'the expectation over masks computes both kernels: get={KERNELS}.')
    return expected_kernels(
        config,
        x1,
        x2,
        variables=variables,
        method=expectation,
        num_samples=num_samples,
        key=key,
        fourier_limit=fourier_limit,
        implementation=implementation,
    )

  return kernel_fn
