# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Kernel tracking during training (docs/spec.md §4): dense and matrix-free, files, state, bad input."""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ecrn_jax
from ecrn_jax import ECRN, ECRNConfig, KernelTracker, TrackingConfig, TrackingWriter
from ecrn_jax import TrainConfig, TrainingDiverged, train
from ecrn_jax import analysis
from ecrn_jax import files
from ecrn_jax._src import tracking as tracking_lib
from ecrn_jax._src.tracking import probe_indices  # internal: the probe draw itself
from utils import regression_data
from reference_ntk import jacobian_ntk, neural_tangents_ntk


def small_ecrn(width=32, **kwargs):
  return ECRN(
      ECRNConfig(
          width=width, depth=2, fourier_features=8, fourier_scale=0.3, dtype='float64', **kwargs
      )
  )


class Snapshots:
  """A callback keeping the variables of every epoch."""

  def __init__(self):
    self.variables = []

  def __call__(self, epoch, step, variables):
    self.variables.append(variables)


# ---------------------------------------------------------------------------
# Bad input.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    'changes, field',
    [
        ({'num_probes': 0}, 'num_probes'),
        ({'probe_size': 0}, 'probe_size'),
        ({'top_k': 0}, 'top_k'),
        ({'modewise_k': 0}, 'modewise_k'),
        ({'lanczos_iterations': 0}, 'lanczos_iterations'),
        ({'cg_iterations': -1}, 'cg_iterations'),
        ({'deflation_rank': -1}, 'deflation_rank'),
        ({'every': 0}, 'every'),
        ({'seed': 1.5}, 'seed'),
    ],
)
def test_tracking_config_validation_names_the_field(changes, field):
  with pytest.raises(ValueError, match=field):
    TrackingConfig(**changes)


@pytest.mark.parametrize(
    'changes, match',
    [
        ({'probe_size': 25}, 'probe_size=25 exceeds the 24 training examples'),
        ({'probe_size': 10, 'top_k': 11}, 'top_k=11 exceeds the probe set size'),
        ({'probe_size': 10, 'top_k': 3, 'modewise_k': 12}, 'modewise_k=12 exceeds'),
        (
            {'probe_size': 20, 'top_k': 8, 'dense_max_size': 4, 'lanczos_iterations': 5},
            'lanczos_iterations=5 must be >= top_k',
        ),
    ],
)
def test_data_dependent_errors(changes, match):
  x, y = regression_data(n=24)
  with pytest.raises(ValueError, match=match):
    KernelTracker(small_ecrn(), (x, y), TrainConfig(), TrackingConfig(**changes))


@pytest.mark.parametrize('name', ['x', 'y'])
def test_non_finite_data_is_refused(name):
  x, y = regression_data(n=24)
  data = {'x': np.array(x), 'y': np.array(y)}
  data[name][3] = np.nan
  with pytest.raises(ValueError, match=f'{name} has {data[name][3].size} NaN or inf entries'):
    KernelTracker(small_ecrn(), (data['x'], data['y']), TrainConfig(), TrackingConfig())


def test_vp_batch_size_none_is_automatic_and_negative_is_refused():
  assert TrackingConfig().vp_batch_size is None
  with pytest.raises(ValueError, match='vp_batch_size'):
    TrackingConfig(vp_batch_size=-1)


def test_probe_set_is_fixed_by_the_seed():
  key = jax.random.PRNGKey(3)
  a, b = probe_indices(100, 20, key), probe_indices(100, 20, key)
  np.testing.assert_array_equal(a, b)
  assert len(np.unique(a)) == 20 and np.all(np.diff(a) > 0) and a.max() < 100
  assert not np.array_equal(a, probe_indices(100, 20, jax.random.PRNGKey(4)))
  np.testing.assert_array_equal(probe_indices(7, 7, key), np.arange(7))


