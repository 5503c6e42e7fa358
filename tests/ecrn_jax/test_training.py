# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Training: optax loops, determinism, divergence, and linearized dynamics (docs/spec.md §3 row 6)."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ecrn_jax
from ecrn_jax import ECRN, MLP, ECRNConfig, MLPConfig, TrainConfig, TrainingDiverged
from ecrn_jax import empirical_ntk, train
from ecrn_jax._src.infinite.deprecated import infinite_kernels  # the wrapper: same numbers
from ecrn_jax._src import epochs
from ecrn_jax._src import optimizers
from ecrn_jax._src import training
from utils import regression_data
from reference_ntk import gradient_flow_mse, jacobian_ntk, neural_tangents_ntk


def small_ecrn(width=32, depth=2, **kwargs):
  kwargs.setdefault('dtype', 'float64')
  return ECRN(ECRNConfig(width=width, depth=depth, fourier_features=8, fourier_scale=0.3, **kwargs))


def outputs_callback(model, x, store):
  apply = jax.jit(lambda v: model.apply(v, x))

  def callback(epoch, step, variables):
    store.append(np.asarray(apply(variables))[:, 0])

  return callback


# ---------------------------------------------------------------------------
# Configuration, losses, schedule.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    'changes, field',
    [
        ({'optimizer': 'rmsprop'}, 'optimizer'),
        ({'learning_rate': 0.0}, 'learning_rate'),
        ({'learning_rate': float('nan')}, 'learning_rate'),
        ({'momentum': 1.0}, 'momentum'),
        ({'weight_decay': -1e-3}, 'weight_decay'),
        ({'schedule': 'step'}, 'schedule'),
        ({'epochs': -1}, 'epochs'),
        ({'epochs': 2, 'warmup_epochs': 3}, 'warmup_epochs'),
        ({'batch_size': 0}, 'batch_size'),
        ({'batch_size': 2.5}, 'batch_size'),
        ({'loss': 'l1'}, 'loss'),
        ({'seed': -1}, 'seed'),
        ({'seed': True}, 'seed'),
    ],
)
def test_train_config_validation_names_the_field(changes, field):
  with pytest.raises(ValueError, match=field):
    TrainConfig(**changes)


@pytest.mark.x64
def test_losses_match_numpy(rng):
  out = rng.standard_normal((6, 3))
  y = rng.standard_normal((6, 3))
  np.testing.assert_allclose(
      ecrn_jax.training.mse_loss(jnp.asarray(out), jnp.asarray(y)),
      0.5 * np.mean(np.sum((out - y) ** 2, axis=1)),
      rtol=1e-13,
  )
  labels = rng.integers(0, 3, 6)
  log_softmax = out - np.log(np.sum(np.exp(out), axis=1, keepdims=True))
  expected = -np.mean(log_softmax[np.arange(6), labels])
  np.testing.assert_allclose(
      ecrn_jax.training.cross_entropy_loss(jnp.asarray(out), jnp.asarray(labels)),
      expected,
      rtol=1e-13,
  )
  np.testing.assert_allclose(
      ecrn_jax.training.cross_entropy_loss(jnp.asarray(out), jnp.asarray(np.eye(3)[labels])),
      expected,
      rtol=1e-13,
  )


def test_learning_rate_schedule_warmup_then_cosine():
  config = TrainConfig(
      learning_rate=0.3, schedule='cosine', warmup_epochs=2, epochs=10, batch_size=4
  )
  schedule = ecrn_jax.training.learning_rate_schedule(config, num_steps_per_epoch=5)
  steps = np.arange(51)
  warm, total = 10, 50
  expected = np.where(
      steps < warm,
      0.3 * steps / warm,
      0.3 * 0.5 * (1 + np.cos(np.pi * np.clip(steps - warm, 0, total - warm) / (total - warm))),
  )
  np.testing.assert_allclose([float(schedule(s)) for s in steps], expected, atol=1e-7)


# ---------------------------------------------------------------------------
# The loop.
# ---------------------------------------------------------------------------


@pytest.mark.x64
def test_full_batch_sgd_is_gradient_descent_on_half_mean_squared_error():
  x, y = regression_data(n=16)
  model = small_ecrn()
  variables = model.init(jax.random.PRNGKey(0), x)
  eta = 0.3

  def loss(params):  # ½·mean over the N examples, written out independently
    out = model.apply({'params': params, 'fourier': variables['fourier']}, x)[:, 0]
    return 0.5 * jnp.mean((out - y) ** 2)

  expected = variables['params']
  losses = []
  for _ in range(3):
    value, grads = jax.value_and_grad(loss)(expected)
    losses.append(float(value))
    expected = jax.tree_util.tree_map(lambda p, g: p - eta * g, expected, grads)
  final, history = train(
      model, variables, (x, y), TrainConfig(optimizer='sgd', learning_rate=eta, epochs=3)
  )
  for a, b in zip(jax.tree_util.tree_leaves(final['params']), jax.tree_util.tree_leaves(expected)):
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
  np.testing.assert_allclose(history['step_loss'], losses, rtol=1e-12)
  np.testing.assert_array_equal(history['loss'], history['step_loss'])
  assert history['steps_per_epoch'] == 1
  # The fixed Fourier matrix passes through untouched.
  np.testing.assert_array_equal(
      final['fourier']['fourier_features']['B'], variables['fourier']['fourier_features']['B']
  )
  assert set(final) == set(variables)


