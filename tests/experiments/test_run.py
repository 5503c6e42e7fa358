# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The experiment runner as a user runs it: every named config end to end (`:smoke`), the
default job, resume after SIGKILL, the workdir guard and the config-flag errors."""

import json
import os
import pathlib
import signal
import time

import numpy as np
import pytest

import utils

from experiments import run as run_lib

BENCHMARKS = tuple(name for name in run_lib.CONFIGS if name != 'finite_vs_infinite')
KERNEL_MODELS = ('standard_ntk', 'ntk_ecrn_infinite', 'ntk_ecrn_infinite_self_tuned')


@pytest.mark.slow
def test_default_job_smoke_writes_results(tmp_path):
  code, out, err = utils.run_cli('--config=finite_vs_infinite:smoke', f'--workdir={tmp_path}')
  assert code == 0, err[-3000:]
  assert 'relative max error' in out and 'fitted slope' in out
  results = json.loads((tmp_path / 'results.json').read_text())
  assert results['empirical_ntk_vs_jacobian'] < 1e-10
  if 'empirical_ntk_vs_neural_tangents' in results:  # only where neural_tangents imports
    assert results['empirical_ntk_vs_neural_tangents'] < 1e-10
  assert results['ntk']['widths'] == [32, 64, 128]
  # Errors shrink with width even in the smoke run.
  assert results['ntk']['mean_relative_error'][-1] < results['ntk']['mean_relative_error'][0]


def _check_unit(unit, classification):
  assert not unit.get('diverged'), unit
  test = unit['test']
  if not classification:
    assert np.isfinite(test['mse']) and test['r2'] is not None
    return
  assert 0.0 <= test['accuracy'] <= 1.0
  kernel_model = unit['model'] in KERNEL_MODELS
  if kernel_model:
    assert unit['temperature'] > 0 and unit['calibration']['folds'] == 5
  if kernel_model and unit['cross_entropy_from'] is None:  # no held-out error
    assert test['cross_entropy'] is None and unit['cross_entropy_none_because']
    assert unit['calibration']['held_out_accuracy'] == 1.0
  else:
    assert not kernel_model or 'calibrated_softmax' in unit['cross_entropy_from']
    assert np.isfinite(test['cross_entropy']) and test['cross_entropy'] > 0


def _check_workdir(directory, name):
  """The files of a finished run of config `name` in `directory` agree with each other."""
  saved = json.loads((directory / 'config.json').read_text())
  config, results = saved['config'], json.loads((directory / 'results.json').read_text())
  assert saved['name'] == name and results['complete']
  assert results['device']['platform'] in ('cpu', 'gpu', 'tpu')
  units = {(u['seed'], u['model']): u for u in results['units']}
  assert set(units) == {(s, m) for s in config['seeds'] for m in config['models']}
  for (seed, model), unit in units.items():
    _check_unit(unit, name not in ('synthetic_regression', 'boston'))
    unit_dir = directory / f'seed_{seed}' / model
    assert json.loads((unit_dir / 'result.json').read_text()) == unit
    if model in ('ntk_ecrn', 'mlp'):
      epochs = unit['train_config']['epochs']
      arrays = np.load(unit_dir / 'tracking' / 'tracking.npz')
      np.testing.assert_array_equal(arrays['epoch'], np.arange(epochs + 1))
      assert np.all(np.isfinite(arrays['lambda_max']))
      assert str(epochs) in os.listdir(unit_dir / 'checkpoints')
  assert set(results['summary']) == set(config['models'])
  lines = [json.loads(l) for l in (directory / 'metrics.jsonl').read_text().splitlines()]
  for seed in config['seeds']:
    epochs = [l['epoch'] for l in lines if l['model'] == 'ntk_ecrn' and l['seed'] == seed]
    expected = units[(seed, 'ntk_ecrn')]['train_config']['epochs']
    assert epochs == list(range(1, expected + 1)) + [None]


@pytest.mark.slow
@pytest.mark.parametrize('name', [b for b in BENCHMARKS if b not in ('iris', 'cifar_subset')])
def test_every_config_smoke_end_to_end(name, tmp_path):
  """Every config's `:smoke` run but iris's (the shared run, below) and cifar_subset's (on real
  imported images where the shared subset is there, test_cifar_subset_smoke_end_to_end)."""
  if name == 'boston' and not os.path.exists(utils.BOSTON_CSV):
    pytest.skip('the project copy of the Boston CSV is not beside the repository')
  overrides = [f'data.csv_path={utils.BOSTON_CSV}'] if name == 'boston' else []
  _, results = utils.smoke_run(name, tmp_path, overrides)
  assert json.loads((tmp_path / 'results.json').read_text()) == results
  _check_workdir(tmp_path, name)


def test_iris_smoke_end_to_end(iris_smoke_workdir):
  """Iris through the shared smoke run (two seeds, with the search)."""
  _check_workdir(pathlib.Path(iris_smoke_workdir), 'iris')


def _finished_checkpoints(directory):
  if not os.path.isdir(directory):
    return []
  return [int(d) for d in os.listdir(directory) if d.isdigit()]


def _kill_after_checkpoint(args, workdir, epoch):
  proc = utils.cli(*args, f'--workdir={workdir}')
  checkpoints = workdir / 'seed_0' / 'ntk_ecrn' / 'checkpoints'
  deadline = time.time() + 240
  while not any(e >= epoch for e in _finished_checkpoints(checkpoints)):
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    assert time.time() < deadline, 'no checkpoint appeared'
    time.sleep(0.02)
  proc.send_signal(signal.SIGKILL)
  proc.communicate()
  assert proc.returncode == -signal.SIGKILL


# The run of the SIGKILL test, whose finished workdir the unreadable-checkpoint test reuses.
SIGKILL_ARGS = (
    '--config=synthetic_regression:smoke',
    '--config.models=mlp',
    '--config.models=ntk_ecrn',
    '--config.train.epochs=8',
    '--config.checkpoint_every=2',
    '--config.search.enabled=False',
)


def _sigkill_then_resume(directory):
  """Runs SIGKILL_ARGS uninterrupted in `directory`/reference and killed after the checkpoint
  of epoch 2, then resumed, in `directory`/killed; the resume's stderr goes to resume_err.txt."""
  import shutil  # pylint: disable=g-import-not-at-top

  shutil.rmtree(directory, ignore_errors=True)  # a build that stopped half-way starts again
  directory.mkdir(parents=True)
  reference_dir, killed_dir = directory / 'reference', directory / 'killed'
  # Started first, so that the two runs share the two cores for a while.
  reference = utils.cli(*SIGKILL_ARGS, f'--workdir={reference_dir}')
  _kill_after_checkpoint(SIGKILL_ARGS, killed_dir, 2)
  # Killed mid-way: the first unit is done, the second is not.
  assert (killed_dir / 'seed_0' / 'mlp' / 'result.json').exists()
  assert not (killed_dir / 'seed_0' / 'ntk_ecrn' / 'result.json').exists()

  code, _, err = utils.run_cli(*SIGKILL_ARGS, f'--workdir={killed_dir}')
  assert code == 0, err[-3000:]
  (directory / 'resume_err.txt').write_text(err)
  _, ref_err = reference.communicate(timeout=300)
  assert reference.returncode == 0, ref_err[-3000:]


