# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Training any ecrn_jax Flax model with optax: full-batch gradient descent or mini-batches.

Losses (per batch of B examples, outputs f of shape (B, C)):
- 'mse': ½·B⁻¹ Σ_i ‖f(x_i) − y_i‖², docs/spec.md §4's convention (a mean over examples, a sum over
  the C outputs). `neural_tangents.predict.gradient_descent_mse` normalizes by y.size = B·C
  instead, so plain GD with step η matches it with `learning_rate=η·C` (η for C = 1).
- 'cross_entropy': mean softmax cross-entropy, labels as integers (B,) or one-hot (B, C).

Only the 'params' collection is trained; 'batch_stats' (BatchNorm running averages, as in
the ResNet-18 baseline) is updated by each training step; every other collection (the fixed
Fourier matrix B in 'fourier') is passed through unchanged. Randomness comes from
`TrainConfig.seed`, split into named keys ('shuffle', 'dropout'); the stochastic-depth key of
step s is
`fold_in(dropout_key, s)` and the batch order of epoch e is drawn from
`fold_in(shuffle_key, e)`, so a run is a pure function of (model, variables, data, config).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ecrn_jax._src import empirical
from ecrn_jax._src import epochs as programs
from ecrn_jax._src.epochs import _canonical
from ecrn_jax._src.epochs import fuse_epochs
from ecrn_jax._src.epochs import make_train_epoch  # pylint: disable=unused-import
from ecrn_jax._src.epochs import make_train_step
from ecrn_jax._src.epochs import MUTABLE_COLLECTIONS  # pylint: disable=unused-import
from ecrn_jax._src.epochs import TrainState
from ecrn_jax._src.models import Bound
from ecrn_jax._src.optimizers import learning_rate_schedule  # pylint: disable=unused-import
from ecrn_jax._src.optimizers import make_optimizer  # pylint: disable=unused-import
from ecrn_jax._src.optimizers import optimizer_hyperparams
from ecrn_jax._src.optimizers import traced_optimizer
from ecrn_jax._src.validation import check_finite_inputs, check_int, check_real

OPTIMIZERS = ('sgd', 'momentum', 'adam')
SCHEDULES = ('constant', 'cosine')
LOSSES = ('mse', 'cross_entropy')

