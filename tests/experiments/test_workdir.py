# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""A workdir's files are the run's by record (its manifest), never by name: resume, --overwrite
and kill-and-resume leave every file the user put in any of its directories; a directory that is
not ours is refused whole; one run per workdir at a time (its lock)."""

import json
import os
import pathlib
import re
import signal
import time

import pytest

import utils

SMOKE = ('--config=iris:smoke', '--config.search.trials=1', '--config.train.epochs=3')
# Files of the first run that the second (mlp, no search) does not write again.
OURS = (
    'seed_0/lda/result.json',
    'seed_0/lda/predictions.npz',
    'search/seed_0/mlp/trial_0/plan.json',
)


def _cli(*args):
  code, out, err = utils.run_cli(*args)
  assert code == 0, err[-3000:]
  return out, err


def _plant(workdir: pathlib.Path) -> dict:
  """Writes user files into every directory of `workdir` but orbax's checkpoint steps (orbax
  deletes a step whole), named as a user or as the run's own files could be; {path: text}."""
  planted = {}
  for directory, dirs, _ in os.walk(workdir):
    dirs[:] = [d for d in dirs if not d.isdigit()]  # orbax's steps
    here = pathlib.Path(directory)
    names = ['my_notes.txt', '.backup.tmp', '.result.json.abcdefgh.tmp', '.thesis.20240101.tmp']
    for name in names + ['user/.thesis.20240101.tmp', 'user/result.json']:
      path = here / name
      if not path.exists():
        path.parent.mkdir(exist_ok=True)
        path.write_text(f'the user: {path}')
        planted[path] = path.read_text()
  return planted


def _survived(planted: dict) -> None:
  missing = [str(p) for p, text in planted.items() if not p.exists() or p.read_text() != text]
  assert not missing, missing


def _epochs(workdir: pathlib.Path):
  path = workdir / 'config.json'  # missing while --overwrite deletes
  return json.loads(path.read_text())['config']['train']['epochs'] if path.exists() else None


def _checkpoints(workdir: pathlib.Path) -> list:
  directory = workdir / 'seed_0' / 'mlp' / 'checkpoints'
  return [d for d in os.listdir(directory) if d.isdigit()] if directory.is_dir() else []


@pytest.mark.slow
def test_resume_overwrite_and_kill_resume_keep_every_file_of_the_user(tmp_path):
  workdir = tmp_path / 'run'
  first = (*SMOKE, '--config.models=mlp', '--config.models=lda', f'--workdir={workdir}')
  _cli(*first)
  planted = _plant(workdir)
  assert {'seed_0/mlp/checkpoints', 'seed_0/mlp/tracking', 'search/seed_0/mlp/trial_0'} <= {
      str(p.parent.relative_to(workdir)) for p in planted
  }
  _, err = _cli(*first)  # resumed
  assert 'done earlier: skipped' in err
  _survived(planted)

  # --overwrite with another config: the run's files go, the user's stay (and their directories).
  second = (*SMOKE, '--config.models=mlp', '--config.search.enabled=False', f'--workdir={workdir}')
  second += ('--config.train.epochs=20',)
  proc = utils.cli(*second, '--config.checkpoint_every=1', '--overwrite')
  deadline = time.time() + 240
  while not (_epochs(workdir) == 20 and _checkpoints(workdir)):  # prepared, then trained
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    assert time.time() < deadline, 'no checkpoint appeared'
    time.sleep(0.02)
  assert not [p for p in OURS if (workdir / p).exists()]
  _survived(planted)
  # A second run on the workdir while the first runs (stopped here): refused, naming the first.
  proc.send_signal(signal.SIGSTOP)
  code, _, err = utils.run_cli(*second)
  assert code == 2 and f'is in use by process {proc.pid} (started ' in err, err[-3000:]
  assert 'Traceback' not in err and len(err.strip().splitlines()) == 1, err
  # Killed mid-run; its lock dies with it. Then more files of the user, in the new directories.
  proc.send_signal(signal.SIGKILL)
  proc.communicate()
  planted.update(_plant(workdir))
  _, err = _cli(*second, '--config.checkpoint_every=1000')  # when a unit saves: not the config
  assert 'resuming from the checkpoint of epoch' in err
  _survived(planted)
  assert json.loads((workdir / 'results.json').read_text())['complete']
  assert not (workdir / 'seed_0' / 'lda' / 'result.json').exists()


def test_overwrite_refuses_a_directory_that_is_not_a_workdir_and_deletes_nothing(tmp_path):
  """A config.json with the keys of ours ({'name', 'config'}), but not written by this program:
  neither resumed nor emptied, whatever it sits beside; no file written there either. The four
  runs (two such directories, with and without --overwrite) in one utils.run_cli_batch."""
  workdirs, contents = [], {}
  for text in (
      '{"name": "my-app", "config": {"lr": 0.1}}\n',
      json.dumps({'name': 'iris', 'config': {'lr': 0.1}}, indent=1),  # as we write, not ours
  ):
    workdir = tmp_path / str(len(text))
    (workdir / 'seed_7').mkdir(parents=True)
    (workdir / 'search').mkdir()
    contents[workdir] = {
        'config.json': text,
        'seed_7/result.json': '{}',
        'search/notes.txt': 'x',
        'metrics.jsonl': '{}\n',
        '.draft.tmp': 'x',
    }
    for name, content in contents[workdir].items():
      (workdir / name).write_text(content)
    workdirs += [(workdir, flags) for flags in (('--overwrite',), ())]
  found = utils.run_cli_batch(
      [[*SMOKE, '--config.models=lda', f'--workdir={w}', *flags] for w, flags in workdirs]
  )
  for (workdir, _), (code, _, err) in zip(workdirs, found):
    assert code == 2 and 'nothing in it will be deleted' in err and str(workdir) in err, err
    assert 'Traceback' not in err and len(err.strip().splitlines()) == 1, err
    files = {str(p.relative_to(workdir)): p.read_text() for p in workdir.rglob('*') if p.is_file()}
    assert files == contents[workdir]