@pytest.mark.x64
def test_minibatch_epoch_visits_every_example_once():
  # With a negligible step, the mean of the equal-sized batch losses of one epoch is the
  # full-batch loss only if the batches partition the data.
  x, y = regression_data(n=16)
  model = small_ecrn()
  variables = model.init(jax.random.PRNGKey(1), x)
  out = np.asarray(model.apply(variables, x))[:, 0]
  full = 0.5 * np.mean((out - y) ** 2)
  _, history = train(
      model, variables, (x, y), TrainConfig(learning_rate=1e-12, epochs=2, batch_size=4)
  )
  assert history['steps_per_epoch'] == 4 and len(history['step_loss']) == 8
  np.testing.assert_allclose(history['loss'], [full, full], rtol=1e-9)
  assert not np.allclose(history['step_loss'][:4], history['step_loss'][4:])  # reshuffled


@pytest.mark.x64
def test_stochastic_depth_key_is_fold_in_of_the_step():
  x, y = regression_data(n=16)
  model = small_ecrn(depth=4, drop_rate=0.5)
  variables = model.init(jax.random.PRNGKey(0), x)
  config = TrainConfig(learning_rate=0.1, epochs=3, seed=7)
  _, history = train(model, variables, (x, y), config)
  # Step 0's loss is at the initial parameters, under the drop mask of fold_in(key, 0).
  _, dropout_key = jax.random.split(jax.random.PRNGKey(7))
  out = model.apply(variables, x, train=True, rngs={'dropout': jax.random.fold_in(dropout_key, 0)})[
      :, 0
  ]
  np.testing.assert_allclose(history['step_loss'][0], 0.5 * np.mean((out - y) ** 2), rtol=1e-12)


@pytest.mark.parametrize(
    'changes',
    [
        dict(optimizer='momentum', learning_rate=0.05, batch_size=8),
        dict(optimizer='adam', learning_rate=3e-3, batch_size=8),
        dict(
            optimizer='adam',
            learning_rate=3e-3,
            weight_decay=1e-2,
            batch_size=5,
            schedule='cosine',
            warmup_epochs=2,
        ),
        dict(optimizer='sgd', learning_rate=0.5, weight_decay=1e-3, schedule='cosine'),
    ],
)
@pytest.mark.x64
def test_optimizers_reduce_the_loss(changes):
  x, y = regression_data(n=40)
  model = small_ecrn(width=64)
  variables = model.init(jax.random.PRNGKey(0), x)
  _, history = train(model, variables, (x, y), TrainConfig(epochs=15, **changes))
  assert np.all(np.isfinite(history['step_loss']))
  assert history['loss'][-1] < 0.5 * history['loss'][0]


@pytest.mark.x64
def test_weight_decay_is_applied():
  # SGD with L2: θ₁ = θ₀ − η(∇L + λθ₀).
  x, y = regression_data(n=16)
  model = small_ecrn()
  variables = model.init(jax.random.PRNGKey(0), x)
  eta, wd = 0.1, 0.01
  plain, _ = train(model, variables, (x, y), TrainConfig(learning_rate=eta, epochs=1))
  decayed, _ = train(
      model, variables, (x, y), TrainConfig(learning_rate=eta, weight_decay=wd, epochs=1)
  )
  for a, b, p0 in zip(
      *(jax.tree_util.tree_leaves(v['params']) for v in (decayed, plain, variables))
  ):
    np.testing.assert_allclose(a, b - eta * wd * p0, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    'model_fn, y_kind',
    [
        (lambda: MLP(MLPConfig(hidden_widths=(64, 64), out_dim=3, dtype='float64')), 'labels'),
        (lambda: small_ecrn(width=64, out_dim=3), 'one_hot'),
    ],
)
@pytest.mark.x64
def test_cross_entropy_classification(model_fn, y_kind):
  rng = np.random.default_rng(0)
  centers = 3.0 * rng.standard_normal((3, 4))
  labels = rng.integers(0, 3, 60)
  x = centers[labels] + rng.standard_normal((60, 4))
  x = (x - x.mean(0)) / x.std(0)
  y = labels if y_kind == 'labels' else np.eye(3)[labels]
  model = model_fn()
  variables = model.init(jax.random.PRNGKey(0), x)
  final, history = train(
      model,
      variables,
      (x, y),
      TrainConfig(
          optimizer='adam', learning_rate=1e-2, epochs=20, batch_size=20, loss='cross_entropy'
      ),
  )
  assert history['loss'][-1] < 0.5 * history['loss'][0]
  accuracy = np.mean(np.argmax(np.asarray(model.apply(final, x)), axis=1) == labels)
  assert accuracy > 0.8