# A callback is called as callback(epoch, step, variables): at epoch 0 (step 0) before the
# first step, and after every epoch e with the global step count reached.
Callback = Callable[[int, int, Mapping[str, Any]], Any]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Hyperparameters of a training run.

  Attributes:
    optimizer: 'sgd' (plain gradient descent: with batch_size=None, full-batch GD),
      'momentum' (heavy-ball SGD) or 'adam' (AdamW when weight_decay > 0).
    learning_rate: peak step size η (> 0).
    momentum: momentum of 'momentum', in [0, 1); ignored by the other optimizers.
    weight_decay: decoupled for 'adam' (AdamW); added to the gradient (L2) for SGD (>= 0).
    schedule: 'constant' or 'cosine' (cosine decay to 0 over the steps after warm-up).
    warmup_epochs: epochs of linear warm-up from 0 to learning_rate (<= epochs).
    epochs: number of passes over the data (0 runs only the initial callbacks).
    batch_size: examples per step; None for the full batch (one step per epoch).
    loss: 'mse' or 'cross_entropy'.
    seed: seed of the shuffle and stochastic-depth keys.
  """

  optimizer: str = 'sgd'
  learning_rate: float = 0.1
  momentum: float = 0.9
  weight_decay: float = 0.0
  schedule: str = 'constant'
  warmup_epochs: int = 0
  epochs: int = 10
  batch_size: Optional[int] = None
  loss: str = 'mse'
  seed: int = 0

  def __post_init__(self):
    if self.optimizer not in OPTIMIZERS:
      raise ValueError(f'optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}.')
    check_real('learning_rate', self.learning_rate, 0.0, low_open=True)
    check_real('momentum', self.momentum, 0.0, 1.0, high_open=True)
    check_real('weight_decay', self.weight_decay, 0.0)
    if self.schedule not in SCHEDULES:
      raise ValueError(f'schedule must be one of {list(SCHEDULES)}, got {self.schedule!r}.')
    check_int('epochs', self.epochs, 0)
    check_int('warmup_epochs', self.warmup_epochs, 0)
    if self.warmup_epochs > self.epochs:
      raise ValueError(f'warmup_epochs={self.warmup_epochs} exceeds epochs={self.epochs}.')
    if self.batch_size is not None:
      check_int('batch_size', self.batch_size, 1)
    if self.loss not in LOSSES:
      raise ValueError(f'loss must be one of {list(LOSSES)}, got {self.loss!r}.')
    check_int('seed', self.seed, 0)

  def replace(self, **changes) -> 'TrainConfig':
    return dataclasses.replace(self, **changes)


class TrainingDiverged(ValueError):
  """The loss became non-finite. Carries what was done.

  Attributes:
    step: the global step whose loss was non-finite (the loss of the parameters before it).
    epoch: the epoch of that step (1-based).
    loss: the non-finite value.
    variables: the last variables with a finite loss (the initial ones if step == 0).
    history: the history so far (as `train` returns it).
  """

  def __init__(
      self,
      message: str,
      *,
      step: int,
      epoch: int,
      loss: float,
      variables: Mapping[str, Any],
      history: dict,
  ):
    super().__init__(message)
    self.step = step
    self.epoch = epoch
    self.loss = loss
    self.variables = variables
    self.history = history


# ---------------------------------------------------------------------------
# Schedule, optimizer, step (the losses are in losses.py).
# ---------------------------------------------------------------------------


def steps_per_epoch(config: TrainConfig, num_examples: int) -> int:
  """⌈N / batch_size⌉ (1 for the full batch); the last batch may be smaller.

  >>> import ecrn_jax
  >>> ecrn_jax.training.steps_per_epoch(ecrn_jax.TrainConfig(batch_size=32), 100)
  4
  """
  if config.batch_size is None:
    return 1
  return -(-num_examples // config.batch_size)


# ---------------------------------------------------------------------------
# The loop.
# ---------------------------------------------------------------------------


def _check_inputs(variables: Mapping[str, Any], data, config: TrainConfig):
  """(x, y) as arrays, after checking them, `variables` and `config` against each other."""
  if not isinstance(config, TrainConfig):
    raise ValueError(f'config must be a TrainConfig, got {type(config).__name__}.')
  try:
    x, y = data
  except (TypeError, ValueError) as e:
    raise ValueError('data must be a pair (x, y) of arrays with the same first axis.') from e
  given = x, y
  x, y = _host_view(x), _host_view(y)
  if x.ndim < 2:
    raise ValueError(f'x must be batched, shape (N, d), got {x.shape}.')
  if y.ndim < 1 or y.shape[0] != x.shape[0]:
    raise ValueError(
        f'x and y must have the same number of examples, got x {x.shape} and y {y.shape}.'
    )
  check_finite_inputs('x', x, why='training on them gives a NaN loss')  # also refuses N = 0
  check_finite_inputs('y', y, why='training on them gives a NaN loss')
  if config.loss == 'cross_entropy' and y.ndim == 1 and not jnp.issubdtype(y.dtype, jnp.integer):
    raise ValueError(
        "loss='cross_entropy' needs integer labels (N,) or one-hot targets "
        f'(N, C); got y of dtype {y.dtype}.'
    )
  if y.ndim > 2:
    raise ValueError(f'y must have shape (N,) or (N, C), got {y.shape}.')
  if config.batch_size is not None and config.batch_size > x.shape[0]:
    raise ValueError(
        f'batch_size={config.batch_size} exceeds the {x.shape[0]} training '
        'examples; use batch_size=None for the full batch.'
    )
  if 'params' not in variables:
    raise ValueError(f"variables must contain a 'params' collection, got {list(variables)}.")
  # On the device without a program per shape; JAX arrays as they were given.
  x, y = (a if isinstance(a, jax.Array) else jax.device_put(v) for a, v in zip(given, (x, y)))
  return x, y


def _host_view(a) -> Any:
  """`a` as NumPy where that costs no copy (NumPy data, a JAX array on the CPU): NumPy checks it
  without compiling a program per shape; a JAX array on an accelerator stays there."""
  if isinstance(a, jax.Array) and any(d.platform != 'cpu' for d in a.devices()):
    return a
  return np.asarray(a)


def _num_outputs(model: nn.Module, variables: Mapping[str, Any], x: jax.Array) -> int:
  """C, the model's outputs per example, from its shapes alone (no FLOPs, no slice of x)."""
  example = np.zeros((1,) + x.shape[1:], x.dtype)
  return int(np.prod(empirical.output_shape(model, variables, example, name='x')[1:]))


