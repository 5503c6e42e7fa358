# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The finite-vs-infinite kernel comparison (config `finite_vs_infinite`), run through
`experiments.train.train_and_evaluate(config, workdir)` like every experiment."""

from __future__ import annotations

import importlib.util
import os
import time

from absl import logging
import jax
import numpy as np

import ecrn_jax
from ecrn_jax import files
from experiments.settings import is_int


def _jacobian_empirical_ntk(apply, params, x):
  """Θ = J Jᵀ / C of `apply(params, x)` from the Jacobian (jax.jacrev), independent of ecrn_jax."""
  f = lambda p: apply(p, x)
  rows = int(np.prod(f(params).shape))
  leaves = jax.tree_util.tree_leaves(jax.jacrev(f)(params))
  jac = np.concatenate([np.asarray(j, np.float64).reshape(rows, -1) for j in leaves], axis=1)
  n, c = x.shape[0], rows // x.shape[0]
  return np.einsum('iaja->ij', np.reshape(jac @ jac.T, (n, c, n, c))) / c


def _nt_empirical_ntk(apply, params, x):
  """neural-tangents' empirical NTK of `apply(params, x)`, or None when neural_tangents is absent
  or fails to import (it needs jax < 0.6: on newer JAX it raises AttributeError). The spec check
  keeps an absent neural_tangents from starting any import (TensorFlow included)."""
  if importlib.util.find_spec('neural_tangents') is None:
    return None
  try:
    import neural_tangents as nt  # pylint: disable=g-import-not-at-top

    empirical_ntk_fn = nt.empirical_ntk_fn
  except (ImportError, AttributeError) as e:
    logging.warning(
        'neural_tangents unavailable (%s: %s); skipping that comparison.', type(e).__name__, e
    )
    return None
  return empirical_ntk_fn(apply, trace_axes=(-1,), vmap_axes=0, implementation=2)(x, None, params)


def check_config(config) -> ecrn_jax.ECRNConfig:
  """The float64 ECRNConfig at the agreement width, every field checked first (ValueError)."""
  for field, least in (('seed', 0), ('num_points', 2), ('input_dim', 1), ('num_seeds', 1)):
    if not is_int(config.get(field), least):
      raise ValueError(
          f'config.{field} must be an integer >= {least}, got {config.get(field)!r}; '
          f'e.g. --config.{field}={max(least, 2)}.'
      )
  widths = config.get('widths')
  if not isinstance(widths, (tuple, list)) or not all(is_int(w, 1) for w in widths):
    raise ValueError(
        f'config.widths must be a tuple of positive integers, got {widths!r}; e.g. '
        "--config.widths='(64, 256, 1024)'."
    )
  if len(set(widths)) < 2:
    raise ValueError(
        f'config.widths={tuple(widths)} holds {len(set(widths))} distinct width(s); the '
        'convergence slope needs at least two (three or more to judge it), e.g. '
        "--config.widths='(64, 256, 1024)'."
    )
  if not is_int(config.get('agreement_width'), 1):
    raise ValueError(
        f'config.agreement_width must be a positive integer, got '
        f'{config.get("agreement_width")!r}; e.g. --config.agreement_width=128.'
    )
  try:
    model = dict(width=config.agreement_width, dtype='float64', **config.model.to_dict())
    return ecrn_jax.ECRNConfig(**model)
  except (TypeError, ValueError) as e:
    raise ValueError(f'config.model: {e}') from e


def train_and_evaluate(config, workdir: str | None) -> dict:
  """Runs the comparison, prints it, and writes results.json to `workdir` if given."""
  model_cfg = check_config(config)
  start = time.time()
  key = jax.random.PRNGKey(config.seed)
  data_key, model_key = jax.random.split(key)
  x = np.asarray(jax.random.normal(data_key, (config.num_points, config.input_dim)))
  logging.info('devices: %s', jax.devices())

  model = ecrn_jax.ECRN(model_cfg)
  variables = model.init(model_key, x)
  ours = np.asarray(ecrn_jax.empirical_ntk(model, variables, x))
  error = lambda reference: float(np.abs(ours - reference).max() / np.abs(reference).max())
  rest = {k: v for k, v in variables.items() if k != 'params'}
  apply = lambda p, z: model.apply({'params': p, **rest}, z)
  results = {}
  for name, what, reference in (
      ('jacobian', 'explicit Jacobian contraction (jax.jacrev; ', _jacobian_empirical_ntk),
      ('neural_tangents', 'neural_tangents.empirical_ntk_fn (', _nt_empirical_ntk),
  ):
    kernel = reference(apply, variables['params'], x)
    if kernel is not None:
      results[f'empirical_ntk_vs_{name}'] = value = error(np.asarray(kernel))
      where = f'width {config.agreement_width}, N = {config.num_points}, float64'
      print(f'empirical NTK vs {what}{where}): relative max error {value:.2e}')

  for kernel in ('ntk', 'nngp'):
    result = ecrn_jax.analysis.finite_vs_infinite(
        model_cfg, x, tuple(config.widths), config.num_seeds, key=model_key, kernel=kernel
    )
    name = 'empirical NTK vs Θ∞' if kernel == 'ntk' else 'Monte Carlo NNGP f fᵀ/C vs K∞'
    print(f'\n{name} ({config.num_seeds} seeds per width)\n{result.table()}')
    errors = dict(mean_relative_error=result.mean_errors.tolist(), errors=result.errors.tolist())
    results[kernel] = dict(widths=list(result.widths), **errors, slope=result.slope)
  results['wall_time_s'] = time.time() - start
  print(f'\nwall time {results["wall_time_s"]:.1f} s on {jax.devices()[0].platform}')
  if workdir:
    path = os.path.join(workdir, 'results.json')
    files.write_json(path, results, indent=2)
    logging.info('wrote %s', path)
  return results
