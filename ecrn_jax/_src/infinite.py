# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Infinite-width kernels of the twin (docs/spec.md §2): native JAX by default, neural-tangents on request.

`infinite_kernels` and `expected_kernels_stochastic_depth` compute K∞ and Θ∞ with the native
recursions of `twin.py`. `implementation='neural_tangents'`, `stax_twin` and `to_stax_params`
build the same twin in neural-tangents `stax`, the reference the native kernels are tested
against; neural_tangents (jax < 0.6, TensorFlow) is imported only inside those, lazily.

The twin acts on γ(x), computed with the same B as the finite network, so B is treated as
fixed: with `fourier_trainable=True` the finite NTK also has a B term that the twin lacks
(that term does not vanish with width).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import warnings
from typing import Any, Mapping, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ecrn_jax._src.config import ArchConfig, ECRNConfig, MLPConfig
from ecrn_jax._src.models import resolve_dtype
from ecrn_jax._src.twin import (
    InfiniteKernels,
    block_scales,
    check_config,
    embed_inputs,
    infinite_kernel_fn,
    twin_kernels_of_scales,
)
from ecrn_jax._src.validation import check_finite_inputs

IMPLEMENTATIONS = ('native', 'neural_tangents')


def _import_stax():
  try:
    from neural_tangents import stax  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        "The neural-tangents reference (stax_twin, implementation='neural_tangents') needs "
        'neural-tangents 0.6.5, which needs jax < 0.6 and TensorFlow: install the reference '
        "lane, pip install -c constraints-reference.txt -e '.[reference]' (BUILD_NOTES.md). "
        "The native kernels (implementation='native', the default) need none of it."
    ) from e
  except AttributeError as e:  # jax >= 0.6 removed jax.core.Jaxpr, which it uses.
    raise ImportError(
        f'neural-tangents failed to import with jax {jax.__version__} ({e}); it needs '
        'jax < 0.6: install the reference lane, pip install -c constraints-reference.txt '
        "-e '.[reference]'. The native kernels (the default) work on this jax."
    ) from e
  return stax


@contextlib.contextmanager
def _quiet_fan_in():
  # neural-tangents warns that FanInSum assumes independent branches. Here they are: the
  # identity branch hˡ⁻¹ and α_l Dense_l(φ(hˡ⁻¹)) are uncorrelated because W_l is fresh and
  # zero-mean, which is why the branch ends in a Dense layer (docs/spec.md §1).
  with warnings.catch_warnings():
    warnings.filterwarnings('ignore', message='`FanIn` layers assume independent inputs')
    yield


def _stax_activation(stax, name: str):
  if name == 'gelu':
    return stax.Gelu(approximate=False)
  if name == 'erf':
    return stax.Erf()
  if name == 'relu':
    return stax.Relu()
  raise ValueError(f"activation must be one of ['gelu', 'erf', 'relu'], got {name!r}.")


def stax_twin(config: ArchConfig, *, mask: Optional[Sequence[float]] = None):
  """(init_fn, apply_fn, kernel_fn) of the infinite-width twin, acting on γ(x).

  ECRN: Dense → L × [FanOut(2), parallel(Identity, serial(φ, Dense, DotGeneral(rhs=α_l q̄_l))),
  FanInSum] → φ → Dense(C), every Dense with the config's parameterization, σ_w and σ_b.
  MLPConfig: Dense → φ → … → Dense(C).

  Args:
    config: an `ECRNConfig` or `MLPConfig`.
    mask: for ECRN, None for the evaluation-mode kernel (q̄_l = q_l) or one drop mask
      ξ ∈ {0, 1}^L (the kernel of that mask).
  """
  stax = _import_stax()
  phi = _stax_activation(stax, config.activation)

  def dense(features):
    return stax.Dense(
        features, W_std=config.w_std, b_std=config.b_std, parameterization=config.parameterization
    )

  if isinstance(config, MLPConfig):
    layers = []
    for width in config.hidden_widths:
      layers += [dense(width), phi]
    return stax.serial(*layers, dense(config.out_dim))
  if not isinstance(config, ECRNConfig):
    raise TypeError(f'config must be an ECRNConfig or MLPConfig, got {type(config).__name__}.')
  blocks = []
  for scale in block_scales(config, mask):
    branch = stax.serial(phi, dense(config.width), stax.DotGeneral(rhs=scale))
    blocks.append(
        stax.serial(stax.FanOut(2), stax.parallel(stax.Identity(), branch), stax.FanInSum())
    )
  with _quiet_fan_in():
    return stax.serial(dense(config.width), *blocks, phi, dense(config.out_dim))


