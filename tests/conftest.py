# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Test set-up: kernels are compared in float64, so the suite runs with 64-bit JAX.

`ECRN_JAX_TEST_X64=0` runs it with 64-bit JAX off, as a user's default JAX is (CI runs the
library's tests so, with `-m 'not x64'`): the float32 paths run as users run them. Tests that need
float64 are marked `x64` (a module may mark all its tests with `pytestmark`) and are skipped there.

Tests marked `reference` compare with neural-tangents (jax < 0.6 only). They are skipped when it
cannot be imported, and run alone with `--reference-lane` (in a venv with neural-tangents, where
its absence is an error): the main lane compares with in-repo references (tests/reference_ntk.py).
"""

import importlib.util
import json
import os
import shutil
import tempfile

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
# One persistent JAX compilation cache per test session, in a fresh directory removed at its end:
# the pytest-xdist workers and the processes the tests start (CLI runs, the notebook's kernel)
# inherit it from the process that made it, so a program that several tests compile alike (equal
# models built anew, the same smoke config run again) is compiled once. It changes no number: a
# cached executable is the one XLA compiled. A directory the user set is used and kept.
_JIT_CACHE_OWNED = None
_GROUPS_DIR = None  # the directory of the xdist groups file, made by pytest_configure
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  _JIT_CACHE_OWNED = tempfile.mkdtemp(prefix='ecrn_jax_tests_jit_cache_')
  os.environ['JAX_COMPILATION_CACHE_DIR'] = _JIT_CACHE_OWNED
  # Programs that take 0.1 s or more to compile (not every small eager operation).
  os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0.1')
if os.environ.get('PYTEST_XDIST_WORKER'):
  # One XLA thread per pytest-xdist worker (`-n auto`: a worker per core), not a thread pool per
  # worker competing for every core.
  os.environ.setdefault(
      'XLA_FLAGS', '--xla_cpu_multi_thread_eigen=false ' 'intra_op_parallelism_threads=1'
  )

import jax  # pylint: disable=g-import-not-at-top
import numpy as np
import pytest

X64 = os.environ.get('ECRN_JAX_TEST_X64', '1') != '0'
jax.config.update('jax_enable_x64', X64)

# Relative tolerances keyed by dtype (docs/spec.md §3).
RTOL = {'float64': 1e-10, 'float32': 1e-4}

REFERENCE_SKIP_REASON = (
    'neural-tangents not installed (reference lane: pip install -c '
    "constraints-reference.txt -e '.[reference,test]')"
)


def relative_max_error(actual, expected) -> float:
  actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
  return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def pytest_addoption(parser):
  parser.addoption(
      '--reference-lane',
      action='store_true',
      default=False,
      help='run only the tests marked `reference` (comparisons with '
      'neural-tangents); a missing neural-tangents is an error.',
  )


def pytest_configure(config):
  config.addinivalue_line(
      'markers', 'reference: compares with neural-tangents; runs in the reference lane'
  )
  config.addinivalue_line(
      'markers', 'x64: needs 64-bit JAX (float64); skipped when ECRN_JAX_TEST_X64=0'
  )
  config.addinivalue_line(
      'markers',
      'slow: end-to-end runs and width sweeps (over ~10 s each); -m "not slow" '
      'leaves them out for a quick check',
  )
  if config.getoption('dist', 'no') == 'loadgroup' and not hasattr(config, 'workerinput'):
    global _GROUPS_DIR
    _GROUPS_DIR = tempfile.mkdtemp(prefix='ecrn_jax_tests_xdist_groups_')
    os.environ[_GROUPS_FILE] = os.path.join(_GROUPS_DIR, 'groups.json')  # the workers inherit it
  if config.getoption('--reference-lane'):
    error = _neural_tangents_import_error()
    if error is not None:
      raise pytest.UsageError(
          f'--reference-lane needs neural_tangents, which failed to import ({error}). '
          'Install the reference lane: pip install -c constraints-reference.txt '
          "-e '.[reference,test]'"
      )


def pytest_unconfigure(config):
  del config
  for owned in (_JIT_CACHE_OWNED, _GROUPS_DIR):
    if owned is not None:
      shutil.rmtree(owned, ignore_errors=True)


def _neural_tangents_import_error():
  """None when neural_tangents imports, else the reason. Does not import TensorFlow when
  neural_tangents is not installed."""
  if importlib.util.find_spec('neural_tangents') is None:
    return 'No module named neural_tangents'
  try:
    import neural_tangents  # pylint: disable=g-import-not-at-top,unused-import
  except Exception as e:  # pylint: disable=broad-except   (AttributeError on jax >= 0.6)
    return f'{type(e).__name__}: {e}'
  return None


# The session fixtures that build a directory once for every worker (utils.shared_directory),
# and the pytest-xdist group of the tests that read each: with `--dist loadgroup` one worker
# builds it and runs its readers, while the other runs the rest instead of waiting on its lock.
SHARED_BUILD_GROUPS = {
    'iris_smoke_workdir': 'iris_smoke',
    'sigkill_resumed': 'sigkill_resume',
    'bad_args_runs': 'bad_args',
}


# pytest-xdist 3.8's `--dist loadgroup` marks a test's group by appending it to the test's node
# id, which pytest 9 no longer lets a plugin change: the groups are silently ignored
# (pytest-dev/pytest-xdist#1386). Until a release fixes it, the workers write the groups
# ({node id: group}) to the file named by this variable and the scheduler below reads them.
_GROUPS_FILE = 'ECRN_JAX_TESTS_XDIST_GROUPS'


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook
def pytest_xdist_make_scheduler(config, log):
  """`--dist loadgroup`, grouped by the xdist_group marks that the workers wrote down."""
  if config.getoption('dist') != 'loadgroup':
    return None
  from xdist.scheduler import LoadGroupScheduling  # pylint: disable=g-import-not-at-top

  class Scheduling(LoadGroupScheduling):

    def _split_scope(self, nodeid):
      if not hasattr(self, 'groups'):  # read once, when the workers have collected
        with open(os.environ[_GROUPS_FILE]) as f:
          self.groups = json.load(f)
      return self.groups.get(nodeid) or super()._split_scope(nodeid)  # (older pytest: '@group')

  return Scheduling(config, log)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
  for item in items:
    fixtures = getattr(item, 'fixturenames', ())
    groups = {group for name, group in SHARED_BUILD_GROUPS.items() if name in fixtures}
    if len(groups) == 1 and item.get_closest_marker('xdist_group') is None:
      item.add_marker(pytest.mark.xdist_group(groups.pop()))
  # The slow tests first (a stable sort): pytest-xdist hands the groups out first (most tests
  # first), then single tests in this order, so the long ones start early and the short ones
  # even out the two workers at the end.
  items.sort(key=lambda item: item.get_closest_marker('slow') is None)
  if hasattr(config, 'workerinput') and config.getoption('loadgroup', False):
    marked = {item.nodeid: item.get_closest_marker('xdist_group') for item in items}
    groups = {
        k: f'group:{m.args[0] if m.args else m.kwargs["name"]}' for k, m in marked.items() if m
    }
    temporary = f'{os.environ[_GROUPS_FILE]}.{config.workerinput["workerid"]}'
    with open(temporary, 'w') as f:
      json.dump(groups, f)
    os.replace(temporary, os.environ[_GROUPS_FILE])  # every worker writes the same
  if not X64:
    skip_x64 = pytest.mark.skip(reason='needs 64-bit JAX (ECRN_JAX_TEST_X64=0)')
    for item in items:
      if item.get_closest_marker('x64') is not None:
        item.add_marker(skip_x64)
  reference = [item for item in items if item.get_closest_marker('reference') is not None]
  if config.getoption('--reference-lane'):
    deselected = [item for item in items if item.get_closest_marker('reference') is None]
    if deselected:
      config.hook.pytest_deselected(items=deselected)
    items[:] = reference
    return
  if reference and _neural_tangents_import_error() is not None:
    skip = pytest.mark.skip(reason=REFERENCE_SKIP_REASON)
    for item in reference:
      item.add_marker(skip)


@pytest.fixture
def nt():
  """neural_tangents, for the tests marked `reference`."""
  import neural_tangents  # pylint: disable=g-import-not-at-top

  return neural_tangents


@pytest.fixture
def rng():
  return np.random.default_rng(0)


@pytest.fixture(scope='session')
def iris_smoke_workdir(tmp_path_factory):
  """One real `iris:smoke` run shared by the run, search and resume tests: two seeds, the
  models mlp, standard_ntk, ntk_ecrn and ntk_ecrn_infinite (the other configs' smoke runs have
  the rest), two search trials per model (utils.IRIS_SMOKE_OVERRIDES). Returns the workdir (a
  str); tests that change files in it copy it first. A run that stopped half-way is resumed by
  the next worker.
  """
  import utils  # pylint: disable=g-import-not-at-top

  def build(directory):
    if (
        not (directory / 'results.json').exists()
        or not json.loads((directory / 'results.json').read_text())['complete']
    ):
      _, results = utils.smoke_run('iris', directory, utils.IRIS_SMOKE_OVERRIDES, search=True)
      assert results['complete']

  return utils.shared_directory(tmp_path_factory, 'iris_smoke', build)
