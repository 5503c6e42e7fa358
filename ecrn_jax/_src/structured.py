# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Structured empirical NTK for networks built from the project's Dense layers.

For a Dense layer z = s_w·a W + s_b·b with inputs A (N, n_in) and cotangents
G_c = ∂f_c/∂z (N, n_out), its parameters contribute (s_w² A A'ᵀ + s_b²) ⊙ (G_c G'_cᵀ) to Θ_c,
so Θ = (1/C) Σ_l (s_w,l² A_l A_l'ᵀ + s_b,l²) ⊙ Σ_c G_l,c G'_l,cᵀ: one forward pass for the
A_l, C backward passes for the G_l, and N₁N₂(n_in + C·n_out) per layer for the contraction,
never an N×P Jacobian. A trainable Fourier matrix B is the same form with input x, cotangent
∂f/∂u at u = 2π xB, and s_w² = 4π².

It applies when every leaf of 'params' belongs to a `Dense` or a trainable `FourierFeatures`
called exactly once per forward pass on (N, features) inputs; `plan` says whether it does.
This is the structured empirical NTK of Novak et al. (2022), "Fast Finite Width Neural Tangent
Kernel", for Dense layers (docs/spec.md §2.2); the NTK itself is Jacot et al. (2018).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from ecrn_jax._src.models import Dense, FourierFeatures


class Unsupported(Exception):
  """The model is outside what the structured path covers (message says why)."""


class _Layer(NamedTuple):
  key: str
  kind: str  # 'dense' or 'fourier'
  out_shape: tuple
  w_scale: float  # s_w²
  b_scale: float  # s_b²


def scales(module: Dense, fan_in: int) -> tuple[float, float]:
  if module.parameterization == 'ntk':
    return module.w_std**2 / fan_in, module.b_std**2
  return 1.0, 1.0


def _traced_apply(model: nn.Module, kwargs: dict, params, rest, rngs, x, eps, records):
  """model.apply with ε added to every covered layer's output; fills `records` by path."""

  def interceptor(next_fun, args, kw, context):
    module = context.module
    covered = isinstance(module, Dense) or isinstance(module, FourierFeatures) and module.trainable
    if context.method_name != '__call__' or not covered:
      return next_fun(*args, **kw)
    key = '/'.join(module.path)
    if key in records:
      raise Unsupported(f'layer {key!r} is called more than once per forward pass.')
    inputs = args[0] if args else kw.get('x')
    out = next_fun(*args, **kw)
    if inputs is None or inputs.ndim != 2 or out.ndim != 2:
      raise Unsupported(
          f'layer {key!r} is applied to inputs of shape '
          f'{getattr(inputs, "shape", None)}, not (N, features).'
      )
    records[key] = (module, inputs, tuple(module.path))
    return out if eps is None else out + eps[key]

  with nn.intercept_methods(interceptor):
    out = model.apply({'params': params, **rest}, x, rngs=rngs, **kwargs)
  # flax types apply's result as output | (output, updated variables); without `mutable` it
  # is the output.
  return out.reshape(out.shape[0], -1)  # type: ignore[union-attr]


def plan(model: nn.Module, frozen_kwargs: tuple, params, rest, rngs, x) -> tuple[_Layer, ...]:
  """The covered layers, in call order; raises `Unsupported` (with the reason) otherwise."""
  records: dict[str, Any] = {}
  kwargs = dict(frozen_kwargs)
  jax.eval_shape(
      lambda p, xx: _traced_apply(model, kwargs, p, rest, rngs, xx, None, records), params, x
  )
  layers, covered = [], set()
  for key, (module, inputs, path) in records.items():
    fan_in = inputs.shape[1]
    if isinstance(module, Dense):
      w_scale, b_scale = scales(module, fan_in)
      layers.append(_Layer(key, 'dense', (inputs.shape[0], module.features), w_scale, b_scale))
      covered |= {(*path, 'kernel'), (*path, 'bias')}
    else:
      layers.append(
          _Layer(key, 'fourier', (inputs.shape[0], 2 * module.num_features), 4 * math.pi**2, 0.0)
      )
      covered.add((*path, 'B'))
  leaves = {
      tuple(getattr(k, 'key', getattr(k, 'name', k)) for k in path)
      for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]
  }
  missing = sorted('/'.join(map(str, p)) for p in leaves - covered)
  if missing:
    raise Unsupported(f'parameters {missing[:3]} do not belong to a Dense layer of ecrn_jax.')
  return tuple(layers)


@functools.lru_cache(maxsize=64)
def features_fn(model: nn.Module, frozen_kwargs: tuple, layers: tuple[_Layer, ...]):
  """Jitted x (b, ...) ↦ {layer: (A (b, n_in), G (C, b, n_out))} for one block."""
  kwargs = dict(frozen_kwargs)

  @jax.jit
  def features(params, rest, rngs, x):
    records: dict[str, Any] = {}
    dtype = params_dtype(params)
    eps0 = {l.key: jnp.zeros((x.shape[0], l.out_shape[1]), dtype) for l in layers}

    def f(eps):
      records.clear()
      out = _traced_apply(model, kwargs, params, rest, rngs, x, eps, records)
      return out, {k: v[1] for k, v in records.items()}

    out, vjp_fn, inputs = jax.vjp(f, eps0, has_aux=True)
    n, c = out.shape
    seeds = jnp.broadcast_to(jnp.eye(c, dtype=out.dtype)[:, None, :], (c, n, c))
    (cotangents,) = jax.vmap(vjp_fn)(seeds)  # {layer: (C, n, n_out)}
    result = {}
    for l in layers:
      a, g = inputs[l.key], cotangents[l.key]
      if l.kind == 'fourier':
        b_matrix = _get(params, l.key)['B']
        u = 2 * math.pi * (a @ b_matrix)
        m = b_matrix.shape[1]
        g = -jnp.sin(u) * g[..., :m] + jnp.cos(u) * g[..., m:]  # ∂f/∂u
      result[l.key] = (a, g)
    return result

  return features


def params_dtype(params):
  """The dtype of the first parameter leaf (all leaves share it in ecrn_jax models)."""
  return jax.tree_util.tree_leaves(params)[0].dtype


def _get(params, key: str):
  node = params
  for name in key.split('/'):
    node = node[name]
  return node


@functools.lru_cache(maxsize=64)
def contract_fn(layers: tuple[_Layer, ...], trace_outputs: bool):
  """Jitted Θ from two blocks of features: (b₁, b₂) or (b₁·C, b₂·C)."""

  @jax.jit
  def contract(feats1, feats2):
    total = 0.0
    for l in layers:
      a1, g1 = feats1[l.key]
      a2, g2 = feats2[l.key]
      inputs = l.w_scale * (a1 @ a2.T) + l.b_scale  # (b₁, b₂)
      if trace_outputs:
        total = total + inputs * jnp.einsum('cnh,cmh->nm', g1, g2)
      else:
        total = total + inputs[:, :, None, None] * jnp.einsum('anh,bmh->nmab', g1, g2)
    if trace_outputs:
      return total / g1.shape[0]
    n1, n2, c, _ = total.shape
    return jnp.transpose(total, (0, 2, 1, 3)).reshape(n1 * c, n2 * c)

  return contract
