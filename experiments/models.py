# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The networks of a unit plan, built and initialized (the registry's data: registry.py)."""

from __future__ import annotations

import math

import jax
import numpy as np

import ecrn_jax

_FAMILY_KEY = {'ecrn': 0, 'mlp': 1, 'resnet18': 2}


@jax.jit
def _fold_in_seed(seed: jax.Array, family: jax.Array) -> jax.Array:
  return jax.random.fold_in(jax.random.PRNGKey(seed), family)


def model_key(plan) -> jax.Array:
  """The key of (seed, family): a trained model and its infinite twin draw the same Fourier B.
  One compiled program for every (seed, family); the key of `PRNGKey(seed)` folded with the
  family's number, as computed op by op (the seed as int64, as PRNGKey converts a Python int)."""
  return _fold_in_seed(np.int64(plan.seed), np.uint32(_FAMILY_KEY[plan.spec.family]))


def kernel_variables(plan, dataset):
  """The variables (float64) of a kernel unit's twin: for the ECRN family, drawn as the trained
  network's (`build_network`: same key, the network's dtype), so B is the same; None for the
  other families. `plan` is for `dataset` (`UnitPlan.for_data`)."""
  if plan.spec.family != 'ecrn':
    return None
  network = ecrn_jax.ECRN(plan.arch.replace(dtype=plan.network_dtype))
  variables = network.init(model_key(plan), dataset.x_train[:1])
  return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), variables)


def build_network(plan, dataset):
  """(module, variables) of a trained unit's network, initialized; `plan` is for `dataset`.
  'resnet18': CIFAR ResNet-18 for images; for vector data its stand-in, the residual MLP."""
  from experiments import resnet  # pylint: disable=g-import-not-at-top

  arch, out_dim = plan.arch, max(dataset.num_classes, 1)
  if plan.spec.family != 'resnet18':
    model = {'ecrn': ecrn_jax.ECRN, 'mlp': ecrn_jax.MLP}[plan.spec.family](arch)
  elif dataset.info.get('standardize_channels') is not None:  # images
    channels = int(dataset.info['standardize_channels'])
    side = int(round(math.sqrt(dataset.x_train.shape[1] / channels)))
    shape, width, augment = (side, side, channels), int(arch.width), bool(arch.augment)
    model = resnet.ResNet18(out_dim, shape, width, augment, dtype=arch.dtype)
  else:
    model = resnet.ResidualMLP18(out_dim=out_dim, widths=tuple(arch.mlp_widths), dtype=arch.dtype)
  return model, model.init(model_key(plan), dataset.x_train[:1])
