"""The experiment runner: every named config end to end (`:smoke`), resume after SIGKILL,
the workdir guard and the override errors."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = ('synthetic_regression', 'synthetic_classification', 'boston', 'iris', 'wine',
              'cifar_subset')
BOSTON_CSV = os.path.join(REPO, '..', 'shared', 'data', 'uci', 'boston_housing.csv')


def _cli(*args, **kwargs):
  return subprocess.Popen([sys.executable, '-m', 'experiments.run', *args], cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _run(*args, timeout=300):
  proc = _cli(*args)
  out, err = proc.communicate(timeout=timeout)
  return proc.returncode, out, err


def _without_timings(obj):
  if isinstance(obj, dict):
    return {k: _without_timings(v) for k, v in obj.items() if k != 'seconds'}
  if isinstance(obj, list):
    return [_without_timings(v) for v in obj]
  return obj


def _smoke(name, workdir, **fields):
  from experiments import run, train  # pylint: disable=g-import-not-at-top
  fields.setdefault('search.enabled', False)   # the search has its own tests (test_search.py)
  overrides = [(k, str(v)) for k, v in fields.items()]
  _, config = run.load_config(f'{name}:smoke', overrides)
  train.prepare_workdir(str(workdir), name, config)
  if name == 'cifar_subset':
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    with tfds.testing.mock_data(num_examples=96):
      return config, train.train_and_evaluate(config, str(workdir))
  return config, train.train_and_evaluate(config, str(workdir))


@pytest.mark.parametrize('name', BENCHMARKS)
def test_every_config_smoke_end_to_end(name, tmp_path):
  if name == 'boston' and not os.path.exists(BOSTON_CSV):
    pytest.skip('the project copy of the Boston CSV is not beside the repository')
  fields = {'data.csv_path': BOSTON_CSV} if name == 'boston' else {}
  config, results = _smoke(name, tmp_path, **fields)
  assert results['complete']
  assert results['device']['platform'] in ('cpu', 'gpu', 'tpu')
  units = {(u['seed'], u['model']): u for u in results['units']}
  assert set(units) == {(0, m) for m in config.models}
  classification = name not in ('synthetic_regression', 'boston')
  for (seed, model), unit in units.items():
    assert not unit.get('diverged'), unit
    test = unit['test']
    if classification:
      assert 0.0 <= test['accuracy'] <= 1.0
      kernel_model = model in ('standard_ntk', 'ntk_ecrn_infinite')
      if kernel_model:
        assert unit['temperature'] > 0 and unit['calibration']['folds'] == 5
      if kernel_model and unit['cross_entropy_from'] is None:   # no held-out error
        assert test['cross_entropy'] is None and unit['cross_entropy_none_because']
        assert unit['calibration']['held_out_accuracy'] == 1.0
      else:
        assert not kernel_model or 'calibrated_softmax' in unit['cross_entropy_from']
        assert np.isfinite(test['cross_entropy']) and test['cross_entropy'] > 0
    else:
      assert np.isfinite(test['mse']) and test['r2'] is not None
    unit_dir = tmp_path / f'seed_{seed}' / model
    assert json.loads((unit_dir / 'result.json').read_text()) == unit
    if model in ('ntk_ecrn', 'mlp'):
      assert (unit_dir / 'tracking' / 'tracking.npz').exists()
      arrays = np.load(unit_dir / 'tracking' / 'tracking.npz')
      np.testing.assert_array_equal(arrays['epoch'], np.arange(config.train.epochs + 1))
      assert np.all(np.isfinite(arrays['lambda_max']))
      assert str(config.train.epochs) in os.listdir(unit_dir / 'checkpoints')
  assert set(results['summary']) == set(config.models)
  assert json.loads((tmp_path / 'results.json').read_text()) == results
  saved = json.loads((tmp_path / 'config.json').read_text())
  assert saved['name'] == name and saved['config']['seeds'] == [0]
  lines = [json.loads(l) for l in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  epochs = [l['epoch'] for l in lines if l['model'] == 'ntk_ecrn']
  assert epochs == list(range(1, config.train.epochs + 1)) + [None]


def _finished_checkpoints(directory):
  if not os.path.isdir(directory):
    return []
  return [int(d) for d in os.listdir(directory) if d.isdigit()]


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
  args = ['--config=synthetic_regression:smoke', '--config.models=(mlp,ntk_ecrn)',
          '--config.train.epochs=12', '--config.checkpoint_every=2',
          '--config.search.enabled=False']
  reference_dir, killed_dir = tmp_path / 'reference', tmp_path / 'killed'
  # Started first, so that the two runs share the two cores for a while.
  reference = _cli(*args, f'--workdir={reference_dir}')

  proc = _cli(*args, f'--workdir={killed_dir}')
  checkpoints = killed_dir / 'seed_0' / 'ntk_ecrn' / 'checkpoints'
  deadline = time.time() + 240
  while not any(e >= 2 for e in _finished_checkpoints(checkpoints)):
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    assert time.time() < deadline, 'no checkpoint appeared'
    time.sleep(0.02)
  proc.send_signal(signal.SIGKILL)
  proc.communicate()
  assert proc.returncode == -signal.SIGKILL
  # Killed mid-way: the first unit is done, the second is not.
  assert (killed_dir / 'seed_0' / 'mlp' / 'result.json').exists()
  assert not (killed_dir / 'seed_0' / 'ntk_ecrn' / 'result.json').exists()

  code, out, err = _run(*args, f'--workdir={killed_dir}')
  assert code == 0, err[-3000:]
  assert 'done earlier: skipped' in err and 'resuming from the checkpoint of epoch' in err
  ref_out, ref_err = reference.communicate(timeout=300)
  assert reference.returncode == 0, ref_err[-3000:]

  resumed = json.loads((killed_dir / 'results.json').read_text())
  expected = json.loads((reference_dir / 'results.json').read_text())
  assert _without_timings(resumed) == _without_timings(expected)
  # The logs are whole too: one line per epoch, no duplicates from the re-run epochs.
  for directory in (killed_dir, reference_dir):
    lines = [json.loads(l) for l in (directory / 'metrics.jsonl').read_text().splitlines()]
    epochs = [l['epoch'] for l in lines if l['model'] == 'ntk_ecrn']
    assert epochs == list(range(1, 13)) + [None]
  for name in ('tracking.npz',):
    a = np.load(killed_dir / 'seed_0' / 'ntk_ecrn' / 'tracking' / name)
    b = np.load(reference_dir / 'seed_0' / 'ntk_ecrn' / 'tracking' / name)
    for key in b.files:
      if key != 'seconds':
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
  tracked = (killed_dir / 'seed_0' / 'ntk_ecrn' / 'tracking' / 'tracking.jsonl')
  assert [json.loads(l)['epoch'] for l in tracked.read_text().splitlines()] == list(range(13))


def test_workdir_of_another_config_is_refused(tmp_path):
  from experiments import run, train  # pylint: disable=g-import-not-at-top
  _, config = run.load_config('iris:smoke')
  train.prepare_workdir(str(tmp_path), 'iris', config)
  (tmp_path / 'results.json').write_text('{}')
  train.prepare_workdir(str(tmp_path), 'iris', config)   # the same config: resumes
  assert (tmp_path / 'results.json').exists()

  code, _, err = _run('--config=iris:smoke', '--config.train.epochs=5', f'--workdir={tmp_path}')
  assert code != 0 and '--overwrite' in err and str(tmp_path) in err
  assert (tmp_path / 'results.json').exists()

  (tmp_path / 'other').mkdir()
  other = tmp_path / 'other'
  (other / 'notes.txt').write_text('not a run')
  with pytest.raises(FileExistsError, match='overwrite'):
    train.prepare_workdir(str(other), 'iris', config)
  train.prepare_workdir(str(other), 'iris', config, overwrite=True)
  assert sorted(os.listdir(other)) == ['config.json']


def test_misspelled_override_and_bad_values_fail_at_once():
  start = time.time()
  code, _, err = _run('--config=iris:smoke', '--config.train.learnig_rate=0.1')
  assert code != 0
  assert 'learnig_rate' in err and 'train.learning_rate' in err and 'seeds' in err
  code, _, err = _run('--config=iris', '--config.train.epochs=many')
  assert code != 0 and 'epochs' in err
  code, _, err = _run('--config=iris', '--config.models=(mlp,resnet19)')
  assert code != 0 and 'resnet19' in err and 'resnet18' in err
  code, _, err = _run('--config=iris', '--config.search.space.mlp.train.learning_rate=()')
  assert code != 0 and 'search.space.mlp' in err
  code, _, err = _run('--config=iris:huge')
  assert code != 0 and 'smoke' in err
  assert time.time() - start < 60   # nothing was trained


def test_overrides_set_nested_typed_fields():
  from experiments import run  # pylint: disable=g-import-not-at-top
  _, config = run.load_config('wine', [('train.learning_rate', '0.1'), ('seeds', '(3,)'),
                                       ('models', '(mlp,)'), ('ecrn.fourier_scale', '0.5'),
                                       ('train.batch_size', 'None'),
                                       ('tracking.save_kernels', 'true')])
  assert config.train.learning_rate == 0.1 and config.seeds == (3,)
  assert config.models == ('mlp',) and config.ecrn.fourier_scale == 0.5
  assert config.train.batch_size is None and config.tracking.save_kernels is True


def test_train_resume_hook_continues_bit_for_bit():
  """ecrn_jax.train(resume=...) from a checkpoint equals the uninterrupted run (mini-batches,
  stochastic depth, AdamW with a cosine schedule and warm-up)."""
  import jax  # pylint: disable=g-import-not-at-top
  import ecrn_jax  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  x, y = rng.standard_normal((40, 3)), rng.standard_normal(40)
  model = ecrn_jax.ECRN(ecrn_jax.ECRNConfig(width=16, depth=2, fourier_features=4,
                                            drop_rate=0.3))
  variables = model.init(jax.random.PRNGKey(0), x)
  config = ecrn_jax.TrainConfig(optimizer='adam', learning_rate=0.01, weight_decay=1e-3,
                                schedule='cosine', warmup_epochs=1, epochs=5, batch_size=16)
  saved, calls = {}, []

  def checkpoint(epoch, state, history):
    saved[epoch] = dict(epoch=epoch, params=jax.device_get(state.params),
                        opt_state=jax.device_get(state.opt_state), step=int(state.step),
                        history=history)

  final, history = ecrn_jax.train(model, variables, (x, y), config, checkpoint=checkpoint)
  assert sorted(saved) == list(range(6))
  resumed, resumed_history = ecrn_jax.train(
      model, variables, (x, y), config, resume=saved[2],
      callbacks=[lambda epoch, step, v: calls.append(epoch)])
  assert calls == [3, 4, 5]   # no epoch-0 callback on resume
  for a, b in zip(jax.tree_util.tree_leaves(final), jax.tree_util.tree_leaves(resumed)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  np.testing.assert_array_equal(history['step_loss'], resumed_history['step_loss'])
  np.testing.assert_array_equal(history['epoch'], resumed_history['epoch'])


def test_experiment_modules_import_together():
  """Every experiments module imports in one process (no absl flag defined twice)."""
  code = ('import experiments.run, experiments.train, experiments.input_pipeline, '
          'experiments.import_cifar10, experiments.finite_vs_infinite; print("ok")')
  proc = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 0 and 'ok' in proc.stdout, proc.stderr[-2000:]


def test_progress_bar_only_on_a_terminal():
  import io  # pylint: disable=g-import-not-at-top
  from experiments import train  # pylint: disable=g-import-not-at-top

  class Terminal(io.StringIO):
    def isatty(self):
      return True

  plain = io.StringIO()
  assert not train.progress_bar('[seed 0 ntk_ecrn]', 3, 10, 0.5, '7s', stream=plain)
  assert plain.getvalue() == ''
  terminal = Terminal()
  assert train.progress_bar('[seed 0 ntk_ecrn]', 3, 10, 0.5, '7s', stream=terminal, width=10)
  assert terminal.getvalue().startswith('\r[seed 0 ntk_ecrn] [###-------] 3/10')
  assert 'ETA 7s' in terminal.getvalue() and not terminal.getvalue().endswith('\n')
  train.progress_bar('[seed 0 ntk_ecrn]', 10, 10, 0.4, '0s', stream=terminal, width=10)
  assert terminal.getvalue().endswith('\n') and '[##########] 10/10' in terminal.getvalue()


SHARED_CIFAR = os.path.join(REPO, '..', 'shared', 'data', 'cifar10')


def test_cifar_subset_smoke_on_real_imported_images(tmp_path):
  """The real CIFAR path end to end: a few real images imported offline, then the same
  tfds.load the runner uses (no mock), through `cifar_subset:smoke`."""
  train_npz = os.path.join(SHARED_CIFAR, 'train_subset.npz')
  test_npz = os.path.join(SHARED_CIFAR, 'test_public.npz')
  if not (os.path.exists(train_npz) and os.path.exists(test_npz)):
    pytest.skip('the shared CIFAR-10 subset is not beside the repository')
  from experiments import import_cifar10, run, train  # pylint: disable=g-import-not-at-top
  small = {}
  for split, path, n in (('train', train_npz, 64), ('test', test_npz, 32)):
    with np.load(path) as f:
      small[split] = str(tmp_path / f'{split}.npz')
      np.savez(small[split], x=f['x'][:n], y=f['y'][:n])
  data_dir = str(tmp_path / 'data_dir')
  import_cifar10.import_cifar10(small['train'], small['test'], data_dir)
  _, config = run.load_config('cifar_subset:smoke',
                              [('models', '(ntk_ecrn,standard_ntk,resnet18)')])
  workdir = str(tmp_path / 'work')
  train.prepare_workdir(workdir, 'cifar_subset', config)
  results = train.train_and_evaluate(config, workdir, data_dir=data_dir)
  assert results['complete']
  for unit in results['units']:
    assert unit['dataset']['num_train'] == 64 and unit['dataset']['num_test'] == 32
    assert unit['dataset']['input_dim'] == 3072
    assert 0.0 <= unit['test']['accuracy'] <= 1.0