class BatchNormNet(nn.Module):
  """Dense → BatchNorm → ReLU → Dense: a model with a 'batch_stats' collection."""

  @nn.compact
  def __call__(self, x, train=False):
    h = nn.Dense(8, param_dtype=jnp.float64)(x)
    h = nn.BatchNorm(use_running_average=not train, momentum=0.9, param_dtype=jnp.float64)(h)
    return nn.Dense(1, param_dtype=jnp.float64)(nn.relu(h))


@pytest.mark.x64
def test_make_train_step_updates_batch_stats_as_train_does():
  x, y = regression_data(n=16)
  model = BatchNormNet()
  variables = model.init(jax.random.PRNGKey(0), x)
  config = TrainConfig(optimizer='momentum', learning_rate=0.05, epochs=1)
  step = ecrn_jax.training.make_train_step(model, 'mse')
  assert step is ecrn_jax.training.make_train_step(model, 'mse')  # cached: compiled once
  state0 = ecrn_jax.training.TrainState.create(
      apply_fn=model.apply,
      params=variables['params'],
      tx=ecrn_jax.training.make_optimizer(config, 1),
      rest={'batch_stats': variables['batch_stats']},
  )
  _, dropout_key = jax.random.split(jax.random.PRNGKey(config.seed))
  state, loss = step(state0, x, y, dropout_key)
  # The loss is at the parameters before the step, in training mode (batch statistics) ...
  out, updates = model.apply(variables, x, train=True, mutable=['batch_stats'])
  np.testing.assert_allclose(loss, 0.5 * np.mean((np.asarray(out)[:, 0] - y) ** 2), rtol=1e-12)
  # ... whose running averages the step keeps, as `train` does.
  for a, b in zip(*map(jax.tree_util.tree_leaves, (state.rest, updates))):
    np.testing.assert_allclose(a, b, rtol=1e-13)
  final, history = train(model, variables, (x, y), config)
  np.testing.assert_array_equal(history['step_loss'], [loss])
  for a, b in zip(*map(jax.tree_util.tree_leaves, ({'params': state.params, **state.rest}, final))):
    np.testing.assert_array_equal(a, b)


@pytest.mark.x64
def test_same_seed_same_history():
  x, y = regression_data(n=24)
  model = small_ecrn(depth=3, drop_rate=0.2)
  variables = model.init(jax.random.PRNGKey(0), x)
  config = TrainConfig(
      optimizer='adam',
      learning_rate=1e-2,
      weight_decay=1e-3,
      schedule='cosine',
      warmup_epochs=1,
      epochs=4,
      batch_size=5,
      seed=3,
  )
  runs = [train(model, variables, (x, y), config) for _ in range(2)]
  (v1, h1), (v2, h2) = runs
  for name in ('epoch', 'loss', 'step_loss'):
    np.testing.assert_array_equal(h1[name], h2[name])
  for a, b in zip(jax.tree_util.tree_leaves(v1), jax.tree_util.tree_leaves(v2)):
    np.testing.assert_array_equal(a, b)
  _, h3 = train(model, variables, (x, y), config.replace(seed=4))
  assert not np.array_equal(h1['step_loss'], h3['step_loss'])


def _initial_state(model, variables, config, steps_per_epoch):
  """The TrainState that `train` starts from, for loops written out step by step."""
  return training.TrainState.create(
      apply_fn=model.apply,
      params=variables['params'],
      tx=training.make_optimizer(config, steps_per_epoch),
      rest={k: v for k, v in variables.items() if k != 'params'},
  )


def _step_by_step(model, variables, x, y, config, epochs):
  """make_train_step over the batches `train` draws, until a non-finite loss: (the losses, the
  final state, the last state with a finite loss)."""
  step = ecrn_jax.training.make_train_step(model, config.loss)
  state = _initial_state(model, variables, config, training.steps_per_epoch(config, len(x)))
  shuffle_key, dropout_key = jax.random.split(jax.random.PRNGKey(config.seed))
  losses, last_good = [], state
  for epoch in range(1, epochs + 1):
    for xb, yb in training._batches(x, y, config, epoch, shuffle_key):
      new_state, value = step(state, xb, yb, dropout_key)
      if not math.isfinite(float(value)):
        return losses, state, last_good
      losses.append(float(value))
      last_good, state = state, new_state
  return losses, state, last_good