@pytest.fixture(scope='session')
def sigkill_resumed(tmp_path_factory):
  """The directory of _sigkill_then_resume, built once per session (shared by xdist workers)."""
  return pathlib.Path(
      utils.shared_directory(tmp_path_factory, 'sigkill_resume', _sigkill_then_resume)
  )


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(sigkill_resumed):
  reference_dir, killed_dir = sigkill_resumed / 'reference', sigkill_resumed / 'killed'
  err = (sigkill_resumed / 'resume_err.txt').read_text()
  assert 'done earlier: skipped' in err and 'resuming from the checkpoint of epoch' in err

  resumed = json.loads((killed_dir / 'results.json').read_text())
  expected = json.loads((reference_dir / 'results.json').read_text())
  assert utils.without_timings(resumed) == utils.without_timings(expected)
  # The logs are whole too: one line per epoch, no duplicates from the re-run epochs.
  for directory in (killed_dir, reference_dir):
    lines = [json.loads(l) for l in (directory / 'metrics.jsonl').read_text().splitlines()]
    epochs = [l['epoch'] for l in lines if l['model'] == 'ntk_ecrn']
    assert epochs == list(range(1, 9)) + [None]
  a = np.load(killed_dir / 'seed_0' / 'ntk_ecrn' / 'tracking' / 'tracking.npz')
  b = np.load(reference_dir / 'seed_0' / 'ntk_ecrn' / 'tracking' / 'tracking.npz')
  for key in b.files:
    if key != 'seconds':
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)
  tracked = killed_dir / 'seed_0' / 'ntk_ecrn' / 'tracking' / 'tracking.jsonl'
  assert [json.loads(l)['epoch'] for l in tracked.read_text().splitlines()] == list(range(9))


