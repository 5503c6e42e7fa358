# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Boston Housing (docs/spec.md §5, Table III): R² (and MSE).

The CSV is not downloaded: pass its path, --config.data.csv_path=PATH (the README says where
to get the file); without it the run stops at once and says so. The file must be the 506-row
table (header CRIM ... LSTAT MEDV, 14 finite numbers per row); a CSV of your own with the same
columns but another row count needs --config.data.num_rows=N (or =None for any count).
Classical references after the paper's models: (linear, gp_ard).
Fields: see experiments/configs/common.py. `:smoke` shrinks it to a seconds-long run.
"""

from experiments.configs import common


def get_config(arg=None):
  config = common.base_config('boston')
  config.train.epochs = 200
  config.train.batch_size = 64
  common.with_references(config, ('linear', 'gp_ard'))
  return common.apply_variant(config, 'boston', arg)