@pytest.mark.x64
def test_fused_minibatch_epochs_equal_the_step_by_step_loop():
  # N = 13, B = 4: three full batches in one compiled loop, then the last example alone; the
  # same steps as make_train_step applied batch by batch in the epoch's drawn order.
  x, y = regression_data(n=13)
  model = small_ecrn(drop_rate=0.2)
  variables = model.init(jax.random.PRNGKey(2), x)
  config = TrainConfig(optimizer='adam', learning_rate=1e-2, epochs=3, batch_size=4, seed=5)
  final, history = train(model, variables, (x, y), config)
  losses, state, _ = _step_by_step(model, variables, x, y, config, config.epochs)
  assert len(history['step_loss']) == 12
  np.testing.assert_allclose(history['step_loss'], losses, rtol=1e-12)
  for a, b in zip(
      jax.tree_util.tree_leaves(final['params']), jax.tree_util.tree_leaves(state.params)
  ):
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.x64
def test_a_batchnorm_model_runs_fused_and_equals_the_step_by_step_loop():
  # The ResNet-18 stand-in (BatchNorm, no convolution): on the fused path (its step is small),
  # 'batch_stats' carried through the epoch's program as make_train_step updates them.
  from experiments import resnet  # pylint: disable=g-import-not-at-top

  x, y = regression_data(n=13)
  model = resnet.ResidualMLP18(out_dim=1, widths=(4, 4, 4, 4), dtype='float64')
  variables = model.init(jax.random.PRNGKey(2), x)
  config = TrainConfig(optimizer='momentum', learning_rate=1e-2, epochs=2, batch_size=4, seed=5)
  state = _initial_state(model, variables, config, 4)
  step = training.make_train_step(model, config.loss)
  assert training.fuse_epochs(step, state, x[:4], y[:4], jax.random.PRNGKey(0))
  programs = epochs.make_epoch(model, 'mse', 4), epochs.make_trial(model, 'mse', 4, 2)
  sizes = [p._cache_size() for p in programs]  # pylint: disable=protected-access
  final, history = train(model, variables, (x, y), config, callbacks=[lambda *_: None])
  whole, whole_history = train(model, variables, (x, y), config)
  # Epoch by epoch (a callback), then every epoch in one program (none).
  assert all(p._cache_size() > s for p, s in zip(programs, sizes))  # pylint: disable=protected-access
  np.testing.assert_array_equal(whole_history['step_loss'], history['step_loss'])
  for a, b in zip(jax.tree_util.tree_leaves(whole), jax.tree_util.tree_leaves(final)):
    np.testing.assert_array_equal(a, b)
  losses, reference, _ = _step_by_step(model, variables, x, y, config, config.epochs)
  np.testing.assert_allclose(history['step_loss'], losses, rtol=1e-12)
  expected = {'params': reference.params, **reference.rest}
  assert not np.allclose(
      final['batch_stats']['stem_bn']['mean'], variables['batch_stats']['stem_bn']['mean']
  )
  for a, b in zip(jax.tree_util.tree_leaves(final), jax.tree_util.tree_leaves(expected)):
    np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-14)


def _constant_optimizer(config, steps_per_epoch):
  """The optax transformation `train` used before its values were traced: constants, weight
  decay only when > 0 (the reference of the traced optimizer)."""
  if config.schedule == 'constant' and config.warmup_epochs == 0:
    lr = config.learning_rate
  else:
    lr = training.learning_rate_schedule(config, steps_per_epoch)
  wd = config.weight_decay
  if config.optimizer == 'adam':
    return optax.adamw(lr, weight_decay=wd) if wd > 0 else optax.adam(lr)
  sgd = optax.sgd(lr, momentum=config.momentum if config.optimizer == 'momentum' else None)
  return optax.chain(optax.add_decayed_weights(wd), sgd) if wd > 0 else sgd


@pytest.mark.parametrize(
    'changes',
    [
        {'warmup_epochs': 2},
        {'schedule': 'cosine', 'warmup_epochs': 2},
        {'schedule': 'cosine'},
    ],
)
def test_traced_schedule_equals_optax_to_round_off(changes):
  # float32 (x64 off) and float64: the weakly typed values promote as the Python constants did.
  config = TrainConfig(learning_rate=0.3, epochs=7, **changes)
  schedule = training.learning_rate_schedule(config, 3)
  # pylint: disable=protected-access
  _, kind, warmup = optimizers._optimizer_kind(config)
  traced = jax.jit(lambda s, v: optimizers._schedule(kind, warmup, v)(s))
  # pylint: enable=protected-access
  values = optimizers.optimizer_hyperparams(config, 3)
  steps = jnp.arange(25, dtype=jnp.int32)
  expected = jax.jit(schedule)(steps)
  # XLA folds the constants' cosine argument otherwise: η agrees to its last bit or so.
  atol = 2 * np.finfo(expected.dtype).eps * config.learning_rate
  np.testing.assert_allclose(traced(steps, values), expected, rtol=0, atol=atol)


