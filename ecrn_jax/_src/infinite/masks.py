# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The expected kernels of the twin over stochastic-depth drop masks (docs/spec.md §2.5).

E_ξ[Θ_ξ] = Σ_ξ P(ξ) Θ_ξ with P(ξ) = ∏_l q_l^ξ_l (1 − q_l)^(1 − ξ_l) (Huang et al. 2016 for
stochastic depth), and likewise for K: by exact enumeration of the masks of the blocks with
p_l > 0, or by Monte Carlo over drawn masks with standard errors. The entry point is
`infinite_kernel_fn(config, expectation=...)`.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Mapping, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ecrn_jax._src.config import ECRNConfig
from ecrn_jax._src.infinite.reference import check_implementation, stax_inputs, stax_kernels
from ecrn_jax._src.infinite.twin import block_scales, twin_kernels_of_scales
from ecrn_jax._src.models import resolve_dtype


class ExpectedKernels(NamedTuple):
  """E_ξ[K_ξ] and E_ξ[Θ_ξ] over drop masks, (N₁, N₂) each; the standard errors and the
  number of masks drawn for method='mc' (zeros and the number of masks for 'exact')."""

  nngp: jax.Array
  ntk: jax.Array
  nngp_stderr: jax.Array
  ntk_stderr: jax.Array
  num_masks: int


_MAX_EXACT_BLOCKS = 16
_MASK_CHUNK = 64


def expected_kernels(
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
  """E_ξ[Θ_ξ] = Σ_ξ P(ξ) Θ_ξ of the infinite twin over stochastic-depth masks (docs/spec.md §2.5).

  Each distinct mask's kernels are computed once (masks vmapped in chunks of 64 with the
  native implementation); a drawn mask that repeats is counted, not recomputed.

  Args:
    config: an `ECRNConfig`.
    x1, x2, variables, fourier_limit, implementation: as in `infinite_kernel_fn`.
    method: 'exact' enumerates the 2^L' masks of the L' blocks with p_l > 0;
      'mc' averages `num_samples` masks drawn from `key` and reports standard errors.
  Returns:
    `ExpectedKernels`.
  """
  if not isinstance(config, ECRNConfig):
    raise TypeError('stochastic depth applies to ECRNConfig only.')
  if method not in ('exact', 'mc'):
    raise ValueError(f"method must be 'exact' or 'mc', got {method!r}.")
  check_implementation(implementation)
  q = np.asarray(config.survival_probs, dtype=np.float64)
  random_blocks = [l for l in range(config.depth) if q[l] < 1.0]
  if method == 'exact':
    masks, weights = _enumerated_masks(config.depth, q, random_blocks)
  else:
    masks, weights = _drawn_masks(config.depth, q, random_blocks, num_samples, key)
  kernels = _kernels_of_masks(config, x1, x2, variables, masks, fourier_limit, implementation)
  mean = {n: sum(w * k[n] for w, k in zip(weights, kernels)) for n in ('nngp', 'ntk')}
  dtype = resolve_dtype(config.dtype)  # accumulated in float64, returned in the config's dtype
  if method == 'exact':
    zeros = jnp.zeros(mean['ntk'].shape, dtype)
    return ExpectedKernels(
        jnp.asarray(mean['nngp'], dtype), jnp.asarray(mean['ntk'], dtype), zeros, zeros, len(masks)
    )
  return _sampled_expectation(mean, kernels, weights, dtype, num_samples)


def _full_mask(depth: int, random_blocks: Sequence[int], bits) -> tuple[int, ...]:
  """The (L,) mask with `bits` at `random_blocks` and 1 elsewhere."""
  mask = [1] * depth
  for l, bit in zip(random_blocks, bits):
    mask[l] = int(bit)
  return tuple(mask)


def _enumerated_masks(depth: int, q: np.ndarray, random_blocks: list[int]):
  """([the 2^L' masks], [their probabilities]) for q (L,) survival probabilities."""
  if len(random_blocks) > _MAX_EXACT_BLOCKS:
    raise ValueError(
        f'exact enumeration of 2^{len(random_blocks)} masks is too costly; ' "use method='mc'."
    )
  masks = [
      _full_mask(depth, random_blocks, bits)
      for bits in itertools.product((0, 1), repeat=len(random_blocks))
  ]
  weights = [float(np.prod([q[l] if m[l] else 1.0 - q[l] for l in random_blocks])) for m in masks]
  return masks, weights


def _drawn_masks(depth: int, q: np.ndarray, random_blocks: list[int], num_samples, key):
  """([the distinct masks of num_samples draws], [their frequencies])."""
  if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 2:
    raise ValueError(f'num_samples must be an integer >= 2, got {num_samples!r}.')
  if key is None:
    raise ValueError("method='mc' needs key=jax.random.PRNGKey(seed).")
  draws = np.asarray(
      jax.random.bernoulli(key, jnp.asarray(q[random_blocks]), (num_samples, len(random_blocks)))
  )
  counts: dict[tuple[int, ...], int] = {}
  for bits in draws:
    mask = _full_mask(depth, random_blocks, tuple(int(b) for b in bits))
    counts[mask] = counts.get(mask, 0) + 1
  masks = list(counts)
  weights = [counts[m] / num_samples for m in masks]
  return masks, weights


def _sampled_expectation(mean, kernels, weights, dtype, num_samples: int) -> ExpectedKernels:
  """`ExpectedKernels` of the weighted `mean` (N₁, N₂) of num_samples drawn masks' kernels,
  with its standard errors."""
  stderr = {}
  for n in ('nngp', 'ntk'):
    # Sample variance (ddof = 1) of the drawn masks' kernels, each distinct one weighted by
    # its count.
    sq = sum(w * num_samples * (k[n] - mean[n]) ** 2 for w, k in zip(weights, kernels))
    stderr[n] = np.sqrt(sq / (num_samples - 1)) / math.sqrt(num_samples)
  nngp, ntk, nngp_stderr, ntk_stderr = (
      jnp.asarray(a, dtype) for a in (mean['nngp'], mean['ntk'], stderr['nngp'], stderr['ntk'])
  )
  return ExpectedKernels(nngp, ntk, nngp_stderr, ntk_stderr, num_samples)


def _kernels_of_masks(config, x1, x2, variables, masks, fourier_limit, implementation):
  """[{'nngp': (N₁, N₂), 'ntk': (N₁, N₂)} as float64 NumPy] for each mask."""
  if implementation == 'neural_tangents':
    g1, g2 = stax_inputs(config, x1, x2, variables, fourier_limit)
    return [
        {n: np.asarray(v, np.float64) for n, v in stax_kernels(config, g1, g2, m).items()}
        for m in masks
    ]
  out = []
  for start in range(0, len(masks), _MASK_CHUNK):
    chunk = masks[start : start + _MASK_CHUNK]
    scales = np.asarray([block_scales(config, m) for m in chunk])
    nngp, ntk = twin_kernels_of_scales(
        config, x1, x2, scales, variables=variables, fourier_limit=fourier_limit
    )
    nngp, ntk = np.asarray(nngp, np.float64), np.asarray(ntk, np.float64)
    out += [{'nngp': nngp[i], 'ntk': ntk[i]} for i in range(len(chunk))]
  return out
