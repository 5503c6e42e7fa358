# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Inputs no kernel or regression can use honestly are refused, each with its name and the fix."""

import jax
import numpy as np
import pytest

import ecrn_jax
from ecrn_jax import regression


@pytest.fixture(name='model_and_variables')
def _model_and_variables():
  model = ecrn_jax.MLP(ecrn_jax.MLPConfig(hidden_widths=(4,), dtype='float32'))
  return model, model.init(jax.random.PRNGKey(0), np.ones((2, 3), np.float32))


def _complex(n=3, d=3):
  x = np.arange(n * d, dtype=np.float64).reshape(n, d) / 10
  return x + 1j * x


def test_complex_inputs_are_refused_by_every_entry_point(model_and_variables):
  """The real part was used silently before; now each entry point names the argument."""
  model, variables = model_and_variables
  x = _complex()
  calls = {
      'x1': lambda: ecrn_jax.empirical_ntk(model, variables, x),
      'x2': lambda: ecrn_jax.empirical_ntk(model, variables, x.real, x),
      'x1 ': lambda: ecrn_jax.empirical_nngp(model, variables, x),
      ' x1': lambda: ecrn_jax.infinite_kernel_fn(ecrn_jax.MLPConfig())(x, get='ntk'),
      'k_train_train': lambda: regression.kernel_regression(x @ x.T.conj(), np.ones(3), None),
      'y_train': lambda: regression.kernel_regression(np.eye(3), 1j * np.ones(3), np.eye(3)),
  }
  for name, call in calls.items():
    with pytest.raises(ValueError, match=rf'{name.strip()} must be real-valued, got dtype complex'):
      call()
  # The real parts themselves are accepted: the refusal is about the dtype alone.
  assert np.all(np.isfinite(ecrn_jax.empirical_ntk(model, variables, x.real.astype(np.float32))))
