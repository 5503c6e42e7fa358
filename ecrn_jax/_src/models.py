# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Flax modules: the NTK-ECRN and the plain MLP baseline (docs/spec.md §1).

Shapes: inputs x of shape (N, d) (trailing axes beyond the first are flattened, so images
(N, H, W, C) are accepted); outputs of shape (N, C).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ecrn_jax._src.config import ECRNConfig, MLPConfig

FOURIER_COLLECTION = 'fourier'
# The collection of a model's traced values (`traced`): absent from `init`'s variables.
HYPERPARAMS_COLLECTION = 'hyperparams'


def activation_fn(name: str) -> Callable[[jax.Array], jax.Array]:
  """φ by name: 'gelu' (exact, erf form), 'erf' or 'relu'."""
  if name == 'gelu':
    return lambda x: jax.nn.gelu(x, approximate=False)
  if name == 'erf':
    return jax.scipy.special.erf
  if name == 'relu':
    return jax.nn.relu
  raise ValueError(f"activation must be one of ['gelu', 'erf', 'relu'], got {name!r}.")


def resolve_dtype(name: str) -> Any:
  """The jnp dtype for a config's dtype string; float64 requires `jax_enable_x64`.

  >>> import jax.numpy as jnp
  >>> from ecrn_jax import models
  >>> models.resolve_dtype('float32') is jnp.float32
  True
  """
  if name == 'float64':
    if not jax.config.jax_enable_x64:  # type: ignore[attr-defined]  # flag not in jax's stubs
      raise ValueError(
          "dtype='float64' needs 64-bit JAX: call jax.config.update('jax_enable_x64', True) "
          'at the start of your program (or set JAX_ENABLE_X64=1), or use '
          "dtype='float32'."
      )
    return jnp.float64
  return jnp.float32


def fourier_embed(x: jax.Array, b_matrix: jax.Array) -> jax.Array:
  """γ(x) = [cos(2π Bᵀx), sin(2π Bᵀx)].

  Args:
    x: (N, d) inputs.
    b_matrix: (d, m) frequencies B.
  Returns:
    (N, 2m) features.

  (Tancik et al. 2020, docs/spec.md §1.2.)

  >>> import jax.numpy as jnp
  >>> from ecrn_jax import models
  >>> x, b = jnp.array([[0.25]]), jnp.array([[1.0, 0.5]])  # phases 2π·(0.25, 0.125)
  >>> [round(float(v), 4) for v in models.fourier_embed(x, b)[0]]
  [0.0, 0.7071, 1.0, 0.7071]
  """
  projection = 2.0 * math.pi * (x @ b_matrix)
  return jnp.concatenate([jnp.cos(projection), jnp.sin(projection)], axis=-1)


def flatten_inputs(x: jax.Array) -> jax.Array:
  """(N, ...) → (N, d); rejects a single unbatched example with a clear message."""
  x = jnp.asarray(x)
  if x.ndim < 2:
    raise ValueError(
        f'inputs must be batched with shape (N, d), got shape {x.shape}; '
        'for one example use x[None].'
    )
  return x.reshape(x.shape[0], math.prod(x.shape[1:]))  # also for N = 0


def _check_fan_in(module: nn.Module, name: str, expected: int, got: int) -> None:
  """One sentence instead of a shape error deep in a matmul when the inputs do not fit."""
  if expected != got:
    where = '/'.join(module.path) or type(module).__name__
    raise ValueError(
        f'inputs to layer {where!r} have {got} features but its {name} was initialised for '
        f'{expected}: initialise the variables on inputs of the shape you apply the model to '
        f'(model.init(key, x[:1])).'
    )


def _normal(stddev: float) -> Callable[..., jax.Array]:
  """N(0, stddev²) as flax's initializer draws it, the draw kept apart from its scaling (an
  optimization barrier: a compiled `init` rounds as the op-by-op one, to the bit)."""

  def init(key, shape, dtype):
    return jax.lax.optimization_barrier(jax.random.normal(key, shape, dtype)) * stddev

  return init