def test_workdir_of_another_config_is_refused(tmp_path):
  from ecrn_jax import files  # pylint: disable=g-import-not-at-top
  from experiments import run, workdir  # pylint: disable=g-import-not-at-top

  _, config = run.load_config('iris:smoke')
  workdir.prepare(str(tmp_path), 'iris', config)
  (tmp_path / 'results.json').write_text('{}')
  workdir.prepare(str(tmp_path), 'iris', config)  # the same config: resumes
  assert (tmp_path / 'results.json').exists()
  config.data.data_dir = '/elsewhere'  # where the data live is not the config
  config.checkpoint_every = config.checkpoint_every + 1  # nor when a unit saves
  workdir.prepare(str(tmp_path), 'iris', config)
  assert (tmp_path / 'results.json').exists()
  assert json.loads((tmp_path / 'config.json').read_text())['config']['checkpoint_every'] == (
      config.checkpoint_every
  )

  code, _, err = utils.run_cli(
      '--config=iris:smoke', '--config.train.epochs=5', f'--workdir={tmp_path}'
  )
  assert code != 0 and '--overwrite' in err and str(tmp_path) in err
  assert (tmp_path / 'results.json').exists()

  # --overwrite deletes that run's files (those its manifest lists), and only those.
  (tmp_path / 'seed_0').mkdir()
  (tmp_path / 'my_notes.txt').write_text('mine')
  files.write_json(str(tmp_path / 'search.json'), {})  # the run's: listed as it is written
  config.train.epochs = 7
  workdir.prepare(str(tmp_path), 'iris', config, overwrite=True)
  ours = ['config.json', 'ecrn_jax.lock', 'ecrn_jax.manifest.jsonl']
  assert sorted(os.listdir(tmp_path)) == sorted(ours + ['my_notes.txt', 'results.json', 'seed_0'])


@pytest.mark.parametrize(
    'contents',
    [
        {'notes.txt': 'not a run'},
        {'config.json': '{"x": 1}', 'data.csv': '1,2'},
        {'config.json': '{"name": "iris", "conf'},
    ],
)
def test_overwrite_never_deletes_a_directory_that_is_not_a_workdir(tmp_path, contents):
  from experiments import run, workdir  # pylint: disable=g-import-not-at-top

  _, config = run.load_config('iris:smoke')
  for name, text in contents.items():
    (tmp_path / name).write_text(text)
  for overwrite in (False, True):
    with pytest.raises(workdir.WorkdirError, match='not one of its workdirs'):
      workdir.prepare(str(tmp_path), 'iris', config, overwrite=overwrite)
  assert {p.name: p.read_text() for p in tmp_path.iterdir()} == contents
  code, _, err = utils.run_cli('--config=iris:smoke', f'--workdir={tmp_path}', '--overwrite')
  assert code != 0 and 'nothing in it will be deleted' in err and 'Traceback' not in err
  assert {p.name: p.read_text() for p in tmp_path.iterdir()} == contents


def test_workdir_that_cannot_be_created_fails_with_one_sentence(tmp_path):
  from experiments import run, workdir  # pylint: disable=g-import-not-at-top

  _, config = run.load_config('iris:smoke')
  (tmp_path / 'a_file').write_text('')
  with pytest.raises(workdir.WorkdirError, match='cannot create workdir'):
    workdir.prepare(str(tmp_path / 'a_file' / 'run'), 'iris', config)


def _unit_lines(directory, model):
  lines = [json.loads(l) for l in (directory / 'metrics.jsonl').read_text().splitlines()]
  return [l for l in lines if l['model'] == model]