# ---------------------------------------------------------------------------
# Mode-wise convergence on the linearized network.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize('mode', ['dense', 'matrix_free'])
@pytest.mark.x64
def test_modewise_prediction_is_exact_for_the_linearized_network(mode):
  x, y = regression_data(n=24)
  n = len(y)
  model = small_ecrn(width=64)
  variables = model.init(jax.random.PRNGKey(0), x)
  lin = ecrn_jax.training.linearize(model, variables)
  eta = 1.5
  config = TrainConfig(optimizer='sgd', learning_rate=eta, epochs=25)
  tracker = KernelTracker(
      lin,
      (x, y),
      config,
      TrackingConfig(
          probe_size=n,
          top_k=5,
          modewise_k=6,
          lanczos_iterations=n,
          dense_max_size=n if mode == 'dense' else 0,
          cg_iterations=2 * n,
      ),
  )
  snaps = Snapshots()
  train(lin, variables, (x, y), config, callbacks=[tracker, snaps])
  assert tracker.mode == mode and tracker.modewise_exact
  rec = tracker.arrays()
  observed, predicted = rec['modewise_observed'], rec['modewise_predicted']
  assert observed.shape == (26, 6)
  err = np.max(np.abs(observed - predicted))
  print(
      f'\n[{mode}] max |observed − predicted| residual projection over 25 steps, '
      f'6 modes: {err:.2e} (projections up to {np.abs(observed).max():.3g})'
  )
  assert err < 1e-8
  assert np.max(np.abs(observed[-1])) < 0.9 * np.max(np.abs(observed[0]))  # it decays
  # Independently: analysis.modewise_convergence on Θ_0 (Jacobian) and the observed residuals.
  residuals = np.stack([np.asarray(lin.apply(v, x))[:, 0] - y for v in snaps.variables])
  kernel_0 = jacobian_ntk(model, variables, x)
  reference = analysis.modewise_convergence(
      kernel_0, residuals[0], residuals, learning_rate=eta, top_k=6
  )
  np.testing.assert_allclose(rec['modewise_eigenvalues'][0], reference['eigenvalues'], rtol=1e-9)
  signs = np.sign(predicted[0] / reference['predicted'][0])  # eigenvector signs
  np.testing.assert_allclose(predicted * signs, reference['predicted'], atol=1e-8)
  np.testing.assert_allclose(observed * signs, reference['observed'], atol=1e-8)
  # The linearized network's kernel does not move.
  assert np.max(rec['relative_delta_frobenius']) < 1e-12


@pytest.mark.x64
def test_modewise_prediction_follows_the_learning_rate_schedule():
  x, y = regression_data(n=24)
  model = small_ecrn(width=64)
  variables = model.init(jax.random.PRNGKey(1), x)
  lin = ecrn_jax.training.linearize(model, variables)
  config = TrainConfig(learning_rate=2.0, schedule='cosine', warmup_epochs=3, epochs=12)
  tracker = KernelTracker(
      lin, (x, y), config, TrackingConfig(probe_size=24, top_k=4, modewise_k=4, every=2)
  )
  train(lin, variables, (x, y), config, callbacks=[tracker])
  rec = tracker.arrays()
  np.testing.assert_array_equal(rec['epoch'], [0, 2, 4, 6, 8, 10, 12])
  np.testing.assert_allclose(rec['modewise_observed'], rec['modewise_predicted'], atol=1e-8)
  # A constant-η prediction would not match: the schedule matters.
  constant = ((1 - 2.0 * rec['modewise_eigenvalues'][0] / 24)[None] ** rec['step'][:, None]) * rec[
      'modewise_observed'
  ][0]
  assert np.max(np.abs(constant - rec['modewise_observed'])) > 1e-3


# ---------------------------------------------------------------------------
# Dense and matrix-free records of a (nonlinear) network.
# ---------------------------------------------------------------------------


