# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Compile once, run many, on the experiments' side: the keys of the units, the restore target
of a unit and the kernel tracker's probe set are one program each (or none), with the same
numbers as the op-by-op code they replace; a search trial runs as one program per shape."""

import dataclasses
import json
import os
import sys
import types

import jax
import numpy as np
import pytest

import utils

import ecrn_jax
from ecrn_jax import training
from ecrn_jax._src import empirical
from ecrn_jax._src import tracking
from experiments import input_pipeline
from experiments import models
from experiments import plan as plan_lib
from experiments import units
from experiments import workdir as workdir_lib
from experiments.configs import iris

sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'ecrn_jax'))
# The counter of tests/ecrn_jax/test_compile_once.py.
from test_compile_once import backend_compilations  # pylint: disable=wrong-import-position


def _plan(seed, family):
  return types.SimpleNamespace(seed=seed, spec=types.SimpleNamespace(family=family))


# ---------------------------------------------------------------------------
# models.model_key
# ---------------------------------------------------------------------------


def test_model_key_is_one_program_for_every_seed_and_family():
  jax.clear_caches()  # a program compiled by an earlier test would hide the count
  with backend_compilations() as compiled:
    keys = {
        (s, f): np.asarray(models.model_key(_plan(s, f)))
        for s in (0, 1, 5)
        for f in models._FAMILY_KEY
    }
  assert len(compiled) == 1, compiled  # op by op: PRNGKey's and fold_in's programs (4)
  assert len({k.tobytes() for k in keys.values()}) == len(keys)


@pytest.mark.parametrize('seed', [0, 1, 3, 12345, 2**31 - 1])
def test_model_key_equals_the_op_by_op_key_to_the_bit(seed):
  for family, number in models._FAMILY_KEY.items():
    expected = jax.random.fold_in(jax.random.PRNGKey(seed), number)
    got = models.model_key(_plan(seed, family))
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))


# ---------------------------------------------------------------------------
# units.restore_target
# ---------------------------------------------------------------------------


def _iris_unit(model, directory, epochs=4, **config_fields):
  """(plan for the data, dataset) of `model`'s unit of seed 0 on Iris, in
  `directory`/seed_0/`model` (`config_fields`: the config's top-level fields)."""
  config = iris.get_config()
  config.seeds, config.train.epochs = (0,), epochs
  config.update(config_fields)
  run = plan_lib.build(config)
  where = dict(directory=str(directory / 'seed_0' / model), label=f'[{model}]')
  plan = run.unit(model, 0, {}, metrics=str(directory / 'metrics.jsonl'), **where)
  dataset = input_pipeline.load_dataset(run.data, seed=0)
  return plan.for_data(dataset), dataset


def _op_by_op_target(unit, model, variables, n):
  """The restore target as units._restore built it before: the optimizer's init run."""
  tx = training.make_optimizer(unit.train, training.steps_per_epoch(unit.train, n))
  others = {k: v for k, v in variables.items() if k != 'params'}
  params = variables['params']
  return training.TrainState.create(apply_fn=model.apply, params=params, tx=tx, rest=others)


def _layout(state):
  """What `Checkpointer.restore_latest` reads of a target: the tree, shapes and dtypes."""
  items = workdir_lib.Checkpointer._items(state)  # pylint: disable=protected-access
  leaves, treedef = jax.tree_util.tree_flatten(items)
  return treedef, [(np.shape(a), np.asarray(a).dtype) for a in leaves]


@pytest.mark.x64  # the experiments run with 64-bit JAX (train.train_and_evaluate)
@pytest.mark.parametrize(
    'model,train',
    [
        ('mlp', {}),  # Iris: adam, cosine
        ('ntk_ecrn', {'optimizer': 'momentum', 'schedule': 'constant'}),
        ('ntk_ecrn', {'optimizer': 'sgd', 'warmup_epochs': 1, 'weight_decay': 1e-3}),
        ('resnet18', {}),  # the residual-MLP stand-in: batch_stats
    ],
)
def test_restore_target_has_the_layout_of_the_optimizers_state_and_compiles_nothing(
    model, train, tmp_path
):
  unit, dataset = _iris_unit(model, tmp_path)
  unit = dataclasses.replace(unit, train=dataclasses.replace(unit.train, **train))
  network, variables = models.build_network(unit, dataset)
  n = len(dataset.x_train)
  jax.clear_caches()
  with backend_compilations() as compiled:
    target = units.restore_target(unit, network, variables, n)
  assert not compiled  # op by op: the optimizer's zeros and the step count (5-7 programs)
  expected = _layout(_op_by_op_target(unit, network, variables, n))
  assert _layout(target) == expected
  assert ('batch_stats' in target.rest) == (model == 'resnet18')
  assert all(not np.any(a) for a in jax.tree_util.tree_leaves(target))


def _unit_lines(path):
  return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.x64  # the experiments run with 64-bit JAX (train.train_and_evaluate)
def test_a_unit_killed_after_a_checkpoint_resumes_to_the_uninterrupted_result(
    tmp_path, monkeypatch
):
  """A trained unit stopped after its checkpoint of epoch 2 (of 4) resumes from it (the target
  of `restore_target`) to the result, metrics lines and predictions of an uninterrupted run."""
  results = {}
  for name in ('whole', 'killed'):
    unit, dataset = _iris_unit('mlp', tmp_path / name, checkpoint_every=2)
    os.makedirs(unit.directory)
    if name == 'killed':
      save = workdir_lib.Checkpointer.save

      def save_then_stop(self, epoch, *args, **kwargs):
        save(self, epoch, *args, **kwargs)
        if epoch == 2:
          raise KeyboardInterrupt('stopped after the checkpoint of epoch 2')

      with monkeypatch.context() as patch:
        patch.setattr(workdir_lib.Checkpointer, 'save', save_then_stop)
        with pytest.raises(KeyboardInterrupt):
          units.run_unit(unit, dataset)
      assert [l['epoch'] for l in _unit_lines(tmp_path / name / 'metrics.jsonl')] == [1, 2]
    results[name] = units.run_unit(unit, dataset)
  assert utils.without_timings(results['killed']) == utils.without_timings(results['whole'])
  lines = {k: utils.without_timings(_unit_lines(tmp_path / k / 'metrics.jsonl')) for k in results}
  assert [l['epoch'] for l in lines['killed']] == [1, 2, 3, 4]
  assert lines['killed'] == lines['whole']
  a, b = (np.load(tmp_path / k / 'seed_0' / 'mlp' / 'predictions.npz') for k in results)
  for key in a.files:
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# ---------------------------------------------------------------------------
# KernelTracker's draws and empirical.output_shape
# ---------------------------------------------------------------------------


def _mlp(width):
  return ecrn_jax.MLP(ecrn_jax.MLPConfig(hidden_widths=(width,), dtype='float32'))


def _op_by_op_draws(n, config):
  """The tracker's draws as KernelTracker.__init__ made them before: op by op."""
  probe_key, lanczos_key, hutchinson_key = jax.random.split(jax.random.PRNGKey(config.seed), 3)
  seed_key = jax.random.PRNGKey(config.seed)
  stats = tracking.probe_indices(n, config.batch_stats_size or n, jax.random.fold_in(seed_key, 3))
  return {
      'indices': tracking.probe_indices(n, config.probe_size, probe_key),
      'stats': stats,
      'lanczos': lanczos_key,
      'hutchinson': hutchinson_key,
      'dropout': jax.random.fold_in(seed_key, 4),
  }


@pytest.mark.parametrize(
    'changes',
    [
        {'probe_size': 24},  # all of them, dense
        {'probe_size': 10, 'seed': 3, 'batch_stats_size': 7},
        {'probe_size': 16, 'seed': 5, 'dense_max_size': 8, 'top_k': 4, 'modewise_k': 2},
    ],
    ids=['all', 'subsets', 'matrix_free'],
)
def test_tracker_draws_the_probe_set_and_keys_of_the_op_by_op_code(changes):
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(24, 3)), rng.normal(size=24)
  config = ecrn_jax.TrackingConfig(**changes)
  tracker = ecrn_jax.KernelTracker(_mlp(8), (x, y), ecrn_jax.TrainConfig(), config)
  expected = _op_by_op_draws(24, config)
  assert tracker.indices.dtype == expected['indices'].dtype
  np.testing.assert_array_equal(tracker.indices, expected['indices'])
  x_dev = jax.numpy.asarray(x)
  for got, indices in ((tracker.x_p, expected['indices']), (tracker._x_stats, expected['stats'])):
    want = x_dev[indices]
    assert got.dtype == want.dtype and isinstance(got, jax.Array)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  np.testing.assert_array_equal(tracker._lanczos_key, expected['lanczos'])
  np.testing.assert_array_equal(tracker._stats_rngs['dropout'], expected['dropout'])
  if tracker.mode == 'matrix_free':
    probes = jax.random.rademacher(expected['hutchinson'], (config.num_probes, 16), np.float64)
    np.testing.assert_array_equal(tracker.probes, np.asarray(probes))
  else:
    assert changes.get('dense_max_size') is None


