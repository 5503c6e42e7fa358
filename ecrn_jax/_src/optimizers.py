# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The optimizer of a `TrainConfig`: its learning-rate schedule, the optax transformation with
constant values (`make_optimizer`), and the same transformation with its values as arguments
(`optimizer_hyperparams`, the traced form `train` uses so that one compiled step serves every
learning rate, momentum and weight decay)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Mapping, Optional

import jax
import jax.numpy as jnp
import optax

if TYPE_CHECKING:
  from ecrn_jax._src.training import TrainConfig  # pylint: disable=g-bad-import-order


def learning_rate_schedule(config: TrainConfig, num_steps_per_epoch: int) -> optax.Schedule:
  """η_s as a function of the global step s (the one the optimizer uses).

  >>> import ecrn_jax
  >>> config = ecrn_jax.TrainConfig(learning_rate=0.1, schedule='cosine', epochs=10)
  >>> schedule = ecrn_jax.training.learning_rate_schedule(config, 1)
  >>> round(float(schedule(0)), 6), round(float(schedule(10)), 6)
  (0.1, 0.0)
  """
  lr = float(config.learning_rate)
  warmup = config.warmup_epochs * num_steps_per_epoch
  total = config.epochs * num_steps_per_epoch
  if config.schedule == 'constant':
    main = optax.constant_schedule(lr)
  else:
    main = optax.cosine_decay_schedule(lr, decay_steps=max(1, total - warmup))
  if warmup == 0:
    return main
  return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])


def make_optimizer(config: TrainConfig, num_steps_per_epoch: int) -> optax.GradientTransformation:
  """The optax transformation of `config`, its hyperparameters as constants.

  `train` runs the same transformation with the hyperparameters traced (`optimizer_hyperparams`),
  so that runs that differ only in their values share one compiled step; only the optimizer,
  the schedule and whether it warms up change its program and state. Weight decay is always
  applied (AdamW, or L2 added to SGD's gradient): at weight_decay = 0 it adds 0·θ, which leaves
  every update as the optimizer without it computes it, so a search over weight decay,
  0 included, runs one program.

  >>> import jax.numpy as jnp, ecrn_jax
  >>> optimizer = ecrn_jax.training.make_optimizer(ecrn_jax.TrainConfig(optimizer='adam'), 1)
  >>> params = {'w': jnp.zeros(2)}
  >>> state = optimizer.init(params)
  >>> updates, state = optimizer.update({'w': jnp.ones(2)}, state, params)  # params: the decay's
  >>> updates['w'].shape
  (2,)
  """
  return _build_optimizer(*_optimizer_kind(config), _values(config, num_steps_per_epoch))


def optimizer_hyperparams(config: TrainConfig, num_steps_per_epoch: int) -> dict[str, jax.Array]:
  """The numeric settings of `config`'s optimizer as weakly typed scalars (), which promote as
  the Python numbers they hold: 'learning_rate', 'momentum', 'weight_decay', 'warmup_steps'
  and 'decay_steps' (the cosine's steps after warm-up)."""
  return {k: jax.device_put(v) for k, v in _values(config, num_steps_per_epoch).items()}


def _values(config: TrainConfig, num_steps_per_epoch: int) -> dict[str, float | int]:
  """`optimizer_hyperparams` as Python numbers."""
  warmup = config.warmup_epochs * num_steps_per_epoch
  total = config.epochs * num_steps_per_epoch
  return {
      'learning_rate': float(config.learning_rate),
      'momentum': float(config.momentum),
      'weight_decay': float(config.weight_decay),
      'warmup_steps': int(warmup),
      'decay_steps': float(max(1, total - warmup)),
  }


def _optimizer_kind(config: TrainConfig) -> tuple[str, Optional[str], bool]:
  """(optimizer, schedule, warm-up or not): what shapes the optimizer's program and state;
  schedule is None for a constant η without warm-up (no step count in the state)."""
  warmup = config.warmup_epochs > 0
  if config.schedule == 'constant' and not warmup:
    return config.optimizer, None, False
  return config.optimizer, config.schedule, warmup


def _schedule(schedule: str, warms_up: bool, values: Mapping[str, Any]) -> optax.Schedule:
  """`learning_rate_schedule` with its values possibly traced: optax's formulas, term by term
  (the constant or cosine, after a linear warm-up if `warms_up`), dtypes included (a warm-up's
  where() casts the cosine to its float32), so they agree to the last bit or so (XLA may fold
  the constants' cosine argument otherwise)."""
  lr, warmup, decay_steps = values['learning_rate'], values['warmup_steps'], values['decay_steps']

  def warm(count):  # optax.linear_schedule(0.0, lr, warmup)
    count = jnp.clip(count, 0, warmup)
    frac = 1 - count / warmup
    return (0.0 - lr) * (frac**1) + lr

  def main(count):  # optax.constant_schedule(lr) or optax.cosine_decay_schedule(lr, decay_steps)
    if schedule == 'constant':
      return lr
    count = jnp.minimum(count, decay_steps)
    cosine_decay = 0.5 * (1 + jnp.cos(jnp.pi * count / decay_steps))
    return lr * ((1 - 0.0) * cosine_decay**1.0 + 0.0)

  def joined(count):  # optax.join_schedules([warm, main], [warmup])
    return jnp.where(count < warmup, warm(count), main(count - warmup))

  return joined if warms_up else main


def _build_optimizer(
    optimizer: str, schedule: Optional[str], warmup: bool, values: Mapping[str, Any]
) -> optax.GradientTransformation:
  """The optax transformation of kind (optimizer, schedule, warmup) (`_optimizer_kind`) with
  `values` (numbers or traced)."""
  lr = values['learning_rate'] if schedule is None else _schedule(schedule, warmup, values)
  wd = values['weight_decay']
  if optimizer == 'adam':
    return optax.adamw(lr, weight_decay=wd)
  momentum = values['momentum'] if optimizer == 'momentum' else None
  return optax.chain(optax.add_decayed_weights(wd), optax.sgd(lr, momentum=momentum))


_PLACEHOLDER_VALUES = {
    'learning_rate': 1.0,
    'momentum': 0.0,
    'weight_decay': 1.0,
    'warmup_steps': 1,
    'decay_steps': 1.0,
}


@functools.lru_cache(maxsize=None)  # one per kind: 3 optimizers × 4 schedules at most
def _traced_optimizer(
    optimizer: str, schedule: Optional[str], warmup: bool
) -> optax.GradientTransformationExtraArgs:
  """The transformation of that kind (`_optimizer_kind`) whose update takes the values as
  `hyperparameters` (`optimizer_hyperparams`): one object, hence one compiled step, per kind."""

  def init(params):  # the state depends on no value
    kind = optimizer, schedule, warmup
    return _build_optimizer(*kind, _PLACEHOLDER_VALUES).init(params)

  def update(updates, state, params=None, *, hyperparams):
    kind = optimizer, schedule, warmup
    return _build_optimizer(*kind, hyperparams).update(updates, state, params)

  return optax.GradientTransformationExtraArgs(init, update)


def traced_optimizer(config: TrainConfig) -> optax.GradientTransformationExtraArgs:
  """The transformation of `config`'s kind whose update takes `optimizer_hyperparams` as
  `hyperparams` (one object, hence one compiled step, per kind)."""
  return _traced_optimizer(*_optimizer_kind(config))
