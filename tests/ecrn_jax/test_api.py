# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The public API: every exported name resolves, `dir` shows them all, the top level stays small,
no name is exported twice, every deprecated spelling still resolves with a warning, and nothing
outside the library reaches into `ecrn_jax._src`."""

import ast
import importlib
import pathlib
import re
import subprocess
import sys
import textwrap
import types
import warnings

import numpy as np
import pytest

import utils

import ecrn_jax

REPO = pathlib.Path(__file__).resolve().parents[2]
PUBLIC_MODULES = utils.PUBLIC_MODULES


@pytest.mark.parametrize('name', PUBLIC_MODULES)
def test_every_exported_name_resolves_and_is_listed(name):
  module = importlib.import_module(name)
  assert module.__all__ and len(module.__all__) == len(set(module.__all__))
  missing = [n for n in module.__all__ if not hasattr(module, n)]
  assert not missing, missing
  assert set(module.__all__) <= set(dir(module))


def test_the_top_level_is_small_and_no_name_is_exported_twice():
  assert len(ecrn_jax.__all__) <= 24, ecrn_jax.__all__
  homes = {}
  for name in PUBLIC_MODULES:
    module = importlib.import_module(name)
    for exported in module.__all__:
      value = getattr(module, exported)
      if isinstance(value, types.ModuleType) or isinstance(value, (int, float, str)):
        continue
      homes.setdefault(id(value), []).append(f'{name}.{exported}')
  # The estimators are loaded lazily at the top level as well: the one allowed alias.
  twice = [
      h
      for h in homes.values()
      if len(h) > 1 and not h[0].endswith(('NTKClassifier', 'NTKRegressor'))
  ]
  assert not twice, twice


def test_no_public_module_is_named_after_a_standard_library_module():
  for name in PUBLIC_MODULES[1:]:
    assert name.split('.')[-1] not in sys.stdlib_module_names, name


def test_lazy_estimators_are_listed_and_load():
  assert {'NTKRegressor', 'NTKClassifier', 'estimators'} <= set(dir(ecrn_jax))
  assert ecrn_jax.NTKRegressor is importlib.import_module('ecrn_jax.estimators').NTKRegressor
  with pytest.raises(AttributeError, match='no attribute'):
    ecrn_jax.no_such_name  # pylint: disable=pointless-statement
  with pytest.raises(AttributeError, match='no attribute'):
    ecrn_jax.regression.no_such_name  # pylint: disable=pointless-statement


def _deprecated():
  """(module, old name, new spelling, object) of every deprecated spelling."""
  for module in (ecrn_jax, ecrn_jax.regression):
    for name, (new, value) in module._DEPRECATED.items():  # pylint: disable=protected-access
      yield module, name, new, value


@pytest.mark.parametrize(
    'module, name, new, value', list(_deprecated()), ids=lambda v: v if isinstance(v, str) else ''
)
def test_deprecated_names_resolve_warn_and_are_their_new_home(module, name, new, value):
  assert name not in module.__all__ and name not in vars(module)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    resolved = getattr(module, name)
  assert resolved is value
  assert len(caught) == 1 and caught[0].category is DeprecationWarning
  message = str(caught[0].message)
  assert f'{module.__name__}.{name} is deprecated' in message and new in message
  assert caught[0].filename == __file__  # points at the line that used the old name
  if re.fullmatch(r'[\w.]+', new):  # moved: the new spelling names the same object
    home, attribute = new.rsplit('.', 1)
    assert getattr(importlib.import_module(home), attribute) is value
  else:  # replaced: a thin wrapper over the new entry point (same numbers: test_infinite.py)
    assert callable(value) and new.startswith('ecrn_jax.')


# The 69 top-level names of ecrn_jax 0.1.0 before the public API was cut down (issue 23).
TOP_LEVEL_BEFORE = (
    'analysis',
    'estimators',
    'io',
    'regression',
    'ArchConfig',
    'Dense',
    'ECRN',
    'ECRNConfig',
    'FourierFeatures',
    'MLP',
    'MLPConfig',
    'fourier_embed',
    'fourier_matrix',
    'resolve_dtype',
    'auto_vp_batch_size',
    'empirical_nngp',
    'empirical_ntk',
    'ntk_vp_fn',
    'ExpectedKernels',
    'InfiniteKernels',
    'block_scales',
    'embed_inputs',
    'expected_kernels_stochastic_depth',
    'infinite_kernel_fn',
    'infinite_kernels',
    'stax_twin',
    'to_stax_params',
    'ConvergenceResult',
    'finite_vs_infinite',
    'fit_power_law',
    'relative_frobenius_error',
    'LinearizedModel',
    'TrainConfig',
    'TrainState',
    'TrainingDiverged',
    'cross_entropy_loss',
    'learning_rate_schedule',
    'linearize',
    'make_optimizer',
    'make_train_epoch',
    'make_train_step',
    'mse_loss',
    'steps_per_epoch',
    'train',
    'KernelTracker',
    'TrackingConfig',
    'TrackingWriter',
    'NTKClassifier',
    'NTKRegressor',
    'GaussianPosterior',
    'JitterWarning',
    'JitteredSolve',
    'RESIDUAL_TOLERANCE',
    'TemperatureCalibration',
    'batched_infinite_kernel_diagonal',
    'batched_infinite_kernels',
    'calibrate_temperature',
    'calibrated_softmax',
    'centered_one_hot',
    'cholesky_with_jitter',
    'cross_validated_scores',
    'dual_coefficients',
    'empirical_kernel_regression',
    'fit_softmax_temperature',
    'gp_posterior',
    'infinite_kernel_regression',
    'kernel_regression',
    'mean_diagonal',
    'solve_with_jitter',
)


def test_every_name_the_top_level_exported_before_still_resolves():
  before = TOP_LEVEL_BEFORE
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', DeprecationWarning)
    missing = [name for name in before if not hasattr(ecrn_jax, name)]
    missing += [
        f'regression.{name}'
        for name in ecrn_jax.regression.__all__ + ['batched_infinite_kernels']
        if not hasattr(ecrn_jax.regression, name)
    ]
  assert not missing, missing


def test_from_ecrn_jax_import_io_warns_and_gives_files():
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    from ecrn_jax import io  # pylint: disable=g-import-not-at-top,reimported,redefined-builtin
  assert io is ecrn_jax.files
  assert caught and all(w.category is DeprecationWarning for w in caught)
  assert 'use ecrn_jax.files' in str(caught[-1].message)


def test_import_ecrn_jax_io_warns_and_binds_files():
  code = textwrap.dedent("""
      import warnings
      warnings.simplefilter('error', DeprecationWarning)
      try:
        import ecrn_jax.io
      except DeprecationWarning as e:
        assert 'use ecrn_jax.files' in str(e), e
        print('warned')
      warnings.simplefilter('ignore', DeprecationWarning)
      import ecrn_jax.io as old
      import ecrn_jax.files
      assert old is ecrn_jax.files
      print('bound')
  """)
  result = subprocess.run(
      [sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO, timeout=300
  )
  assert 'warned' in result.stdout and 'bound' in result.stdout, result.stderr[-3000:]


def test_deprecated_infinite_kernels_give_the_numbers_of_the_new_entry_point():
  config = ecrn_jax.ECRNConfig(width=8, depth=2, fourier_features=3, drop_rate=0.3)
  x = np.linspace(-1.0, 1.0, 8).reshape(4, 2)
  variables = ecrn_jax.ECRN(config).init(__import__('jax').random.PRNGKey(0), x)
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', DeprecationWarning)
    old = ecrn_jax.infinite_kernels(config, x, x[:3], variables=variables)
    old_expected = ecrn_jax.expected_kernels_stochastic_depth(config, x, variables=variables)
  new = ecrn_jax.infinite_kernel_fn(config, variables=variables)(x, x[:3])
  new_expected = ecrn_jax.infinite_kernel_fn(config, variables=variables, expectation='exact')(x)
  for a, b in zip(old, new):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(old_expected, new_expected):
    np.testing.assert_array_equal(a, b)


def _imports(path: pathlib.Path) -> set[str]:
  names = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      names.update(a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      names.add(node.module)
      names.update(f'{node.module}.{a.name}' for a in node.names)
  return names


def test_experiments_and_benchmarks_use_the_public_api_only():
  offenders = []
  for folder in ('experiments', 'benchmarks'):
    for path in sorted((REPO / folder).rglob('*.py')):
      if any(name.startswith('ecrn_jax._src') for name in _imports(path)):
        offenders.append(str(path.relative_to(REPO)))
  for path in sorted((REPO / 'experiments').rglob('*.ipynb')):
    if 'ecrn_jax._src' in path.read_text():
      offenders.append(str(path.relative_to(REPO)))
  assert not offenders, offenders