class Dense(nn.Module):
  """A Dense layer in neural-tangents' conventions.

  'ntk': z = (σ_w/√fan_in)·x W + σ_b·b with W, b ~ N(0, 1).
  'standard': z = x W + b with W ~ N(0, σ_w²/fan_in), b ~ N(0, σ_b²).
  Parameters are named 'kernel' (fan_in, features) and 'bias' (features,).
  """

  features: int
  w_std: float
  b_std: float
  parameterization: str = 'ntk'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    fan_in = x.shape[-1]
    if self.has_variable('params', 'kernel'):
      _check_fan_in(self, 'kernel', self.get_variable('params', 'kernel').shape[0], fan_in)
    if self.parameterization == 'ntk':
      kernel = self.param('kernel', _normal(1.0), (fan_in, self.features), self.dtype)
      bias = self.param('bias', _normal(1.0), (self.features,), self.dtype)
      return (self.w_std / math.sqrt(fan_in)) * (x @ kernel) + self.b_std * bias
    if self.parameterization == 'standard':
      kernel = self.param(
          'kernel',
          _normal(self.w_std / math.sqrt(fan_in)),
          (fan_in, self.features),
          self.dtype,
      )
      bias = self.param('bias', _normal(self.b_std), (self.features,), self.dtype)
      return x @ kernel + bias
    raise ValueError(
        "parameterization must be 'ntk' or 'standard', " f'got {self.parameterization!r}.'
    )


class FourierFeatures(nn.Module):
  """γ(x) with B ∈ R^{d×m}, B_ij ~ N(0, σ_ff²) drawn from the 'params' rng at init.

  Random Fourier features of Tancik et al. (2020) with all amplitudes 1 (docs/spec.md §1.2).

  B is stored as variable 'B' in the 'fourier' collection (fixed, outside the NTK) or,
  when `trainable`, as parameter 'B' in 'params'.
  """

  num_features: int
  scale: float
  trainable: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    shape = (x.shape[-1], self.num_features)

    def init(key, shape, dtype):
      return self.scale * jax.lax.optimization_barrier(jax.random.normal(key, shape, dtype))

    collection = 'params' if self.trainable else FOURIER_COLLECTION
    if self.has_variable(collection, 'B'):
      _check_fan_in(self, 'B', self.get_variable(collection, 'B').shape[0], x.shape[-1])
    if self.trainable:
      b_matrix = self.param('B', init, shape, self.dtype)
    else:
      b_matrix = self.variable(
          FOURIER_COLLECTION, 'B', lambda: init(self.make_rng('params'), shape, self.dtype)
      ).value
    return fourier_embed(x, b_matrix)


class ECRN(nn.Module):
  """The NTK-ECRN of docs/spec.md §1.

  h⁰ = Dense₀(γ(x)); hˡ = hˡ⁻¹ + α_l ξ_l Dense_l(φ(hˡ⁻¹)); f(x) = Dense_out(φ(h^L)).
  With `train=True` and a positive drop rate, ξ_l ~ Bernoulli(q_l) is drawn once per block per
  call from the 'dropout' rng; with `train=False`, ξ_l = q_l.

  α_l and q_l are the config's, as constants; or, when the variables hold a 'hyperparams'
  collection (`traced`), that collection's values (arguments of a compiled program, so one
  program serves every α, drop rate and σ_ff of the same shapes). The config then only says
  which blocks draw ξ_l in training (those with q_l < 1).

  Submodule names: 'fourier_features', 'stem', 'block_{l}' (l = 0..L−1), 'readout'.
  Call: x (N, d) → (N, out_dim).
  """

  config: ECRNConfig

  @nn.nowrap
  def init(self, rngs, *args, **kwargs):  # pylint: disable=arguments-differ
    """flax's `init`; `init(key, x)` runs as one compiled program per structure (`jit_init`)."""
    return jit_init(self, rngs, *args, **kwargs)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    cfg = self.config
    dtype = resolve_dtype(cfg.dtype)
    phi = activation_fn(cfg.activation)
    x = flatten_inputs(x).astype(dtype)
    if cfg.fourier_features is not None:
      x = FourierFeatures(
          cfg.fourier_features,
          cfg.fourier_scale,
          cfg.fourier_trainable,
          dtype,
          name='fourier_features',
      )(x)

    def dense(features, name):
      return Dense(features, cfg.w_std, cfg.b_std, cfg.parameterization, dtype, name=name)

    values: Mapping[str, Any]  # per block: Python floats, or traced scalars (`traced`)
    if self.has_variable(HYPERPARAMS_COLLECTION, 'alpha'):
      values = {k: self.get_variable(HYPERPARAMS_COLLECTION, k) for k in _BLOCK_VALUES}
    else:
      values = _block_values(cfg)
    h = dense(cfg.width, 'stem')(x)
    for l, q_l in enumerate(cfg.survival_probs):
      branch = dense(cfg.width, f'block_{l}')(phi(h))
      if train and q_l < 1.0:  # ξ_l ~ Bernoulli(q_l)
        xi = jax.random.bernoulli(self.make_rng('dropout'), values['survival'][l]).astype(dtype)
        h = h + values['alpha'][l] * xi * branch
      else:  # ξ_l = q_l: α_l q_l, one number
        h = h + values['scale'][l] * branch
    return dense(cfg.out_dim, 'readout')(phi(h))


