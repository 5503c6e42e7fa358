# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Test metrics of the benchmarks: MSE and R² for regression; accuracy and cross-entropy for
classification; a network's metrics on the train and test splits (evaluation mode)."""

from __future__ import annotations

import math
from typing import Iterable, Optional, Sequence

import jax
import numpy as np
import scipy.special


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


def evaluate_network(model, variables, dataset, batch_size: int) -> dict:
  """{'train': metrics, 'test': metrics} of a network in evaluation mode."""
  out = {}
  for split, x, y in (
      ('train', dataset.x_train, dataset.y_train),
      ('test', dataset.x_test, dataset.y_test),
  ):
    f = _predict(model, variables, x, batch_size)
    if dataset.task == 'regression':
      out[split] = regression_metrics(f[:, 0], y)
    else:
      out[split] = classification_metrics(scipy.special.log_softmax(f, axis=-1), f, y)
  return out


def finite_values(values: Iterable) -> list[float]:
  """The finite numbers of `values` (None, NaN and inf left out)."""
  return [
      float(v) for v in values if v is not None and isinstance(v, (int, float)) and math.isfinite(v)
  ]


def summary_stats(values: Sequence) -> dict:
  """{'mean', 'std' (population, ddof=0), 'n', 'values'} over the finite values."""
  finite = finite_values(values)
  return {
      'mean': float(np.mean(finite)) if finite else None,
      'std': float(np.std(finite)) if finite else None,
      'n': len(finite),
      'values': list(values),
  }
