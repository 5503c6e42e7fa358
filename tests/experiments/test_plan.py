# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The plan read once from the config (experiments/plan.py): configs that import nothing of the
runner, typed unit plans that carry no config, pinning, and plan.json beside every unit."""

import ast
import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import ml_collections
import pytest

import utils

from experiments import plan as plan_lib
from experiments import registry
from experiments import run as run_lib
from experiments import sources
from experiments.configs import common

CONFIG_DIR = pathlib.Path(utils.REPO) / 'experiments' / 'configs'


def test_config_modules_import_nothing_but_ml_collections():
  """Every config module imports the standard library, ml_collections and the configs package
  only; loading every config imports no runner module, no JAX and no ecrn_jax."""
  for path in sorted(CONFIG_DIR.glob('*.py')):
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom):
        names = [node.module]
      else:
        continue
      for name in names:
        allowed = name in ('math', 'ml_collections') or name.startswith('experiments.configs')
        assert allowed, (path.name, name)
  code = (
      'import importlib, sys\n'
      f'for name in {[n for n in run_lib.CONFIGS]}:\n'
      "  importlib.import_module('experiments.configs.' + name).get_config('smoke')\n"
      "ours = sorted(m for m in sys.modules if m.split('.')[0] in ('experiments', 'ecrn_jax', 'jax'))\n"
      'print(ours)'
  )
  proc = subprocess.run(
      [sys.executable, '-c', code], cwd=utils.REPO, capture_output=True, text=True, timeout=120
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  loaded = eval(proc.stdout.strip().splitlines()[-1])  # pylint: disable=eval-used
  assert all(
      m in ('experiments', 'experiments.configs') or m.startswith('experiments.configs.')
      for m in loaded
  ), loaded


def test_config_literals_equal_the_registry_and_the_sources():
  assert common.MODELS == registry.MODELS
  assert common.base_config('iris').models == registry.MODELS
  assert common.BOSTON_NUM_ROWS == sources.BOSTON_NUM_ROWS


def _no_config(value, path='plan'):
  """Fails when `value` holds an ml_collections object anywhere."""
  assert not isinstance(value, (ml_collections.ConfigDict, ml_collections.FieldReference)), path
  if isinstance(value, dict):
    for key, item in value.items():
      _no_config(item, f'{path}.{key}')
  elif isinstance(value, (list, tuple)):
    for i, item in enumerate(value):
      _no_config(item, f'{path}[{i}]')
  elif dataclasses.is_dataclass(value):
    for field in dataclasses.fields(value):
      _no_config(getattr(value, field.name), f'{path}.{field.name}')


def test_unit_plans_are_frozen_typed_and_hold_no_config():
  _, config = run_lib.load_config('synthetic_regression:ablations,smoke')
  run = plan_lib.build(config)
  _no_config(run)
  for name in run.models + ('resnet18', 'standard_ntk', 'ntk_ecrn_infinite'):
    unit = run.unit(name, 0)
    _no_config(unit)
    with pytest.raises(dataclasses.FrozenInstanceError):
      unit.seed = 1
  ecrn = run.unit('ntk_ecrn', 0)
  assert ecrn.train.epochs == 3 and ecrn.tracking.probe_size == 16 and ecrn.kernel is None
  twin = run.unit('ntk_ecrn_infinite', 0)
  assert twin.arch.dtype == 'float64' and twin.network_dtype == 'float32' and twin.train is None
  assert twin.kernel.diag_reg == config.kernel.diag_reg
  trial = run.unit('ntk_ecrn', 0, {'train.epochs': 12}, trial=True)
  assert trial.tracking is None and trial.checkpoint_every == 3  # at most four saves
  config.seeds = (0, 1)  # the plan was read before: it does not change
  assert run.seeds == (0,)


def test_for_data_sets_what_the_data_fix():
  _, config = run_lib.load_config('iris:smoke')
  run = plan_lib.build(config)
  from experiments import input_pipeline  # pylint: disable=g-import-not-at-top

  dataset = input_pipeline.load_dataset(run.data, seed=0)
  unit = run.unit('ntk_ecrn', 0).for_data(dataset)
  assert unit.arch.out_dim == 3 and unit.train.loss == 'cross_entropy'
  assert unit.arch.fourier_scale == pytest.approx(1.0 / (2 * 3.141592653589793 * 2.0))  # d = 4
  assert unit.tracking.probe_size == 16
  explicit = plan_lib.build(run_lib.load_config('iris:smoke', ['ecrn.fourier_scale=0.5'])[1])
  assert explicit.unit('ntk_ecrn', 0).for_data(dataset).arch.fourier_scale == 0.5


def test_one_tracked_model_given_as_a_string_is_one_name_never_a_substring():
  """tracking.models='ntk_ecrn_alpha1' (a string, not a tuple) tracks that variant alone: not
  ntk_ecrn, whose name is inside the string, nor ntk_ecrn's other variants (issue 26)."""
  _, config = run_lib.load_config('iris:ablations,smoke')
  with config.unlocked():
    del config.tracking['models']  # the field is a tuple: a string needs it gone first
    config.tracking.models = 'ntk_ecrn_alpha1'
  run = plan_lib.build(config)
  assert [name for name in run.models if run.unit(name).tracking] == ['ntk_ecrn_alpha1']


def test_a_pinned_field_differs_from_the_same_value_in_a_config_file_as_documented():
  """plan.py's rule: a command-line value beats the model defaults and leaves the grids; the
  same value in the config file is where the search starts, and a default replaces it."""
  _, pinned = run_lib.load_config('iris:smoke', ['train.learning_rate=0.003'])
  _, written = run_lib.load_config('iris:smoke')
  for config in (pinned, written):
    with config.unlocked():
      config.model_defaults.mlp = dict(train=dict(learning_rate=0.01))
  written.train.learning_rate = 0.003
  pinned_run, written_run = plan_lib.build(pinned), plan_lib.build(written)
  assert pinned_run.unit('mlp').train.learning_rate == 0.003
  assert written_run.unit('mlp').train.learning_rate == 0.01
  assert 'train.learning_rate' not in pinned_run.grid('ntk_ecrn')[0]
  axes = written_run.grid('ntk_ecrn')[0]
  assert written_run.start_point('ntk_ecrn', axes)['train.learning_rate'] == 0.003
  assert pinned_run.unit('ntk_ecrn', 0, {'train.learning_rate': 0.1}).train.learning_rate == 0.003


def test_every_unit_and_trial_writes_its_plan(iris_smoke_workdir):
  """plan.json beside every unit's and trial's result.json: the plan it ran, for its data."""
  root = pathlib.Path(iris_smoke_workdir)
  results = json.loads((root / 'results.json').read_text())
  for unit in results['units']:
    directory = root / f'seed_{unit["seed"]}' / unit['model']
    saved = json.loads((directory / 'plan.json').read_text())
    assert saved['model'] == unit['model'] and saved['seed'] == unit['seed']
    assert saved['overrides'] == unit['hyperparameters']
    assert 'directory' not in saved and saved['label'].startswith(f'[seed {unit["seed"]} ')
    if saved['kind'] == 'trained':
      assert saved['train'] == unit['train_config']
    elif saved['kind'] == 'kernel':
      assert saved['arch'] == unit['architecture']
  trials = list(root.glob('search/seed_*/*/trial_*/result.json'))
  assert trials and all(os.path.exists(t.parent / 'plan.json') for t in trials)
  for trial in trials:
    saved = json.loads((trial.parent / 'plan.json').read_text())
    assert saved['tracking'] is None