def test_a_trackers_draws_are_one_program_per_shape():
  rng = np.random.default_rng(1)
  x, y = rng.normal(size=(37, 3)), rng.normal(size=37)  # a size no other test uses
  model, train_config = _mlp(9), ecrn_jax.TrainConfig()
  config = ecrn_jax.TrackingConfig(probe_size=11, batch_stats_size=5)
  jax.clear_caches()
  with backend_compilations() as first:
    ecrn_jax.KernelTracker(model, (x, y), train_config, config)
  with backend_compilations() as again:
    for seed in (1, 2):
      ecrn_jax.KernelTracker(model, (x + seed, y), train_config, config.replace(seed=seed))
  assert len(first) == 1, first  # op by op: about 13 (staging, checks, keys, indices, gathers)
  assert not again, again


def test_output_shape_traces_once_per_structure_and_slices_nothing(monkeypatch):
  model = _mlp(13)
  variables = model.init(jax.random.PRNGKey(0), np.zeros((1, 3)))
  calls = []
  apply = empirical._apply_for_shape  # pylint: disable=protected-access

  def counted(*args, **kwargs):
    calls.append(1)
    return apply(*args, **kwargs)

  monkeypatch.setattr(empirical, '_apply_for_shape', counted)
  x = jax.numpy.ones((6, 3))
  inputs = [x[: k + 1] * k for k in range(3)]  # other values and sizes, the same features
  jax.clear_caches()
  with backend_compilations() as compiled:
    shapes = [empirical.output_shape(model, variables, xk) for xk in inputs]
  assert shapes == [(1, 1)] * 3
  assert len(calls) == 1 and not compiled  # x[:1] of a device array compiled a slice
  # The old form, a fresh lambda and x[:1], gives the same shape; a mismatch is still named.
  old = jax.eval_shape(lambda v, xb: model.apply(v, xb), dict(variables), x[:1])
  assert tuple(old.shape) == shapes[0]
  with pytest.raises(ValueError, match='x1 of shape \\(4,\\)'):
    empirical.output_shape(model, variables, np.ones((2, 4)))


