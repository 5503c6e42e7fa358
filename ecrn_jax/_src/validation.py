# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Checks of user inputs, shared by the whole library: each fails with a ValueError that names
the argument, what was expected and what was given (instead of a NaN or a traceback later)."""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

ArrayLike = Union[np.ndarray, jax.Array]
MatVec = Callable[[jax.Array], jax.Array]


def check_int(name: str, value, low: int) -> None:
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise ValueError(f'{name} must be an integer >= {low}, got {value!r}.')
  if value < low:
    raise ValueError(f'{name} must be an integer >= {low}, got {value!r}.')


def check_real(
    name: str,
    value,
    low: float,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
  """ValueError naming `name` unless `value` is a finite real in the given interval."""
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise ValueError(f'{name} must be a real number, got {value!r}.')
  value = float(value)
  too_low = value <= low if low_open else value < low
  too_high = value >= high if high_open else value > high
  if not math.isfinite(value) or too_low or too_high:
    lo = '(' if low_open else '['
    hi = ')' if high_open else ']'
    raise ValueError(f'{name} must be finite and lie in {lo}{low}, {high}{hi}, got {value!r}.')


def check_choice(name: str, value, choices: Sequence[str]) -> None:
  if value not in choices:
    raise ValueError(f'{name} must be one of {list(choices)}, got {value!r}.')


def as_kernel(kernel: ArrayLike, name: str = 'kernel') -> np.ndarray:
  """Validates a dense kernel and returns it as a float64 `(N, N)` array."""
  k = np.asarray(kernel)
  if k.ndim != 2 or k.shape[0] != k.shape[1]:
    raise ValueError(
        f'`{name}` must be a square 2D matrix of shape (N, N); got shape '
        f'{k.shape}. Pass the (N, N) kernel over a single set of inputs '
        '(flatten any output/trace dimensions first).'
    )
  if k.shape[0] == 0:
    raise ValueError(f'`{name}` must be non-empty; got shape {k.shape}.')
  if not (np.issubdtype(k.dtype, np.number) or k.dtype == bool):
    raise ValueError(f'`{name}` must be numeric; got dtype {k.dtype}.')
  if np.iscomplexobj(k):
    raise ValueError(f'`{name}` must be real-valued; got dtype {k.dtype}.')
  k = k.astype(np.float64)
  if not np.all(np.isfinite(k)):
    raise ValueError(
        f'`{name}` contains non-finite entries (NaN or inf). Check the kernel '
        'computation (e.g. for overflow or diverged parameters) before '
        'analysing it.'
    )
  return k


def as_targets(y: ArrayLike, n: int, name: str = 'y') -> np.ndarray:
  """Validates targets and returns them as a float64 `(N, C)` array."""
  y = np.asarray(y)
  if y.ndim not in (1, 2):
    raise ValueError(f'`{name}` must have shape (N,) or (N, C); got shape {y.shape}.')
  if y.shape[0] != n:
    raise ValueError(
        f'`{name}` has {y.shape[0]} rows but the kernel is {n} x {n}; pass '
        'targets for exactly the inputs the kernel was computed on, in the '
        'same order.'
    )
  if np.iscomplexobj(y):
    raise ValueError(f'`{name}` must be real-valued; got dtype {y.dtype}.')
  y = y.astype(np.float64)
  if not np.all(np.isfinite(y)):
    raise ValueError(f'`{name}` contains non-finite entries (NaN or inf).')
  return y.reshape(n, -1)


def check_positive_int(value: Any, name: str) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise ValueError(f'`{name}` must be an integer; got {value!r}.')
  if value < 1:
    raise ValueError(f'`{name}` must be >= 1; got {value}.')
  return int(value)


def check_matvec(matvec: MatVec, n: int, dtype: np.dtype) -> None:
  """Checks that `matvec` maps `(n,)` to `(n,)` (abstractly, no FLOPs)."""
  if not callable(matvec):
    raise ValueError(f'`matvec` must be callable; got {type(matvec)}.')
  out = jax.eval_shape(matvec, jax.ShapeDtypeStruct((n,), dtype))
  shape = getattr(out, 'shape', None)
  if shape != (n,):
    raise ValueError(
        f'`matvec` must map vectors of shape ({n},) to shape ({n},); got '
        f'output {out}. Check that `n` matches the operator dimension.'
    )


def _refuse_complex(name: str, value) -> None:
  """A ValueError when `value` (an array, or anything np.asarray reads) is complex."""
  dtype = getattr(value, 'dtype', None)
  if dtype is None:
    try:
      dtype = np.asarray(value).dtype
    except (TypeError, ValueError):  # not array-like: the caller's own checks name it
      return
  if np.issubdtype(dtype, np.complexfloating):
    raise ValueError(
        f'{name} must be real-valued, got dtype {dtype}: its imaginary part would be dropped. '
        f'Pass {name}.real (or the real and imaginary parts as separate features).'
    )


def as_float_array(name: str, value, dtype) -> np.ndarray:
  _refuse_complex(name, value)
  try:
    array = np.asarray(value, dtype=dtype)
  except (TypeError, ValueError) as e:
    raise ValueError(f'{name} must be a numeric array, got {type(value).__name__}.') from e
  return array


_NON_FINITE_KERNEL = (
    'A kernel is non-finite when its inputs are (check X for NaN/inf) or when they are so large '
    'that the kernel overflows (standardize the features, e.g. with StandardScaler).'
)


def check_finite(name: str, array: np.ndarray, hint: str = _NON_FINITE_KERNEL) -> None:
  """Raises ValueError naming `name` when `array` has NaN or inf entries."""
  if not np.all(np.isfinite(array)):
    bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
    raise ValueError(f'{name} contains {bad} NaN or inf entries. {hint}')


def check_diag_reg(diag_reg) -> float:
  if isinstance(diag_reg, bool) or not isinstance(diag_reg, (int, float, np.number)):
    raise ValueError(f'diag_reg must be a real number >= 0, got {diag_reg!r}.')
  if not math.isfinite(diag_reg) or diag_reg < 0:
    raise ValueError(f'diag_reg must be finite and >= 0, got {diag_reg!r}.')
  return float(diag_reg)


def check_time(t, learning_rate) -> Optional[np.ndarray]:
  """The training time(s) `t` as a float64 array, None for t = ∞; ValueError on bad values."""
  if (
      isinstance(learning_rate, bool)
      or not isinstance(learning_rate, (int, float, np.number))
      or not math.isfinite(learning_rate)
      or learning_rate <= 0
  ):
    raise ValueError(f'learning_rate must be a finite number > 0, got {learning_rate!r}.')
  if t is None:
    return None
  try:
    times = np.asarray(t, dtype=np.float64)
  except (TypeError, ValueError) as e:
    raise ValueError(f't must be None (t = ∞) or a number >= 0, got {t!r}.') from e
  if times.ndim > 1 or np.any(np.isnan(times)) or np.any(times < 0):
    raise ValueError(f't must be None (t = ∞), a number >= 0 or a 1-D array of them, got {t!r}.')
  if times.ndim == 0 and np.isinf(times):
    return None
  return times


def check_finite_inputs(name: str, x, why: str = 'a kernel of such inputs is NaN') -> None:
  """Raises ValueError naming `name` when inputs are empty, complex, or hold NaN or inf (with the
  count).

  Traced values (inside jit/vmap) are checked for emptiness only. JAX arrays are counted on
  their device (one scalar comes back), anything else with NumPy.
  """
  shape = np.shape(x)
  if len(shape) >= 1 and shape[0] == 0:
    raise ValueError(f'{name} is empty (shape {tuple(shape)}); give at least one example.')
  _refuse_complex(name, x)
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
    raise ValueError(
        f'{name} has {bad} NaN or inf entries (of {size}): {why}. Remove or impute them first.'
    )
