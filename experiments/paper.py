# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The paper's vocabulary as data: row order, labels, metric directions, its printed values.
The classical references (registry.REFERENCES) are labelled '… (reference)', ordered last."""

from __future__ import annotations

from typing import Iterable, Optional

from experiments.registry import MODELS
from experiments.registry import REFERENCES

BASELINES = ('mlp', 'resnet18', 'standard_ntk')
IMAGE_DATASETS = ('cifar10',)
DATASET_LABELS = {
    'synthetic_regression': 'Synthetic regression',
    'synthetic_classification': 'Synthetic classification',
    'boston': 'Boston Housing',
    'iris': 'Iris',
    'wine': 'Wine',
    'cifar10': 'CIFAR-10 subset',
}
METRIC_LABELS = {
    'accuracy': 'Accuracy (%)',
    'cross_entropy': 'Cross-Entropy',
    'mse': 'MSE',
    'r2': 'R²',
    'train_accuracy': 'Train accuracy (%)',
    'train_mse': 'Train MSE',
}
HIGHER_IS_BETTER = {'accuracy': True, 'r2': True, 'mse': False, 'cross_entropy': False}
# As printed (accuracy in %), per model in _CLAIMED order. Tables I and II: the text leaves the
# cells empty and only claims NTK-ECRN is best (paired.claim_checks).
_CLAIMED = ('mlp', 'resnet18', 'standard_ntk', 'ntk_ecrn')
PAPER_CLAIMS = {
    'III': {
        'boston': {'r2': dict(zip(_CLAIMED, (0.84, 0.87, 0.82, 0.89)))},
        'iris': {'accuracy': dict(zip(_CLAIMED, (94.2, 95.0, 93.5, 96.1)))},
        'wine': {'accuracy': dict(zip(_CLAIMED, (96.0, 96.5, 95.2, 97.0)))},
    },
    'IV': {
        'cifar10': {
            'accuracy': dict(zip(_CLAIMED, (74.1, 78.4, 71.5, 81.9))),
            'cross_entropy': dict(zip(_CLAIMED, (0.815, 0.712, 0.843, 0.648))),
        }
    },
}
REFERENCE_LABELS = {
    'linear': 'Least squares (reference)',
    'lda': 'LDA (reference)',
    'gp_ard': 'ARD Gaussian process (reference)',
    'rbf_svm': 'RBF-SVM (reference)',
    'bayes_optimal': 'Bayes-optimal (reference, known generator)',
}
_LABELS = {
    'standard_ntk': 'Standard NTK',
    'ntk_ecrn': 'NTK-ECRN',
    'ntk_ecrn_infinite': 'NTK-ECRN infinite twin',
    'ntk_ecrn_infinite_self_tuned': 'NTK-ECRN infinite twin, tuned on its own',
    'ntk_ecrn_no_fourier': 'NTK-ECRN without Fourier features',
    'ntk_ecrn_alpha1': 'NTK-ECRN with α_l = 1',
    'ntk_ecrn_no_stochastic_depth': 'NTK-ECRN without stochastic depth',
    'ntk_ecrn_drop_rate_0p1': 'NTK-ECRN with stochastic depth 0.1',
    **REFERENCE_LABELS,
}


def is_reference(model: str) -> bool:
  return model in REFERENCES


def model_label(model: str, dataset: Optional[str] = None, config: Optional[dict] = None) -> str:
  """The table/legend label of `model` (unknown models: their name)."""
  if model == 'mlp':
    widths = list(((config or {}).get('mlp') or {}).get('hidden_widths') or (512, 512, 512))
    if len(set(widths)) == 1:
      return f'MLP ({len(widths)}×{widths[0]})'
    return f'MLP ({"-".join(str(w) for w in widths)})'
  if model == 'resnet18':
    if dataset is not None and dataset not in IMAGE_DATASETS:
      return 'ResNet-18 (residual MLP stand-in)'
    return 'ResNet-18'
  if model.startswith('ntk_ecrn_sigma_ff_x'):
    factor = model[len('ntk_ecrn_sigma_ff_x') :].replace('p', '.')
    return f'NTK-ECRN, σ_ff = {factor}/(2π√d)'
  return _LABELS.get(model, model)


def order_models(names: Iterable[str]) -> list[str]:
  """`names` in the registry's row order, then others (ablations) by name, then the references."""
  names = set(names)
  others = sorted(m for m in names if m not in MODELS and m not in REFERENCES)
  return [m for m in MODELS if m in names] + others + [m for m in REFERENCES if m in names]