@pytest.mark.x64
@pytest.mark.parametrize('batch_size', [None, 4])
@pytest.mark.parametrize(
    'changes',
    [
        {'optimizer': 'sgd', 'learning_rate': 0.05},
        {'optimizer': 'sgd', 'learning_rate': 0.05, 'weight_decay': 1e-2, 'warmup_epochs': 1},
        {'optimizer': 'momentum', 'learning_rate': 0.02, 'momentum': 0.8, 'weight_decay': 1e-3},
        {'optimizer': 'momentum', 'learning_rate': 0.02, 'schedule': 'cosine'},
        {'optimizer': 'adam', 'learning_rate': 1e-2, 'schedule': 'cosine', 'warmup_epochs': 1},
        {'optimizer': 'adam', 'learning_rate': 1e-2, 'weight_decay': 1e-3},
    ],
)
def test_traced_hyperparameters_equal_the_constant_optimizer(changes, batch_size):
  x, y = regression_data(n=13)
  model = small_ecrn()
  variables = model.init(jax.random.PRNGKey(2), x)
  config = TrainConfig(epochs=3, batch_size=batch_size, seed=5, **changes)
  final, history = train(model, variables, (x, y), config)
  steps = training.steps_per_epoch(config, len(x))
  step = training.make_train_step(model, config.loss)
  state = training.TrainState.create(
      apply_fn=model.apply,
      params=variables['params'],
      tx=_constant_optimizer(config, steps),
      rest={k: v for k, v in variables.items() if k != 'params'},
  )
  shuffle_key, dropout_key = jax.random.split(jax.random.PRNGKey(config.seed))
  losses = []
  for epoch in range(1, config.epochs + 1):
    # pylint: disable-next=protected-access
    for xb, yb in training._batches(x, y, config, epoch, shuffle_key):
      state, value = step(state, xb, yb, dropout_key)
      losses.append(float(value))
  np.testing.assert_allclose(history['step_loss'], losses, rtol=1e-13, atol=0)
  for a, b in zip(
      jax.tree_util.tree_leaves(final['params']), jax.tree_util.tree_leaves(state.params)
  ):
    np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize('optimizer', ['momentum', 'adam'])
def test_one_compilation_serves_every_learning_rate_weight_decay_and_momentum(optimizer):
  # A width no other test uses: the cached step and epoch programs are this test's alone.
  # N = 18, B = 8: two full batches and the last two examples; the epochs in one program.
  x, y = regression_data(n=18)
  x, y = x.astype(np.float32), y.astype(np.float32)
  model = small_ecrn(width=19, dtype='float32')
  variables = model.init(jax.random.PRNGKey(0), x)
  # Weight decay 0 among them: the decay is always in the program (0·θ at 0).
  config = TrainConfig(
      optimizer=optimizer,
      learning_rate=0.01,
      weight_decay=1e-4,
      schedule='cosine',
      epochs=2,
      batch_size=8,
  )
  train(model, variables, (x, y), config)
  step = training.make_train_step(model, 'mse')
  epoch = epochs.make_trial(model, 'mse', 8, 2)  # 2 and 3 epochs: one program (a loop bound)
  sizes = step._cache_size(), epoch._cache_size()  # pylint: disable=protected-access
  assert sizes[1] >= 1  # the run in one program (the step is lowered for the cost model only)
  compiled = []

  def listener(event, duration, **kwargs):
    del duration, kwargs
    if event == '/jax/core/compile/backend_compile_duration':
      compiled.append(event)

  # A hit in the tests' persistent compilation cache (tests/conftest.py) compiles nothing: it is
  # off here, so that a program traced and lowered again is counted whatever the cache holds.
  cache = jax.config.jax_enable_compilation_cache
  jax.config.update('jax_enable_compilation_cache', False)
  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    for changes in (
        {'learning_rate': 0.02},
        {'weight_decay': 1e-3},
        {'weight_decay': 0.0},
        {'momentum': 0.5},
        {'epochs': 3, 'learning_rate': 3e-3, 'seed': 1},
    ):
      # An equal model built anew: its programs are the first one's.
      train(small_ecrn(width=19, dtype='float32'), variables, (x, y), config.replace(**changes))
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)
    jax.config.update('jax_enable_compilation_cache', cache)
  assert (step._cache_size(), epoch._cache_size()) == sizes  # pylint: disable=protected-access
  assert not compiled


@pytest.mark.x64
def test_epochs_are_fused_only_for_small_steps_without_convolutions_on_cpu(monkeypatch):
  from experiments import resnet  # pylint: disable=g-import-not-at-top

  def fused(model, x, y, loss):
    variables = model.init({'params': jax.random.PRNGKey(0), 'dropout': jax.random.PRNGKey(1)}, x)
    config = TrainConfig(epochs=1, batch_size=4, loss=loss)
    state = _initial_state(model, variables, config, 2)
    step = ecrn_jax.training.make_train_step(model, loss)
    return training.fuse_epochs(step, state, x[:4], y[:4], jax.random.PRNGKey(2))

  x, y = regression_data(n=8)
  assert fused(small_ecrn(), x, y, 'mse')  # dispatch-bound: one loop per epoch
  images = jax.random.normal(jax.random.PRNGKey(3), (8, 8 * 8 * 3))
  convolutional = resnet.ResNet18(num_classes=2, image_shape=(8, 8, 3), width=2)
  labels = jnp.arange(8) % 2
  assert fused(convolutional, images, labels, 'cross_entropy') == (jax.default_backend() != 'cpu')
  monkeypatch.setattr(epochs, 'FUSE_MAX_FLOPS', 0.0)  # compute-bound: step by step
  assert not fused(small_ecrn(), x, y, 'mse')


# ---------------------------------------------------------------------------
# Bad input.
# ---------------------------------------------------------------------------


