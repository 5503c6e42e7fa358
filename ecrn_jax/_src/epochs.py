# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The compiled programs of `train` (training.py): the train state, one step, an epoch's steps in
one loop, and the small programs around them (the initial state, the seed's keys, an epoch's
order, a batch). Every one is keyed by structure and shapes, never by a value: a search's trials
that share shapes compile nothing after the first (docs/spec.md §4.1's conventions)."""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import flax.linen as nn
from flax.training import train_state
import jax
import jax.numpy as jnp
import optax

from ecrn_jax._src.losses import LOSS_FNS
from ecrn_jax._src.models import Bound, traced

MUTABLE_COLLECTIONS = ('batch_stats',)


class TrainState(train_state.TrainState):
  """flax's TrainState over 'params', plus `rest`: the variables' other collections, and
  `hyperparams`: None, or the optimizer's values (`optimizer_hyperparams`), passed to a `tx` of
  `train` as arguments (traced in the compiled step, not constants). `create` starts the step
  count as an int32 array, the type the steps keep (not a Python 0, a second program)."""

  rest: Any = None
  hyperparams: Any = None

  @classmethod
  def create(cls, *, apply_fn, params, tx, **kwargs):
    state = super().create(apply_fn=apply_fn, params=params, tx=tx, **kwargs)
    return state.replace(step=jnp.zeros((), jnp.int32))

  def apply_gradients(self, *, grads, **kwargs):
    if self.hyperparams is None:
      return super().apply_gradients(grads=grads, **kwargs)
    updates, opt_state = self.tx.update(
        grads, self.opt_state, self.params, hyperparams=self.hyperparams
    )
    params = optax.apply_updates(self.params, updates)
    return self.replace(step=self.step + 1, params=params, opt_state=opt_state, **kwargs)


@functools.lru_cache(maxsize=32)
def _canonical(model: nn.Module) -> nn.Module:
  """The first model seen equal to `model`: equal models give equal `apply_fn`s (bound methods
  compare their instances by identity), so a `TrainState` of either reuses the compiled step."""
  return model


@functools.lru_cache(maxsize=32)  # bound values: a few scalars each; the programs are below
def make_train_step(
    model: nn.Module, loss: str, mutable: tuple[str, ...] = MUTABLE_COLLECTIONS
) -> Bound:
  """A jitted step (state, x, y, dropout_key) → (state, loss before the step).

  `state` is a `TrainState`: 'params' with the optimizer, the other collections in
  state.rest. Those of them named in `mutable` (a tuple; BatchNorm's 'batch_stats') take the
  values that the training-mode forward pass computes; the others are held constant. The
  stochastic-depth key is fold_in(dropout_key, state.step). The optimizer's values are
  arguments (state.hyperparams) and so are the model's α, drop rates and σ_ff (`models.traced`):
  one compiled program serves every model of the same structure (`Bound`).
  """
  structure, values = traced(model)
  return Bound(_train_step(structure, loss, mutable), structure, values)


@functools.lru_cache(maxsize=32)  # keyed by structure (shapes), not by hyperparameter values
def _train_step(model: nn.Module, loss: str, mutable: tuple[str, ...]) -> jax.stages.Wrapped:
  """`make_train_step`'s program, with the model's traced values (`models.traced`) last."""
  loss_fn = LOSS_FNS[loss]

  @jax.jit
  def step(state: TrainState, x, y, dropout_key, values):
    key = jax.random.fold_in(dropout_key, state.step)
    updated = [name for name in mutable if name in state.rest]

    def objective(params):
      variables = {'params': params, **state.rest, **values}
      if updated:
        out, updates = model.apply(variables, x, train=True, rngs={'dropout': key}, mutable=updated)
      else:
        out, updates = model.apply(variables, x, train=True, rngs={'dropout': key}), {}
      return loss_fn(out.reshape(out.shape[0], -1), y), updates

    (value, updates), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    state = state.apply_gradients(grads=grads)
    return state.replace(rest={**state.rest, **updates}), value

  return step


# Above this many FLOPs a step is compute-bound: running an epoch as one loop saves nothing
# measurable (CPU, MLP 3×512 on CIFAR at batch 128, 1.2e9 FLOPs: fused 0.74–0.90× the
# step-by-step time; NTK-ECRN with 4,096 Fourier features, 6.3e9: 1.02–1.14×).
FUSE_MAX_FLOPS = 2e9


def fuse_epochs(step: Bound, state: 'TrainState', x, y, dropout_key) -> bool:
  """Whether `train` runs an epoch's full batches as one compiled loop (`make_train_epoch`):
  when one step of `step` on the batch (x, y) costs at most FUSE_MAX_FLOPS (its dispatch then
  matters) and, on a CPU, holds no convolution (XLA:CPU runs a convolution inside a loop body
  ~30× slower than alone: a ResNet-18 of width 16, 4 steps of 128 images, 186 s against 5.5 s).
  """
  try:
    lowered = step.lower(state, x, y, dropout_key)
    cost = lowered.cost_analysis()
  except Exception:  # pylint: disable=broad-except   (no cost model: do not guess)
    return False
  cost = cost[0] if isinstance(cost, (list, tuple)) and cost else cost
  flops = cost.get('flops') if isinstance(cost, dict) else None
  if flops is None or not 0 <= flops <= FUSE_MAX_FLOPS:
    return False
  return jax.default_backend() != 'cpu' or 'convolution' not in lowered.as_text()


@functools.lru_cache(maxsize=32)  # as make_train_step
def make_train_epoch(
    model: nn.Module, loss: str, mutable: tuple[str, ...] = MUTABLE_COLLECTIONS
) -> Bound:
  """A jitted run of equal-size steps (state, x, y, batches, dropout_key) → (state, the state
  before the last step, losses (S,)).

  `batches` (S, B) int: the example indices of each step; step s is `make_train_step`'s step on
  (x[batches[s]], y[batches[s]]), all S in one compiled loop (one dispatch, no host sync between
  steps). Losses are those before each step, as the step returns them. Cached; one program per
  structure, as `make_train_step`.
  """
  structure, values = traced(model)
  return Bound(_train_epoch_program(structure, loss, mutable), structure, values)


@functools.lru_cache(maxsize=32)
def _train_epoch_program(model: nn.Module, loss: str, mutable: tuple[str, ...]) -> Callable:
  step = _train_step(model, loss, mutable)

  @jax.jit
  def run(state: TrainState, x, y, batches, dropout_key, values):
    def body(carry, indices):
      current, _ = carry
      new, value = step(current, x[indices], y[indices], dropout_key, values)
      return (new, current), value

    (state, before_last), losses = jax.lax.scan(body, (state, state), batches)
    return state, before_last, losses

  return run


# ---------------------------------------------------------------------------
# The small programs around the steps: one compilation per shape, none per value.
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)  # keyed by the state's static parts (structure, optimizer kind)
def _create_program(apply_fn: Callable, tx: optax.GradientTransformation) -> Callable:
  @jax.jit
  def create_state(params, rest, hyperparams):
    return TrainState.create(
        apply_fn=apply_fn, params=params, tx=tx, rest=rest, hyperparams=hyperparams
    )

  return create_state