def test_corrupt_or_missing_results_rerun_their_unit_and_log_it_once(iris_smoke_workdir, tmp_path):
  """A result.json cut by a kill (or deleted after its metrics line) is not a finished unit:
  resuming redoes that unit, gets the same result and keeps one metrics line for it. On a copy
  of the shared iris run (with its search)."""
  import shutil  # pylint: disable=g-import-not-at-top
  from experiments import train  # pylint: disable=g-import-not-at-top

  workdir = tmp_path / 'iris'
  shutil.copytree(iris_smoke_workdir, workdir)
  first = json.loads((workdir / 'results.json').read_text())
  _, config = run_lib.load_config('iris:smoke', utils.IRIS_SMOKE_OVERRIDES)
  unit = workdir / 'seed_0' / 'standard_ntk' / 'result.json'
  trial = workdir / 'search' / 'seed_0' / 'ntk_ecrn_infinite' / 'trial_0' / 'result.json'
  unit.write_text(unit.read_text()[:40])  # cut mid-file
  trial.write_text('[1, 2')
  (workdir / 'seed_0' / 'ntk_ecrn_infinite' / 'result.json').unlink()  # after its line
  again = train.train_and_evaluate(config, str(workdir))
  assert utils.without_timings(again) == utils.without_timings(first)
  assert json.loads(unit.read_text())['model'] == 'standard_ntk'
  assert json.loads(trial.read_text())['overrides'] == _first_trial_overrides(workdir)
  for model in ('standard_ntk', 'ntk_ecrn_infinite'):
    for seed in (0, 1):
      lines = [l for l in _unit_lines(workdir, model) if l['seed'] == seed]
      assert [l['epoch'] for l in lines] == [None], (model, seed)


def _first_trial_overrides(directory):
  search = json.loads((directory / 'search.json').read_text())
  return search['seeds']['0']['models']['ntk_ecrn_infinite']['trials'][0]['overrides']


# Config flags and overrides that the CLI refuses at once: (arguments, texts that one line of its
# stderr holds).
BAD_ARGS = [
    (
        ['--config=iris:smoke', '--config.train.learnig_rate=0.1'],
        ('learnig_rate', 'learning_rate'),
    ),
    (['--config=iris', '--config.train.epochs=many'], ('epochs', 'many')),
    (
        ['--config=iris', '--config.models=mlp', '--config.models=resnet19'],
        ('resnet19', 'resnet18'),
    ),
    (
        ['--config=iris', '--config.search.space.mlp.train.learning_rate=()'],
        ('search.space.mlp',),
    ),
    (['--config=iris:huge'], ('huge', 'smoke')),
    (
        ['--config=iris:smoke', '--config.seeds=()'],
        ('seeds', 'nothing would run'),
    ),
    (['--config=iris:smoke', '--config.train.epochs=None'], ('train.epochs', 'positive')),
    (['--config=iris:smoke', '--config.checkpoint_every=0'], ('checkpoint_every', 'positive')),
    # Invalid values of the unit configs: refused before the search starts.
    (['--config=iris:smoke', '--config.ecrn.drop_rate=1.5'], ('config.ecrn.drop_rate', '1.5')),
    (
        ['--config=iris:smoke', '--config.ecrn.activation=tanh'],
        ('config.ecrn.activation', "'tanh'"),
    ),
    (
        ['--config=iris:smoke', '--config.kernel.diag_reg=-1'],
        ('config.kernel.diag_reg', '-1.0', 'standard_ntk'),
    ),
    (['--config=iris:smoke', '--config.search.trials=0'], ('config.search.trials', 'got 0')),
    (
        ['--config=synthetic_regression:smoke', '--config.data.num_train=0'],
        ('config.data.num_train', 'got 0'),
    ),
    (
        ['--config=iris:smoke', '--config.data.num_train=0'],
        ('data.num_train names no field', 'test_fraction'),
    ),
    (
        ['--config=iris:smoke', '--config.mlp.hidden_widths=(0,)'],
        ('config.mlp.hidden_widths', 'got 0'),
    ),
    (
        ['--config=iris:smoke', '--config.resnet18.mlp_widths=(0,)'],
        ('config.resnet18.mlp_widths', 'got 0'),
    ),
    (['--config.no_such_field=1'], ('no_such_field names no field', 'widths')),
    (['--config=iris:smoke', '--config.seeds=(0, 0)'], ('config.seeds', '[0]', 'once')),
    (
        ['--config=iris:smoke', '--config.models=lda', '--config.models=lda'],
        ('config.models', "['lda']", 'once'),
    ),
    (
        ['--config=iris:smoke', '--config.tracking.models=ntk-ecrn'],
        ('tracking.models', "'ntk-ecrn'", "did you mean 'ntk_ecrn'"),
    ),
    (['--config=iris:smoke', '--config.experiment=other'], ('config.experiment', "'other'")),
    (
        ['--config=finite_vs_infinite:smoke', '--config.widths=(32, 32)'],
        ('config.widths', '1 distinct width', 'at least two'),
    ),
    (['--config.num_seeds=0'], ('config.num_seeds', 'got 0')),
    (['--config.model.drop_rate=2.0'], ('config.model', 'drop_rate')),
    (['--config=no/such_config.py'], ('no/such_config.py', 'does not exist')),
    (['--config', 'iris:huge'], ('huge', 'smoke')),
    (
        ['--config=cifar_everything'],
        (
            'cifar_everything',
            'finite_vs_infinite',
            'iris',
            'wine',
            'synthetic_regression',
            'cifar_subset',
        ),
    ),
]


