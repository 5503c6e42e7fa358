# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Empirical NTK by per-example Jacobian contraction, for modules whose examples are independent.

Θ_ab(x, x') = Σ_leaves ⟨∂f_a(x)/∂θ_l, ∂f_b(x')/∂θ_l⟩: each example's Jacobian comes from C
vjps of the single-example network (one forward and C backward passes per example), and two
blocks of Jacobians are contracted leaf by leaf, so no (N·C, P) Jacobian is ever whole: the
memory is one block of per-example Jacobians per side, b·C·P numbers. This is neural-tangents'
JACOBIAN_CONTRACTION (Novak et al. 2022, "Fast Finite Width Neural Tangent Kernel"); against
the kernel–vector-product path it saves the factor N of passes over the whole block.

It needs every output row to depend on its own example only: Conv, Dense, pooling and BatchNorm
with running averages do; BatchNorm on batch statistics does not (`coupling` says which).
"""

from __future__ import annotations

import functools
from typing import Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def output_fn(model: nn.Module, frozen_kwargs: tuple) -> Callable:
  """f(params, rest, rngs, x) → (N, C)."""
  kwargs = dict(frozen_kwargs)

  def f(params, rest, rngs, x):
    out = model.apply({'params': params, **rest}, x, rngs=rngs, **kwargs)
    if isinstance(out, tuple) and 'mutable' in kwargs:  # (output, updated collections)
      out = out[0]
    return out.reshape(out.shape[0], -1)

  return f


@functools.lru_cache(maxsize=64)
def _probe_fn(model: nn.Module, frozen_kwargs: tuple) -> Callable:
  """Jitted: the first output row's tangent when only the second example's input moves."""
  f = output_fn(model, frozen_kwargs)

  @jax.jit
  def probe(params, rest, pair):
    tangent = jnp.zeros_like(pair).at[1].set(1)
    return jax.jvp(lambda xx: f(params, rest, None, xx), (pair,), (tangent,))[1][0]

  return probe


BATCH_STATS_UPDATE = (
    "it updates its 'batch_stats' in this call (BatchNorm with use_running_average=False "
    'normalizes over the batch, which couples the examples); evaluate it with running averages '
    "(e.g. train=False), or pass mutable=('batch_stats',) with implementation='generic' for the "
    'kernel at batch statistics'
)


def updates_batch_stats(error: Exception) -> bool:
  """Whether `error` is flax's refusal to update an immutable 'batch_stats' collection."""
  return 'batch_stats' in str(error) and 'immutable' in str(error)


def coupling(model: nn.Module, frozen_kwargs: tuple, params, rest, rngs, x) -> Optional[str]:
  """None when the model's output rows depend on their own example only, else why not.

  Probed with one jvp on two examples (the first two of x, or x[0] twice): a tangent on the
  second example only must leave the first output row exactly zero, which holds structurally
  (not up to round-off) for every per-example computation.
  """
  if rngs:
    return (
        'rngs are given, and the random draws (e.g. dropout masks) of a single-example call '
        "differ from the batch's"
    )
  x = jnp.asarray(x)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    return f'inputs of dtype {x.dtype} have no tangent to probe the independence of examples'
  pair = x[:2] if x.shape[0] >= 2 else jnp.concatenate([x[:1], x[:1]])
  try:
    first_row_tangent = _probe_fn(model, frozen_kwargs)(params, rest, pair)
  except Exception as e:  # pylint: disable=broad-except   (flax/jax: any module error)
    first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
    if updates_batch_stats(e):
      return BATCH_STATS_UPDATE
    return f'a forward pass with an input tangent failed ({first})'
  if bool(jnp.any(first_row_tangent != 0)):
    return (
        "one example's outputs change with another example's input (e.g. BatchNorm with "
        'use_running_average=False normalizes over the batch)'
    )
  return None


@functools.lru_cache(maxsize=64)
def jacobian_fn(model: nn.Module, frozen_kwargs: tuple) -> Callable:
  """Jitted (params, rest, rngs, x (b, ...)) ↦ per-example Jacobians, leaves (b, C, P_l)."""
  f = output_fn(model, frozen_kwargs)

  @jax.jit
  def jacobians(params, rest, rngs, x):
    def one(xi):
      out, vjp_fn = jax.vjp(lambda p: f(p, rest, rngs, xi[None])[0], params)
      (rows,) = jax.vmap(vjp_fn)(jnp.eye(out.shape[0], dtype=out.dtype))
      return rows

    leaves = jax.tree_util.tree_leaves(jax.vmap(one)(x))
    return [leaf.reshape(leaf.shape[0], leaf.shape[1], -1) for leaf in leaves]

  return jacobians


@functools.lru_cache(maxsize=8)
def contract_fn(trace_outputs: bool) -> Callable:
  """Jitted Θ of two blocks of Jacobians: (b₁, b₂) traced, else (b₁·C, b₂·C)."""

  @jax.jit
  def contract(jac1, jac2):
    if trace_outputs:
      total = sum(jnp.einsum('icp,jcp->ij', a, b) for a, b in zip(jac1, jac2))
      return total / jac1[0].shape[1]
    total = sum(jnp.einsum('iap,jbp->iajb', a, b) for a, b in zip(jac1, jac2))
    n1, c, n2, _ = total.shape
    return total.reshape(n1 * c, n2 * c)

  return contract


def num_params(params) -> int:
  return int(sum(np.prod(np.shape(leaf)) for leaf in jax.tree_util.tree_leaves(params)))