@pytest.fixture(scope='module')
def trained_run():
  """A 40-point problem, 24 probe points, 4 epochs of GD; both tracking modes."""
  x, y = regression_data(n=40)
  model = small_ecrn(width=32)
  variables = model.init(jax.random.PRNGKey(2), x)
  config = TrainConfig(learning_rate=3.0, epochs=4)
  base = dict(
      probe_size=24,
      top_k=6,
      modewise_k=3,
      lanczos_iterations=24,
      cg_iterations=200,
      num_probes=64,
      seed=5,
  )
  dense = KernelTracker(model, (x, y), config, TrackingConfig(**base))
  # The matrix-free tracker's products run over chunks of 5 probe points (24 = 4·5 + 4).
  free = KernelTracker(
      model, (x, y), config, TrackingConfig(dense_max_size=10, vp_batch_size=5, **base)
  )
  plain = KernelTracker(
      model, (x, y), config, TrackingConfig(dense_max_size=10, deflation_rank=0, **base)
  )
  snaps = Snapshots()
  train(model, variables, (x, y), config, callbacks=[dense, free, plain, snaps])
  return dict(x=x, y=y, model=model, snaps=snaps.variables, dense=dense, free=free, plain=plain)


@pytest.mark.parametrize(
    'kernel_source', ['jacobian', pytest.param('neural_tangents', marks=pytest.mark.reference)]
)
@pytest.mark.x64
@pytest.mark.xdist_group('tracking_trained_run')  # one worker computes the module fixture
def test_dense_records_match_independent_computations(trained_run, kernel_source, request):
  model, x, y = trained_run['model'], trained_run['x'], trained_run['y']
  if kernel_source == 'jacobian':
    kernel_fn = jacobian_ntk
  else:
    nt = request.getfixturevalue('nt')
    kernel_fn = lambda *args: neural_tangents_ntk(nt, *args)
  tracker = trained_run['dense']
  assert tracker.mode == 'dense'
  idx = tracker.indices
  xp, yp = x[idx], y[idx]
  rec = tracker.arrays()
  k0 = kernel_fn(model, trained_run['snaps'][0], xp)
  for t, variables in enumerate(trained_run['snaps']):
    k = kernel_fn(model, variables, xp)
    np.testing.assert_allclose(rec['kernel'][t], k, rtol=1e-10, atol=1e-12 * np.abs(k).max())
    eigs = np.linalg.eigvalsh(k)[::-1]
    np.testing.assert_allclose(rec['top_eigenvalues'][t], eigs[:6], rtol=1e-9)
    np.testing.assert_allclose(rec['lambda_min'][t], eigs[-1], rtol=1e-6)
    np.testing.assert_allclose(rec['trace'][t], np.trace(k), rtol=1e-10)
    np.testing.assert_allclose(rec['condition_number'][t], eigs[0] / eigs[-1], rtol=1e-6)
    np.testing.assert_allclose(
        rec['effective_rank'][t], eigs.sum() ** 2 / np.sum(eigs**2), rtol=1e-9
    )
    np.testing.assert_allclose(
        rec['delta_frobenius'][t], np.linalg.norm(k - k0), rtol=1e-6, atol=1e-9
    )
    np.testing.assert_allclose(
        rec['relative_delta_frobenius'][t],
        np.linalg.norm(k - k0) / np.linalg.norm(k0),
        rtol=1e-6,
        atol=1e-9,
    )
    np.testing.assert_allclose(
        rec['alignment'][t], yp @ k @ yp / (np.linalg.norm(k) * yp @ yp), rtol=1e-9
    )
    np.testing.assert_allclose(
        rec['arora_bound'][t], np.sqrt(2 * yp @ np.linalg.solve(k, yp) / len(yp)), rtol=1e-7
    )
  assert rec['relative_delta_frobenius'][-1] > 1e-4  # the nonlinear kernel moves
  assert not tracker.modewise_exact  # probe set ≠ training set


