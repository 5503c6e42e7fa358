# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

import math

import pytest

from ecrn_jax import ECRNConfig, MLPConfig


@pytest.mark.parametrize(
    'field, value',
    [
        ('width', 0),
        ('width', 2.5),
        ('width', True),
        ('depth', -1),
        ('alpha', float('nan')),
        ('alpha', (1.0, 2.0)),
        ('alpha_schedule', 'linear'),
        ('activation', 'tanh'),
        ('fourier_features', 0),
        ('fourier_scale', 0.0),
        ('fourier_scale', -1.0),
        ('fourier_trainable', 'yes'),
        ('drop_rate', 1.0),
        ('drop_rate', -0.1),
        ('drop_rate', (0.1,)),
        ('out_dim', 0),
        ('parameterization', 'mup'),
        ('w_std', 0.0),
        ('b_std', -0.1),
        ('dtype', 'float16'),
    ],
)
def test_invalid_field_raises_value_error_naming_it(field, value):
  with pytest.raises(ValueError, match=field):
    ECRNConfig(**{'depth': 3, field: value})


def test_alpha_schedules_and_survival():
  cfg = ECRNConfig(depth=4, alpha=0.8, alpha_schedule='inverse_sqrt_depth', drop_rate=0.25)
  assert cfg.alphas == pytest.approx((0.4,) * 4)
  assert cfg.survival_probs == pytest.approx((0.75,) * 4)
  cfg = ECRNConfig(
      depth=3, alpha=[0.1, 0.2, 0.3], alpha_schedule='constant', drop_rate=[0.0, 0.5, 0.1]
  )
  assert cfg.alphas == pytest.approx((0.1, 0.2, 0.3))
  assert cfg.survival_probs == pytest.approx((1.0, 0.5, 0.9))
  assert isinstance(cfg.alpha, tuple) and hash(cfg) == hash(cfg.replace())
  cfg = ECRNConfig(depth=9, alpha=(1.0,) * 9, alpha_schedule='inverse_sqrt_depth')
  assert cfg.alphas == pytest.approx((1 / 3,) * 9)


def test_dtype_normalized():
  import numpy as np

  assert ECRNConfig(dtype=np.float64).dtype == 'float64'
  assert MLPConfig(dtype='float32').dtype == 'float32'


@pytest.mark.parametrize(
    'field, value',
    [
        ('hidden_widths', (512, 0)),
        ('hidden_widths', 'wide'),
        ('out_dim', 0),
        ('activation', 'sigmoid'),
        ('w_std', -1.0),
        ('parameterization', 'x'),
    ],
)
def test_mlp_config_invalid(field, value):
  with pytest.raises(ValueError, match=field.split('_')[0]):
    MLPConfig(**{field: value})


def test_mlp_defaults_are_the_papers_baseline():
  assert MLPConfig().hidden_widths == (512, 512, 512)
  assert MLPConfig(hidden_widths=64).hidden_widths == (64,)
  assert math.isclose(MLPConfig().w_std, math.sqrt(2.0))


def test_search_grids_bracket_the_first_pass_selections():
  """The benchmark grids (experiments/configs/common.py) reach past the values the first pass
  selected at their edges: σ_ff factor 0.125…1 in √2 steps, ridge up to 10, learning rates
  up to 1e-2, epochs up to 2E; the twin of the tuned NTK-ECRN searches its ridge only."""
  from experiments import models  # pylint: disable=g-import-not-at-top
  from experiments.configs import common  # pylint: disable=g-import-not-at-top

  factors = common.SIGMA_FF_GRID
  assert factors[0] == pytest.approx(0.125) and factors[-1] == 1.0
  assert all(b / a == pytest.approx(math.sqrt(2)) for a, b in zip(factors, factors[1:]))
  assert max(common.DIAG_REGS) == 10.0 and max(common.LEARNING_RATES) == 1e-2
  assert max(common.EPOCHS_FRACTIONS) == 2.0
  space = common.search_config().space
  assert space.ntk_ecrn.ecrn.fourier_scale_factor == factors
  assert space.ntk_ecrn.train.learning_rate == space.mlp.train.learning_rate
  assert models.flatten(space.ntk_ecrn_infinite) == {'kernel.diag_reg': common.DIAG_REGS}
  assert set(models.flatten(space.ntk_ecrn_infinite_self_tuned)) == {
      'kernel.diag_reg',
      'ecrn.fourier_scale_factor',
      'ecrn.alpha',
      'ecrn.drop_rate',
  }
  assert set(space.keys()) == set(models.MODELS)
  assert models.MODELS[-2:] == ('ntk_ecrn_infinite', 'ntk_ecrn_infinite_self_tuned')


def test_cifar_subset_searches_ntk_ecrn_fourier_features():
  """NTK-ECRN underfit the CIFAR subset with 256 Fourier features: its grid (and its self-tuned
  twin's) holds 256 … 4,096 features and epochs up to 4E; the trials cap covers the whole
  refinement; :smoke's axis is scaled to its 16-feature network and starts there."""
  from experiments import search  # pylint: disable=g-import-not-at-top
  from experiments.configs import cifar_subset  # pylint: disable=g-import-not-at-top

  config = cifar_subset.get_config()
  features = (256, 512, 1024, 2048, 4096)
  for model in ('ntk_ecrn', 'ntk_ecrn_infinite_self_tuned'):
    axes, _ = search.grid(config, model)
    assert axes['ecrn.fourier_features'] == features
    assert search.start_point(config, model, axes)['ecrn.fourier_features'] == 256
  axes, _ = search.grid(config, 'ntk_ecrn')
  assert max(axes['train.epochs_fraction']) == 4.0 and max(axes['train.learning_rate']) == 1e-2
  # Start, two rounds over every axis, one extension per axis: the cap never cuts a trial.
  assert config.search.trials == 1 + 2 * sum(len(v) - 1 for v in axes.values()) + len(axes) == 52
  # The twin of the tuned NTK-ECRN inherits its features; only its ridge is searched.
  assert list(search.grid(config, 'ntk_ecrn_infinite')[0]) == ['kernel.diag_reg']
  search.check(config)
  pinned = cifar_subset.get_config()
  pinned.pinned = ('ecrn.fourier_features',)
  assert 'ecrn.fourier_features' not in search.grid(pinned, 'ntk_ecrn')[0]
  for arg in ('smoke', 'ablations,smoke'):
    smoke = cifar_subset.get_config(arg)
    assert smoke.search.trials == 1 and smoke.ecrn.fourier_features == 16
    for model in ('ntk_ecrn', 'ntk_ecrn_infinite_self_tuned'):
      axes, _ = search.grid(smoke, model)
      assert axes['ecrn.fourier_features'] == (16, 32, 64, 128, 256)
      assert search.start_point(smoke, model, axes)['ecrn.fourier_features'] == 16
    search.check(smoke)
