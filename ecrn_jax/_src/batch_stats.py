# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Precise BatchNorm: a model's running statistics recomputed at its current parameters.

A BatchNorm network's evaluation-mode output, and so its empirical NTK, depends on the running
averages s in 'batch_stats', which trail the parameters θ during training (and start at (0, 1)).
`precise_batch_stats` replaces them by s(θ): for every `flax.linen.BatchNorm`, the mean and the
(biased) variance of its inputs over all the given inputs, in training-mode passes of
`batch_size` inputs (each pass normalizes by its own batch statistics, as training does; with one
pass of all inputs these are the exact population statistics of the training-mode network).
Moments are combined across passes exactly (Chan et al.'s pairwise update, float64 on the host).
(Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm": precise BN.)
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ecrn_jax._src.validation import check_finite_inputs


@functools.lru_cache(maxsize=32)
def _moments_fn(model: nn.Module, frozen_kwargs: tuple):
  """Jitted (variables, rngs, x) ↦ {BatchNorm path: (mean, Σ(h − mean)², count)} of one pass."""
  kwargs = dict(frozen_kwargs)

  @jax.jit
  def moments(variables, rngs, x):
    found: dict[str, Any] = {}

    def interceptor(next_fun, args, kw, context):
      module = context.module
      if isinstance(module, nn.BatchNorm) and context.method_name == '__call__':
        h = jnp.asarray(args[0] if args else kw['x'])
        axes = module.axis if isinstance(module.axis, tuple) else (module.axis,)
        features = {a % h.ndim for a in axes}
        reduce = tuple(a for a in range(h.ndim) if a not in features)
        dtype = jnp.promote_types(h.dtype, jnp.float32)
        h = h.astype(dtype)
        mean = h.mean(reduce)
        centered = h - jnp.expand_dims(mean, reduce)
        count = int(np.prod([h.shape[a] for a in reduce]))
        key = '/'.join(module.path)
        if key in found:
          raise ValueError(
              f'BatchNorm {key!r} is called more than once per forward pass; its running '
              'statistics have no single input to re-estimate.'
          )
        found[key] = (mean, jnp.sum(centered**2, reduce), count)
      return next_fun(*args, **kw)

    with nn.intercept_methods(interceptor):
      model.apply(variables, x, rngs=rngs, mutable=('batch_stats',), **kwargs)
    return {k: v[:2] for k, v in found.items()}, {k: v[2] for k, v in found.items()}

  return moments


def _combine(total, mean, m2, count):
  """Chan et al.'s pairwise update of (count, mean, M2)."""
  if total is None:
    return count, mean, m2
  n, mu, s = total
  delta = mean - mu
  n_new = n + count
  return n_new, mu + delta * count / n_new, s + m2 + delta**2 * n * count / n_new


def _set(tree: dict, path: str, values: dict) -> None:
  node = tree
  for name in path.split('/'):
    if name not in node:
      raise ValueError(
          f"BatchNorm {path!r} has no running statistics in variables['batch_stats']; pass "
          'the variables of this model (model.init).'
      )
    node = node[name]
  for name, value in values.items():
    node[name] = jnp.asarray(value, node[name].dtype)


def _unfreeze(tree):
  if isinstance(tree, Mapping):
    return {k: _unfreeze(v) for k, v in tree.items()}
  return tree


def precise_batch_stats(
    model: nn.Module,
    variables: Mapping[str, Any],
    x,
    *,
    batch_size: Optional[int] = 256,
    rngs: Optional[Mapping[str, jax.Array]] = None,
    **apply_kwargs,
) -> dict:
  """`variables` with every BatchNorm's running mean and variance recomputed from `x`.

  Args:
    model: a Flax module with `flax.linen.BatchNorm` layers.
    variables: its variables, with 'params' and 'batch_stats'.
    x: (N, ...) inputs (the training set, or a fixed subset of it).
    batch_size: inputs per training-mode pass (None: all at once). Every BatchNorm then gets
      mean = (1/N) Σ h and var = (1/N) Σ (h − mean)² of its inputs h over all N inputs.
    rngs: rngs of the training-mode passes (e.g. {'dropout': key} for augmentation or
      stochastic depth), the same for every pass.
    **apply_kwargs: the training-mode arguments of apply, e.g. train=True (the convention of
      this library's models); the BatchNorm layers must use batch statistics under them.
  Returns:
    A new variables dict: 'batch_stats' replaced (same dtypes), the rest as given.

  >>> import flax.linen as nn, jax, numpy as np
  >>> from ecrn_jax import kernels
  >>> class Net(nn.Module):
  ...   @nn.compact
  ...   def __call__(self, x, train=False):
  ...     return nn.BatchNorm(use_running_average=not train)(nn.Dense(2)(x))
  >>> x = np.arange(8.0, dtype=np.float32).reshape(4, 2)
  >>> variables = Net().init(jax.random.PRNGKey(0), x)
  >>> stats = kernels.precise_batch_stats(Net(), variables, x, train=True)['batch_stats']
  >>> h = x @ np.asarray(variables['params']['Dense_0']['kernel'])
  >>> bool(np.allclose(stats['BatchNorm_0']['mean'], h.mean(0), rtol=1e-5))
  True
  """
  if 'batch_stats' not in variables or 'params' not in variables:
    raise ValueError(
        "variables must hold 'params' and 'batch_stats' (a BatchNorm model's model.init); "
        f'got collections {list(variables)}.'
    )
  check_finite_inputs('x', x)
  x = jnp.asarray(x)
  if x.ndim < 1 or x.shape[0] < 1:
    raise ValueError(f'x must be (N, ...) with N >= 1 inputs, got shape {x.shape}.')
  if batch_size is not None and (
      isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
  ):
    raise ValueError(f'batch_size must be a positive integer or None, got {batch_size!r}.')
  try:
    frozen = tuple(sorted(apply_kwargs.items()))
    hash(frozen)
  except TypeError as e:
    raise ValueError('apply arguments must be hashable static values (e.g. train=True).') from e
  moments = _moments_fn(model, frozen)
  size = x.shape[0] if batch_size is None else min(batch_size, x.shape[0])
  totals: dict[str, Any] = {}
  for start in range(0, x.shape[0], size):
    stats, counts = moments(dict(variables), rngs, x[start : start + size])
    for key, (mean, m2) in jax.device_get(stats).items():
      mean, m2 = np.asarray(mean, np.float64), np.asarray(m2, np.float64)
      totals[key] = _combine(totals.get(key), mean, m2, int(counts[key]))
  if not totals:
    raise ValueError(
        f'{type(model).__name__} called no flax.linen.BatchNorm on these arguments; precise '
        'statistics need its training-mode call (e.g. train=True).'
    )
  new = _unfreeze(variables['batch_stats'])
  for key, (count, mean, m2) in totals.items():
    _set(new, key, {'mean': mean, 'var': m2 / count})
  return {**variables, 'batch_stats': new}