def initial_state(
    apply_fn: Callable, params: Any, tx: optax.GradientTransformation, rest: Any, hyperparams: Any
) -> TrainState:
  """`TrainState.create(...)` as one compiled program (the optimizer's zeros, the step count),
  instead of one small program per leaf shape; the hyperparameters stay weakly typed.

  >>> import jax.numpy as jnp, ecrn_jax
  >>> from ecrn_jax._src import epochs, optimizers
  >>> config = ecrn_jax.TrainConfig(optimizer='adam')
  >>> state = epochs.initial_state(
  ...     abs, {'w': jnp.zeros(2)}, optimizers.traced_optimizer(config), {},
  ...     optimizers.optimizer_hyperparams(config, 1))
  >>> int(state.step), state.step.dtype.name
  (0, 'int32')
  """
  return _create_program(apply_fn, tx)(params, rest, hyperparams)


@jax.jit
def seed_keys(seed) -> tuple[jax.Array, jax.Array]:
  """(shuffle_key, dropout_key) = split(PRNGKey(seed)), one compiled program for every seed.

  >>> import jax, numpy as np
  >>> from ecrn_jax._src import epochs
  >>> expected = jax.random.split(jax.random.PRNGKey(3))
  >>> bool(np.array_equal(np.stack(epochs.seed_keys(3)), expected))
  True
  """
  shuffle_key, dropout_key = jax.random.split(jax.random.PRNGKey(seed))
  return shuffle_key, dropout_key


@functools.partial(jax.jit, static_argnames='n')
def epoch_order(shuffle_key: jax.Array, epoch, n: int) -> jax.Array:
  """The order (n,) in which epoch `epoch` visits the examples (every path of `train`):
  permutation(fold_in(shuffle_key, epoch), n), one compiled program per n.

  >>> import jax, numpy as np
  >>> from ecrn_jax._src import epochs
  >>> key = jax.random.PRNGKey(0)
  >>> expected = jax.random.permutation(jax.random.fold_in(key, 2), 5)
  >>> bool(np.array_equal(epochs.epoch_order(key, 2, n=5), expected))
  True
  """
  return jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), n)


