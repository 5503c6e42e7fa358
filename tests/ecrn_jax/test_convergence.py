# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""docs/spec.md §3 rows 3–4: finite kernels at initialization → the twin at rate n^(-1/2)."""

import jax
import numpy as np
import pytest

from ecrn_jax import ECRNConfig, MLPConfig
from ecrn_jax.analysis import finite_vs_infinite, fit_power_law, relative_frobenius_error

WIDTHS = (64, 128, 256, 512, 1024, 2048)
NUM_SEEDS = 8


@pytest.fixture(scope='module')
def inputs():
  return np.random.default_rng(0).normal(size=(8, 3))


@pytest.mark.slow
@pytest.mark.parametrize(
    'kernel, parameterization', [('ntk', 'ntk'), ('nngp', 'ntk'), ('ntk', 'standard')]
)
@pytest.mark.x64
def test_ecrn_kernels_converge_to_the_twin(kernel, parameterization, inputs):
  cfg = ECRNConfig(
      width=64,
      depth=2,
      fourier_features=8,
      activation='gelu',
      drop_rate=0.1,
      parameterization=parameterization,
      dtype='float64',
  )
  result = finite_vs_infinite(
      cfg, inputs, WIDTHS, NUM_SEEDS, key=jax.random.PRNGKey(0), kernel=kernel
  )
  print(result.table())
  assert -0.65 <= result.slope <= -0.35, result.table()
  assert result.mean_errors[-1] <= 0.1, result.table()
  assert np.all(np.diff(result.mean_errors[::2]) < 0)


@pytest.mark.x64
def test_mlp_ntk_converges(inputs):
  cfg = MLPConfig(hidden_widths=(64, 64), activation='relu', dtype='float64')
  result = finite_vs_infinite(cfg, inputs, (64, 256, 1024), 4, key=jax.random.PRNGKey(1))
  assert -0.75 <= result.slope <= -0.3, result.table()


def test_helpers():
  assert fit_power_law([1, 10, 100], [3.0, 0.3, 0.03]) == pytest.approx((-1.0, np.log(3.0)))
  a = np.eye(3)
  assert relative_frobenius_error(2 * a, a) == pytest.approx(1.0)
  with pytest.raises(ValueError, match='kernel'):
    finite_vs_infinite(
        MLPConfig(), np.ones((2, 2)), (8, 16), 1, key=jax.random.PRNGKey(0), kernel='cka'
    )
  for widths in ((8,), (8, 8)):  # one distinct width: no slope to fit
    with pytest.raises(ValueError, match='two or more distinct widths'):
      finite_vs_infinite(MLPConfig(), np.ones((2, 2)), widths, 1, key=jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match='two or more distinct widths'):
    fit_power_law([32, 32], [0.1, 0.2])
  with pytest.raises(ValueError, match='positive and finite'):
    fit_power_law([8, 32], [0.1, 0.0])
