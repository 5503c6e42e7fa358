# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Helpers shared by the tests of the experiments layer: the CLI, config loading, smoke runs."""

import contextlib
import json
import os
import signal
import subprocess
import sys

import numpy as np

# The public modules of ecrn_jax (the API and doctest checks walk them).
PUBLIC_MODULES = (
    'ecrn_jax',
    'ecrn_jax.analysis',
    'ecrn_jax.estimators',
    'ecrn_jax.files',
    'ecrn_jax.kernels',
    'ecrn_jax.models',
    'ecrn_jax.regression',
    'ecrn_jax.training',
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(REPO, '..', 'shared', 'data')
BOSTON_CSV = os.path.join(SHARED_DATA, 'uci', 'boston_housing.csv')


# The shared `iris:smoke` run of tests/conftest.py (fixture iris_smoke_workdir): two seeds, two
# search trials per model, every model but ResNet-18.
IRIS_SMOKE_OVERRIDES = (
    'seeds=(0, 1)',
    'search.trials=2',
    "models=('mlp', 'standard_ntk', 'ntk_ecrn', 'ntk_ecrn_infinite')",
)


def cli(*args, **kwargs) -> subprocess.Popen:
  """`python -m experiments.run ARGS` started in the repository root."""
  return subprocess.Popen(
      [sys.executable, '-m', 'experiments.run', *args],
      cwd=REPO,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
      **kwargs,
  )


def run_cli(*args, timeout=300) -> tuple[int, str, str]:
  proc = cli(*args)
  out, err = proc.communicate(timeout=timeout)
  return proc.returncode, out, err


# The program of run_cli_batch: reads a JSON list of argument lists on stdin; imports what
# `python -m experiments.run` imports before it runs; then runs each argument list as that
# command does (experiments/run.py executed as __main__), each in a child forked from it, with
# its stdout and stderr in files; prints a JSON list of [exit code, stdout, stderr].
_BATCH_PROGRAM = r"""
import json, os, runpy, sys, tempfile, traceback
import absl.app, ml_collections.config_flags
import experiments.finite_vs_infinite, experiments.plan, experiments.train, experiments.workdir
sys.modules.pop('experiments.run', None)
PROGRAM = os.path.join(os.path.dirname(experiments.__file__), 'run.py')
found = []
for args in json.load(sys.stdin):
  out, err = tempfile.TemporaryFile('w+'), tempfile.TemporaryFile('w+')
  sys.stdout.flush(); sys.stderr.flush()
  pid = os.fork()
  if pid == 0:
    os.dup2(out.fileno(), 1); os.dup2(err.fileno(), 2)
    sys.argv = [PROGRAM, *args]
    try:
      runpy.run_module('experiments.run', run_name='__main__', alter_sys=True)
      code = 0
    except SystemExit as e:
      code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
      if not isinstance(e.code, int) and e.code is not None:
        print(e.code, file=sys.stderr)
    except BaseException:
      traceback.print_exc()
      code = 1
    sys.stdout.flush(); sys.stderr.flush()
    os._exit(code)
  _, status = os.waitpid(pid, 0)
  out.seek(0); err.seek(0)
  found.append([os.waitstatus_to_exitcode(status), out.read(), err.read()])
print(json.dumps(found))
"""


def run_cli_batch(cases, timeout=600) -> list[tuple[int, str, str]]:
  """(exit code, stdout, stderr) of `python -m experiments.run ARGS` for each ARGS in `cases`
  (lists of str), as run_cli gives them, run by one process that imports the program's
  modules once and runs each case in a child forked from it: experiments/run.py executed as
  __main__ with that sys.argv, as `python -m` does. For the CLI's error paths, many at once."""
  proc = subprocess.run(
      [sys.executable, '-c', _BATCH_PROGRAM],
      cwd=REPO,
      input=json.dumps([list(args) for args in cases]),
      capture_output=True,
      text=True,
      timeout=timeout,
      check=False,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  return [tuple(found) for found in json.loads(proc.stdout.splitlines()[-1])]


def without_timings(obj):
  """`obj` without its 'seconds' entries (the only fields that differ between equal runs)."""
  if isinstance(obj, dict):
    return {k: without_timings(v) for k, v in obj.items() if k != 'seconds'}
  if isinstance(obj, list):
    return [without_timings(v) for v in obj]
  return obj


def smoke_run(name: str, workdir, overrides=(), *, search: bool = False):
  """(config, results) of `NAME:smoke` with `overrides` ('field=value') run in `workdir`."""
  from experiments import run, train, workdir as workdir_lib  # pylint: disable=g-import-not-at-top

  overrides = list(overrides) + ([] if search else ['search.enabled=False'])
  _, config = run.load_config(f'{name}:smoke', overrides)
  workdir_lib.prepare(str(workdir), name, config)
  if name == 'cifar_subset' and not config.data.data_dir:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    with tfds.testing.mock_data(num_examples=96):
      return config, train.train_and_evaluate(config, str(workdir))
  return config, train.train_and_evaluate(config, str(workdir))


def shared_directory(tmp_path_factory, name: str, build) -> str:
  """The directory `name`, filled once per test session by `build(directory)` and read by every
  test that asks for it: under pytest-xdist the workers share it (the first to get the lock
  builds it, the others wait and read it). A build that stopped half-way (no `.complete`
  marker) is handed to the next `build`, which must finish it or start again. Returns a str."""
  import fcntl  # pylint: disable=g-import-not-at-top   (POSIX only, as the tests that use it)

  root = tmp_path_factory.getbasetemp()
  if os.environ.get('PYTEST_XDIST_WORKER'):
    root = root.parent
  directory = root / name
  with open(root / f'{name}.lock', 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not (root / f'{name}.complete').exists():
      build(directory)
      (root / f'{name}.complete').write_text('')
  return str(directory)


def regression_data(n: int, d: int = 4, seed: int = 0):
  """(x (n, d), y (n,)): standardized Gaussian inputs and a standardized smooth target."""
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((n, d))
  x = (x - x.mean(0)) / x.std(0)
  y = np.sin(x @ rng.standard_normal(d))
  return x, (y - y.mean()) / y.std()


def small_ecrn_config():
  """A small float64 NTK-ECRN config (width 16, depth 2, 6 Fourier features, gelu) for kernels."""
  import ecrn_jax  # pylint: disable=g-import-not-at-top

  return ecrn_jax.ECRNConfig(
      width=16,
      depth=2,
      fourier_features=6,
      fourier_scale=0.5,
      drop_rate=0.2,
      activation='gelu',
      dtype='float64',
  )


def kill_mid_write(root, relative: str, *, adopt: bool) -> None:
  """A process that activates ROOT's manifest (a new one, or with adopt=True the one there),
  starts `files.atomic_open(ROOT/relative)`, writes half of it and SIGKILLs itself."""
  activate = 'Manifest.load(sys.argv[1])' if adopt else 'Manifest(sys.argv[1])'
  code = (
      'import os, sys; from ecrn_jax import files; '
      f'files.{activate}.activate(); '
      f'write = files.atomic_open(os.path.join(sys.argv[1], {relative!r})); '
      'f = write.__enter__(); f.write("{"); f.flush(); os.kill(os.getpid(), 9)'
  )
  killed = subprocess.run([sys.executable, '-c', code, str(root)], cwd=REPO, check=False)
  assert killed.returncode == -signal.SIGKILL, killed


@contextlib.contextmanager
def lock_held_elsewhere(directory):
  """Yields the pid of another process that holds `files.DirectoryLock(directory)`; SIGKILLs it
  on exit, so the lock is the dead holder's."""
  code = 'import sys, time; from ecrn_jax import files; lock = files.DirectoryLock(sys.argv[1]); '
  code += 'print("locked", flush=True); time.sleep(300)'
  holder = subprocess.Popen(
      [sys.executable, '-c', code, str(directory)], cwd=REPO, stdout=subprocess.PIPE, text=True
  )
  try:
    assert holder.stdout.readline().strip() == 'locked'
    yield holder.pid
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.communicate()