def to_stax_params(config: ArchConfig, variables: Mapping[str, Any]):
  """The finite network's params in the layout of `stax_twin(config)[0]`.

  With them, the twin's apply_fn on γ(x) equals `model.apply(variables, x)` (train=False):
  the twin is the same architecture, not just the same kernel.
  """
  params = variables['params']

  def dense(name):
    w, b = params[name]['kernel'], params[name]['bias']
    return (w, b.reshape(1, -1))

  if isinstance(config, MLPConfig):
    layers = []
    for i in range(len(config.hidden_widths)):
      layers += [dense(f'dense_{i}'), ()]
    return tuple(layers) + (dense('readout'),)
  blocks = tuple(((), ((), ((), dense(f'block_{l}'), ())), ()) for l in range(config.depth))
  return (dense('stem'),) + blocks + ((), dense('readout'))


def _check_implementation(implementation: str) -> None:
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(
        f'implementation must be one of {list(IMPLEMENTATIONS)}, ' f'got {implementation!r}.'
    )


def _stax_inputs(config: ArchConfig, x1, x2, variables, fourier_limit: bool):
  """γ(x1), γ(x2) (None when x2 is) for the neural-tangents twin, inputs checked."""
  if fourier_limit:
    raise ValueError(
        'fourier_limit=True has no neural-tangents counterpart: use ' "implementation='native'."
    )
  check_finite_inputs('x1', x1)
  g1 = embed_inputs(config, x1, variables)
  if x2 is None:
    return g1, None
  check_finite_inputs('x2', x2)
  return g1, embed_inputs(config, x2, variables)


def _stax_kernels(config: ArchConfig, g1, g2, mask, names=('nngp', 'ntk')):
  _, _, kernel_fn = stax_twin(config, mask=mask)
  with _quiet_fan_in():
    k = kernel_fn(g1, g2, names)
  return dict(zip(names, (k,) if len(names) == 1 else tuple(getattr(k, n) for n in names)))


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
  """Θ∞ and K∞ of the twin on γ(x₁), γ(x₂), with the evaluation-mode survival scale.

  Args:
    config: an `ECRNConfig` or `MLPConfig`.
    x1: (N₁, d) inputs; x2: (N₂, d) or None for x1.
    variables: the finite network's variables; required when the config has Fourier
      features (for B), unless `fourier_limit`.
    mask: one drop mask ξ ∈ {0,1}^L instead of the evaluation-mode scale (see
      `expected_kernels_stochastic_depth` for the expectation over masks).
    fourier_limit: infinitely many Fourier features, B ~ N(0, σ_ff²) (no B; native only).
    implementation: 'native' (closed-form recursions in JAX, `infinite_kernel_fn`) or
      'neural_tangents' (the same twin in `stax`, for checking; needs the reference extra).
  Returns:
    `InfiniteKernels(nngp, ntk)`, each (N₁, N₂).
  """
  check_config(config)
  _check_implementation(implementation)
  if implementation == 'native':
    return infinite_kernel_fn(config, variables=variables, mask=mask, fourier_limit=fourier_limit)(
        x1, x2
    )
  if mask is not None and not isinstance(config, ECRNConfig):
    raise ValueError('mask applies to ECRNConfig only (an MLP has no stochastic depth).')
  g1, g2 = _stax_inputs(config, x1, x2, variables, fourier_limit)
  k = _stax_kernels(config, g1, g2, mask)
  return InfiniteKernels(nngp=k['nngp'], ntk=k['ntk'])


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
  """E_ξ[Θ_ξ] = Σ_ξ P(ξ) Θ_ξ of the infinite twin over stochastic-depth masks (docs/spec.md §2).

  Each distinct mask's kernels are computed once (masks vmapped in chunks of 64 with the
  native implementation); a drawn mask that repeats is counted, not recomputed.

  Args:
    config: an `ECRNConfig`.
    x1, x2, variables, fourier_limit, implementation: as in `infinite_kernels`.
    method: 'exact' enumerates the 2^L' masks of the L' blocks with p_l > 0;
      'mc' averages `num_samples` masks drawn from `key` and reports standard errors.
  Returns:
    `ExpectedKernels`.
  """
  if not isinstance(config, ECRNConfig):
    raise TypeError('stochastic depth applies to ECRNConfig only.')
  if method not in ('exact', 'mc'):
    raise ValueError(f"method must be 'exact' or 'mc', got {method!r}.")
  _check_implementation(implementation)
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
  return ExpectedKernels(
      *(jnp.asarray(a, dtype) for a in (mean['nngp'], mean['ntk'], stderr['nngp'], stderr['ntk'])),
      num_samples,
  )


def _kernels_of_masks(config, x1, x2, variables, masks, fourier_limit, implementation):
  """[{'nngp': (N₁, N₂), 'ntk': (N₁, N₂)} as float64 NumPy] for each mask."""
  if implementation == 'neural_tangents':
    g1, g2 = _stax_inputs(config, x1, x2, variables, fourier_limit)
    return [
        {n: np.asarray(v, np.float64) for n, v in _stax_kernels(config, g1, g2, m).items()}
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
