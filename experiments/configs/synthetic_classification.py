# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Synthetic classification (docs/spec.md §5, Table II): a 5-class Gaussian mixture."""

from experiments.configs import common


def get_config(arg=None):
  # Selection on seed 0's validation split, shared by every seed: each seed draws its data
  # afresh, so no seed's test point is in it (experiments/search.py), at 1/5 of the cost.
  blocks = dict(train=dict(epochs=100), search=dict(seeds=(0,)))
  references = ('lda', 'rbf_svm', 'bayes_optimal')
  return common.named_config('synthetic_classification', arg, references, **blocks)
