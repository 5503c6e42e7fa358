# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""scikit-learn estimators: kernel regression and classification with the NTK-ECRN's (or the
MLP's) infinite-width kernel. Needs scikit-learn (the `experiments` or `test` extra)."""

from ecrn_jax._src.sklearn import NTKClassifier
from ecrn_jax._src.sklearn import NTKRegressor
from ecrn_jax._src.sklearn import default_config

__all__ = ['NTKClassifier', 'NTKRegressor', 'default_config']