@pytest.mark.x64
@pytest.mark.xdist_group('tracking_trained_run')
def test_matrix_free_records_match_dense(trained_run):
  dense, free, plain = (trained_run[k].arrays() for k in ('dense', 'free', 'plain'))
  assert trained_run['free'].mode == 'matrix_free'
  np.testing.assert_array_equal(trained_run['free'].indices, trained_run['dense'].indices)
  # Lanczos with as many steps as N_p: the whole spectrum.
  np.testing.assert_allclose(free['top_eigenvalues'], dense['top_eigenvalues'], rtol=1e-8)
  np.testing.assert_allclose(free['lambda_min'], dense['lambda_min'], rtol=1e-6)
  np.testing.assert_allclose(free['arora_bound'], dense['arora_bound'], rtol=1e-6)
  assert np.all(free['arora_cg_relative_residual'] < 1e-8)
  np.testing.assert_allclose(free['modewise_eigenvalues'], dense['modewise_eigenvalues'], rtol=1e-8)
  np.testing.assert_allclose(
      np.abs(free['modewise_observed']), np.abs(dense['modewise_observed']), rtol=1e-6, atol=1e-9
  )
  # Hutchinson: the tracker's estimates are exactly its estimator on the dense kernels …
  kernels = dense['kernel']
  for name, tracker in (('free', trained_run['free']), ('plain', trained_run['plain'])):
    rec = tracker.arrays()
    v = tracker.probes
    q = tracker.deflation_basis
    assert q.shape == ((2, 24) if name == 'free' else (0, 24))
    np.testing.assert_allclose(q @ q.T, np.eye(len(q)), atol=1e-10)
    w = v - (v @ q.T) @ q
    for t, k in enumerate(kernels):
      kw, kq = w @ k, q @ k
      dk = k - kernels[0]
      np.testing.assert_allclose(
          rec['trace'][t], np.sum(q * kq) + np.mean(np.sum(w * kw, axis=1)), rtol=1e-9
      )
      np.testing.assert_allclose(
          rec['frobenius_norm'][t] ** 2, np.sum(kq**2) + np.mean(np.sum(kw**2, axis=1)), rtol=1e-9
      )
      np.testing.assert_allclose(
          rec['delta_frobenius'][t] ** 2,
          np.sum((q @ dk) ** 2) + np.mean(np.sum((w @ dk) ** 2, axis=1)),
          rtol=1e-7,
          atol=1e-14,
      )
    # … and it is within 4 standard errors of the exact values.
    for key in ('trace', 'frobenius_norm', 'delta_frobenius', 'relative_delta_frobenius'):
      err = np.abs(rec[key][1:] - dense[key][1:])
      assert np.all(err <= 4 * rec[f'{key}_stderr'][1:] + 1e-12), (name, key, err)
  # Deflating the top Ritz vectors of Θ_0 reduces the Hutchinson error on ‖Θ‖_F.
  assert np.all(free['frobenius_norm_stderr'] < plain['frobenius_norm_stderr'])
  print(
      '\nmatrix-free vs dense at the last epoch (64 probes): ‖ΔΘ‖_F '
      f'{free["delta_frobenius"][-1]:.4g} ± {free["delta_frobenius_stderr"][-1]:.2g} '
      f'(deflated), {plain["delta_frobenius"][-1]:.4g} ± '
      f'{plain["delta_frobenius_stderr"][-1]:.2g} (plain) vs {dense["delta_frobenius"][-1]:.4g}; '
      f'‖Θ‖_F {free["frobenius_norm"][-1]:.4g} ± {free["frobenius_norm_stderr"][-1]:.2g} '
      f'vs {dense["frobenius_norm"][-1]:.4g}'
  )