# Per block l: α_l, q_l and α_l·q_l (the product in double precision, as the constants were).
_BLOCK_VALUES = ('alpha', 'survival', 'scale')


def _block_values(cfg: ECRNConfig) -> dict[str, tuple[float, ...]]:
  alphas, survival = cfg.alphas, cfg.survival_probs
  return {
      'alpha': alphas,
      'survival': survival,
      'scale': tuple(a * q for a, q in zip(alphas, survival)),
  }


class MLP(nn.Module):
  """The plain baseline: Dense → φ → … → Dense(out_dim), same Dense conventions as ECRN.

  Submodule names: 'dense_{i}' for the hidden layers, 'readout'. `train` is accepted for a
  uniform interface and ignored. Call: x (N, d) → (N, out_dim).
  """

  config: MLPConfig

  @nn.nowrap
  def init(self, rngs, *args, **kwargs):  # pylint: disable=arguments-differ
    """flax's `init`; `init(key, x)` runs as one compiled program per structure (`jit_init`)."""
    return jit_init(self, rngs, *args, **kwargs)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    cfg = self.config
    dtype = resolve_dtype(cfg.dtype)
    phi = activation_fn(cfg.activation)
    h = flatten_inputs(x).astype(dtype)
    for i, width in enumerate(cfg.hidden_widths):
      h = phi(Dense(width, cfg.w_std, cfg.b_std, cfg.parameterization, dtype, name=f'dense_{i}')(h))
    return Dense(cfg.out_dim, cfg.w_std, cfg.b_std, cfg.parameterization, dtype, name='readout')(h)


def fourier_matrix(variables) -> jax.Array | None:
  """B from a model's variables (from 'fourier' or, if trainable, 'params'); None if absent.

  >>> import jax, numpy as np, ecrn_jax
  >>> config = ecrn_jax.ECRNConfig(width=8, depth=1, fourier_features=4)
  >>> variables = ecrn_jax.ECRN(config).init(jax.random.PRNGKey(0), np.zeros((1, 3), np.float32))
  >>> ecrn_jax.models.fourier_matrix(variables).shape  # B (d, m), fixed unless trainable
  (3, 4)
  """
  for collection in (FOURIER_COLLECTION, 'params'):
    sub = variables.get(collection, {}) if hasattr(variables, 'get') else {}
    ff = sub.get('fourier_features') if hasattr(sub, 'get') else None
    if ff is not None and 'B' in ff:
      return ff['B']
  return None


def traced(model: Any) -> tuple[Any, dict[str, Any]]:
  """(structure, values): `model` with its α, drop rates and σ_ff replaced by fixed placeholders,
  and a 'hyperparams' collection of its values ({} for a model without such values), so that

      structure.apply({**variables, **values}, x, ...) == model.apply(variables, x, ...)

  and a program compiled for the structure, the values among its arguments, serves every model
  of the same shapes. For an `ECRN`: per block α_l, q_l and α_l·q_l as weakly typed scalars
  (they promote as the Python numbers of the constant form: the same numbers); the structure
  keeps which blocks draw ξ_l in training, or, where none does, lets all draw (q_l = 1 draws 1).
  σ_ff only scales B at `init`, which the structure is not for. Other models: (model, {}).
  """
  if type(model) is not ECRN:  # pylint: disable=unidiomatic-typecheck  (a subclass may differ)
    return model, {}
  cfg = model.config
  draws = [q < 1.0 for q in cfg.survival_probs]
  if not any(draws):
    draws = [True] * cfg.depth
  structure = model.clone(
      config=cfg.replace(
          alpha=1.0,
          alpha_schedule='constant',
          drop_rate=tuple(0.5 if d else 0.0 for d in draws),
          fourier_scale=1.0,
      )
  )
  values = {k: tuple(jax.device_put(v) for v in vs) for k, vs in _block_values(cfg).items()}
  return structure, {HYPERPARAMS_COLLECTION: values}


