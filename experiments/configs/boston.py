# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Boston Housing (docs/spec.md §5, Table III): R² (and MSE).

The CSV is not downloaded: pass --config.data.csv_path=PATH (README.md says where to get it);
without it the run stops at once. The file must be the 506-row table (header CRIM ... LSTAT
MEDV); a CSV with the same columns but another row count needs --config.data.num_rows=N (or
=None for any count). Classical references after the paper's models: (linear, gp_ard).
Fields: see experiments/configs/common.py. `:smoke` shrinks it to a seconds-long run.
"""

from experiments.configs import common


def get_config(arg=None):
  train = dict(epochs=200, batch_size=64)
  return common.named_config('boston', arg, ('linear', 'gp_ard'), train=train)