@pytest.mark.x64
def test_cross_entropy_tracking_uses_one_hot_targets():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 3, 30)
  x = 2.0 * np.eye(3)[labels] @ rng.standard_normal((3, 4)) + rng.standard_normal((30, 4))
  model = small_ecrn(width=32, out_dim=3)
  variables = model.init(jax.random.PRNGKey(0), x)
  config = TrainConfig(
      optimizer='adam', learning_rate=1e-2, epochs=2, batch_size=10, loss='cross_entropy'
  )
  tracker = KernelTracker(model, (x, labels), config, TrackingConfig(probe_size=12, top_k=3))
  snaps = Snapshots()
  train(model, variables, (x, labels), config, callbacks=[tracker, snaps])
  rec = tracker.arrays()
  assert 'modewise_observed' not in rec
  xp, yp = x[tracker.indices], np.eye(3)[labels[tracker.indices]]
  k = jacobian_ntk(model, snaps.variables[-1], xp)
  np.testing.assert_allclose(
      rec['alignment'][-1], np.sum(yp * (k @ yp)) / (np.linalg.norm(k) * np.sum(yp**2)), rtol=1e-9
  )
  np.testing.assert_allclose(
      rec['arora_bound'][-1], np.sqrt(2 * np.sum(yp * np.linalg.solve(k, yp)) / 12), rtol=1e-7
  )
  # The one-hot targets, fixed at the first record, are part of the tracker's state.
  restored = KernelTracker(model, (x, labels), config, TrackingConfig(probe_size=12, top_k=3))
  assert restored.y_p is None
  restored.load_state_dict(tracker.state_dict())
  np.testing.assert_array_equal(restored.y_p, yp)
  assert_same_records(restored.records, tracker.records, skip=())


# ---------------------------------------------------------------------------
# Files and state.
# ---------------------------------------------------------------------------


def assert_same_records(records, expected, skip=('seconds',)):
  assert len(records) == len(expected)
  for rec, exp in zip(records, expected):
    assert list(rec) == list(exp)
    for name in exp:
      if name not in skip:
        assert type(rec[name]) is type(exp[name]), name
        np.testing.assert_array_equal(rec[name], exp[name], err_msg=name)


class StateSaver:
  """A callback saving `tracker.state_dict()` (npz, as a checkpoint would) at one epoch."""

  def __init__(self, tracker, epoch, path):
    self.tracker, self.epoch, self.path = tracker, epoch, path

  def __call__(self, epoch, step, variables):
    if epoch == self.epoch:
      files.save_npz(self.path, self.tracker.state_dict())


