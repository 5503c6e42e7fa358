# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Finite-width NTK-ECRN kernels at initialization against the infinite-width twin.

Embedded data (x ~ N(0, I_d), docs/spec.md §5's input law), no download. `:smoke` shrinks it.
"""

import ml_collections


def get_config(arg=None):
  """The config; `arg` names its variants (above)."""
  config = ml_collections.ConfigDict(dict(experiment='finite_vs_infinite', seed=0))
  config.update(num_points=16, input_dim=8, widths=(64, 128, 256, 512, 1024), num_seeds=4)
  model = dict(depth=3, alpha=1.0, alpha_schedule='inverse_sqrt_depth', activation='gelu')
  model.update(fourier_features=32, fourier_scale=0.5, drop_rate=0.1, out_dim=1)
  model.update(parameterization='ntk', w_std=2.0**0.5, b_std=0.1)
  config.model = ml_collections.ConfigDict(model)
  # Width at which the empirical NTK is checked against an explicit Jacobian contraction (and
  # neural-tangents' own, when it is installed).
  config.agreement_width = 128
  if arg == 'smoke':
    config.update(num_points=6, widths=(32, 64, 128), num_seeds=2, agreement_width=32)
  elif arg not in (None, ''):
    raise ValueError(f"unknown variant {arg!r} of finite_vs_infinite; valid: 'smoke'.")
  return config
