"""Checks of user inputs shared by the kernel functions: clear errors instead of NaN kernels."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def check_finite_inputs(name: str, x) -> None:
  """Raises ValueError naming `name` and the count when concrete inputs hold NaN or inf.

  Traced values (inside jit/vmap) are not checked. JAX arrays are counted on their device
  (one scalar comes back), anything else with NumPy.
  """
  if isinstance(x, jax.core.Tracer):
    return
  if isinstance(x, jax.Array):
    if not jnp.issubdtype(x.dtype, jnp.inexact):
      return
    bad, size = int(jnp.sum(~jnp.isfinite(x))), x.size
  else:
    array = np.asarray(x)
    if not np.issubdtype(array.dtype, np.number):
      raise ValueError(f'{name} must be a numeric array, got dtype {array.dtype}.')
    if not np.issubdtype(array.dtype, np.inexact):
      return
    bad, size = int(array.size - np.count_nonzero(np.isfinite(array))), array.size
  if bad:
    raise ValueError(f'{name} has {bad} NaN or inf entries (of {size}): a kernel of such '
                     'inputs is NaN. Remove or impute them first.')
