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
