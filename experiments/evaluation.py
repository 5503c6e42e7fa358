# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Test metrics of the benchmarks: MSE and R² for regression; accuracy and cross-entropy for
classification; a network's metrics on the train and test splits (evaluation mode); a unit's
per-example test predictions (predictions.npz) and the per-example scores read from them."""

from __future__ import annotations

import os
from typing import Optional

import jax
import numpy as np
import scipy.special

from ecrn_jax import files


def regression_metrics(predictions, targets) -> dict:
  p = np.asarray(predictions, np.float64).reshape(-1)
  y = np.asarray(targets, np.float64).reshape(-1)
  mse = float(np.mean((p - y) ** 2))
  sst = float(np.sum((y - y.mean()) ** 2))
  return {'mse': mse, 'r2': 1.0 - float(np.sum((p - y) ** 2)) / sst if sst > 0 else None}


def classification_metrics(log_probs: Optional[np.ndarray], scores, labels) -> dict:
  labels = np.asarray(labels)
  accuracy = float(np.mean(np.argmax(np.asarray(scores), axis=-1) == labels))
  out = {'accuracy': accuracy, 'cross_entropy': None}
  if log_probs is not None:
    out['cross_entropy'] = 0.0 - float(
        np.mean(np.asarray(log_probs, np.float64)[np.arange(len(labels)), labels])
    )
  return out


def _predict(model, variables, x, batch_size: int) -> np.ndarray:
  apply = jax.jit(model.apply)
  parts = [
      np.asarray(apply(variables, x[i : i + batch_size]), np.float64)
      for i in range(0, len(x), batch_size)
  ]
  return np.concatenate(parts)


def network_outputs(model, variables, dataset, batch_size: int) -> dict[str, np.ndarray]:
  """{'train': (N, C), 'test': (M, C)} float64 outputs of a network in evaluation mode."""
  return {
      'train': _predict(model, variables, dataset.x_train, batch_size),
      'test': _predict(model, variables, dataset.x_test, batch_size),
  }


def output_metrics(task: str, outputs: np.ndarray, targets) -> dict:
  """The metrics of a network's (M, C) outputs: regression on column 0, else softmax."""
  if task == 'regression':
    return regression_metrics(outputs[:, 0], targets)
  return classification_metrics(scipy.special.log_softmax(outputs, axis=-1), outputs, targets)


# ---------------------------------------------------------------------------------------------
# Per-example test predictions (unit/predictions.npz), for tests over test examples.

PREDICTIONS_FILE = 'predictions.npz'


def classification_examples(log_probs: Optional[np.ndarray], scores, labels) -> dict:
  """{'predicted' (M,) int64, 'correct' (M,) bool, 'targets' (M,) int64, and 'nll' (M,)
  float64 (−log p(label), whose mean is the cross-entropy) when `log_probs` (M, C) is given}."""
  labels = np.asarray(labels).astype(np.int64)
  predicted = np.argmax(np.asarray(scores), axis=-1).astype(np.int64)
  out = {'predicted': predicted, 'correct': predicted == labels, 'targets': labels}
  if log_probs is not None:
    out['nll'] = -np.asarray(log_probs, np.float64)[np.arange(len(labels)), labels]
  return out


def regression_examples(predictions, targets) -> dict:
  """{'predictions' (M,) or (M, C), 'targets' like it}, float64."""
  return {
      'predictions': np.asarray(predictions, np.float64),
      'targets': np.asarray(targets, np.float64),
  }


def network_examples(task: str, outputs: np.ndarray, targets) -> dict:
  """`classification_examples` or `regression_examples` of a network's (M, C) outputs."""
  if task == 'regression':
    return regression_examples(outputs[:, 0], targets)
  return classification_examples(scipy.special.log_softmax(outputs, axis=-1), outputs, targets)


def save_predictions(directory: str, examples: dict) -> None:
  """Writes `examples` to directory/predictions.npz (atomically, no pickle)."""
  files.save_npz(os.path.join(directory, PREDICTIONS_FILE), examples)
