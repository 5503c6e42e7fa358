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


# What each model is (a reference's result.json 'kind' quotes it).
_DESCRIPTIONS = {
    'mlp': 'the trained plain MLP baseline',
    'resnet18': 'CIFAR ResNet-18 on images; on vectors its 18-layer residual-MLP stand-in',
    'standard_ntk': 'kernel regression with the infinite-width kernel of the plain MLP',
    'ntk_ecrn': 'the trained NTK-ECRN (kernel-tracked)',
    'ntk_ecrn_infinite': (
        'kernel regression with the infinite-width twin of the tuned NTK-ECRN (its ecrn block '
        'and B; evaluation-mode survival scales); only diag_reg searched'
    ),
    'ntk_ecrn_infinite_self_tuned': (
        "kernel regression with the NTK-ECRN's infinite-width twin tuned on its own (σ_ff, α, "
        'drop rate, diag_reg searched; B from the same key)'
    ),
    'linear': (
        'ordinary least squares (sklearn LinearRegression), the linear reference for regression'
    ),
    'lda': 'linear discriminant analysis (sklearn LinearDiscriminantAnalysis, SVD solver)',
    'gp_ard': (
        'Gaussian-process regression, ConstantKernel·RBF(one length scale per feature) + '
        'WhiteKernel, fitted by marginal likelihood'
    ),
    'rbf_svm': (
        'RBF-kernel SVM (sklearn SVC), C and γ by 5-fold CV on the training split; '
        'probabilities by sigmoid calibration on 5-fold cross-validated scores'
    ),
    'bayes_optimal': (
        "the posterior argmax under the synthetic mixture's known generator (its means, "
        'covariance and class weights); synthetic_classification only'
    ),
}


def _spec(name: str, kind: str, family: str, **fields) -> ModelSpec:
  return ModelSpec(name, kind, family, _DESCRIPTIONS[name], **fields)


_SPECS = (
    _spec('mlp', 'trained', 'mlp'),
    _spec('resnet18', 'trained', 'resnet18'),
    _spec('standard_ntk', 'kernel', 'mlp'),
    _spec('ntk_ecrn', 'trained', 'ecrn'),
    _spec('ntk_ecrn_infinite', 'kernel', 'ecrn', twin_of='ntk_ecrn'),
    _spec('ntk_ecrn_infinite_self_tuned', 'kernel', 'ecrn'),
)
# The classical references, each with the only task it fits.
_TASKS = dict(linear='regression', lda='classification', gp_ard='regression')
_TASKS.update(rbf_svm='classification', bayes_optimal='classification')
_REFERENCE_SPECS = tuple(_spec(n, 'reference', 'reference', task=t) for n, t in _TASKS.items())
# Paper row order; the references (not the paper's models) follow.
REGISTRY: dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS + _REFERENCE_SPECS}
MODELS = tuple(spec.name for spec in _SPECS)  # the paper's models
REFERENCES = tuple(spec.name for spec in _REFERENCE_SPECS)