@pytest.fixture(scope='session')
def bad_args_runs(tmp_path_factory):
  """(directory, [(exit code, stdout, stderr)]): every BAD_ARGS case run by
  utils.run_cli_batch (one process for all), case i with --workdir=DIRECTORY/i/w; once per
  session."""

  def build(directory):
    cases = [
        [*args, f'--workdir={directory / str(i) / "w"}'] for i, (args, _) in enumerate(BAD_ARGS)
    ]
    found = utils.run_cli_batch(cases)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / 'found.json').write_text(json.dumps(found))

  directory = pathlib.Path(utils.shared_directory(tmp_path_factory, 'bad_args', build))
  return directory, json.loads((directory / 'found.json').read_text())


@pytest.mark.parametrize('i', range(len(BAD_ARGS)), ids=lambda i: ' '.join(BAD_ARGS[i][0]))
def test_bad_config_or_override_fails_at_once_with_one_clear_line(i, bad_args_runs):
  directory, found = bad_args_runs
  code, _, err = found[i]
  expected = BAD_ARGS[i][1]
  assert code != 0
  assert any(all(text in line for text in expected) for line in err.splitlines()), err[-2000:]
  assert 'Traceback' not in err, err[-2000:]
  assert not (directory / str(i) / 'w').exists()  # nothing was written, let alone trained


@pytest.mark.parametrize(
    'i',
    [
        BAD_ARGS.index(case)
        for case in BAD_ARGS
        if case[0]
        in (
            ['--config=iris:smoke', '--config.train.learnig_rate=0.1'],  # refused by the parser
            ['--config=iris:smoke', '--config.ecrn.drop_rate=1.5'],  # by the plan, in main()
            ['--config', 'iris:huge'],  # by the config file
        )
    ],
)
def test_bad_args_fail_alike_in_their_own_process(i, bad_args_runs, tmp_path):
  """Some BAD_ARGS cases as a user runs them, one `python -m experiments.run` each: the same
  exit code and output as in the shared batch that the test above reads."""
  directory, found = bad_args_runs
  code, out, err = utils.run_cli(*BAD_ARGS[i][0], f'--workdir={tmp_path / "w"}')
  batch_code, batch_out, batch_err = found[i]
  batch_workdir = str(directory / str(i) / 'w')
  assert code == batch_code != 0
  assert out == batch_out.replace(batch_workdir, str(tmp_path / 'w'))
  assert err == batch_err.replace(batch_workdir, str(tmp_path / 'w'))
  assert not (tmp_path / 'w').exists()


def test_overrides_set_nested_typed_fields():
  from experiments import run  # pylint: disable=g-import-not-at-top

  _, config = run.load_config(
      'wine',
      [
          'train.learning_rate=0.1',
          'seeds=(3,)',
          'models=mlp',
          'ecrn.fourier_scale=0.5',
          'train.batch_size=None',
          'tracking.save_kernels=true',
          'train.epochs=10',
      ],
  )
  assert config.train.learning_rate == 0.1 and config.seeds == (3,)
  assert config.models == ('mlp',) and config.ecrn.fourier_scale == 0.5
  assert config.train.batch_size is None and config.tracking.save_kernels is True
  # Overridden fields are pinned: train.epochs leaves the grid (its fraction with it).
  from experiments import plan  # pylint: disable=g-import-not-at-top

  assert 'train.epochs' in config.pinned and 'train.learning_rate' in config.pinned
  assert set(plan.read(config).grid('mlp')[0]) == {'train.weight_decay'}


