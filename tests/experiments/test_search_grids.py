# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The benchmark search grids (experiments/configs/common.py, cifar_subset.py) and their plans."""

import math

import pytest

from experiments import plan
from experiments import registry
from experiments.configs import cifar_subset
from experiments.configs import common


def test_search_grids_bracket_the_first_pass_selections():
  """The benchmark grids (experiments/configs/common.py) reach past the values the first pass
  selected at their edges: σ_ff factor 0.125…1 in √2 steps, ridge up to 10, learning rates
  up to 1e-2, epochs up to 2E; the twin of the tuned NTK-ECRN searches its ridge only."""
  factors = common.SIGMA_FF_GRID
  assert factors[0] == pytest.approx(0.125) and factors[-1] == 1.0
  assert all(b / a == pytest.approx(math.sqrt(2)) for a, b in zip(factors, factors[1:]))
  assert max(common.DIAG_REGS) == 10.0 and max(common.LEARNING_RATES) == 1e-2
  assert max(common.EPOCHS_FRACTIONS) == 2.0
  space = common.search_config().space
  assert space.ntk_ecrn.ecrn.fourier_scale_factor == factors
  assert space.ntk_ecrn.train.learning_rate == space.mlp.train.learning_rate
  assert plan.flatten(space.ntk_ecrn_infinite) == {'kernel.diag_reg': common.DIAG_REGS}
  assert set(plan.flatten(space.ntk_ecrn_infinite_self_tuned)) == {
      'kernel.diag_reg',
      'ecrn.fourier_scale_factor',
      'ecrn.alpha',
      'ecrn.drop_rate',
  }
  assert set(space.keys()) == set(registry.MODELS)
  assert registry.MODELS[-2:] == ('ntk_ecrn_infinite', 'ntk_ecrn_infinite_self_tuned')


def test_cifar_subset_searches_ntk_ecrn_fourier_features():
  """NTK-ECRN underfit the CIFAR subset with 256 Fourier features: its grid (and its self-tuned
  twin's) holds 256 … 4,096 features and epochs up to 4E; the trials cap covers the whole
  refinement; :smoke's axis is scaled to its 16-feature network and starts there."""
  config = cifar_subset.get_config()
  features = (256, 512, 1024, 2048, 4096)
  for model in ('ntk_ecrn', 'ntk_ecrn_infinite_self_tuned'):
    axes, _ = plan.read(config).grid(model)
    assert axes['ecrn.fourier_features'] == features
    assert plan.read(config).start_point(model, axes)['ecrn.fourier_features'] == 256
  axes, _ = plan.read(config).grid('ntk_ecrn')
  assert max(axes['train.epochs_fraction']) == 4.0 and max(axes['train.learning_rate']) == 1e-2
  # Start, two rounds over every axis, one extension per axis: the cap never cuts a trial.
  assert config.search.trials == 1 + 2 * sum(len(v) - 1 for v in axes.values()) + len(axes) == 52
  # The twin of the tuned NTK-ECRN inherits its features; only its ridge is searched.
  assert list(plan.read(config).grid('ntk_ecrn_infinite')[0]) == ['kernel.diag_reg']
  plan.build(config)
  pinned = cifar_subset.get_config()
  pinned.pinned = ('ecrn.fourier_features',)
  assert 'ecrn.fourier_features' not in plan.read(pinned).grid('ntk_ecrn')[0]
  for arg in ('smoke', 'ablations,smoke'):
    smoke = cifar_subset.get_config(arg)
    assert smoke.search.trials == 1 and smoke.ecrn.fourier_features == 16
    for model in ('ntk_ecrn', 'ntk_ecrn_infinite_self_tuned'):
      axes, _ = plan.read(smoke).grid(model)
      assert axes['ecrn.fourier_features'] == (16, 32, 64, 128, 256)
      assert plan.read(smoke).start_point(model, axes)['ecrn.fourier_features'] == 16
    plan.build(smoke)