def _check_targets(y: jax.Array, num_outputs: int, loss: str) -> None:
  """y fits the model's C outputs: labels in [0, C), or C target columns."""
  c = num_outputs
  if loss == 'cross_entropy' and y.ndim == 1:
    bad = np.unique(np.asarray(y)[(np.asarray(y) < 0) | (np.asarray(y) >= c)])
    if bad.size:
      raise ValueError(
          f'cross-entropy labels must lie in [0, {c}) for a model with {c} outputs; got '
          f'{bad.size} distinct value(s) outside: {bad[:10].tolist()}.'
      )
    return
  columns = 1 if y.ndim == 1 else y.shape[1]
  if columns != c:
    what = 'one-hot targets' if loss == 'cross_entropy' else 'targets'
    raise ValueError(
        f'{what} have {columns} column(s) but the model has {c} outputs: give y of shape '
        f'(N, {c})' + (' or (N,) for one output' if c == 1 else '') + '.'
    )


def _variables_of(state: TrainState) -> dict:
  return {'params': state.params, **state.rest}


def _snapshot(history: dict) -> dict:
  """A copy of the history with its per-epoch and per-step lists as arrays."""
  out = dict(history)
  for name in ('epoch', 'loss', 'step_loss'):
    out[name] = np.asarray(history[name])
  return out


def _batches(
    x, y, config: TrainConfig, epoch: int, shuffle_key: jax.Array
) -> Iterator[tuple[jax.Array, jax.Array]]:
  """The (x, y) batches of an epoch: the full batch, or an order drawn for the epoch."""
  n = x.shape[0]
  num_steps = steps_per_epoch(config, n)
  if num_steps == 1:
    yield x, y
    return
  assert config.batch_size is not None  # steps_per_epoch is 1 without a batch size
  order = np.asarray(programs.epoch_order(shuffle_key, epoch, n=n))
  for b in range(num_steps):
    yield programs.take(x, y, order[b * config.batch_size : (b + 1) * config.batch_size])


def _resumed(
    state: TrainState, resume: Mapping[str, Any], history: dict, epochs: int
) -> tuple[TrainState, int]:
  """(the state of `resume`, its epoch); `history` takes the resumed history."""
  start_epoch = int(resume['epoch'])
  if not 0 <= start_epoch <= epochs:
    raise ValueError(f"resume['epoch']={start_epoch} is outside [0, {epochs}].")
  tree = jax.tree_util
  opt_state = resume['opt_state']
  treedef = tree.tree_structure(state.opt_state)
  # jax's stubs leave PyTreeDef unresolved (it lives in jaxlib); treedefs compare at runtime.
  if tree.tree_structure(opt_state) != treedef:  # type: ignore[operator]
    opt_state = tree.tree_unflatten(treedef, tree.tree_leaves(opt_state))
  params = tree.tree_unflatten(
      tree.tree_structure(state.params), tree.tree_leaves(resume['params'])
  )
  state = state.replace(
      # Cast on the host: a device-side cast would compile a program of its own.
      step=jax.device_put(np.asarray(resume['step'], np.asarray(state.step).dtype)),
      params=params,
      opt_state=opt_state,
  )
  if resume.get('rest') is not None:
    state = state.replace(
        rest=tree.tree_unflatten(tree.tree_structure(state.rest), tree.tree_leaves(resume['rest']))
    )
  for name, value in resume['history'].items():
    history[name] = (
        list(np.asarray(value).tolist()) if name in ('epoch', 'loss', 'step_loss') else value
    )
  return state, start_epoch


def _diverged(
    value: float, step: int, epoch: int, last_good: TrainState, history: dict
) -> TrainingDiverged:
  kept = (
      f'the last variables with a finite loss (step {int(last_good.step)})'
      if step > 0
      else 'the initial variables (no step had a finite loss)'
  )
  return TrainingDiverged(
      f'training diverged: the loss is {value} at step {step} (epoch {epoch}). '
      f'The exception carries the history so far and, as .variables, {kept}. '
      'Lower the learning rate, or check the data for non-finite values.',
      step=step,
      epoch=epoch,
      loss=value,
      variables=_variables_of(last_good),
      history=_snapshot(history),
  )


def _run_hooks(
    callbacks: Sequence[Callback],
    checkpoint: Optional[Callable[[int, TrainState, dict], Any]],
    history: dict,
    epoch: int,
    state: TrainState,
) -> None:
  """The callbacks, then the checkpoint, at `epoch`; their time goes to 'callback_seconds'."""
  start = time.perf_counter()
  for callback in callbacks:
    callback(epoch, int(state.step), _variables_of(state))
  history['callback_seconds'] += time.perf_counter() - start
  if checkpoint is not None:
    start = time.perf_counter()
    checkpoint(epoch, state, _snapshot(history))
    history['callback_seconds'] += time.perf_counter() - start