def test_every_override_form_pins_its_field_but_data_dir_and_checkpoint_every():
  from absl import flags  # pylint: disable=g-import-not-at-top

  argv = run_lib._resolve_argv(
      [
          'run',
          '--config=iris:smoke',
          '--config.train.learning_rate',
          '0.3',
          '--noconfig.tracking.save_kernels',
          '--config.data.data_dir=/elsewhere',
          '--config.checkpoint_every=1',
          '--config.pinned=ecrn.alpha',
      ]
  )
  flag_values = flags.FlagValues()
  holder = run_lib.define_flags(flag_values, argv)
  run_lib._parse(flag_values, argv)
  config = holder.value
  assert config.train.learning_rate == 0.3 and config.data.data_dir == '/elsewhere'
  assert config.checkpoint_every == 1
  assert config.pinned == ('ecrn.alpha', 'tracking.save_kernels', 'train.learning_rate')
  assert run_lib.load_config('iris:smoke')[1].pinned == ()


def test_experiment_modules_import_together():
  """Every experiments module imports in one process (no absl flag defined twice)."""
  import subprocess, sys  # pylint: disable=g-import-not-at-top,multiple-imports

  code = (
      'import experiments.run, experiments.train, experiments.units, experiments.search, '
      'experiments.models, experiments.workdir, experiments.input_pipeline, '
      'experiments.import_cifar10, experiments.finite_vs_infinite, experiments.report, '
      'experiments.plots; print("ok")'
  )
  proc = subprocess.run(
      [sys.executable, '-c', code], cwd=utils.REPO, capture_output=True, text=True, timeout=300
  )
  assert proc.returncode == 0 and 'ok' in proc.stdout, proc.stderr[-2000:]


def test_progress_bar_only_on_a_terminal():
  import io  # pylint: disable=g-import-not-at-top
  from experiments import units  # pylint: disable=g-import-not-at-top

  class Terminal(io.StringIO):

    def isatty(self):
      return True

  plain = io.StringIO()
  assert not units.progress_bar('[seed 0 ntk_ecrn]', 3, 10, 0.5, '7s', stream=plain)
  assert plain.getvalue() == ''
  terminal = Terminal()
  assert units.progress_bar('[seed 0 ntk_ecrn]', 3, 10, 0.5, '7s', stream=terminal, width=10)
  assert terminal.getvalue().startswith('\r[seed 0 ntk_ecrn] [###-------] 3/10')
  assert 'ETA 7s' in terminal.getvalue() and not terminal.getvalue().endswith('\n')
  units.progress_bar('[seed 0 ntk_ecrn]', 10, 10, 0.4, '0s', stream=terminal, width=10)
  assert terminal.getvalue().endswith('\n') and '[##########] 10/10' in terminal.getvalue()


@pytest.mark.slow
def test_cifar_subset_smoke_end_to_end(tmp_path):
  """`cifar_subset:smoke` end to end, every model. Where the shared CIFAR-10 subset is beside
  the repository, on the real CIFAR path: a few real images imported offline, then the same
  tfds.load the runner uses (no mock); elsewhere on tfds' mock data."""
  train_npz = os.path.join(utils.SHARED_DATA, 'cifar10', 'train_subset.npz')
  test_npz = os.path.join(utils.SHARED_DATA, 'cifar10', 'test_public.npz')
  real = os.path.exists(train_npz) and os.path.exists(test_npz)
  overrides = []
  if real:
    from experiments import import_cifar10  # pylint: disable=g-import-not-at-top

    small = {}
    for split, path, n in (('train', train_npz, 64), ('test', test_npz, 32)):
      with np.load(path) as f:
        small[split] = str(tmp_path / f'{split}.npz')
        np.savez(small[split], x=f['x'][:n], y=f['y'][:n])
    data_dir = str(tmp_path / 'data_dir')
    import_cifar10.import_cifar10(small['train'], small['test'], data_dir)
    overrides.append(f'data.data_dir={data_dir}')
  workdir = tmp_path / 'work'
  config, results = utils.smoke_run('cifar_subset', workdir, overrides)
  assert {'standard_ntk', 'ntk_ecrn', 'resnet18'} <= set(config.models)
  assert json.loads((workdir / 'results.json').read_text()) == results
  _check_workdir(workdir, 'cifar_subset')
  for unit in results['units']:
    if real:
      assert unit['dataset']['num_train'] == 64 and unit['dataset']['num_test'] == 32
    assert unit['dataset']['input_dim'] == 3072