@pytest.mark.parametrize('dense_max_size', [512, 0])
@pytest.mark.x64
def test_files_hold_every_record_and_a_restored_tracker_continues_exactly(tmp_path, dense_max_size):
  x, y = regression_data(n=24)
  model = small_ecrn()
  variables = model.init(jax.random.PRNGKey(0), x)
  config = TrainConfig(learning_rate=1.0, epochs=5, batch_size=8)
  tracking_config = TrackingConfig(
      probe_size=16,
      top_k=4,
      modewise_k=2,
      every=2,
      dense_max_size=dense_max_size,
      lanczos_iterations=8,
      num_probes=4,
      cg_iterations=5,
  )
  tracker = KernelTracker(model, (x, y), config, tracking_config)
  snaps = Snapshots()
  saver = StateSaver(tracker, 2, str(tmp_path / 'state.npz'))
  _, history = train(
      model,
      variables,
      (x, y),
      config,
      callbacks=[TrackingWriter(tracker, str(tmp_path / 'run')), snaps, saver],
  )
  lines = (tmp_path / 'run' / 'tracking.jsonl').read_text().splitlines()
  records = [json.loads(line) for line in lines]
  assert [r['epoch'] for r in records] == [0, 2, 4, 5]
  assert [r['step'] for r in records] == [0, 6, 12, 15]
  saved = np.load(tmp_path / 'run' / 'tracking.npz')
  np.testing.assert_array_equal(saved['epoch'], [0, 2, 4, 5])
  np.testing.assert_array_equal(saved['probe_indices'], tracker.indices)
  for name in (
      'lambda_max',
      'lambda_min',
      'trace',
      'condition_number',
      'effective_rank',
      'frobenius_norm',
      'delta_frobenius',
      'relative_delta_frobenius',
      'alignment',
      'arora_bound',
      'seconds',
  ):
    np.testing.assert_allclose(saved[name], [r[name] for r in records], rtol=1e-15)
  assert saved['top_eigenvalues'].shape == (4, 4)
  assert saved['modewise_observed'].shape == saved['modewise_predicted'].shape == (4, 2)
  assert ('kernel' in saved) == (dense_max_size > 0)
  meta = json.loads((tmp_path / 'run' / 'tracking_meta.json').read_text())
  assert meta['mode'] == tracker.mode and meta['probe_indices'] == tracker.indices.tolist()
  assert meta['modewise_exact'] is False
  # Tracking time is reported apart from the training time.
  assert 'train_seconds' in history and 'callback_seconds' in history
  assert len(tracker.records) == 4 and all('seconds' in r for r in tracker.records)

  # The state at epoch 2 (flat numpy arrays, no objects), restored into a new tracker that
  # then records epochs 3–5: the records of the uninterrupted tracker, bit for bit.
  state = files.load_npz(str(tmp_path / 'state.npz'))
  assert all(value.dtype != object for value in tracker.state_dict().values())
  restored = KernelTracker(model, (x, y), config, tracking_config)
  writer = TrackingWriter(restored, str(tmp_path / 'resumed'))
  writer.load_state_dict(state)  # restores, and rewrites the files
  assert_same_records(restored.records, tracker.records[:2], skip=())
  assert restored.seconds == float(state['seconds'])
  assert len((tmp_path / 'resumed' / 'tracking.jsonl').read_text().splitlines()) == 2
  for epoch in (3, 4, 5):
    writer(epoch, 3 * epoch, snaps.variables[epoch])
  assert_same_records(restored.records, tracker.records)
  # The resumed writer's files are those of the uninterrupted run.
  assert [
      json.loads(line)['epoch']
      for line in (tmp_path / 'resumed' / 'tracking.jsonl').read_text().splitlines()
  ] == [0, 2, 4, 5]
  resumed = np.load(tmp_path / 'resumed' / 'tracking.npz')
  assert resumed.files == saved.files
  for name in saved.files:
    if name != 'seconds':
      np.testing.assert_array_equal(resumed[name], saved[name], err_msg=name)
  assert (
      json.loads((tmp_path / 'resumed' / 'tracking_meta.json').read_text())['mode'] == tracker.mode
  )


def test_state_of_another_tracker_is_refused():
  x, y = regression_data(n=24)
  tracking_config = TrackingConfig(probe_size=8, top_k=3)
  state = KernelTracker(small_ecrn(), (x, y), TrainConfig(), tracking_config).state_dict()
  other = KernelTracker(small_ecrn(), (x, y), TrainConfig(), tracking_config.replace(seed=1))
  with pytest.raises(ValueError, match='not of this dense tracker'):
    other.load_state_dict(state)


@pytest.mark.filterwarnings('ignore::RuntimeWarning')
@pytest.mark.x64
def test_divergence_keeps_the_tracking_files(tmp_path):
  x, y = regression_data(n=24)
  model = small_ecrn()
  variables = model.init(jax.random.PRNGKey(0), x)
  config = TrainConfig(learning_rate=1e40, epochs=50)
  tracker = KernelTracker(
      model, (x, y), config, TrackingConfig(probe_size=8, top_k=3, modewise_k=2)
  )
  with pytest.raises(TrainingDiverged) as info:
    train(model, variables, (x, y), config, callbacks=[TrackingWriter(tracker, str(tmp_path))])
  epochs_done = info.value.epoch  # records at 0 .. epoch − 1
  lines = (tmp_path / 'tracking.jsonl').read_text().splitlines()
  assert len(lines) == epochs_done == len(tracker.records)
  saved = np.load(tmp_path / 'tracking.npz')
  np.testing.assert_array_equal(saved['epoch'], np.arange(epochs_done))


