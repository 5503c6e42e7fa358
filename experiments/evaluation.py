# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Test metrics of the benchmarks (MSE and R²; accuracy and cross-entropy) and a unit's
per-example test predictions (predictions.npz)."""

from __future__ import annotations

import os
from typing import Optional

import numpy as np
import scipy.special

import ecrn_jax
from ecrn_jax import files

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


def evaluate(task: str, predictions, targets) -> tuple[dict, dict]:
  """(metrics, per-example predictions) of `predictions`: (M,) or (M, C) values (regression),
  or (log-probabilities (M, C) or None, scores (M, C)) (classification)."""
  if task == 'regression':
    p, y = np.asarray(predictions, np.float64), np.asarray(targets, np.float64)
    errors, y_flat = (p.reshape(-1) - y.reshape(-1)) ** 2, y.reshape(-1)
    sst = float(np.sum((y_flat - y_flat.mean()) ** 2))
    r2 = 1.0 - float(np.sum(errors)) / sst if sst > 0 else None
    return {'mse': float(np.mean(errors)), 'r2': r2}, {'predictions': p, 'targets': y}
  examples = classification_examples(*predictions, targets)
  metrics = {'accuracy': float(np.mean(examples['correct'])), 'cross_entropy': None}
  if 'nll' in examples:
    metrics['cross_entropy'] = float(np.mean(examples['nll'])) + 0.0  # + 0.0: never -0.0
  return metrics, examples


def network_predictions(task: str, model, variables, x, batch_size: int):
  """A network's predictions on `x` in evaluation mode, as `evaluate` takes them: its float64
  output column 0 (regression), or (log-softmax, outputs) of its (M, C) outputs."""
  apply = ecrn_jax.models.jit_apply(model)  # one program per structure: α etc. are arguments
  batches = (x[i : i + batch_size] for i in range(0, len(x), batch_size))
  outputs = np.concatenate([np.asarray(apply(variables, b), np.float64) for b in batches])
  if task == 'regression':
    return outputs[:, 0]
  return scipy.special.log_softmax(outputs, axis=-1), outputs


def save_predictions(directory: str, examples: dict) -> None:
  """Writes `examples` to directory/predictions.npz (atomically, no pickle)."""
  files.save_npz(os.path.join(directory, PREDICTIONS_FILE), examples)