class Bound:
  """A jitted program of (*args, values) called as (*args): `values`, the model's traced values
  (`models.traced`), are bound as its last argument. The program is its structure's, shared by
  every model of the same shapes; `lower` and `_cache_size` are the program's."""

  def __init__(self, program: Any, structure: Any, values: Mapping[str, Any]):
    self.program, self.structure, self.values = program, structure, values

  def __call__(self, *args):
    return self.program(*args, self.values)

  def lower(self, *args):
    return self.program.lower(*args, self.values)

  def _cache_size(self) -> int:
    return self.program._cache_size()  # pylint: disable=protected-access


@functools.lru_cache(maxsize=32)  # keyed by structure (shapes), not by hyperparameter values
def _jitted_apply(structure: nn.Module) -> Callable:
  return jax.jit(structure.apply)


def jit_apply(model: Any) -> Callable[[Mapping[str, Any], jax.Array], jax.Array]:
  """(variables, x) ↦ model.apply(variables, x), evaluation mode, jitted once per structure
  (`traced`): models that differ only in α, drop rate or σ_ff share one compiled program.

  >>> import jax, numpy as np, ecrn_jax
  >>> config = ecrn_jax.ECRNConfig(width=8, depth=2, fourier_features=4)
  >>> x = np.ones((3, 2), np.float32)
  >>> model = ecrn_jax.ECRN(config.replace(alpha=0.5))
  >>> variables = model.init(jax.random.PRNGKey(0), x)
  >>> apply = ecrn_jax.models.jit_apply(model)
  >>> bool(np.allclose(apply(variables, x), model.apply(variables, x)))
  True
  """
  structure, values = traced(model)
  try:
    apply = _jitted_apply(structure)
  except TypeError:  # an unhashable module: its own program
    apply = jax.jit(structure.apply)
  return lambda variables, x: apply({**variables, **values}, x)


@functools.lru_cache(maxsize=32)  # keyed by structure (shapes), not by σ_ff
def _init_program(structure: nn.Module) -> Callable:
  def init(rngs, x, fourier_scale):
    variables = nn.Module.init(structure, rngs, x)
    for collection in (FOURIER_COLLECTION, 'params'):  # B = σ_ff · N(0, 1), as at σ_ff = 1
      ff = variables.get(collection, {}).get('fourier_features', {})
      if 'B' in ff:
        ff = {**ff, 'B': fourier_scale * ff['B']}
        sub = {**variables[collection], 'fourier_features': ff}
        variables = {**variables, collection: sub}
    return variables

  return jax.jit(init)


def jit_init(model: Any, rngs: Any, *args, **kwargs) -> Any:
  """`model.init(rngs, *args, **kwargs)`; for the plain `init(key, x)` (evaluation mode), one
  compiled program per structure (`traced`) and shapes, instead of one small program per
  operation and shape, σ_ff an argument: the same variables, to the bit.

  >>> import flax.linen as nn, jax, numpy as np, ecrn_jax
  >>> config = ecrn_jax.ECRNConfig(width=8, depth=1, fourier_features=4, fourier_scale=2.5)
  >>> model, x = ecrn_jax.ECRN(config), np.ones((1, 3), np.float32)
  >>> compiled = ecrn_jax.models.jit_init(model, jax.random.PRNGKey(0), x)
  >>> op_by_op = nn.Module.init(model, jax.random.PRNGKey(0), x)
  >>> leaves = map(jax.tree_util.tree_leaves, (compiled, op_by_op))
  >>> all(np.array_equal(a, b) for a, b in zip(*leaves))
  True
  """
  plain = (
      len(args) == 1
      and isinstance(args[0], (np.ndarray, jax.Array))
      and isinstance(rngs, (jax.Array, dict))
      and set(kwargs) <= {'train'}
      and not kwargs.get('train', False)
  )
  if not plain:
    return nn.Module.init(model, rngs, *args, **kwargs)
  structure, _ = traced(model)
  # The structure of an ECRN draws B at σ_ff = 1; other models keep their own σ_ff.
  scale = model.config.fourier_scale if structure is not model else 1.0
  try:
    program = _init_program(structure)
  except TypeError:  # an unhashable module: op by op
    return nn.Module.init(model, rngs, *args, **kwargs)
  return program(rngs, args[0], scale)