@pytest.mark.filterwarnings('ignore::RuntimeWarning')
@pytest.mark.parametrize('batch_size', [None, 5], ids=['full_batch', 'fused_minibatches'])
@pytest.mark.x64
def test_non_finite_loss_stops_training_and_keeps_what_was_done(batch_size):
  # With minibatches an epoch runs as one compiled loop; a non-finite loss inside it replays
  # the epoch step by step, so the error names the same step either way.
  x, y = regression_data(n=16)
  model = small_ecrn()
  variables = model.init(jax.random.PRNGKey(0), x)
  epochs_seen = []
  with pytest.raises(TrainingDiverged, match=r'step \d+') as info:
    train(
        model,
        variables,
        (x, y),
        TrainConfig(learning_rate=1e40, epochs=50, batch_size=batch_size),
        callbacks=[lambda e, s, v: epochs_seen.append(e)],
    )
  err = info.value
  assert isinstance(err, ValueError)
  assert 0 < err.step < 50 and f'step {err.step}' in str(err)
  assert not math.isfinite(err.loss)
  history = err.history
  assert len(history['step_loss']) == err.step and np.all(np.isfinite(history['step_loss']))
  assert epochs_seen == list(range(err.epoch))
  # The carried variables are the last ones with a finite loss: step err.step − 1.
  leaves = jax.tree_util.tree_leaves(err.variables)
  assert all(np.all(np.isfinite(leaf)) for leaf in leaves)
  if batch_size is None:
    out = np.asarray(model.apply(err.variables, x))[:, 0]
    np.testing.assert_allclose(0.5 * np.mean((out - y) ** 2), history['step_loss'][-1], rtol=1e-10)
  else:  # the step-by-step loop diverges at the same step, with the same last finite state
    config = TrainConfig(learning_rate=1e40, epochs=50, batch_size=batch_size)
    losses, _, last_good = _step_by_step(model, variables, x, y, config, err.epoch)
    assert len(losses) == err.step
    np.testing.assert_allclose(history['step_loss'], losses, rtol=1e-12)
    for a, b in zip(
        jax.tree_util.tree_leaves(err.variables['params']),
        jax.tree_util.tree_leaves(last_good.params),
    ):
      np.testing.assert_allclose(a, b, rtol=1e-12)
  assert history['epoch'].tolist() == list(range(1, err.epoch))
  assert history['train_seconds'] > 0


@pytest.mark.filterwarnings('ignore::RuntimeWarning')
@pytest.mark.parametrize('batch_size', [None, 5], ids=['full_batch', 'minibatches'])
@pytest.mark.x64
def test_a_run_in_one_program_diverges_as_the_epoch_by_epoch_run(batch_size):
  # Without hooks every epoch runs in one program; a non-finite loss reruns the epochs one by
  # one, so the error, its step, history and variables are those of a run with a callback.
  x, y = regression_data(n=16)
  model = small_ecrn()
  variables = model.init(jax.random.PRNGKey(0), x)
  config = TrainConfig(learning_rate=1e40, epochs=50, batch_size=batch_size)
  errors = []
  for callbacks in ([], [lambda *_: None]):
    with pytest.raises(TrainingDiverged) as info:
      train(model, variables, (x, y), config, callbacks=callbacks)
    errors.append(info.value)
  whole, by_epoch = errors
  assert (whole.step, whole.epoch, str(whole)) == (by_epoch.step, by_epoch.epoch, str(by_epoch))
  np.testing.assert_array_equal(whole.history['step_loss'], by_epoch.history['step_loss'])
  for a, b in zip(*map(jax.tree_util.tree_leaves, (whole.variables, by_epoch.variables))):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    'data, config, match',
    [
        (regression_data(n=8), TrainConfig(batch_size=9), 'batch_size'),
        ((np.zeros((8, 4)), np.zeros(7)), TrainConfig(), 'same number of examples'),
        ((np.zeros(8), np.zeros(8)), TrainConfig(), 'batched'),
        ((np.zeros((8, 4)), np.zeros(8)), TrainConfig(loss='cross_entropy'), 'integer labels'),
        ((np.zeros((0, 4)), np.zeros(0)), TrainConfig(), 'empty'),
        (
            (np.zeros((8, 4)), np.array([0, 0, 1, -2, 0, 0, 1, 0])),
            TrainConfig(loss='cross_entropy'),
            r'labels must lie in \[0, 1\) .* 2 distinct value\(s\) outside: \[-2, 1\]',
        ),
        ((np.zeros((8, 4)), np.zeros((8, 3))), TrainConfig(), '3 column.* 1 outputs'),
        ((np.zeros((8, 5)), np.zeros(8)), TrainConfig(), 'another number of features'),
        (
            (np.where(np.eye(8, 4) > 0, np.nan, 0.0), np.zeros(8)),
            TrainConfig(),
            r'x has 4 NaN or inf entries \(of 32\)',
        ),
        ((np.zeros((8, 4)), np.array([0.0] * 7 + [np.inf])), TrainConfig(), 'y has 1 NaN or inf'),
    ],
)
@pytest.mark.x64
def test_bad_data_raises(data, config, match):
  model = small_ecrn()
  variables = model.init(jax.random.PRNGKey(0), np.zeros((1, 4)))
  with pytest.raises(ValueError, match=match):
    train(model, variables, data, config)