def _train_epoch(
    step_fn: Callable,
    state: TrainState,
    last_good: TrainState,
    x,
    y,
    config: TrainConfig,
    epoch: int,
    shuffle_key: jax.Array,
    dropout_key: jax.Array,
    history: dict,
    epoch_fn: Optional[Callable] = None,
) -> tuple[TrainState, TrainState]:
  """The steps of one epoch, recorded in `history`: (state, the last state with a finite loss).

  With `epoch_fn` (`epochs.make_epoch`) the epoch runs as one compiled program; an epoch with a
  non-finite loss is then replayed step by step from its start, so the error is the same.
  Raises `TrainingDiverged` at a non-finite loss.
  """
  start = time.perf_counter()
  batches: Iterable[tuple[jax.Array, jax.Array]] = ()
  losses = []
  if epoch_fn is not None:
    new_state, before_last, values = epoch_fn(state, x, y, shuffle_key, epoch, dropout_key)
    values = np.asarray(values).tolist()
    if all(math.isfinite(v) for v in values):
      losses = values
      history['step_loss'].extend(values)
      state, last_good = new_state, before_last
  if not losses:  # step by step, or the replay of a fused epoch with a non-finite loss
    batches = _batches(x, y, config, epoch, shuffle_key)
  for xb, yb in batches:
    new_state, value = step_fn(state, xb, yb, dropout_key)
    value = float(value)
    if not math.isfinite(value):
      history['train_seconds'] += time.perf_counter() - start
      raise _diverged(value, int(state.step), epoch, last_good, history)
    last_good, state = state, new_state
    losses.append(value)
    history['step_loss'].append(value)
  history['train_seconds'] += time.perf_counter() - start
  history['epoch'].append(epoch)
  history['loss'].append(float(np.mean(losses)))
  return state, last_good


def _train_at_once(
    model, batch_size, state, data, config, shuffle_key, dropout_key
) -> Optional[tuple[TrainState, list[list[float]], float]]:
  """Every epoch in one program (`epochs.make_trial`): (state, losses per epoch, seconds), or
  None when a loss is not finite."""
  start = time.perf_counter()
  trial = programs.make_trial(model, config.loss, batch_size, config.epochs)
  state, losses = trial(state, *data, shuffle_key, config.epochs, dropout_key)
  losses = np.asarray(losses)[: config.epochs].tolist()
  if not all(math.isfinite(v) for row in losses for v in row):
    return None
  return state, losses, time.perf_counter() - start


@functools.lru_cache(maxsize=64)
def _fused(program: Callable, signature: tuple[Any, tuple[jax.ShapeDtypeStruct, ...]]) -> bool:
  """`fuse_epochs` of a step program, for arguments of `signature` (`_signature`), and the step
  keeps the state's types (a loop's carry cannot change them: a model that updates float32
  batch statistics in float64 runs step by step). Decided once per program and shapes."""
  *args, values = jax.tree_util.tree_unflatten(*signature)
  if not fuse_epochs(Bound(program, None, values), *args):
    return False
  after = jax.eval_shape(program, *args, values)[0]
  types = [jax.tree_util.tree_map(lambda a: (a.shape, a.dtype), s) for s in (args[0], after)]
  return types[0] == types[1]


def _signature(*args) -> tuple[Any, tuple[jax.ShapeDtypeStruct, ...]]:
  """(treedef, the leaves' shapes and dtypes, weak types included) of `args`."""
  leaves, treedef = jax.tree_util.tree_flatten(jax.eval_shape(lambda *a: a, *args))
  return treedef, tuple(leaves)