# ---------------------------------------------------------------------------
# Search trials: no checkpoints, the whole trial in one program
# ---------------------------------------------------------------------------


def _trial_unit(model, directory, **train):
  """(plan, validation split) of a search trial of `model` (seed 0, Iris, 3 epochs), as
  search.py makes them; `train`: TrainConfig fields changed."""
  unit, _ = _iris_unit(model, directory, epochs=3)
  config = iris.get_config()
  config.seeds = (0,)
  full = input_pipeline.load_dataset(plan_lib.build(config).data, seed=0)
  _, validation = input_pipeline.split_validation(full, 0.2, 0)
  unit = dataclasses.replace(unit, tracking=None, train=dataclasses.replace(unit.train, **train))
  os.makedirs(unit.directory)
  return unit, validation


def _lines(directory):
  return utils.without_timings(_unit_lines(directory / 'metrics.jsonl'))


@pytest.mark.x64  # the experiments run with 64-bit JAX (train.train_and_evaluate)
@pytest.mark.parametrize(
    'model,train',
    [
        ('mlp', {}),
        ('ntk_ecrn', {'learning_rate': 3e-3}),  # stochastic depth: the drop masks' keys
        ('mlp', {'optimizer': 'sgd', 'learning_rate': 100.0}),  # diverges in epoch 2
    ],
    ids=['mlp', 'ntk_ecrn', 'diverged'],
)
def test_a_search_trial_equals_the_checkpointed_path_without_checkpoints(model, train, tmp_path):
  """A trial (units.run_trial) gives the result, the metrics lines (written after it from its
  history) and the divergence report of the checkpointed, epoch-by-epoch path, and leaves no
  checkpoint."""
  results = {}
  for name, trial in (('checkpointed', False), ('trial', True)):
    unit, validation = _trial_unit(model, tmp_path / name, **train)
    results[name] = units.run_unit(unit, validation, trial=trial)
  assert utils.without_timings(results['trial']) == utils.without_timings(results['checkpointed'])
  assert _lines(tmp_path / 'trial') == _lines(tmp_path / 'checkpointed')
  assert os.path.isdir(tmp_path / 'checkpointed' / 'seed_0' / model / 'checkpoints')
  assert not os.path.exists(tmp_path / 'trial' / 'seed_0' / model / 'checkpoints')
  assert results['trial']['diverged'] == ('learning_rate' in train and model == 'mlp')
  if not results['trial']['diverged']:
    assert [l['epoch'] for l in _lines(tmp_path / 'trial')] == [1, 2, 3]