# ---------------------------------------------------------------------------
# Linearized dynamics (docs/spec.md §3 row 6).
# ---------------------------------------------------------------------------


def _moved_variables(variables, scale=0.1):
  return {
      'params': jax.tree_util.tree_map(
          lambda p: p + scale * jax.random.normal(jax.random.PRNGKey(1), p.shape, p.dtype),
          variables['params'],
      ),
      'fourier': variables['fourier'],
  }


@pytest.mark.x64
def test_linearize_is_the_first_order_taylor_expansion():
  x, _ = regression_data(n=16)
  model = small_ecrn(width=64)
  variables = model.init(jax.random.PRNGKey(0), x)
  moved = _moved_variables(variables)
  lin = ecrn_jax.training.linearize(model, variables)
  f = lambda p: model.apply({'params': p, 'fourier': variables['fourier']}, x)
  delta = jax.tree_util.tree_map(lambda a, b: a - b, moved['params'], variables['params'])
  f0, df = jax.jvp(f, (variables['params'],), (delta,))  # f(θ₀) + J(θ₀)(θ − θ₀)
  np.testing.assert_allclose(lin.apply(moved, x), f0 + df, rtol=1e-12, atol=1e-14)
  np.testing.assert_allclose(lin.apply(variables, x), model.apply(variables, x), rtol=1e-14)
  # Affine in θ (the network is not): half the step, half the change.
  half = {
      'params': jax.tree_util.tree_map(lambda p, d: p + 0.5 * d, variables['params'], delta),
      'fourier': variables['fourier'],
  }
  np.testing.assert_allclose(lin.apply(half, x), f0 + 0.5 * df, rtol=1e-12, atol=1e-14)
  assert np.max(np.abs(model.apply(moved, x) - (f0 + df))) > 1e-6 * np.max(np.abs(df))
  # Its NTK is Θ_{θ₀} everywhere.
  np.testing.assert_allclose(
      empirical_ntk(lin, moved, x, implementation='generic'),
      jacobian_ntk(model, variables, x),
      rtol=1e-10,
  )


@pytest.mark.reference
def test_linearize_matches_neural_tangents(nt):
  x, _ = regression_data(n=16)
  model = small_ecrn(width=64)
  variables = model.init(jax.random.PRNGKey(0), x)
  moved = _moved_variables(variables)
  lin = ecrn_jax.training.linearize(model, variables)
  f = lambda p, xx: model.apply({'params': p, 'fourier': variables['fourier']}, xx)
  expected = nt.linearize(f, variables['params'])(moved['params'], x)
  np.testing.assert_allclose(lin.apply(moved, x), expected, rtol=1e-12)
  np.testing.assert_allclose(lin.apply(variables, x), model.apply(variables, x), rtol=1e-14)
  # Its NTK is Θ_{θ₀} everywhere; the main lane's Jacobian reference is that kernel too.
  kernel = neural_tangents_ntk(nt, model, variables, x)
  np.testing.assert_allclose(
      empirical_ntk(lin, moved, x, implementation='generic'), kernel, rtol=1e-10
  )
  np.testing.assert_allclose(jacobian_ntk(model, variables, x), kernel, rtol=1e-10)


@pytest.mark.reference
def test_gradient_flow_closed_form_matches_neural_tangents(nt):
  """The main lane's continuous-time reference (eigendecomposition) is
  nt.predict.gradient_descent_mse with learning_rate = η (C = 1: nt's y.size = N)."""
  x, y = regression_data(n=16)
  n = len(y)
  model = small_ecrn(width=32)
  variables = model.init(jax.random.PRNGKey(0), x)
  kernel = neural_tangents_ntk(nt, model, variables, x)
  f0 = np.asarray(model.apply(variables, x))[:, 0]
  eta = 0.1 * n / np.linalg.eigvalsh(kernel)[-1]
  t = np.arange(0, 121, 7)
  predict = nt.predict.gradient_descent_mse(kernel, y[:, None], learning_rate=eta)
  expected = np.asarray(predict(t, f0[:, None]))[..., 0]
  ours = gradient_flow_mse(kernel, y, t=t, learning_rate=eta, f0_train=f0)
  assert ours.shape == expected.shape == (len(t), n)
  np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-10 * np.abs(f0 - y).max())
  assert np.abs(expected[-1] - expected[0]).max() > 0.1 * np.abs(f0 - y).max()  # it moves


def _linearized_run(model, variables, x, y, eta, steps):
  lin = ecrn_jax.training.linearize(model, variables)
  outs = []
  train(
      lin,
      variables,
      (x, y),
      TrainConfig(learning_rate=eta, epochs=steps),
      callbacks=[outputs_callback(lin, x, outs)],
  )
  return np.stack(outs)  # (steps + 1, N)