def test_a_held_lock_refuses_the_run_and_a_dead_holders_lock_does_not(tmp_path):
  workdir = tmp_path / 'run'
  with utils.lock_held_elsewhere(workdir) as pid:
    code, _, err = utils.run_cli(*SMOKE, '--config.models=lda', f'--workdir={workdir}')
    assert code == 2 and f'process {pid} (started 20' in err, err[-3000:]
    assert 'Traceback' not in err and len(err.strip().splitlines()) == 1, err
  _cli(*SMOKE, '--config.models=lda', f'--workdir={workdir}')
  assert (workdir / 'seed_0' / 'lda' / 'result.json').exists()


def _previous_version(workdir: pathlib.Path) -> None:
  """Makes `workdir` a workdir of the previous version: no manifest, no lock file."""
  for name in ('ecrn_jax.manifest.jsonl', 'ecrn_jax.lock'):
    (workdir / name).unlink()


def test_a_workdir_of_the_previous_version_resumes_and_overwrites_by_the_names_it_writes(tmp_path):
  """Without a manifest, the files at the paths that this program writes are its (the rest, and
  the temporaries of other names, the user's): a resume adopts them, --overwrite deletes them."""
  from experiments import workdir as workdir_lib  # pylint: disable=g-import-not-at-top

  workdir = tmp_path / 'run'
  args = (*SMOKE, '--config.models=lda', f'--workdir={workdir}')
  _cli(*args)
  _previous_version(workdir)
  # Files the user named as this program names its own are its own, by this policy.
  theirs = lambda p: re.fullmatch(workdir_lib._WRITTEN, re.sub(r'/\.(.+)\.\w{8}\.tmp$', r'/\1', p))
  planted = {p: t for p, t in _plant(workdir).items() if not theirs(str(p.relative_to(workdir)))}
  left = workdir / 'seed_0' / 'lda' / '.result.json.abcdefgh.tmp'  # an atomic write cut short
  left.write_text('{')
  _, err = _cli(*args)
  assert 'done earlier: skipped' in err and not left.exists()
  _survived(planted)
  listed = json.loads((workdir / 'ecrn_jax.manifest.jsonl').read_text().splitlines()[0])
  assert listed['format'] == 'ecrn_jax ownership manifest'

  _previous_version(workdir)
  _cli(*SMOKE, '--config.models=rbf_svm', f'--workdir={workdir}', '--overwrite')
  _survived(planted)
  assert not (workdir / 'seed_0' / 'lda' / 'result.json').exists()
  assert (workdir / 'seed_0' / 'rbf_svm' / 'result.json').exists()


def test_resume_deletes_the_temporaries_of_a_killed_write_and_only_those(tmp_path):
  """A write killed midway leaves a temporary whose name carries its run's token, which the
  manifest recorded: the next run deletes it; a user's file named like one stays."""
  workdir = tmp_path / 'run'
  args = (*SMOKE, '--config.models=lda', f'--workdir={workdir}')
  _cli(*args)
  utils.kill_mid_write(workdir, os.path.join('seed_0', 'lda', 'result.json'), adopt=True)
  left = [p for p in (workdir / 'seed_0' / 'lda').iterdir() if p.name.endswith('.tmp')]
  assert len(left) == 1
  planted = _plant(workdir)
  _, err = _cli(*args)
  assert not left[0].exists() and f'removed {left[0]}' in err
  _survived(planted)


def test_a_workdir_that_lost_its_config_is_not_resumed_under_another(tmp_path):
  """Its manifest lists files of a run whose config is gone (deleted, cut): resuming them under
  whatever config comes next could mix two runs, so --overwrite is needed, and deletes them."""
  from ecrn_jax import files  # pylint: disable=g-import-not-at-top
  from experiments import run, workdir  # pylint: disable=g-import-not-at-top

  _, config = run.load_config('iris:smoke')
  workdir.prepare(str(tmp_path), 'iris', config).release()
  files.write_json(str(tmp_path / 'seed_0' / 'lda' / 'result.json'), {'test': {}})
  (tmp_path / 'seed_0' / 'lda' / 'notes.txt').write_text('the user')
  (tmp_path / 'config.json').write_text('{"name": "iris", "conf')  # cut
  with pytest.raises(workdir.WorkdirError, match="holds a run's files, no config; .*--overwrite"):
    workdir.prepare(str(tmp_path), 'iris', config)
  workdir.prepare(str(tmp_path), 'iris', config, overwrite=True).release()
  assert sorted(p.name for p in (tmp_path / 'seed_0' / 'lda').iterdir()) == ['notes.txt']
  assert json.loads((tmp_path / 'config.json').read_text())['name'] == 'iris'
