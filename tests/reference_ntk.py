# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""In-repo references for the tests, independent of ecrn_jax's kernel code and of neural-tangents.

* `jacobian_ntk`: the empirical NTK from the materialized Jacobian (`jax.jacrev` or
  `jax.jacfwd` of θ ↦ f(θ, x) w.r.t. `params`), flattened and contracted in float64:
  Θ = J₁J₂ᵀ. Full layout (N₁·C, N₂·C) with row index i·C + a; traced (docs/spec.md §2.1):
  Θ = (1/C) Σ_c ⟨∂f_c/∂θ, ∂f_c/∂θ⟩, (N₁, N₂).
* `gradient_flow_mse`: kernel regression / linearized gradient flow on ½N⁻¹‖f − Y‖²_F by
  eigendecomposition (the conventions of ecrn_jax/_src/regression.py's docstring):
  f_t(x) = f₀(x) + Θ(x, X) Θ_r⁻¹ (I − exp(−η t Θ_r / N)) (Y − f₀(X)), Θ_r = Θ + r·I,
  r = diag_reg · tr(Θ)/dim Θ; t = None is t = ∞.
* `gp_posterior`: the NNGP posterior mean and covariance by numpy solves.

These are slow (the Jacobian is materialized): use small widths and N.
"""

from __future__ import annotations

import jax
import numpy as np


def jacobian(model, variables, x, *, mode: str = 'rev', **apply_kwargs) -> np.ndarray:
  """(N·C, P) float64 Jacobian of the outputs w.r.t. every `params` leaf; row i·C + a."""
  rest = {k: v for k, v in variables.items() if k != 'params'}
  params = variables['params']
  f = lambda p: model.apply({'params': p, **rest}, x, **apply_kwargs)
  out = f(params)
  rows = int(np.prod(out.shape))
  jac_fn = {'rev': jax.jacrev, 'fwd': jax.jacfwd}[mode]
  leaves = jax.tree_util.tree_leaves(jac_fn(f)(params))  # each (N, C) + leaf.shape
  return np.concatenate([np.asarray(leaf, np.float64).reshape(rows, -1) for leaf in leaves], axis=1)


def jacobian_ntk(
    model, variables, x1, x2=None, *, trace_outputs: bool = True, mode: str = 'rev', **apply_kwargs
) -> np.ndarray:
  """Θ = J₁J₂ᵀ: (N₁, N₂) averaged over outputs, or (N₁·C, N₂·C) with `trace_outputs=False`."""
  n1 = np.shape(x1)[0]
  n2 = n1 if x2 is None else np.shape(x2)[0]
  # One Jacobian of the stacked inputs (the models act on each example separately).
  x = x1 if x2 is None else np.concatenate([np.asarray(x1), np.asarray(x2)])
  j = jacobian(model, variables, x, mode=mode, **apply_kwargs)
  c = j.shape[0] // np.shape(x)[0]
  j1, j2 = (j, j) if x2 is None else (j[: n1 * c], j[n1 * c :])
  full = j1 @ j2.T
  if not trace_outputs:
    return full
  return np.einsum('iaja->ij', full.reshape(n1, c, n2, c)) / c


def gradient_flow_mse(
    k_train_train,
    y,
    k_test_train=None,
    *,
    t=None,
    learning_rate=1.0,
    diag_reg=0.0,
    num_examples=None,
    f0_train=None,
    f0_test=None,
):
  """f_t on the test points (or on the training points when k_test_train is None).

  Rows of the kernels are the flattened targets' rows; time is normalized by `num_examples`
  (N, default: the number of rows). `t` may be None (∞), a scalar or a 1-D array (leading axis).
  """
  k = np.asarray(k_train_train, np.float64)
  dim = k.shape[0]
  n = dim if num_examples is None else num_examples
  y = np.asarray(y, np.float64)
  f0_train = np.zeros_like(y) if f0_train is None else np.asarray(f0_train, np.float64)
  k_x = k if k_test_train is None else np.asarray(k_test_train, np.float64)
  if f0_test is None:
    f0_test = f0_train if k_test_train is None else np.zeros((k_x.shape[0],) + y.shape[1:])
  r = diag_reg * np.trace(k) / dim
  w, v = np.linalg.eigh((k + k.T) / 2 + r * np.eye(dim))
  residual = v.T @ (y - f0_train).reshape(dim, -1)  # eigenbasis, (dim, C')

  def at(time):
    decay = 1.0 if time is None or np.isinf(time) else -np.expm1(-learning_rate * time * w / n)
    coefficients = v @ ((decay / w)[:, None] * residual)
    return f0_test + (k_x @ coefficients).reshape(f0_test.shape)

  if t is None or np.ndim(t) == 0:
    return at(t)
  return np.stack([at(time) for time in np.asarray(t, np.float64)])


def gp_posterior(k_train_train, y, k_test_train, k_test_test, *, diag_reg=0.0):
  """NNGP posterior (mean, covariance) with the relative ridge r = diag_reg · tr(K)/N."""
  k = np.asarray(k_train_train, np.float64)
  regularized = k + diag_reg * np.trace(k) / k.shape[0] * np.eye(k.shape[0])
  mean = k_test_train @ np.linalg.solve(regularized, y)
  covariance = k_test_test - k_test_train @ np.linalg.solve(regularized, k_test_train.T)
  return mean, covariance


def neural_tangents_ntk(nt, model, variables, x) -> np.ndarray:
  """Θ (N, N), traced, by neural-tangents' own empirical NTK (the reference lane)."""
  rest = {k: v for k, v in variables.items() if k != 'params'}
  f = lambda p, xx: model.apply({'params': p, **rest}, xx)
  return np.asarray(
      nt.empirical_ntk_fn(f, trace_axes=(-1,), vmap_axes=0)(x, None, variables['params'])
  )
