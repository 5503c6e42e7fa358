"""Test set-up: kernels are compared in float64, so the suite runs with 64-bit JAX.

Float32 paths are still exercised: models with dtype='float32' keep float32 parameters.
"""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import jax  # pylint: disable=g-import-not-at-top
import numpy as np
import pytest

jax.config.update('jax_enable_x64', True)

# Relative tolerances keyed by dtype (SPEC §3).
RTOL = {'float64': 1e-10, 'float32': 1e-4}


def relative_max_error(actual, expected) -> float:
  actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
  return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


@pytest.fixture
def rng():
  return np.random.default_rng(0)
