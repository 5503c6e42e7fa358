# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Synthetic regression (docs/spec.md §5, Table I): y = Σ_k a_k sin(2π ω_kᵀx + φ_k) + ε, MSE and R².

Fields: see experiments/configs/common.py. `:smoke` shrinks it to a seconds-long run.
"""

from experiments.configs import common


def get_config(arg=None):
  config = common.base_config('synthetic_regression')
  config.train.epochs = 200
  return common.apply_variant(config, 'synthetic_regression', arg)