def train(
    model: nn.Module,
    variables: Mapping[str, Any],
    data,
    config: TrainConfig,
    *,
    callbacks: Sequence[Callback] = (),
    resume: Optional[Mapping[str, Any]] = None,
    checkpoint: Optional[Callable[[int, TrainState, dict], Any]] = None,
) -> tuple[dict, dict]:
  """Trains the 'params' of `model` on `data` with the optimizer of `config`.

  Args:
    model: a Flax module of ecrn_jax (`apply(variables, x, train=True, rngs=...)` → (N, C)),
      or a `LinearizedModel`.
    variables: initial variables (model.init); 'batch_stats' is updated by the training-mode
      forward passes, the other collections besides 'params' pass through.
    data: (x, y): x (N, ...), y (N,) or (N, C) targets for 'mse', int labels (N,) or
      one-hot (N, C) for 'cross_entropy'.
    config: a `TrainConfig`.
    callbacks: each called as callback(epoch, step, variables) at epoch 0 (before training)
      and after every epoch; their time is reported apart from the training time.
    resume: continue a run from the end of an epoch: a mapping with 'epoch' (the last
      completed epoch, >= 0), 'params', 'opt_state' (structured as this config's optimizer
      state, or its leaves in order), 'step', 'history' (the history at that epoch, as
      `checkpoint` received it) and, for models with BatchNorm, 'rest' (state.rest: the
      collections other than 'params' at that epoch). The epoch-0 callbacks are not called
      again (restore the callbacks' own state first); batch orders and stochastic-depth keys
      depend only on the epoch and step, so a resumed run equals an uninterrupted one.
    checkpoint: called as checkpoint(epoch, state, history) at epoch 0 and after every
      epoch, after the callbacks (`state`: a `TrainState` over 'params', the other
      collections in state.rest; `history`: a copy); what it saves is what `resume` takes.
      Its time is counted with the callbacks.
  Returns:
    (variables, history): the final variables and a dict with 'epoch' (E,), 'loss' (E,)
    (mean batch loss of each epoch), 'step_loss' (S,) (the loss of each step, at the
    parameters before it), 'steps_per_epoch', 'train_seconds' and 'callback_seconds'.
  Raises:
    TrainingDiverged: a non-finite loss; it carries the step, the history so far and the
      last variables with a finite loss.

  >>> import jax, numpy as np, ecrn_jax
  >>> model = ecrn_jax.MLP(ecrn_jax.MLPConfig(hidden_widths=(8,), dtype='float32'))
  >>> x = np.linspace(-1.0, 1.0, 8, dtype=np.float32).reshape(4, 2)
  >>> y = np.array([1.0, -1.0, 1.0, -1.0], np.float32)
  >>> variables = model.init(jax.random.PRNGKey(0), x)
  >>> config = ecrn_jax.TrainConfig(learning_rate=0.1, epochs=3)
  >>> variables, history = ecrn_jax.train(model, variables, (x, y), config)
  >>> history['epoch'].tolist(), bool(history['loss'][-1] < history['loss'][0])
  ([1, 2, 3], True)
  """
  x, y = _check_inputs(variables, data, config)
  _check_targets(y, _num_outputs(model, variables, x), config.loss)
  num_steps = steps_per_epoch(config, x.shape[0])
  step_fn = make_train_step(model, config.loss)
  state = programs.initial_state(
      _canonical(step_fn.structure).apply,
      variables['params'],
      traced_optimizer(config),
      {k: v for k, v in variables.items() if k != 'params'},
      optimizer_hyperparams(config, num_steps),
  )
  shuffle_key, dropout_key = programs.seed_keys(config.seed)
  batch_size = config.batch_size if num_steps > 1 else None
  b = x.shape[0] if batch_size is None else batch_size
  xb, yb = (jax.ShapeDtypeStruct((b,) + a.shape[1:], a.dtype) for a in (x, y))
  fused = _fused(step_fn.program, _signature(state, xb, yb, dropout_key, step_fn.values))
  epoch_fn = None
  if fused and batch_size is not None:
    epoch_fn = programs.make_epoch(model, config.loss, batch_size)
  history = {
      'epoch': [],
      'loss': [],
      'step_loss': [],
      'steps_per_epoch': num_steps,
      'train_seconds': 0.0,
      'callback_seconds': 0.0,
  }

  if fused and not callbacks and checkpoint is None and resume is None and config.epochs:
    trained = _train_at_once(model, batch_size, state, (x, y), config, shuffle_key, dropout_key)
    if trained is not None:  # else a non-finite loss: epoch by epoch below, the same error
      state, losses, seconds = trained
      history.update(epoch=list(range(1, config.epochs + 1)), train_seconds=seconds)
      history['step_loss'] = [v for row in losses for v in row]
      history['loss'] = [float(np.mean(row)) for row in losses]
      return _variables_of(state), _snapshot(history)
  run_hooks = functools.partial(_run_hooks, callbacks, checkpoint, history)
  start_epoch = 0
  if resume is None:
    run_hooks(0, state)
  else:
    state, start_epoch = _resumed(state, resume, history, config.epochs)
  last_good = state  # the last state with a finite loss
  for epoch in range(start_epoch + 1, config.epochs + 1):
    state, last_good = _train_epoch(
        step_fn, state, last_good, x, y, config, epoch, shuffle_key, dropout_key, history, epoch_fn
    )
    run_hooks(epoch, state)
  return _variables_of(state), _snapshot(history)
