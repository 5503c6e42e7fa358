# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Compile once, run many, on the experiments' side: the keys of the units, the restore target
of a unit and the kernel tracker's probe set are one program each (or none), with the same
numbers as the op-by-op code they replace; a search trial runs as one program per shape."""

import os
import sys
import types

import jax
import numpy as np
import pytest

from experiments import models

sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'ecrn_jax'))
# The counter of tests/ecrn_jax/test_compile_once.py.
from test_compile_once import backend_compilations  # pylint: disable=wrong-import-position


def _plan(seed, family):
  return types.SimpleNamespace(seed=seed, spec=types.SimpleNamespace(family=family))


# ---------------------------------------------------------------------------
# models.model_key
# ---------------------------------------------------------------------------


def test_model_key_is_one_program_for_every_seed_and_family():
  jax.clear_caches()  # a program compiled by an earlier test would hide the count
  with backend_compilations() as compiled:
    keys = {
        (s, f): np.asarray(models.model_key(_plan(s, f)))
        for s in (0, 1, 5)
        for f in models._FAMILY_KEY
    }
  assert len(compiled) == 1, compiled  # op by op: PRNGKey's and fold_in's programs (4)
  assert len({k.tobytes() for k in keys.values()}) == len(keys)


@pytest.mark.parametrize('seed', [0, 1, 3, 12345, 2**31 - 1])
def test_model_key_equals_the_op_by_op_key_to_the_bit(seed):
  for family, number in models._FAMILY_KEY.items():
    expected = jax.random.fold_in(jax.random.PRNGKey(seed), number)
    got = models.model_key(_plan(seed, family))
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))
