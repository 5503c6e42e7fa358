# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The infinite-width twin of NTK-ECRN and of the MLP, computed natively in JAX (docs/spec.md §2).

The twin's NNGP K∞ and NTK Θ∞ follow layer by layer from closed-form recursions on the
(N₁, N₂) covariance and the two diagonals c₁ (N₁,), c₂ (N₂,), in neural-tangents' `stax`
conventions (the reference this module is tested against, to ≤ 1e-12 in float64):

- input: K = a₁a₂ᵀ/D, c = ‖a‖²/D, Θ = 0, with a = γ(x) ∈ R^{2m} (or x ∈ R^d);
- Dense, 'ntk':      K ← σ_w² K + σ_b²,  Θ ← K_new + σ_w² Θ;
  Dense, 'standard': K ← σ_w² K + σ_b²,  Θ ← n_in K_old + σ_w² Θ + 1  (n_in the layer's fan-in,
  so the standard-parameterization NTK depends on the widths, as in neural-tangents);
- φ: K ← E[φ(u)φ(v)], Θ ← Θ ⊙ E[φ'(u)φ'(v)] (closed forms in `dual.py`);
- residual block: h + s_l · Dense(φ(h)) with s_l = α_l q̄_l → K ← K + s_l² K_branch, same for Θ;
- readout: Dense(C) after φ. Each output's kernel is the same; C does not enter.