@jax.jit
def take(x: jax.Array, y: jax.Array, indices: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(x[indices], y[indices]) in one compiled program per shape."""
  return x[indices], y[indices]


def _epoch_body(step: Callable, batch_size: Optional[int]) -> Callable:
  """(state, x, y, shuffle_key, epoch, dropout_key, values) → (state, the state before the last
  step, losses (S,)): one epoch of `step`, the full batch when batch_size is None."""

  def epoch_fn(state, x, y, shuffle_key, epoch, dropout_key, values):
    if batch_size is None:
      new, value = step(state, x, y, dropout_key, values)
      return new, state, value[None]
    n = x.shape[0]
    full = n // batch_size
    order = epoch_order(shuffle_key, epoch, n)

    def body(carry, indices):
      current, _ = carry
      new, value = step(current, x[indices], y[indices], dropout_key, values)
      return (new, current), value

    batches = order[: full * batch_size].reshape(full, batch_size)
    (state, before_last), losses = jax.lax.scan(body, (state, state), batches)
    if full * batch_size < n:  # the last, smaller batch
      rest = order[full * batch_size :]
      new, value = step(state, x[rest], y[rest], dropout_key, values)
      state, before_last, losses = new, state, jnp.append(losses, value)
    return state, before_last, losses

  return epoch_fn


@functools.lru_cache(maxsize=32)  # as make_train_epoch, and per batch size
def _epoch_program(
    model: nn.Module, loss: str, mutable: tuple[str, ...], batch_size: int
) -> jax.stages.Wrapped:
  return jax.jit(_epoch_body(_train_step(model, loss, mutable), batch_size))


@functools.lru_cache(maxsize=32)  # as make_epoch, and per capacity
def _trial_program(
    model: nn.Module, loss: str, mutable: tuple[str, ...], batch_size: Optional[int], capacity: int
) -> jax.stages.Wrapped:
  epoch_fn = _epoch_body(_train_step(model, loss, mutable), batch_size)

  @jax.jit
  def trial(state, x, y, shuffle_key, num_epochs, dropout_key, values):
    def one(e, carry):
      current, losses = carry
      new, _, values_e = epoch_fn(current, x, y, shuffle_key, e + 1, dropout_key, values)
      return new, losses.at[e].set(values_e)

    shape = jax.eval_shape(epoch_fn, state, x, y, shuffle_key, 1, dropout_key, values)[2]
    losses = jnp.full((capacity,) + shape.shape, jnp.nan, shape.dtype)
    return jax.lax.fori_loop(0, num_epochs, one, (state, losses))

  return trial


def make_trial(
    model: nn.Module,
    loss: str,
    batch_size: Optional[int],
    epochs: int,
    mutable: tuple[str, ...] = MUTABLE_COLLECTIONS,
) -> Bound:
  """A jitted run of epochs 1, …, E (state, x, y, shuffle_key, E, dropout_key) → (state, losses
  (capacity, S), the first E rows filled): `make_epoch`'s epoch E times (the full batch, one step
  an epoch, when batch_size is None) in one program, no host round trip between epochs. E is a
  loop bound, not a shape: one program per structure, N, batch size and capacity, the power of
  two ≥ `epochs` and ≥ 16 (every E up to it).

  >>> import jax, numpy as np, ecrn_jax
  >>> from ecrn_jax._src import epochs, optimizers
  >>> model = ecrn_jax.MLP(ecrn_jax.MLPConfig(hidden_widths=(4,), dtype='float32'))
  >>> x, y = np.ones((5, 2), np.float32), np.zeros(5, np.float32)
  >>> config = ecrn_jax.TrainConfig(batch_size=2)
  >>> state = epochs.initial_state(
  ...     model.apply, model.init(jax.random.PRNGKey(0), x)['params'],
  ...     optimizers.traced_optimizer(config), {}, optimizers.optimizer_hyperparams(config, 3))
  >>> keys = epochs.seed_keys(0)
  >>> state, losses = epochs.make_trial(model, 'mse', 2, 3)(state, x, y, keys[0], 3, keys[1])
  >>> losses.shape, int(state.step)
  ((16, 3), 9)
  """
  structure, values = traced(model)
  capacity = max(16, 1 << max(0, epochs - 1).bit_length())
  program = _trial_program(structure, loss, mutable, batch_size, capacity)
  return Bound(program, structure, values)


def make_epoch(
    model: nn.Module, loss: str, batch_size: int, mutable: tuple[str, ...] = MUTABLE_COLLECTIONS
) -> Bound:
  """A jitted epoch (state, x, y, shuffle_key, epoch, dropout_key) → (state, the state before the
  last step, losses (S,)), S = ⌈N / batch_size⌉: the order `epoch_order` draws, its full batches
  as `make_train_epoch`'s loop, then the last, smaller batch, if any, all in one program (one
  per structure, N and batch size). Losses are those before each step.

  >>> import jax, numpy as np, ecrn_jax
  >>> from ecrn_jax._src import epochs, optimizers
  >>> model = ecrn_jax.MLP(ecrn_jax.MLPConfig(hidden_widths=(4,), dtype='float32'))
  >>> x, y = np.ones((5, 2), np.float32), np.zeros(5, np.float32)
  >>> config = ecrn_jax.TrainConfig(batch_size=2)
  >>> state = epochs.initial_state(
  ...     model.apply, model.init(jax.random.PRNGKey(0), x)['params'],
  ...     optimizers.traced_optimizer(config), {}, optimizers.optimizer_hyperparams(config, 3))
  >>> keys = epochs.seed_keys(0)
  >>> state, _, losses = epochs.make_epoch(model, 'mse', 2)(state, x, y, keys[0], 1, keys[1])
  >>> losses.shape, int(state.step)
  ((3,), 3)
  """
  structure, values = traced(model)
  return Bound(_epoch_program(structure, loss, mutable, batch_size), structure, values)
