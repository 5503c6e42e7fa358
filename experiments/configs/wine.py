# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Wine (docs/spec.md §5, Table III): accuracy (and cross-entropy). Fields: common.py."""

from experiments.configs import common


def get_config(arg=None):
  blocks = dict(train=dict(epochs=200, batch_size=32), tracking=dict(probe_size=142))
  return common.named_config('wine', arg, ('lda', 'rbf_svm'), **blocks)