With `fourier_limit=True` the twin has infinitely many Fourier features with
B ~ N(0, σ_ff² I): γ(x)·γ(x')/2m → ½ E_b[cos 2π bᵀ(x − x')] = ½ exp(−2π² σ_ff² ‖x − x'‖²), so
the input kernel is that Gaussian kernel and no B is needed (NTK parameterization only: in the
standard one the stem's NTK grows with m without bound).

When x2 is None the kernel is symmetric and its diagonal is taken from c exactly, so
ReLU's arccos-type dual, whose slope is infinite at correlation 1, sees correlation exactly 1
there (no √ε round-off on the diagonal).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence, TypeGuard, Union

import jax
import jax.numpy as jnp
import numpy as np

from ecrn_jax._src.config import ArchConfig, ECRNConfig, MLPConfig
from ecrn_jax._src.infinite.dual import dual_activation
from ecrn_jax._src.models import flatten_inputs, fourier_embed, fourier_matrix, resolve_dtype
from ecrn_jax._src.validation import check_finite_inputs

KERNELS = ('nngp', 'ntk')


class InfiniteKernels(NamedTuple):
  """K∞ (`nngp`) and Θ∞ (`ntk`), each (N₁, N₂); None for a kernel that was not asked for."""

  nngp: Any
  ntk: Any


def canonical_get(get) -> tuple[tuple[str, ...], bool]:
  """('nngp',) / ('ntk',) / both, and whether a single kernel (a string) was asked for."""
  single = isinstance(get, str)
  names = (get,) if single else tuple(get)
  if not names or any(g not in KERNELS for g in names) or len(set(names)) != len(names):
    raise ValueError(f"get must be 'nngp', 'ntk' or a tuple of them, got {get!r}.")
  return names, single


def check_config(config) -> None:
  if not isinstance(config, (ECRNConfig, MLPConfig)):
    raise TypeError(f'config must be an ECRNConfig or MLPConfig, got {type(config).__name__}.')


def block_scales(config: ECRNConfig, mask: Optional[Sequence[float]] = None) -> tuple[float, ...]:
  """α_l q̄_l: q̄_l = q_l (evaluation mode) when mask is None, else q̄_l = mask_l.

  >>> import ecrn_jax
  >>> config = ecrn_jax.ECRNConfig(depth=4, drop_rate=0.5)  # α_l = 1/√4, q_l = 1/2
  >>> ecrn_jax.kernels.block_scales(config)
  (0.25, 0.25, 0.25, 0.25)
  >>> ecrn_jax.kernels.block_scales(config, mask=(1, 0, 1, 1))
  (0.5, 0.0, 0.5, 0.5)
  """
  if mask is None:
    factors = config.survival_probs
  else:
    factors = tuple(float(m) for m in np.asarray(mask).reshape(-1))
    if len(factors) != config.depth:
      raise ValueError(f'mask must have depth={config.depth} entries, got {len(factors)}.')
    if any(m not in (0.0, 1.0) for m in factors):
      raise ValueError(
          f'mask entries must be 0 (block dropped) or 1 (kept), got {mask!r}; '
          "for the expectation over masks use infinite_kernel_fn(config, expectation='exact')."
      )
  return tuple(a * q for a, q in zip(config.alphas, factors))


def uses_fourier(config: ArchConfig) -> TypeGuard[ECRNConfig]:
  return isinstance(config, ECRNConfig) and config.fourier_features is not None


def check_fourier_limit(config: ArchConfig, fourier_limit: bool) -> None:
  """ValueError unless `fourier_limit` is a bool that `config` supports."""
  if not isinstance(fourier_limit, (bool, np.bool_)):
    raise ValueError(f'fourier_limit must be a bool, got {fourier_limit!r}.')
  if not fourier_limit:
    return
  if not uses_fourier(config):
    raise ValueError(
        'fourier_limit=True needs an ECRNConfig with Fourier features '
        '(fourier_features is not None).'
    )
  if config.parameterization != 'ntk':
    raise ValueError(
        "fourier_limit=True needs parameterization='ntk': in the standard "
        "parameterization the stem's NTK grows with the number of Fourier "
        'features without bound.'
    )


def fourier_b(config: ECRNConfig, variables: Optional[Mapping[str, Any]], num_inputs: int):
  """B (d, m) from `variables`, checked against the config and the input dimension."""
  b_matrix = None if variables is None else fourier_matrix(variables)
  if b_matrix is None:
    raise ValueError(
        'this config has Fourier features, so the twin needs the same B as the finite '
        'network: pass variables=model.init(...) (B is read from its "fourier" '
        'collection, or from "params" when fourier_trainable=True), or fourier_limit=True '
        'for infinitely many features (no B).'
    )
  if b_matrix.shape != (num_inputs, config.fourier_features):
    raise ValueError(
        f'B has shape {b_matrix.shape} but the inputs have {num_inputs} '
        f'features and fourier_features={config.fourier_features}.'
    )
  return b_matrix


def embed_inputs(config: ArchConfig, x, variables: Optional[Mapping[str, Any]] = None) -> jax.Array:
  """γ(x) for an ECRN with Fourier features (B from `variables`); else x flattened.

  Returns (N, 2m) or (N, d), in the config's dtype.

  (Tancik et al. 2020, docs/spec.md §1.2.)

  >>> import jax, numpy as np, ecrn_jax
  >>> config = ecrn_jax.ECRNConfig(width=8, depth=1, fourier_features=4)
  >>> x = np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(3, 2)
  >>> variables = ecrn_jax.ECRN(config).init(jax.random.PRNGKey(0), x)
  >>> ecrn_jax.kernels.embed_inputs(config, x, variables).shape  # γ(x) = [cos 2πxB, sin 2πxB]
  (3, 8)
  """
  dtype = resolve_dtype(config.dtype)
  x = flatten_inputs(x).astype(dtype)
  if uses_fourier(config):
    x = fourier_embed(x, jnp.asarray(fourier_b(config, variables, x.shape[1]), dtype))
  return x


# The recursions.


class _State(NamedTuple):
  """nngp, ntk (n₁, n₂) (ntk None when not asked for); c1 (n₁,), c2 (n₂,)."""

  nngp: jax.Array
  ntk: Optional[jax.Array]
  c1: jax.Array
  c2: jax.Array


def _set_diagonal(matrix, values):
  idx = jnp.arange(values.shape[0])
  return matrix.at[idx, idx].set(values)


def _variance(x, fourier_limit: bool):
  """c = ‖a‖²/D per row (N,), or ½ for infinitely many Fourier features."""
  if fourier_limit:
    return jnp.full(x.shape[:1], 0.5, x.dtype)
  return jnp.sum(x * x, axis=1) / x.shape[1]


def _input_kernel(x1, x2, *, sigma: Optional[float], fourier_limit: bool):
  """(K₀ (N₁, N₂), c₁ (N₁,), c₂ (N₂,)) of the (embedded) inputs: a₁a₂ᵀ/D and ‖a‖²/D, or
  with `fourier_limit` ½ exp(−2π²σ²‖x₁ − x₂‖²) and c = ½ (σ is read only then)."""
  gram = jnp.matmul(x1, x2.T, precision=jax.lax.Precision.HIGHEST)
  if fourier_limit:
    assert sigma is not None  # check_fourier_limit: the limit needs an ECRNConfig's fourier_scale
    sq1, sq2 = jnp.sum(x1 * x1, axis=1), jnp.sum(x2 * x2, axis=1)
    dist = jnp.maximum(sq1[:, None] + sq2[None, :] - 2.0 * gram, 0.0)
    nngp = 0.5 * jnp.exp((-2.0 * math.pi**2 * sigma**2) * dist)
  else:
    nngp = gram / x1.shape[1]
  return nngp, _variance(x1, fourier_limit), _variance(x2, fourier_limit)


def _dense(state: _State, config: ArchConfig, fan_in) -> _State:
  w2, b2 = config.w_std**2, config.b_std**2
  nngp = w2 * state.nngp + b2
  ntk = state.ntk
  if ntk is not None:
    if config.parameterization == 'ntk':
      ntk = nngp + w2 * ntk
    else:
      ntk = fan_in * state.nngp + w2 * ntk + 1.0
  return _State(nngp, ntk, w2 * state.c1 + b2, w2 * state.c2 + b2)


def _activation(state: _State, dual, symmetric: bool) -> _State:
  nngp, dot = dual.pair(state.nngp, state.c1[:, None], state.c2[None, :])
  c1 = dual.diagonal(state.c1)
  c2 = c1 if symmetric else dual.diagonal(state.c2)
  if symmetric:
    nngp = _set_diagonal(nngp, c1)
  ntk = None if state.ntk is None else state.ntk * dot
  return _State(nngp, ntk, c1, c2)


def _scaled_sum(state: _State, branch: _State, scale) -> _State:
  s2 = scale * scale
  ntk = None if state.ntk is None else state.ntk + s2 * branch.ntk
  return _State(
      state.nngp + s2 * branch.nngp, ntk, state.c1 + s2 * branch.c1, state.c2 + s2 * branch.c2
  )


def _network(state: _State, config: ArchConfig, scales, fan_in, symmetric: bool) -> _State:
  dual = dual_activation(config.activation)
  if isinstance(config, MLPConfig):
    for width in config.hidden_widths:
      state = _activation(_dense(state, config, fan_in), dual, symmetric)
      fan_in = width
    return _dense(state, config, fan_in)
  state = _dense(state, config, fan_in)
  for l in range(config.depth):
    branch = _dense(_activation(state, dual, symmetric), config, config.width)
    state = _scaled_sum(state, branch, scales[l])
  return _dense(_activation(state, dual, symmetric), config, config.width)


def _kernels_of_input_kernel(nngp, c1, c2, *, config, scales, fan_in, names, symmetric):
  """The network's recursion from the input kernel K₀ (n₁, n₂) and variances c₁, c₂."""
  ntk = jnp.zeros_like(nngp) if 'ntk' in names else None
  state = _network(_State(nngp, ntk, c1, c2), config, scales, fan_in, symmetric)
  return tuple(getattr(state, name) for name in names)


# Rows per block: the recursion is elementwise after the input Gram matrix, and running it on
# blocks of ~2¹⁸ entries keeps each layer's intermediates in cache (2–3× faster on a CPU than
# whole (N₁, N₂) arrays, and memory O(block) beyond the result).
_BLOCK_ENTRIES = 1 << 18


def twin_core(
    x1,
    x2,
    b_matrix,
    scales,
    *,
    config: ArchConfig,
    names: tuple[str, ...],
    symmetric: bool,
    fourier_limit: bool,
) -> tuple[jax.Array, ...]:
  """Flattened inputs x1 (N₁, d), x2 (N₂, d) → the kernels named in `names`, (N₁, N₂) each.

  b_matrix: B (d, m) or None (no Fourier features, or the limit); scales: (L,) block scales
  s_l = α_l q̄_l. symmetric: x2 is x1; the diagonal is then computed from each point alone
  (correlation exactly 1). Not jitted itself.
  """
  if b_matrix is not None:
    x1 = fourier_embed(x1, b_matrix)
    x2 = x1 if symmetric else fourier_embed(x2, b_matrix)
  nngp0, c1, c2 = _input_kernel(
      x1, x2, sigma=getattr(config, 'fourier_scale', None), fourier_limit=fourier_limit
  )
  # The limit is refused for the standard parameterization, the only user of fan_in here.
  net = functools.partial(
      _kernels_of_input_kernel,
      config=config,
      scales=scales,
      fan_in=None if fourier_limit else x1.shape[1],
      names=names,
  )
  n1, n2 = nngp0.shape
  rows = max(1, min(n1, _BLOCK_ENTRIES // max(n2, 1)))
  if rows >= n1:
    out = net(nngp0, c1, c2, symmetric=False)
  else:
    num_blocks = -(-n1 // rows)
    pad = num_blocks * rows - n1
    nngp0 = jnp.concatenate([nngp0, jnp.broadcast_to(nngp0[-1:], (pad, n2))])
    c1_padded = jnp.concatenate([c1, jnp.broadcast_to(c1[-1:], (pad,))])
    blocks = jax.lax.map(
        lambda block: net(block[0], block[1], c2, symmetric=False),
        (nngp0.reshape(num_blocks, rows, n2), c1_padded.reshape(num_blocks, rows)),
    )
    out = tuple(b.reshape(num_blocks * rows, n2)[:n1] for b in blocks)
  if symmetric:
    idx = jnp.arange(n1)
    out = tuple(o.at[idx, idx].set(d) for o, d in zip(out, _diagonal(c1, net)))
  return out


def _diagonal(c, net):
  """Each point with itself: K₀ = c (correlation exactly 1), one 1 × 1 recursion per point."""
  diagonals = jax.vmap(lambda ci: net(ci[None, None], ci[None], ci[None], symmetric=True))(c)
  return tuple(d[:, 0, 0] for d in diagonals)


def twin_diagonal_core(
    x, b_matrix, scales, *, config: ArchConfig, names: tuple[str, ...], fourier_limit: bool
) -> tuple[jax.Array, ...]:
  """diag K(x, x) for each kernel in `names`, (N,) each, in O(N): what `twin_core(x, x, ...,
  symmetric=True)` puts on its diagonal. Not jitted itself."""
  if b_matrix is not None:
    x = fourier_embed(x, b_matrix)
  net = functools.partial(
      _kernels_of_input_kernel,
      config=config,
      scales=scales,
      fan_in=None if fourier_limit else x.shape[1],
      names=names,
  )
  return _diagonal(_variance(x, fourier_limit), net)


def structural_config(config: ArchConfig) -> ArchConfig:
  """The config with the fields the compiled recursion does not read reset (α, the schedule
  and the drop rates enter through the block-scale array; C and B's shape not at all), so
  that configs differing only there share one compilation."""
  if isinstance(config, MLPConfig):
    return config.replace(out_dim=1)
  return config.replace(
      alpha=1.0,
      alpha_schedule='constant',
      drop_rate=0.0,
      out_dim=1,
      fourier_features=None,
      fourier_trainable=False,
  )


_STATIC = ('config', 'names', 'symmetric', 'fourier_limit')
_twin_kernels = jax.jit(twin_core, static_argnames=_STATIC)


@functools.partial(jax.jit, static_argnames=_STATIC)
def _twin_kernels_of_many_scales(x1, x2, b_matrix, scales, **static):
  return jax.vmap(lambda s: twin_core(x1, x2, b_matrix, s, **static))(scales)


def native_kernel_fn(
    config: ArchConfig,
    *,
    variables: Optional[Mapping[str, Any]] = None,
    mask: Optional[Sequence[float]] = None,
    fourier_limit: bool = False,
) -> Callable[..., Union[jax.Array, InfiniteKernels]]:
  """The twin's native kernel function, in the style of `stax`'s `kernel_fn(x1, x2, get)`.

  What `infinite_kernel_fn` returns for implementation='native' (evaluation mode or one mask).

  Args:
    config: an `ECRNConfig` or `MLPConfig` (its dtype is the kernels' dtype).
    variables: the finite network's variables, for B, when the config has Fourier features
      (not needed with `fourier_limit=True`).
    mask: ECRN only: one drop mask ξ ∈ {0, 1}^L (the kernel of that mask) instead of the
      evaluation-mode survival scale q_l.
    fourier_limit: infinitely many Fourier features with B ~ N(0, σ_ff²) (module docstring).
  Returns:
    `kernel_fn(x1, x2=None, get=('nngp', 'ntk'))`: x1 (N₁, ...) and x2 (N₂, ...) raw inputs
    (γ is applied inside), x2=None for x1; an (N₁, N₂) array when `get` is a string, else
    `InfiniteKernels`. It is a pure JAX function of x1 and x2 (B and the block scales are
    captured): jit it (with `get` static), vmap it, or tile and shard it over devices.
    Concrete inputs with NaN/inf raise ValueError.
  """
  check_config(config)
  check_fourier_limit(config, fourier_limit)
  dtype = resolve_dtype(config.dtype)
  if isinstance(config, ECRNConfig):
    scales = jnp.asarray(block_scales(config, mask), dtype)
  else:
    if mask is not None:
      raise ValueError('mask applies to ECRNConfig only (an MLP has no stochastic depth).')
    scales = jnp.zeros((0,), dtype)
  b_cache = {}

  def b_for(num_inputs):
    if not uses_fourier(config) or fourier_limit:
      return None
    if num_inputs not in b_cache:
      b_cache[num_inputs] = jnp.asarray(fourier_b(config, variables, num_inputs), dtype)
    return b_cache[num_inputs]

  if (
      uses_fourier(config)
      and not fourier_limit
      and (variables is None or fourier_matrix(variables) is None)
  ):
    fourier_b(config, variables, 0)  # raises the message that says what to pass

  def kernel_fn(x1, x2=None, get=('nngp', 'ntk')):
    names, single = canonical_get(get)
    a1, a2 = flat_inputs(config, x1, x2)
    symmetric = x2 is None
    out = _twin_kernels(
        a1,
        a2,
        b_for(a1.shape[1]),
        scales,
        config=structural_config(config),
        names=names,
        symmetric=symmetric,
        fourier_limit=bool(fourier_limit),
    )
    if single:
      return out[0]
    kernels = dict(zip(names, out))
    return InfiniteKernels(nngp=kernels.get('nngp'), ntk=kernels.get('ntk'))

  return kernel_fn


def flat_inputs(config: ArchConfig, x1, x2):
  """x1, x2 checked (finite, same features) and flattened to (N, d) in the config's dtype; x2
  is x1 when None."""
  dtype = resolve_dtype(config.dtype)
  check_finite_inputs('x1', x1)
  a1 = flatten_inputs(x1).astype(dtype)
  if x2 is None:
    return a1, a1
  check_finite_inputs('x2', x2)
  a2 = flatten_inputs(x2).astype(dtype)
  if a2.shape[1] != a1.shape[1]:
    raise ValueError(
        f'x1 and x2 must have the same number of features, got {a1.shape[1]} and {a2.shape[1]}.'
    )
  return a1, a2


def twin_kernels_of_scales(
    config: ECRNConfig,
    x1,
    x2,
    scales,
    *,
    variables: Optional[Mapping[str, Any]] = None,
    fourier_limit: bool = False,
    get=('nngp', 'ntk'),
):
  """The twin's kernels with the block scales s_l = α_l ξ_l given as an array (L,), or a batch
  (S, L) of them (vmapped): the building block of the expectation over drop masks."""
  check_config(config)
  check_fourier_limit(config, fourier_limit)
  names, _ = canonical_get(get)
  dtype = resolve_dtype(config.dtype)
  a1, a2 = flat_inputs(config, x1, x2)
  symmetric = x2 is None
  b_matrix = None
  if uses_fourier(config) and not fourier_limit:
    b_matrix = jnp.asarray(fourier_b(config, variables, a1.shape[1]), dtype)
  scales = jnp.asarray(scales, dtype)
  if scales.ndim not in (1, 2) or scales.shape[-1] != config.depth:
    raise ValueError(
        f'scales must have shape (L,) or (S, L) with L = depth = {config.depth}, '
        f'got {scales.shape}.'
    )
  core = _twin_kernels_of_many_scales if scales.ndim == 2 else _twin_kernels
  return core(
      a1,
      a2,
      b_matrix,
      scales,
      config=structural_config(config),
      names=names,
      symmetric=symmetric,
      fourier_limit=bool(fourier_limit),
  )