# ---------------------------------------------------------------------------
# BatchNorm networks: the kernel at re-estimated statistics (precise BN).
# ---------------------------------------------------------------------------


class _BatchNormNet(nn.Module):
  """Dense → BatchNorm → tanh → Dense → BatchNorm → tanh → Dense, float64."""

  @nn.compact
  def __call__(self, x, train=False):
    f64 = dict(dtype=jnp.float64, param_dtype=jnp.float64)
    h = x
    for width in (6, 5):
      h = nn.Dense(width, **f64)(h)
      bn = nn.BatchNorm(use_running_average=not train, force_float32_reductions=False, **f64)
      h = jnp.tanh(bn(h))
    return nn.Dense(1, **f64)(h)


def _manual_batch_stats(variables, x, batch):
  """The population mean and variance of each BatchNorm's input over x, in numpy: training-mode
  passes of `batch` inputs (each normalized by its own statistics), moments pooled over all."""
  p = {k: {n: np.asarray(a) for n, a in v.items()} for k, v in variables['params'].items()}
  inputs = {0: [], 1: []}
  for start in range(0, len(x), batch):
    h = x[start : start + batch]
    for i in (0, 1):
      h = h @ p[f'Dense_{i}']['kernel'] + p[f'Dense_{i}']['bias']
      inputs[i].append(h)
      bn = p[f'BatchNorm_{i}']
      h = np.tanh((h - h.mean(0)) / np.sqrt(h.var(0) + 1e-5) * bn['scale'] + bn['bias'])
  return {
      f'BatchNorm_{i}': {'mean': np.concatenate(h).mean(0), 'var': np.concatenate(h).var(0)}
      for i, h in inputs.items()
  }


@pytest.mark.x64
def test_precise_batch_stats_are_the_population_moments():
  """kernels.precise_batch_stats equals the numpy moments of every BatchNorm's input, in one
  pass and in passes of 5 inputs (moments pooled exactly across passes)."""
  x, _ = regression_data(n=13)
  model = _BatchNormNet()
  variables = model.init(jax.random.PRNGKey(0), x)
  # Parameters away from their init, so that the second layer's statistics depend on the first.
  variables = {
      **variables,
      'params': jax.tree_util.tree_map(
          lambda a: a + 0.3 * jnp.cos(jnp.arange(a.size).reshape(a.shape)), variables['params']
      ),
  }
  for batch in (None, 5):
    stats = ecrn_jax.kernels.precise_batch_stats(model, variables, x, batch_size=batch, train=True)[
        'batch_stats'
    ]
    expected = _manual_batch_stats(variables, x, batch or len(x))
    for layer, moments in expected.items():
      for name, value in moments.items():
        np.testing.assert_allclose(stats[layer][name], value, rtol=1e-12, err_msg=layer + name)
  with pytest.raises(ValueError, match='called no flax.linen.BatchNorm'):
    ecrn_jax.kernels.precise_batch_stats(
        small_ecrn(), small_ecrn().init(jax.random.PRNGKey(0), x) | {'batch_stats': {}}, x
    )


