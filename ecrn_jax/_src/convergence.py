# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Finite-width kernels against their infinite-width twin as the width grows (docs/spec.md §3).

The twin is compared with networks that share one Fourier matrix B (drawn once), so the
only randomness left is that of the Dense layers, which is what the n^(-1/2) law is about.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import jax
import numpy as np

from ecrn_jax._src.config import MLPConfig
from ecrn_jax._src.empirical import empirical_nngp, empirical_ntk
from ecrn_jax._src.infinite.kernel_fn import infinite_kernel_fn
from ecrn_jax._src.models import ECRN, MLP


def relative_frobenius_error(kernel, reference) -> float:
  """‖kernel − reference‖_F / ‖reference‖_F.

  >>> import numpy as np
  >>> from ecrn_jax import analysis
  >>> analysis.relative_frobenius_error(2.0 * np.eye(2), np.eye(2))
  1.0
  """
  kernel, reference = np.asarray(kernel, np.float64), np.asarray(reference, np.float64)
  return float(np.linalg.norm(kernel - reference) / np.linalg.norm(reference))


def fit_power_law(widths: Sequence[float], errors: Sequence[float]) -> tuple[float, float]:
  """Least-squares fit of log error = s · log width + c; returns (s, c).

  >>> from ecrn_jax import analysis
  >>> slope, intercept = analysis.fit_power_law([1, 4, 16], [2.0, 1.0, 0.5])
  >>> round(slope, 6), round(intercept, 4)  # error = 2 · width^(−1/2)
  (-0.5, 0.6931)
  """
  w, e = np.asarray(widths, np.float64), np.asarray(errors, np.float64)
  if w.shape != e.shape or w.ndim != 1 or len(np.unique(w)) < 2:
    raise ValueError(
        f'a power law needs errors at two or more distinct widths, one error per width; got '
        f'widths {w.tolist()} and {e.size} error(s). Give at least two widths.'
    )
  if np.any(w <= 0) or np.any(e <= 0) or not np.all(np.isfinite(e)):
    raise ValueError(
        f'widths and errors must be positive and finite to fit on log scales; got widths '
        f'{w.tolist()}, errors {e.tolist()}.'
    )
  slope, intercept = np.polyfit(np.log(w), np.log(e), 1)
  return float(slope), float(intercept)


def with_width(config, width: int, kernel: str):
  """The config at another width; for the Monte Carlo NNGP the readout is that wide too."""
  changes: dict[str, int | tuple[int, ...]]
  if isinstance(config, MLPConfig):
    changes = {'hidden_widths': (width,) * len(config.hidden_widths)}
  else:
    changes = {'width': width}
  if kernel == 'nngp':
    changes['out_dim'] = width
  return dataclasses.replace(config, **changes)


def _set_fourier(variables: Mapping[str, Any], reference: Mapping[str, Any]):
  """variables with the Fourier matrix B of `reference` (wherever it lives)."""
  out = {k: dict(v) for k, v in variables.items()}
  for collection in ('fourier', 'params'):
    ff = reference.get(collection, {}).get('fourier_features')
    if ff is not None:
      out[collection]['fourier_features'] = ff
  return out


@dataclasses.dataclass
class ConvergenceResult:
  """errors[i, s]: relative Frobenius error at widths[i], seed s; slope of the mean's fit."""

  kernel: str
  widths: tuple[int, ...]
  errors: np.ndarray
  mean_errors: np.ndarray
  slope: float
  intercept: float

  def table(self) -> str:
    rows = [f'{"width":>7}  {"mean rel. Frobenius error":>26}  {"std":>9}']
    for w, e in zip(self.widths, self.errors):
      rows.append(f'{w:>7}  {e.mean():>26.4g}  {e.std(ddof=1) if len(e) > 1 else 0.0:>9.3g}')
    rows.append(f'fitted slope s = {self.slope:.3f}  (error ∝ width^s; theory −0.5)')
    return '\n'.join(rows)


def finite_vs_infinite(
    config, x, widths: Sequence[int], num_seeds: int, *, key: jax.Array, kernel: str = 'ntk'
) -> ConvergenceResult:
  """Mean relative Frobenius error of finite kernels at initialization against the twin.

  Args:
    config: `ECRNConfig` or `MLPConfig` (its width is replaced by each of `widths`).
    x: (N, d) inputs.
    widths: the widths n to test.
    num_seeds: networks per width.
    key: one PRNG key; split into the Fourier key and per-seed init keys (fold_in).
    kernel: 'ntk' (empirical NTK vs Θ∞) or 'nngp' (f fᵀ/C with C = n vs K∞).
  Returns:
    A `ConvergenceResult`.

  (Jacot et al. 2018, docs/spec.md §3.)

  >>> import jax, numpy as np, ecrn_jax
  >>> config = ecrn_jax.MLPConfig(hidden_widths=(8,), activation='erf', dtype='float32')
  >>> x = np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(3, 2)
  >>> result = ecrn_jax.analysis.finite_vs_infinite(
  ...     config, x, widths=(8, 32), num_seeds=2, key=jax.random.PRNGKey(0))
  >>> result.errors.shape
  (2, 2)
  """
  if kernel not in ('ntk', 'nngp'):
    raise ValueError(f"kernel must be 'ntk' or 'nngp', got {kernel!r}.")
  if num_seeds < 1 or len(set(widths)) < 2:
    raise ValueError(
        f'need two or more distinct widths (the slope is fitted over them) and num_seeds >= 1; '
        f'got widths {tuple(widths)}, num_seeds {num_seeds}.'
    )
  fourier_key, init_key = jax.random.split(key)
  module = MLP if isinstance(config, MLPConfig) else ECRN
  reference_vars = module(with_width(config, widths[0], 'ntk')).init(fourier_key, x)
  errors = np.zeros((len(widths), num_seeds))
  for i, width in enumerate(widths):
    # neural-tangents' standard-parameterization NTK depends on the widths it is given;
    # in the NTK parameterization (and for the NNGP) the twin is the same at every width.
    twin = infinite_kernel_fn(with_width(config, width, 'ntk'), variables=reference_vars)(x)
    target = twin.ntk if kernel == 'ntk' else twin.nngp
    model = module(with_width(config, width, kernel))
    for s in range(num_seeds):
      variables = _set_fourier(model.init(jax.random.fold_in(init_key, s), x), reference_vars)
      if kernel == 'ntk':
        finite = empirical_ntk(model, variables, x)
      else:
        finite = empirical_nngp(model, variables, x)
      errors[i, s] = relative_frobenius_error(finite, target)
  mean_errors = errors.mean(axis=1)
  slope, intercept = fit_power_law(widths, mean_errors)
  return ConvergenceResult(
      kernel, tuple(int(w) for w in widths), errors, mean_errors, slope, intercept
  )
