# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Cost model of the empirical-NTK paths, from shapes alone (what `implementation='auto'` uses).

A path's cost is its FLOPs plus `FLOPS_PER_BYTE` times the bytes it writes, estimated from the
shapes of the module's jaxpr (one forward pass: F FLOPs and B bytes of intermediates per
example, from a shape-only trace at two and at one example) and of its layers:

* generic: for every pair of blocks, b₂·C backward passes over the block of x2 and b₂·C jvps
  over the block of x1: ≈ C·N₁·N₂·(2 + 3)·(F, B);
* jacobian: C backward passes of each single example, (1 + 2C)·(F, B) a pass over x1 and over
  x2 (x2's passes repeated per panel of x1's blocks when its Jacobians do not fit the budget), the
  Jacobians written (C·P numbers an example) and contracted (2·N₁·N₂·C·P FLOPs traced, ·C full);
* structured: one forward and C backward passes to the layer outputs, (1 + C)·(F, B) an example,
  then per layer the cheaper of per-example gradients and Gram matrices
  (`structured_conv._costs`), the patches written (S·D̃ an example), the kept features
  contracted; the library's Dense networks: N₁·N₂·(n_in + C·n_out) a layer.

Estimates to rank the paths, not predictions of time.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np

# One byte written is worth this many FLOPs (a CPU: ~10 GB/s of memory traffic against
# ~50 GFLOP/s of matmul).
FLOPS_PER_BYTE = 4.0


def _shape_flops(eqn) -> float:
  """FLOPs of one jaxpr equation: matmuls and convolutions by their shapes, else one an
  output element."""
  out = eqn.outvars[0].aval
  size = float(np.prod(getattr(out, 'shape', ()) or (1,)))
  name = eqn.primitive.name
  if name == 'dot_general':
    (contract, _), _ = eqn.params['dimension_numbers']
    lhs = eqn.invars[0].aval.shape
    return 2.0 * size * float(np.prod([lhs[d] for d in contract] or [1]))
  if name == 'conv_general_dilated':
    rhs = eqn.invars[1].aval.shape
    out_features = rhs[eqn.params['dimension_numbers'].rhs_spec[0]]
    return 2.0 * size * float(np.prod(rhs)) / max(1, out_features)
  return size


def jaxpr_cost(jaxpr) -> tuple[float, float]:
  """(FLOPs, bytes of every intermediate value) of a jaxpr, nested jaxprs (pjit, custom_jvp)
  included; a loop body counted once."""
  flops = written = 0.0
  for eqn in jaxpr.eqns:
    nested = False
    for param in eqn.params.values():
      for sub in param if isinstance(param, (tuple, list)) else (param,):
        sub = getattr(sub, 'jaxpr', sub)  # ClosedJaxpr → Jaxpr
        if hasattr(sub, 'eqns'):
          f, b = jaxpr_cost(sub)
          flops, written, nested = flops + f, written + b, True
    for var in eqn.outvars:
      aval = var.aval
      if hasattr(aval, 'shape') and hasattr(aval, 'dtype'):
        written += float(np.prod(aval.shape)) * getattr(aval.dtype, 'itemsize', 4)
    if not nested and eqn.outvars:
      flops += _shape_flops(eqn)
  return flops, written


def _abstract(leaf) -> jax.ShapeDtypeStruct:
  leaf = leaf if hasattr(leaf, 'dtype') else np.asarray(leaf)
  return jax.ShapeDtypeStruct(np.shape(leaf), leaf.dtype)


def forward_cost(f, params, rest, rngs, x) -> tuple[float, float]:
  """(F, B): FLOPs and bytes of intermediates of f(params, rest, rngs, x) per example, the
  jaxpr's at two examples minus at one."""
  abstract = jax.tree_util.tree_map(_abstract, (params, rest, rngs))

  def cost(n):
    x_n = jax.ShapeDtypeStruct((n,) + tuple(x.shape[1:]), x.dtype)
    return jaxpr_cost(jax.make_jaxpr(f)(*abstract, x_n).jaxpr)

  (f2, b2), (f1, b1) = cost(2), cost(1)
  return max(1.0, f2 - f1), max(1.0, b2 - b1)


def generic(forward: tuple, n1: int, n2: int, c: int) -> float:
  flops, written = forward
  return 5.0 * c * n1 * n2 * (flops + FLOPS_PER_BYTE * written)


def jacobian(forward: tuple, shape: dict, jacobian_bytes: int) -> float:
  """`shape`: n1, n2, c, trace, p (parameters), itemsize, block (x1's block), same (x2 is x1)."""
  flops, written = forward
  n1, n2, c, p, item = shape['n1'], shape['n2'], shape['c'], shape['p'], shape['itemsize']
  per_input = c * p * item
  passes_2 = 0 if shape['same'] else n2
  if n2 * per_input > jacobian_bytes // 2:  # x2's Jacobians recomputed per panel of x1's blocks
    panel = max(1, jacobian_bytes // 2 // 2 // max(1, per_input * shape['block']))
    passes_2 = n2 * math.ceil(n1 / (panel * shape['block']))
  passes = n1 + passes_2
  pairs = 1 if shape['trace'] else c
  pass_cost = (1 + 2 * c) * (flops + FLOPS_PER_BYTE * written) + FLOPS_PER_BYTE * per_input
  return passes * pass_cost + 2.0 * n1 * n2 * pairs * c * p


def structured_layers(forward: tuple, layers: tuple, shape: dict, layer_costs) -> float:
  """The structured path of any Flax module; `layer_costs(layer)` → (gradient, gram) FLOPs."""
  flops, written = forward
  n1, n2, c, item = shape['n1'], shape['n2'], shape['c'], shape['itemsize']
  passes = n1 + (0 if shape['same'] else n2)
  total = passes * (1 + c) * (flops + FLOPS_PER_BYTE * written)
  pairs = 1 if shape['trace'] else c
  for layer in layers:
    if layer.kind == 'local':  # a vmapped single-example vjp of the module: its Jacobian
      total += passes * FLOPS_PER_BYTE * c * layer.features * item
      total += 2.0 * n1 * n2 * pairs * c * layer.features
      continue
    gradient, gram = layer_costs(layer)
    total += passes * FLOPS_PER_BYTE * layer.positions * layer.patch * item
    if layer.form == 'gradient':
      total += gradient + passes * FLOPS_PER_BYTE * c * layer.patch * layer.features * item
    else:
      total += gram + FLOPS_PER_BYTE * n1 * n2 * layer.positions**2 * item
  return total


def structured_dense(forward: tuple, fan: list[tuple[int, int]], shape: dict) -> float:
  """The library's Dense networks; `fan`: (n_in, n_out) of every layer."""
  flops, written = forward
  n1, n2, c = shape['n1'], shape['n2'], shape['c']
  passes = n1 + (0 if shape['same'] else n2)
  pairs = 1 if shape['trace'] else c
  total = passes * (1 + c) * (flops + FLOPS_PER_BYTE * written)
  return total + sum(2.0 * n1 * n2 * (i + pairs * o) for i, o in fan)


def cheapest(costs: dict[str, Any]) -> str:
  """The path of least cost, ties to the first listed."""
  return min(costs, key=lambda k: costs[k])


def vector_products(forward: tuple, n1: int, n2: int, c: int, trace: bool, count: int) -> float:
  """`count` kernel–vector products: a vjp over x2 and a jvp over x1 per output cotangent (C of
  them traced, one full)."""
  flops, written = forward
  per_pass = flops + FLOPS_PER_BYTE * written
  return count * (c if trace else 1) * 3.0 * (n1 + n2) * per_pass