@pytest.mark.x64  # the experiments run with 64-bit JAX (train.train_and_evaluate)
def test_a_second_search_trial_of_the_same_shapes_compiles_nothing(tmp_path):
  unit, validation = _trial_unit('mlp', tmp_path / 'first', learning_rate=1e-3)
  units.run_trial(unit, validation)
  with backend_compilations() as compiled:
    for k, (rate, decay) in enumerate(((3e-3, 0.0), (1e-2, 1e-4))):
      trial = f'other_{k}'
      unit, validation = _trial_unit(
          'mlp', tmp_path / trial, learning_rate=rate, weight_decay=decay
      )
      result = units.run_trial(unit, validation)
      assert not result['diverged'] and result['test']['accuracy'] > 0
  assert not compiled, compiled


# ---------------------------------------------------------------------------
# Kernel units: one kernel for every ridge of a sweep
# ---------------------------------------------------------------------------


@pytest.mark.x64  # the experiments run with 64-bit JAX (train.train_and_evaluate)
def test_kernel_units_on_the_same_kernel_reuse_it_with_the_same_results(tmp_path, monkeypatch):
  """Kernel trials that differ in the ridge only compute the kernels once, with the results of
  computing them afresh; another seed's twin (another B) or a trained unit in between does not
  reuse them."""
  computed = []
  batch = ecrn_jax.batch

  def counting_batch(*args, **kwargs):
    kernel_fn = batch(*args, **kwargs)

    def counted(*a, **k):
      computed.append(1)
      return kernel_fn(*a, **k)

    return counted

  monkeypatch.setattr(ecrn_jax, 'batch', counting_batch)
  config = iris.get_config()
  config.seeds = (0, 1)
  run = plan_lib.build(config)
  full = input_pipeline.load_dataset(run.data, seed=0)
  _, validation = input_pipeline.split_validation(full, 0.2, 0)

  def kernel_trial(name, model, seed, ridge, fresh):
    if fresh:
      units._LAST_KERNELS.clear()  # pylint: disable=protected-access
    directory = tmp_path / name
    where = dict(directory=str(directory), label=name, metrics=str(directory / 'm.jsonl'))
    unit = run.unit(model, seed, {'kernel.diag_reg': ridge}, trial=True, **where)
    os.makedirs(directory)
    return utils.without_timings(units.run_trial(unit, validation))

  ridges = (1e-4, 1e-2, 1.0)
  sweep = [kernel_trial(f'sweep_{r}', 'standard_ntk', 0, r, fresh=False) for r in ridges]
  assert len(computed) == 2  # k_train and k_test, once
  fresh = [kernel_trial(f'fresh_{r}', 'standard_ntk', 0, r, fresh=True) for r in ridges]
  assert len(computed) == 2 + 2 * len(ridges)
  assert sweep == fresh and sweep[0]['test'] != sweep[2]['test']  # the ridge matters
  del computed[:]
  kernel_trial('twin_0', 'ntk_ecrn_infinite', 0, 1e-3, fresh=True)
  kernel_trial('twin_1', 'ntk_ecrn_infinite', 1, 1e-3, fresh=False)  # seed 1's B
  assert len(computed) == 4
  unit, dataset = _trial_unit('mlp', tmp_path / 'trained')
  units.run_trial(unit, dataset)
  assert not units._LAST_KERNELS  # pylint: disable=protected-access
