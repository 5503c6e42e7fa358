# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The twin in neural-tangents `stax`: the reference the native kernels are tested against.

`stax_twin` builds the twin of docs/spec.md §2.3 as a `stax` network, `to_stax_params` maps the
finite network's parameters onto it, and `infinite_kernel_fn(config,
implementation='neural_tangents')` computes its kernels with neural-tangents' `kernel_fn`.
neural_tangents (jax < 0.6, TensorFlow) is imported only inside those, lazily.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Mapping, Optional, Sequence

import jax

from ecrn_jax._src.config import ArchConfig, ECRNConfig, MLPConfig
from ecrn_jax._src.infinite.twin import block_scales, embed_inputs
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

  >>> import ecrn_jax
  >>> config = ecrn_jax.ECRNConfig(width=8, depth=2, fourier_features=4)
  >>> init_fn, apply_fn, kernel_fn = ecrn_jax.kernels.stax_twin(config)  # doctest: +SKIP
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

  >>> import jax, numpy as np, ecrn_jax
  >>> config = ecrn_jax.ECRNConfig(width=8, depth=2, fourier_features=4)
  >>> x = np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(3, 2)
  >>> variables = ecrn_jax.ECRN(config).init(jax.random.PRNGKey(0), x)
  >>> params = ecrn_jax.kernels.to_stax_params(config, variables)
  >>> _, apply_fn, _ = ecrn_jax.kernels.stax_twin(config)  # doctest: +SKIP
  >>> g = ecrn_jax.kernels.embed_inputs(config, x, variables)
  >>> apply_fn(params, g)  # equals ecrn_jax.ECRN(config).apply(variables, x)  # doctest: +SKIP
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


def check_implementation(implementation: str) -> None:
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(
        f'implementation must be one of {list(IMPLEMENTATIONS)}, got {implementation!r}.'
    )


def stax_inputs(config: ArchConfig, x1, x2, variables, fourier_limit: bool):
  """γ(x1), γ(x2) (None when x2 is) for the neural-tangents twin, inputs checked."""
  if fourier_limit:
    raise ValueError(
        "fourier_limit=True has no neural-tangents counterpart: use implementation='native'."
    )
  check_finite_inputs('x1', x1)
  g1 = embed_inputs(config, x1, variables)
  if x2 is None:
    return g1, None
  check_finite_inputs('x2', x2)
  return g1, embed_inputs(config, x2, variables)


def stax_kernels(config: ArchConfig, g1, g2, mask, names=('nngp', 'ntk')):
  _, _, kernel_fn = stax_twin(config, mask=mask)
  with _quiet_fan_in():
    k = kernel_fn(g1, g2, names)
  return dict(zip(names, (k,) if len(names) == 1 else tuple(getattr(k, n) for n in names)))
