# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Boston Housing (docs/spec.md §5, Table III): R² (and MSE).

The CSV is not downloaded: pass --config.data.csv_path=PATH (README.md, Data); another table
with the same 14 columns needs --config.data.num_rows=N (or None). Fields: common.py.
"""

from experiments.configs import common


def get_config(arg=None):
  train = dict(epochs=200, batch_size=64)
  return common.named_config('boston', arg, ('linear', 'gp_ard'), train=train)
