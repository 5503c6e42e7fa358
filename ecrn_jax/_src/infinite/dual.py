# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Dual activations: the closed-form Gaussian expectations behind the infinite-width kernels.

For (u, v) ~ N(0, [[c₁, k], [k, c₂]]) and an activation φ, the dual of φ is

    k ↦ E[φ(u) φ(v)]      (the next layer's NNGP covariance)
    k ↦ E[φ'(u) φ'(v)]    (the factor that multiplies the NTK)

and on the diagonal (u = v, variance c) c ↦ E[φ(u)²]. Every function here is elementwise in
its array arguments (any shapes that broadcast), jittable, and in the arguments' dtype.
`prod` is c₁·c₂ broadcast against k, e.g. `cov1[:, None] * cov2[None, :]`.

Closed forms (each checked against two-dimensional Gauss–Hermite quadrature in the tests):
- ReLU (Cho & Saul 2009): with s = √(c₁c₂ − k²) and θ = atan2(s, k) ∈ [0, π],
  E[φφ] = (s + (π − θ) k) / 2π,  E[φ'φ'] = (π − θ) / 2π,  E[φ(u)²] = c/2.
- erf (Williams 1997): with D = (1 + 2c₁)(1 + 2c₂),
  E[φφ] = (2/π) atan2(2k, √(D − 4k²)),  E[φ'φ'] = (4/π) / √(D − 4k²).
- exact GELU φ(x) = x Φ(x) (Tsuchida et al. 2021, arXiv:2002.08517): with
  P = (c₁ + 1)(c₂ + 1), δ² = P − k² and θ = atan2(k, δ),
  E[φφ] = k/4 + (k² + c₁c₂ δ²) / (2π P δ) + k θ / 2π,
  E[φ'φ'] = 1/4 + θ/2π + k (1/δ² + (1 − c₁c₂)/P + 1) / (2π δ).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax.numpy as jnp

_TWO_PI = 2.0 * math.pi

# atan on [0, 1] as a rational function (Cephes' atan: P/Q of degrees 4 and 5 after reducing
# t > 0.66 by atan t = π/4 + atan((t − 1)/(t + 1))), within 2 ulp of NumPy's arctan2 in
# float64 (tested). XLA's CPU atan2 is a scalar libm call; this vectorizes and is
# ~4× faster, which is most of the cost of a deep twin's kernel.
_ATAN_P = (
    -8.750608600031904122785e-1,
    -1.615753718733365076637e1,
    -7.500855792314704667340e1,
    -1.228866684490136173410e2,
    -6.485021904942025371773e1,
)
_ATAN_Q = (
    2.485846490142306297962e1,
    1.650270098316988542046e2,
    4.328810604912902668951e2,
    4.853903996359136964868e2,
    1.945506571482613964425e2,
)
_PI_4_LOW = 0.5 * 6.123233995736765886130e-17  # π/4 − fl(π/4)


def _atan_unit(t):
  """atan(t) for t ∈ [0, 1]."""
  mid = t > 0.66
  r = jnp.where(mid, (t - 1.0) / (t + 1.0), t)
  z = r * r
  p = (((_ATAN_P[0] * z + _ATAN_P[1]) * z + _ATAN_P[2]) * z + _ATAN_P[3]) * z + _ATAN_P[4]
  q = ((((z + _ATAN_Q[0]) * z + _ATAN_Q[1]) * z + _ATAN_Q[2]) * z + _ATAN_Q[3]) * z + _ATAN_Q[4]
  tail = r + r * (z * p / q)
  return jnp.where(mid, (math.pi / 4 + (tail + _PI_4_LOW)), tail)


def atan2(y, x):
  """The angle of (x, y) in [−π, π], as `jnp.arctan2` (atan2(±0, 0) = ±0), vectorized.

  Differs from IEEE atan2 only for x = −0.0 with y = ±0 (±0 here, ±π there); the duals never
  pass x = −0.0.
  """
  ax, ay = jnp.abs(x), jnp.abs(y)
  swap = ay > ax
  num = jnp.where(swap, ax, ay)
  den = jnp.where(swap, ay, ax)
  angle = _atan_unit(num / jnp.where(den == 0, 1.0, den))
  angle = jnp.where(swap, math.pi / 2 - angle, angle)
  angle = jnp.where(x < 0, math.pi - angle, angle)
  return jnp.where(jnp.signbit(y), -angle, angle)


def _safe_sqrt(x):
  # Round-off can push c₁c₂ − k² slightly below zero when u and v are (nearly) the same point.
  return jnp.sqrt(jnp.maximum(x, 0.0))


def relu_dual(k, prod):
  """(E[φ(u)φ(v)], E[φ'(u)φ'(v)]) for φ = ReLU."""
  s = _safe_sqrt(prod - k * k)
  # atan2(0, 0) is 0 in IEEE arithmetic; the limit for a zero-variance input is π/2.
  theta = jnp.where((s == 0) & (k == 0), math.pi / 2, atan2(s, k))
  dot = 0.5 - theta / _TWO_PI
  return s / _TWO_PI + dot * k, dot


def relu_diagonal(c):
  """E[φ(u)²] for φ = ReLU, u ~ N(0, c)."""
  return 0.5 * c


def erf_dual(k, prod_1p2c):
  """(E[φ(u)φ(v)], E[φ'(u)φ'(v)]) for φ = erf; `prod_1p2c` = (1 + 2c₁)(1 + 2c₂)."""
  root = _safe_sqrt(prod_1p2c - 4.0 * k * k)
  return (2.0 / math.pi) * atan2(2.0 * k, root), (4.0 / math.pi) / root


def erf_diagonal(c):
  """E[erf(u)²], u ~ N(0, c): (2/π) asin(2c / (1 + 2c))."""
  return (2.0 / math.pi) * atan2(c, jnp.sqrt(c + 0.25))


def gelu_dual(k, prod, prod_plus_1):
  """(E[φ(u)φ(v)], E[φ'(u)φ'(v)]) for the exact GELU; `prod_plus_1` = (c₁ + 1)(c₂ + 1)."""
  delta_sq = prod_plus_1 - k * k
  delta = _safe_sqrt(delta_sq)
  theta = atan2(k, delta)
  value = 0.25 * k + ((k * k + prod * delta_sq) / (prod_plus_1 * delta) + k * theta) / _TWO_PI
  dot = (
      0.25
      + theta / _TWO_PI
      + (k / delta) * (1.0 / delta_sq + (1.0 - prod) / prod_plus_1 + 1.0) / _TWO_PI
  )
  return value, dot


def gelu_diagonal(c):
  """E[φ(u)²] for the exact GELU, u ~ N(0, c)."""
  root = jnp.sqrt(1.0 + 2.0 * c)
  return c * (0.25 + (c / ((c + 1.0) * root) + 0.5 * atan2(c, root)) / math.pi)


class DualActivation(NamedTuple):
  """`pair(k, c1, c2)` → (E[φφ], E[φ'φ']) with c1, c2 broadcast against k;
  `diagonal(c)` → E[φ(u)²]."""

  pair: Callable
  diagonal: Callable


def _relu_pair(k, c1, c2):
  return relu_dual(k, c1 * c2)


def _erf_pair(k, c1, c2):
  return erf_dual(k, (1.0 + 2.0 * c1) * (1.0 + 2.0 * c2))


def _gelu_pair(k, c1, c2):
  return gelu_dual(k, c1 * c2, (c1 + 1.0) * (c2 + 1.0))


DUALS = {
    'relu': DualActivation(_relu_pair, relu_diagonal),
    'erf': DualActivation(_erf_pair, erf_diagonal),
    'gelu': DualActivation(_gelu_pair, gelu_diagonal),
}


def dual_activation(name: str) -> DualActivation:
  """The `DualActivation` of 'relu', 'erf' or 'gelu' (exact, erf form)."""
  if name not in DUALS:
    raise ValueError(f'activation must be one of {sorted(DUALS)}, got {name!r}.')
  return DUALS[name]
