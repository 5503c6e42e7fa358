"""The infinite-width twin of NTK-ECRN in neural-tangents `stax` (SPEC §2).

neural_tangents is imported lazily, inside these functions only: importing it imports
TensorFlow and requires jax < 0.6, and every finite-width path works without it.

The twin acts on γ(x), computed with the same B as the finite network, so B is treated as
fixed: with `fourier_trainable=True` the finite NTK also has a B term that the twin lacks
(that term does not vanish with width).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import warnings
from typing import Any, Mapping, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from ecrn_jax._src.config import ECRNConfig, MLPConfig
from ecrn_jax._src.models import fourier_embed, fourier_matrix, flatten_inputs, resolve_dtype

ArchConfig = Union[ECRNConfig, MLPConfig]


def _import_stax():
  try:
    from neural_tangents import stax  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        'Infinite-width kernels need neural-tangents 0.6.5, which needs jax < 0.6: '
        "pip install 'ecrn_jax[infinite]' -c constraints.txt (see BUILD_NOTES.md). "
        'Every finite-width function of ecrn_jax works without it.') from e
  except AttributeError as e:   # jax >= 0.6 removed jax.core.Jaxpr, which it uses.
    raise ImportError(
        f'neural-tangents failed to import with jax {jax.__version__} ({e}); it needs '
        'jax < 0.6. Install the pinned versions of constraints.txt.') from e
  return stax


@contextlib.contextmanager
def _quiet_fan_in():
  # neural-tangents warns that FanInSum assumes independent branches. Here they are: the
  # identity branch hˡ⁻¹ and α_l Dense_l(φ(hˡ⁻¹)) are uncorrelated because W_l is fresh and
  # zero-mean, which is why the branch ends in a Dense layer (SPEC §1).
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


def block_scales(config: ECRNConfig, mask: Optional[Sequence[float]] = None
                 ) -> tuple[float, ...]:
  """α_l q̄_l: q̄_l = q_l (evaluation mode) when mask is None, else q̄_l = mask_l."""
  if mask is None:
    factors = config.survival_probs
  else:
    factors = tuple(float(m) for m in mask)
    if len(factors) != config.depth:
      raise ValueError(f'mask must have depth={config.depth} entries, got {len(factors)}.')
  return tuple(a * q for a, q in zip(config.alphas, factors))


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
    return stax.Dense(features, W_std=config.w_std, b_std=config.b_std,
                      parameterization=config.parameterization)

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
    blocks.append(stax.serial(stax.FanOut(2), stax.parallel(stax.Identity(), branch),
                              stax.FanInSum()))
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


class InfiniteKernels(NamedTuple):
  """K∞ (`nngp`) and Θ∞ (`ntk`), each (N₁, N₂)."""
  nngp: jax.Array
  ntk: jax.Array


def embed_inputs(config: ArchConfig, x, variables: Optional[Mapping[str, Any]] = None
                 ) -> jax.Array:
  """γ(x) for an ECRN with Fourier features (B from `variables`); else x flattened.

  Returns (N, 2m) or (N, d), in the config's dtype.
  """
  dtype = resolve_dtype(config.dtype)
  x = flatten_inputs(x).astype(dtype)
  if isinstance(config, ECRNConfig) and config.fourier_features is not None:
    b_matrix = None if variables is None else fourier_matrix(variables)
    if b_matrix is None:
      raise ValueError(
          'this config has Fourier features, so the twin needs the same B as the finite '
          'network: pass variables=model.init(...) (B is read from its "fourier" '
          'collection, or from "params" when fourier_trainable=True).')
    if b_matrix.shape != (x.shape[1], config.fourier_features):
      raise ValueError(f'B has shape {b_matrix.shape} but the inputs have {x.shape[1]} '
                       f'features and fourier_features={config.fourier_features}.')
    x = fourier_embed(x, jnp.asarray(b_matrix, dtype))
  return x


def infinite_kernels(config: ArchConfig, x1, x2=None, *,
                     variables: Optional[Mapping[str, Any]] = None,
                     mask: Optional[Sequence[float]] = None) -> InfiniteKernels:
  """Θ∞ and K∞ of the twin on γ(x₁), γ(x₂), with the evaluation-mode survival scale.

  Args:
    config: an `ECRNConfig` or `MLPConfig`.
    x1: (N₁, d) inputs; x2: (N₂, d) or None for x1.
    variables: the finite network's variables; required when the config has Fourier
      features (for B).
    mask: one drop mask ξ ∈ {0,1}^L instead of the evaluation-mode scale (see
      `expected_kernels_stochastic_depth` for the expectation over masks).
  Returns:
    `InfiniteKernels(nngp, ntk)`, each (N₁, N₂).
  """
  g1 = embed_inputs(config, x1, variables)
  g2 = None if x2 is None else embed_inputs(config, x2, variables)
  _, _, kernel_fn = stax_twin(config, mask=mask)
  with _quiet_fan_in():
    k = kernel_fn(g1, g2, ('nngp', 'ntk'))
  return InfiniteKernels(nngp=k.nngp, ntk=k.ntk)


class ExpectedKernels(NamedTuple):
  """E_ξ[K_ξ] and E_ξ[Θ_ξ] over drop masks, (N₁, N₂) each; the standard errors and the
  number of masks drawn for method='mc' (zeros and the number of masks for 'exact')."""
  nngp: jax.Array
  ntk: jax.Array
  nngp_stderr: jax.Array
  ntk_stderr: jax.Array
  num_masks: int


_MAX_EXACT_BLOCKS = 16


def expected_kernels_stochastic_depth(
    config: ECRNConfig, x1, x2=None, *, variables: Optional[Mapping[str, Any]] = None,
    method: str = 'exact', num_samples: int = 1000, key: Optional[jax.Array] = None
) -> ExpectedKernels:
  """E_ξ[Θ_ξ] = Σ_ξ P(ξ) Θ_ξ of the infinite twin over stochastic-depth masks (SPEC §2).

  Args:
    config: an `ECRNConfig`.
    x1, x2, variables: as in `infinite_kernels`.
    method: 'exact' enumerates the 2^L' masks of the L' blocks with p_l > 0;
      'mc' averages `num_samples` masks drawn from `key` and reports standard errors.
  Returns:
    `ExpectedKernels`.
  """
  if not isinstance(config, ECRNConfig):
    raise TypeError('stochastic depth applies to ECRNConfig only.')
  if method not in ('exact', 'mc'):
    raise ValueError(f"method must be 'exact' or 'mc', got {method!r}.")
  g1 = embed_inputs(config, x1, variables)
  g2 = None if x2 is None else embed_inputs(config, x2, variables)
  q = np.asarray(config.survival_probs, dtype=np.float64)
  random_blocks = [l for l in range(config.depth) if q[l] < 1.0]
  cache: dict[tuple[int, ...], Any] = {}

  def kernels_of(mask):
    if mask not in cache:
      _, _, kernel_fn = stax_twin(config, mask=mask)
      with _quiet_fan_in():
        k = kernel_fn(g1, g2, ('nngp', 'ntk'))
      cache[mask] = (np.asarray(k.nngp), np.asarray(k.ntk))
    return cache[mask]

  def full_mask(bits):
    mask = [1] * config.depth
    for l, bit in zip(random_blocks, bits):
      mask[l] = int(bit)
    return tuple(mask)

  if method == 'exact':
    if len(random_blocks) > _MAX_EXACT_BLOCKS:
      raise ValueError(f'exact enumeration of 2^{len(random_blocks)} masks is too costly; '
                       "use method='mc'.")
    nngp = ntk = 0.0
    count = 0
    for bits in itertools.product((0, 1), repeat=len(random_blocks)):
      prob = float(np.prod([q[l] if b else 1.0 - q[l] for l, b in zip(random_blocks, bits)]))
      k_nngp, k_ntk = kernels_of(full_mask(bits))
      nngp = nngp + prob * k_nngp
      ntk = ntk + prob * k_ntk
      count += 1
    zeros = np.zeros_like(np.asarray(ntk))
    return ExpectedKernels(jnp.asarray(nngp), jnp.asarray(ntk), jnp.asarray(zeros),
                           jnp.asarray(zeros), count)

  if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 2:
    raise ValueError(f'num_samples must be an integer >= 2, got {num_samples!r}.')
  if key is None:
    raise ValueError("method='mc' needs key=jax.random.PRNGKey(seed).")
  draws = np.asarray(jax.random.bernoulli(key, jnp.asarray(q[random_blocks]),
                                          (num_samples, len(random_blocks))))
  samples_nngp, samples_ntk = [], []
  for bits in draws:
    k_nngp, k_ntk = kernels_of(full_mask(tuple(int(b) for b in bits)))
    samples_nngp.append(k_nngp)
    samples_ntk.append(k_ntk)
  samples_nngp, samples_ntk = np.stack(samples_nngp), np.stack(samples_ntk)
  stderr = lambda s: s.std(axis=0, ddof=1) / math.sqrt(num_samples)
  return ExpectedKernels(jnp.asarray(samples_nngp.mean(0)), jnp.asarray(samples_ntk.mean(0)),
                         jnp.asarray(stderr(samples_nngp)), jnp.asarray(stderr(samples_ntk)),
                         num_samples)
