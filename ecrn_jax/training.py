# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The pieces `ecrn_jax.train` is made of (docs/spec.md §4.1): the optimizer and its schedule,
the jitted steps, the losses, the train state, and the network linearized in its parameters
(Lee et al. 2019)."""

# pylint: disable=g-importing-member
from ecrn_jax._src.linearized import LinearizedModel
from ecrn_jax._src.linearized import linearize
from ecrn_jax._src.losses import cross_entropy_loss
from ecrn_jax._src.losses import mse_loss
from ecrn_jax._src.training import TrainState
from ecrn_jax._src.optimizers import learning_rate_schedule
from ecrn_jax._src.optimizers import make_optimizer
from ecrn_jax._src.training import make_train_epoch
from ecrn_jax._src.training import make_train_step
from ecrn_jax._src.training import steps_per_epoch

__all__ = [
    'LinearizedModel',
    'TrainState',
    'cross_entropy_loss',
    'learning_rate_schedule',
    'linearize',
    'make_optimizer',
    'make_train_epoch',
    'make_train_step',
    'mse_loss',
    'steps_per_epoch',
]