def _damage_checkpoint(step_dir):
  for path in step_dir.rglob('*'):
    if path.is_file():
      path.write_bytes(b'\x00garbage')


@pytest.mark.slow
def test_unreadable_checkpoints_fall_back_and_never_unpickle(sigkill_resumed, tmp_path):
  """The latest checkpoint unreadable: resume from the one before (it is kept for this). A
  tracker file holding a pickled object array is refused like a damaged one, never loaded. On a
  copy of the SIGKILL test's finished run (SIGKILL_ARGS: 8 epochs, a checkpoint every 2)."""
  import shutil  # pylint: disable=g-import-not-at-top

  shutil.copytree(sigkill_resumed / 'killed', tmp_path / 'work')
  args = [*SIGKILL_ARGS, f'--workdir={tmp_path / "work"}']
  unit = tmp_path / 'work' / 'seed_0' / 'ntk_ecrn'
  expected = utils.without_timings(json.loads((tmp_path / 'work' / 'results.json').read_text()))
  checkpoints = unit / 'checkpoints'
  assert sorted(_finished_checkpoints(checkpoints)) == [6, 8]

  (unit / 'result.json').unlink()
  _damage_checkpoint(checkpoints / '8')
  code, _, err = utils.run_cli(*args)
  assert code == 0, err[-3000:]
  assert 'checkpoint of epoch 8' in err and 'is unreadable (' in err
  assert 'resuming from the checkpoint of epoch 6' in err
  assert (checkpoints / '8.unreadable' / 'step').is_dir()  # set aside, not deleted
  results = json.loads((tmp_path / 'work' / 'results.json').read_text())
  assert utils.without_timings(results) == expected

  (unit / 'result.json').unlink()
  _damage_checkpoint(checkpoints / '6')
  np.savez(checkpoints / 'tracker_8.npz', seconds=np.array([object()], dtype=object))
  code, _, err = utils.run_cli(*args)
  assert code == 0, err[-3000:]
  assert err.count('is unreadable (') == 2 and 'resuming from' not in err  # from the start
  results = json.loads((tmp_path / 'work' / 'results.json').read_text())
  assert utils.without_timings(results) == expected
  epochs = [l['epoch'] for l in _unit_lines(tmp_path / 'work', 'ntk_ecrn')]
  assert epochs == list(range(1, 9)) + [None]


def test_files_are_written_with_the_users_umask(tmp_path):
  from ecrn_jax import files  # pylint: disable=g-import-not-at-top

  previous = os.umask(0o027)
  try:
    files.write_json(str(tmp_path / 'a.json'), {'x': 1})
    files.save_npz(str(tmp_path / 'b.npz'), {'x': np.arange(3)})
  finally:
    os.umask(previous)
  for name in ('a.json', 'b.npz'):
    assert (tmp_path / name).stat().st_mode & 0o777 == 0o640, name
  with pytest.raises(ValueError, match='object array'):
    files.save_npz(str(tmp_path / 'c.npz'), {'x': np.array([object()], dtype=object)})


def test_checkpoint_clean_up_removes_only_its_own_tracker_files(tmp_path):
  from experiments import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  import types  # pylint: disable=g-import-not-at-top

  directory = tmp_path / 'checkpoints'
  directory.mkdir()
  planted = ('tracker_notes.npz', 'tracker_007.npz', 'tracker_.npz', 'tracker_1.npz.bak')
  for name in planted:
    (directory / name).write_bytes(b'the user')
  checkpointer = workdir_lib.Checkpointer(str(directory))
  state = types.SimpleNamespace(params={'w': np.zeros(2)}, opt_state={'m': np.ones(2)}, step=0)
  for epoch in (1, 2, 3):
    checkpointer.save(epoch, state, {'loss': [0.5]}, tracker_state={'x': np.arange(epoch)})
  names = set(os.listdir(directory))
  assert {'tracker_2.npz', 'tracker_3.npz'} <= names and 'tracker_1.npz' not in names
  assert set(planted) <= names