@pytest.mark.x64
def test_tracker_measures_at_reestimated_statistics_and_parameter_movement_apart():
  """Default on for a BatchNorm network: every record's kernel is Θ(θ_t, ŝ_t) with ŝ_t the
  statistics of θ_t over the training set; 'delta_frobenius' is ‖Θ(θ_t, ŝ_t) − Θ(θ_0, ŝ_0)‖_F
  and 'delta_frobenius_params' ‖Θ(θ_t, ŝ_0) − Θ(θ_0, ŝ_0)‖_F, against materialized Jacobians
  and numpy statistics."""
  x, y = regression_data(n=16)
  model = _BatchNormNet()
  variables = model.init(jax.random.PRNGKey(1), x)
  config = TrainConfig(epochs=3, learning_rate=0.1, batch_size=8, optimizer='sgd')
  snapshots = Snapshots()
  tracker = KernelTracker(model, (x, y), config, TrackingConfig(probe_size=10, top_k=3))
  train(model, variables, (x, y), config, callbacks=[snapshots, tracker])
  assert tracker.metadata()['precise_batch_stats'] and len(tracker.records) == 4
  x_p = x[tracker.indices]
  s_0 = _manual_batch_stats(snapshots.variables[0], x, 256)
  kernel_0 = jacobian_ntk(model, {**snapshots.variables[0], 'batch_stats': s_0}, x_p)
  norm_0 = np.linalg.norm(kernel_0)
  for record, snapshot in zip(tracker.records, snapshots.variables):
    s_t = _manual_batch_stats(snapshot, x, 256)
    kernel = jacobian_ntk(model, {**snapshot, 'batch_stats': s_t}, x_p)
    fixed = jacobian_ntk(model, {**snapshot, 'batch_stats': s_0}, x_p)
    np.testing.assert_allclose(record['kernel'], kernel, rtol=1e-9, atol=1e-12 * norm_0)
    total, params = np.linalg.norm(kernel - kernel_0), np.linalg.norm(fixed - kernel_0)
    np.testing.assert_allclose(record['delta_frobenius'], total, rtol=1e-8, atol=1e-12 * norm_0)
    np.testing.assert_allclose(
        record['delta_frobenius_params'], params, rtol=1e-8, atol=1e-12 * norm_0
    )
    np.testing.assert_allclose(
        record['relative_delta_frobenius_params'], params / norm_0, rtol=1e-8, atol=1e-12
    )
  # The statistics move the kernel too: the two movements differ at the last record.
  assert abs(total - params) > 1e-3 * total
  # Off: the kernel at the running averages the training left.
  off = KernelTracker(
      model, (x, y), config, TrackingConfig(probe_size=10, top_k=3, precise_batch_stats=False)
  )
  off(3, 6, snapshots.variables[-1])
  ref = jacobian_ntk(model, snapshots.variables[-1], x_p)
  np.testing.assert_allclose(off.records[0]['kernel'], ref, rtol=1e-9, atol=1e-12 * norm_0)
  assert 'delta_frobenius_params' not in off.records[0]


@pytest.mark.x64
def test_matrix_free_records_by_a_materialized_kernel_equal_vector_products(monkeypatch):
  """Matrix-free tracking of a BatchNorm network whose kernel pays to build (kernel_pays): the
  products are matmuls with Θ_t, and the records equal those of kernel–vector products."""
  x, y = regression_data(n=16)
  model = _BatchNormNet()
  variables = model.init(jax.random.PRNGKey(1), x)
  config = TrainConfig(epochs=1, learning_rate=0.1, batch_size=8, optimizer='sgd')
  tracking = TrackingConfig(
      probe_size=12,
      top_k=3,
      dense_max_size=0,
      lanczos_iterations=12,
      num_probes=4,
      cg_iterations=12,
  )
  records = {}
  for materialized in (True, False):
    if not materialized:
      monkeypatch.setattr(tracking_lib, 'kernel_pays', lambda *a, **k: False)
    tracker = KernelTracker(model, (x, y), config, tracking)
    train(model, variables, (x, y), config, callbacks=[tracker])
    assert tracker.materialized == materialized
    records[materialized] = tracker.records
  for built, products in zip(records[True], records[False]):
    for name in (
        'lambda_max',
        'trace',
        'frobenius_norm',
        'delta_frobenius',
        'delta_frobenius_params',
        'alignment',
    ):
      np.testing.assert_allclose(built[name], products[name], rtol=1e-7, err_msg=name)
    # 12 CG steps on an ill-conditioned Θ: not converged, so round-off moves the bound a bit.
    np.testing.assert_allclose(built['arora_bound'], products['arora_bound'], rtol=1e-3)
