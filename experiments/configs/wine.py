# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Wine (docs/spec.md §5, Table III): accuracy (and cross-entropy).

Classical references after the paper's models: (lda, rbf_svm).
Fields: see experiments/configs/common.py. `:smoke` shrinks it to a seconds-long run.
"""

from experiments.configs import common


def get_config(arg=None):
  config = common.base_config('wine')
  config.train.epochs = 200
  config.train.batch_size = 32
  config.tracking.probe_size = 142
  common.with_references(config, ('lda', 'rbf_svm'))
  return common.apply_variant(config, 'wine', arg)
