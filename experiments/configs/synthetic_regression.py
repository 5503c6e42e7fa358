# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Synthetic regression (docs/spec.md §5, Table I): y = Σ_k a_k sin(2π ω_kᵀx + φ_k) + ε, MSE and R².

The frequency scale s (ω_k ~ N(0, s² I), `data.frequency_scale`) is 0.1 by default: a target
the models can learn. `:hard` sets the spec's s = 0.25, which no model learns from 800 points in
8 dimensions (RESULTS.md, Table I (a)). `:smoke` shrinks the run, `:ablations` adds the ablation
variants; several join with ',', e.g. `hard,smoke`. Fields: experiments/configs/common.py.
"""

from experiments.configs import common

FREQUENCY_SCALE = 0.1  # the default s: learnable
HARD_FREQUENCY_SCALE = 0.25  # `:hard`, the spec's s: unlearnable at this size
VARIANTS = ('hard',) + tuple(common.VARIANTS)


def get_config(arg=None):
  """The config; `arg` names its variants (above)."""
  name = 'synthetic_regression'
  args = common.variant_args(name, arg, VARIANTS)
  hard = HARD_FREQUENCY_SCALE if 'hard' in args else FREQUENCY_SCALE
  # Selection on seed 0's validation split, shared by every seed: each seed draws its data
  # afresh, so no seed's test point is in it (experiments/search.py), at 1/5 of the cost.
  blocks = dict(train=dict(epochs=200), search=dict(seeds=(0,)), data=dict(frequency_scale=hard))
  return common.named_config(name, ','.join(a for a in args if a != 'hard'), **blocks)
