# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The training losses (docs/spec.md §4.1), per batch of B examples with outputs f (B, C).

- 'mse': ½·B⁻¹ Σ_i ‖f(x_i) − y_i‖², a mean over examples and a sum over the C outputs
  (`neural_tangents.predict.gradient_descent_mse` normalizes by B·C instead);
- 'cross_entropy': mean softmax cross-entropy, labels as integers (B,) or one-hot (B, C).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def mse_loss(outputs: jax.Array, targets: jax.Array) -> jax.Array:
  """½·B⁻¹ Σ_i ‖f_i − y_i‖²; outputs (B, C), targets (B, C) or (B,) when C = 1.

  >>> import jax.numpy as jnp
  >>> from ecrn_jax import training
  >>> float(training.mse_loss(jnp.array([[1.0], [3.0]]), jnp.array([0.0, 1.0])))  # ½ (1 + 4) / 2
  1.25
  """
  targets = targets.reshape(outputs.shape).astype(outputs.dtype)
  return 0.5 * jnp.sum((outputs - targets) ** 2) / outputs.shape[0]


def cross_entropy_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy; logits (B, C), labels int (B,) or one-hot (B, C).

  >>> import jax.numpy as jnp
  >>> from ecrn_jax import training
  >>> round(float(training.cross_entropy_loss(jnp.zeros((2, 2)), jnp.array([0, 1]))), 4)  # ln 2
  0.6931
  """
  if labels.ndim == 1:
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
  return jnp.mean(optax.softmax_cross_entropy(logits, labels.astype(logits.dtype)))


LOSS_FNS = {'mse': mse_loss, 'cross_entropy': cross_entropy_loss}
