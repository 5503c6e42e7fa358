# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Compile once, run many: α, the drop rates and σ_ff are arguments of the compiled programs
(`models.traced`), so training, evaluating and tracking models that differ only in them compile
nothing new; the traced form computes the network of docs/spec.md §1 to round-off; the step
count keeps one type; the caches hold programs per structure, not per value.

Each test uses a width no other test uses, so the programs it counts are its own.
"""

import contextlib
import math

import flax.linen
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

import ecrn_jax
from ecrn_jax import ECRN, ECRNConfig, TrainConfig, train
from ecrn_jax._src import epochs
from ecrn_jax._src import models
from ecrn_jax._src import training

BACKEND_COMPILE = '/jax/core/compile/backend_compile_duration'


@contextlib.contextmanager
def backend_compilations():
  """Yields a list that receives one entry per XLA backend compilation inside the block.

  The persistent compilation cache (tests/conftest.py) is off inside it: a hit would skip the
  backend compilation and hide a recompile.
  """
  compiled = []
  cache = jax.config.jax_enable_compilation_cache
  jax.config.update('jax_enable_compilation_cache', False)

  def listener(event, duration, **kwargs):
    del duration, kwargs
    if event == BACKEND_COMPILE:
      compiled.append(event)

  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    yield compiled
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)
    jax.config.update('jax_enable_compilation_cache', cache)


def ecrn(width, dtype='float32', **kwargs):
  kwargs.setdefault('depth', 3)
  kwargs.setdefault('fourier_features', 5)
  return ECRN(ECRNConfig(width=width, dtype=dtype, **kwargs))


def data(n=12, d=3, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, d)).astype(np.float32)
  return x, np.sin(x.sum(axis=1)).astype(np.float32)


# Values of a search: every one of them a new module, none a new shape.
VARIANTS = (
    {'alpha': 0.5},
    {'alpha': 2.0, 'alpha_schedule': 'constant'},
    {'alpha': (0.3, 1.0, 1.7)},
    {'drop_rate': 0.1},
    {'drop_rate': 0.25, 'alpha': 1.5},
    {'fourier_scale': 0.2},
)


# ---------------------------------------------------------------------------
# The traced form computes the same network.
# ---------------------------------------------------------------------------


def _reference_forward(config, variables, x, xi):
  """docs/spec.md §1 in numpy float64: γ, Dense in the NTK parameterization, GELU, residual
  blocks scaled by α_l ξ_l (`xi` (L,): q_l in evaluation mode, a mask in training)."""
  p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), variables['params'])
  b = np.asarray(variables['fourier']['fourier_features']['B'], np.float64)

  def dense(name, h):
    w, bias = p[name]['kernel'], p[name]['bias']
    return config.w_std / math.sqrt(h.shape[1]) * h @ w + config.b_std * bias

  def gelu(h):
    return 0.5 * h * (1.0 + scipy.special.erf(h / math.sqrt(2.0)))

  u = 2.0 * math.pi * np.asarray(x, np.float64) @ b
  h = dense('stem', np.concatenate([np.cos(u), np.sin(u)], axis=1))
  for l, alpha_l in enumerate(config.alphas):
    h = h + alpha_l * xi[l] * dense(f'block_{l}', gelu(h))
  return dense('readout', gelu(h))


@pytest.mark.parametrize('dtype', ['float32', pytest.param('float64', marks=pytest.mark.x64)])
@pytest.mark.parametrize('changes', VARIANTS, ids=lambda c: ','.join(c))
def test_the_traced_form_is_the_network_of_the_spec(dtype, changes):
  x, _ = data(n=7)
  model = ecrn(16, dtype, **changes)
  variables = model.init(jax.random.PRNGKey(1), x)
  structure, values = models.traced(model)
  traced = jax.jit(structure.apply)({**variables, **values}, x)
  expected = _reference_forward(model.config, variables, x, model.config.survival_probs)
  # Round-off of the dtype: ~1e-15 (float64), ~1e-6 (float32) relative; α's effect is O(1).
  rtol = {'float64': 1e-11, 'float32': 1e-4}[dtype]
  scale = np.max(np.abs(expected))
  assert np.max(np.abs(np.asarray(traced, np.float64) - expected)) <= rtol * scale
  other = _reference_forward(
      model.config.replace(alpha=3.0), variables, x, model.config.survival_probs
  )
  assert np.max(np.abs(other - expected)) > 1e3 * rtol * scale  # the check can tell α apart


@pytest.mark.parametrize('changes', VARIANTS + ({'drop_rate': (0.0, 0.3, 0.0)},))
def test_the_traced_form_equals_the_constant_one_to_the_bit(changes):
  # The same compiled arithmetic, values as arguments instead of constants: the same numbers,
  # in evaluation mode and for a training-mode pass with its drop masks.
  x, _ = data(n=7)
  model = ecrn(17, **changes)
  variables = model.init(jax.random.PRNGKey(1), x)
  structure, values = models.traced(model)
  rngs = {'dropout': jax.random.PRNGKey(5)}
  for train_mode in (False, True):
    constant = jax.jit(lambda v, xx: model.apply(v, xx, train=train_mode, rngs=rngs))
    as_data = jax.jit(lambda v, xx: structure.apply(v, xx, train=train_mode, rngs=rngs))
    np.testing.assert_array_equal(as_data({**variables, **values}, x), constant(variables, x))


def test_a_model_without_traced_values_is_its_own_structure():
  model = ecrn_jax.MLP(ecrn_jax.MLPConfig(hidden_widths=(4,)))
  assert models.traced(model) == (model, {})
  structure, values = models.traced(ecrn(8, alpha=0.5, drop_rate=0.2, fourier_scale=3.0))
  assert structure == models.traced(ecrn(8, alpha=2.0, drop_rate=0.1))[0]
  assert structure != models.traced(ecrn(8, alpha=2.0, drop_rate=(0.0, 0.1, 0.0)))[0]
  assert set(values) == {'hyperparams'}
  assert 'hyperparams' not in ecrn(8).init(jax.random.PRNGKey(0), data()[0])  # not a variable


# ---------------------------------------------------------------------------
# One compilation serves every value.
# ---------------------------------------------------------------------------


def test_training_other_alphas_drop_rates_and_sigma_ff_compiles_nothing():
  # N = 12, B = 5: two full batches and the last two examples, both epochs in one program.
  x, y = data(n=12)
  config = TrainConfig(optimizer='adam', learning_rate=1e-2, epochs=2, batch_size=5)
  first = ecrn(21)
  train(first, first.init(jax.random.PRNGKey(0), x), (x, y), config)
  step, epoch = training.make_train_step(first, 'mse'), epochs.make_trial(first, 'mse', 5, 2)
  sizes = step._cache_size(), epoch._cache_size()  # pylint: disable=protected-access
  assert sizes[1] >= 1  # the whole run in one program (the step only lowered, for the cost model)
  cached = epochs._train_step.cache_info().currsize  # pylint: disable=protected-access
  runs = [(m, m.init(jax.random.PRNGKey(0), x)) for m in (ecrn(21, **c) for c in VARIANTS)]
  with backend_compilations() as compiled:
    histories = [train(m, v, (x, y), config)[1] for m, v in runs]
  assert not compiled
  assert (step._cache_size(), epoch._cache_size()) == sizes  # pylint: disable=protected-access
  # The caches of programs hold one per structure, none per value.
  assert epochs._train_step.cache_info().currsize == cached  # pylint: disable=protected-access
  losses = [h['loss'][-1] for h in histories]
  assert len(set(losses)) == len(losses)  # the values did change the runs


def test_evaluating_and_tracking_other_alphas_compiles_nothing():
  x, y = data(n=10)
  config = TrainConfig(epochs=1)
  tracking = ecrn_jax.TrackingConfig(probe_size=6, top_k=2, modewise_k=2)

  def evaluate_and_track(model):
    variables = model.init(jax.random.PRNGKey(0), x)
    tracker = ecrn_jax.KernelTracker(model, (x, y), config, tracking)
    tracker(0, 0, variables)
    out = np.asarray(ecrn_jax.models.jit_apply(model)(variables, x))
    return out, tracker.records[0], tracker.indices

  evaluate_and_track(ecrn(23))
  with backend_compilations() as compiled:
    outputs = [evaluate_and_track(ecrn(23, **changes)) for changes in VARIANTS]
  assert not compiled
  # The values are the models' own: equal to the constant form.
  for (out, record, indices), changes in zip(outputs, VARIANTS):
    model = ecrn(23, **changes)
    variables = model.init(jax.random.PRNGKey(0), x)
    np.testing.assert_allclose(out, model.apply(variables, x), rtol=1e-5, atol=1e-6)
    kernel = np.asarray(ecrn_jax.empirical_ntk(model, variables, x[indices]), np.float64)
    np.testing.assert_allclose(record['trace'], np.trace(kernel), rtol=1e-4)


# ---------------------------------------------------------------------------
# The step count keeps one type.
# ---------------------------------------------------------------------------


def test_the_step_count_is_an_int32_array_from_the_start():
  model = ecrn(8)
  x, _ = data()
  variables = model.init(jax.random.PRNGKey(0), x)
  state = training.TrainState.create(
      apply_fn=model.apply,
      params=variables['params'],
      tx=training.make_optimizer(TrainConfig(), 1),
  )
  assert isinstance(state.step, jax.Array) and state.step.dtype == jnp.int32
  assert not state.step.weak_type


def test_a_resumed_run_reuses_the_first_runs_programs():
  # The resumed step count comes from a checkpoint (numpy int64): it takes the fresh run's type,
  # so the resumed epochs run the programs the first epochs compiled.
  x, y = data(n=12)
  model = ecrn(25, drop_rate=0.1)
  variables = model.init(jax.random.PRNGKey(0), x)
  config = TrainConfig(optimizer='momentum', epochs=3, batch_size=5)
  saved = {}

  def checkpoint(epoch, state, history):
    if epoch == 1:
      saved.update(
          epoch=1,
          params=jax.device_get(state.params),
          opt_state=jax.device_get(state.opt_state),
          step=np.int64(state.step),
          history=history,
          rest=jax.device_get(state.rest),
      )

  final, history = train(model, variables, (x, y), config, checkpoint=checkpoint)
  with backend_compilations() as compiled:
    resumed, resumed_history = train(model, variables, (x, y), config, resume=saved)
  assert not compiled
  np.testing.assert_array_equal(resumed_history['step_loss'], history['step_loss'])
  for a, b in zip(jax.tree_util.tree_leaves(resumed), jax.tree_util.tree_leaves(final)):
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------
# No op-by-op programs: `init` and `train` run compiled programs keyed by shapes only.
# ---------------------------------------------------------------------------


def _same_leaves(a, b):
  leaves = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
  return len(leaves[0]) == len(leaves[1]) and all(
      np.array_equal(u, v) and u.dtype == v.dtype for u, v in zip(*leaves)
  )


@pytest.mark.parametrize('dtype', ['float32', pytest.param('float64', marks=pytest.mark.x64)])
@pytest.mark.parametrize('parameterization', ['ntk', 'standard'])
@pytest.mark.parametrize(
    'make',
    [
        lambda **kw: ecrn(29, fourier_scale=2.3, **kw),
        lambda **kw: ecrn(29, fourier_trainable=True, fourier_scale=0.7, **kw),
        lambda **kw: ecrn(29, fourier_features=None, **kw),
        lambda **kw: ecrn_jax.MLP(ecrn_jax.MLPConfig(hidden_widths=(29, 7), **kw)),
    ],
    ids=['ecrn', 'trainable_fourier', 'no_fourier', 'mlp'],
)
def test_compiled_init_equals_the_op_by_op_init_to_the_bit(make, parameterization, dtype):
  model = make(parameterization=parameterization, dtype=dtype)
  x, _ = data(n=3)
  key = jax.random.PRNGKey(7)
  compiled = model.init(key, x[:1])
  op_by_op = flax.linen.Module.init(model, key, x[:1])
  assert _same_leaves(compiled, op_by_op)
  # The check can fail: another key, or another σ_ff, gives other variables.
  assert not _same_leaves(model.init(jax.random.PRNGKey(8), x[:1]), op_by_op)


def test_init_of_other_alphas_drop_rates_and_sigma_ff_compiles_nothing():
  x, _ = data(n=4)
  first = ecrn(31).init(jax.random.PRNGKey(0), x[:1])
  with backend_compilations() as compiled:
    others = [ecrn(31, **c).init(jax.random.PRNGKey(0), x[:1]) for c in VARIANTS]
  assert not compiled
  # σ_ff scales B, and nothing else changes.
  scaled = others[VARIANTS.index({'fourier_scale': 0.2})]
  b = models.fourier_matrix(first)
  np.testing.assert_array_equal(models.fourier_matrix(scaled), np.float32(0.2) * b)
  assert _same_leaves(scaled['params'], first['params'])
  # Inputs of another width: a new program, as op by op.
  with backend_compilations() as compiled:
    ecrn(31).init(jax.random.PRNGKey(0), np.ones((1, 5), np.float32))
  assert len(compiled) == 1


def test_a_new_structure_compiles_a_few_programs_not_one_per_operation():
  # init, the initial state and the epoch (the step is only lowered, for the cost model; the
  # seed's keys may be compiled already): against tens of small programs op by op.
  x, y = data(n=12)
  config = TrainConfig(optimizer='momentum', epochs=2, batch_size=5)
  with backend_compilations() as compiled:
    model = ecrn(33)
    train(model, model.init(jax.random.PRNGKey(0), x[:1]), (x, y), config)
  assert len(compiled) <= 4
  with backend_compilations() as op_by_op:
    flax.linen.Module.init(ecrn(34), jax.random.PRNGKey(0), x[:1])
  assert len(op_by_op) >= 10  # what the count would be without the compiled init


@pytest.mark.x64
def test_the_epoch_program_equals_the_fused_loop_then_the_last_step():
  # N = 13, B = 4: the epoch's order, its three full batches through make_train_epoch, then the
  # last example through make_train_step (the previous path): the same numbers.
  x, y = (a.astype(np.float64) for a in data(n=13))
  model = ecrn(35, 'float64', drop_rate=0.2)
  variables = model.init(jax.random.PRNGKey(2), x)
  config = TrainConfig(optimizer='adam', learning_rate=1e-2, batch_size=4)
  state = epochs.initial_state(
      model.apply,
      variables['params'],
      ecrn_jax._src.optimizers.traced_optimizer(config),  # pylint: disable=protected-access
      {k: v for k, v in variables.items() if k != 'params'},
      ecrn_jax._src.optimizers.optimizer_hyperparams(config, 4),  # pylint: disable=protected-access
  )
  shuffle_key, dropout_key = epochs.seed_keys(5)
  new, before_last, losses = epochs.make_epoch(model, 'mse', 4)(
      state, x, y, shuffle_key, 3, dropout_key
  )
  order = np.asarray(jax.random.permutation(jax.random.fold_in(shuffle_key, 3), 13))
  reference, _, fused = training.make_train_epoch(model, 'mse')(
      state, x, y, order[:12].reshape(3, 4), dropout_key
  )
  last, value = training.make_train_step(model, 'mse')(
      reference, x[order[12:]], y[order[12:]], dropout_key
  )
  np.testing.assert_allclose(losses, np.append(fused, value), rtol=1e-14)
  for a, b in zip(jax.tree_util.tree_leaves(new.params), jax.tree_util.tree_leaves(last.params)):
    np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-15)
  assert int(new.step) == 4 and int(before_last.step) == 3
