# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The model registry, data only: every model a benchmark config can name, its kind, the
architecture block it reads and, for a twin, its tuned source. Imports nothing of ours, so
configs and reports can read it without the runner (experiments/models.py builds from it)."""

from __future__ import annotations

import dataclasses
from typing import Optional


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  name: str
  kind: str  # 'trained', 'kernel' or 'reference'
  family: str  # the architecture block it reads: 'ecrn', 'mlp', 'resnet18' ('reference': none)
  description: str
  # The trained model whose family block (as tuned, per seed) this kernel model uses.
  twin_of: Optional[str] = None
  # The only task a reference fits ('regression' or 'classification'); None: both.
  task: Optional[str] = None


_SPECS = (
    ModelSpec('mlp', 'trained', 'mlp', 'the trained plain MLP baseline'),
    ModelSpec(
        'resnet18',
        'trained',
        'resnet18',
        'CIFAR ResNet-18 on images; on vectors its 18-layer residual-MLP stand-in',
    ),
    ModelSpec(
        'standard_ntk',
        'kernel',
        'mlp',
        'kernel regression with the infinite-width kernel of the plain MLP',
    ),
    ModelSpec('ntk_ecrn', 'trained', 'ecrn', 'the trained NTK-ECRN (kernel-tracked)'),
    ModelSpec(
        'ntk_ecrn_infinite',
        'kernel',
        'ecrn',
        'kernel regression with the infinite-width twin of the tuned NTK-ECRN (its ecrn block '
        'and B; evaluation-mode survival scales); only diag_reg searched',
        twin_of='ntk_ecrn',
    ),
    ModelSpec(
        'ntk_ecrn_infinite_self_tuned',
        'kernel',
        'ecrn',
        "kernel regression with the NTK-ECRN's infinite-width twin tuned on its own (σ_ff, α, "
        'drop rate, diag_reg searched; B from the same key)',
    ),
)
# The classical references: (name, the only task it fits, description).
_REFERENCE_SPECS = tuple(
    ModelSpec(name, 'reference', 'reference', description, task=task)
    for name, task, description in (
        (
            'linear',
            'regression',
            'ordinary least squares (sklearn LinearRegression), the linear reference for '
            'regression',
        ),
        (
            'lda',
            'classification',
            'linear discriminant analysis (sklearn LinearDiscriminantAnalysis, SVD solver)',
        ),
        (
            'gp_ard',
            'regression',
            'Gaussian-process regression, ConstantKernel·RBF(one length scale per feature) + '
            'WhiteKernel, fitted by marginal likelihood',
        ),
        (
            'rbf_svm',
            'classification',
            'RBF-kernel SVM (sklearn SVC), C and γ by 5-fold CV on the training split; '
            'probabilities by sigmoid calibration on 5-fold cross-validated scores',
        ),
        (
            'bayes_optimal',
            'classification',
            "the posterior argmax under the synthetic mixture's known generator (its means, "
            'covariance and class weights); synthetic_classification only',
        ),
    )
)
# Paper row order; the references (not the paper's models) follow.
REGISTRY: dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS + _REFERENCE_SPECS}
MODELS = tuple(spec.name for spec in _SPECS)  # the paper's models
REFERENCES = tuple(spec.name for spec in _REFERENCE_SPECS)