@pytest.mark.x64
def test_linearized_network_follows_gradient_descent_mse_with_its_own_kernel():
  """GD on f_lin is exactly the discrete linear flow of Θ_0, and tends to the continuous-time
  gradient flow f_t = y + exp(−ηtΘ_0/N)(f_0 − y) (½·mean loss; nt's `gradient_descent_mse`,
  checked in the reference lane) as η → 0."""
  x, y = regression_data(n=16)
  n = len(y)
  model = small_ecrn(width=128)
  variables = model.init(jax.random.PRNGKey(0), x)
  kernel = jacobian_ntk(model, variables, x)
  lam_max = np.linalg.eigvalsh(kernel)[-1]
  eta = 0.1 * n / lam_max
  steps = 60
  gaps = []
  for refine in (1, 2):
    outs = _linearized_run(model, variables, x, y, eta / refine, steps * refine)
    f0 = outs[0]
    t = np.arange(steps * refine + 1)
    # Exact discrete dynamics r_t = (I − ηΘ_0/N)^t r_0, by eigendecomposition.
    w, v = np.linalg.eigh(kernel)
    discrete = y + ((1 - eta / refine * w / n)[None] ** t[:, None] * ((f0 - y) @ v)[None]) @ v.T
    np.testing.assert_allclose(outs, discrete, rtol=0, atol=1e-10 * np.abs(f0 - y).max())
    continuous = gradient_flow_mse(kernel, y, t=t, learning_rate=eta / refine, f0_train=f0)
    gaps.append(np.max(np.linalg.norm(outs - continuous, axis=1)) / np.linalg.norm(f0 - y))
  print(
      f'\nlinearized GD vs gradient flow with Θ_0: relative gap '
      f'{gaps[0]:.3e} at η, {gaps[1]:.3e} at η/2 (ratio {gaps[1] / gaps[0]:.3f}; '
      'first order in η → 0.5)'
  )
  assert 0.4 < gaps[1] / gaps[0] < 0.6
  assert gaps[1] < 5e-3


@pytest.mark.slow
@pytest.mark.x64
def test_wide_network_tracks_infinite_width_gradient_descent():
  """The paper's central claim, measured: a wide ECRN under full-batch GD on MSE follows
  gradient flow with Θ∞ (the closed form nt.predict.gradient_descent_mse computes), and its
  kernel moves less as the width grows."""
  x, y = regression_data(n=16)
  n = len(y)
  widths, seeds, steps = (64, 256, 1024), (0, 1), 200
  discrepancy = np.zeros((len(widths), len(seeds)))
  kernel_change = np.zeros_like(discrepancy)
  for i, width in enumerate(widths):
    for j, seed in enumerate(seeds):
      model = small_ecrn(width=width)
      variables = model.init(jax.random.PRNGKey(seed), x)
      theta_inf = np.asarray(infinite_kernels(model.config, x, variables=variables).ntk)
      eta = 0.02 * n / np.linalg.eigvalsh(theta_inf)[-1]
      outs = []
      final, _ = train(
          model,
          variables,
          (x, y),
          TrainConfig(learning_rate=eta, epochs=steps),
          callbacks=[outputs_callback(model, x, outs)],
      )
      outs = np.stack(outs)
      expected = gradient_flow_mse(
          theta_inf, y, t=np.arange(steps + 1), learning_rate=eta, f0_train=outs[0]
      )
      discrepancy[i, j] = np.max(np.linalg.norm(outs - expected, axis=1)) / np.linalg.norm(
          outs[0] - y
      )
      k0 = np.asarray(empirical_ntk(model, variables, x))
      kt = np.asarray(empirical_ntk(model, final, x))
      kernel_change[i, j] = np.linalg.norm(kt - k0) / np.linalg.norm(k0)
  mean_disc, mean_change = discrepancy.mean(1), kernel_change.mean(1)
  slope_disc = np.polyfit(np.log(widths), np.log(mean_disc), 1)[0]
  slope_change = np.polyfit(np.log(widths), np.log(mean_change), 1)[0]
  print(
      f'\nwide ECRN (depth 2) vs gradient flow with Θ∞, N={n}, {steps} GD '
      f'steps, η = 0.02·N/λ_max(Θ∞), mean over seeds {seeds}:'
  )
  print(f'{"width":>6} {"max_t ‖f_t − f_t^∞‖/‖f_0 − y‖":>32} {"‖Θ_T − Θ_0‖_F/‖Θ_0‖_F":>24}')
  for w, d, c, dd, cc in zip(widths, mean_disc, mean_change, discrepancy, kernel_change):
    print(f'{w:>6} {d:>32.4g} {c:>24.4g}   per seed {np.round(dd, 4)} {np.round(cc, 5)}')
  print(
      f'fitted slopes: discrepancy ∝ width^{slope_disc:.2f}, '
      f'kernel change ∝ width^{slope_change:.2f}'
  )
  assert np.all(np.diff(mean_disc) < 0), mean_disc
  assert np.all(np.diff(mean_change) < 0), mean_change
  assert mean_disc[-1] < 0.5 * mean_disc[0]
  assert mean_change[-1] < 0.2 * mean_change[0]
