# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Hyperparameter selection (experiments/search.py): the grid, the per-model plans, that the
selection sees only the validation split, and the ablation variants."""

import dataclasses
import json
import math
import os

import numpy as np
import pytest

import utils

from experiments import checks
from experiments import input_pipeline
from experiments import models
from experiments import plan as plan_lib
from experiments import refinement
from experiments import search
from experiments import search_tables
from experiments.configs import cifar_subset
from experiments.configs import common
from experiments.configs import iris
from experiments.configs import synthetic_regression
from experiments.configs import wine


def _value(plan, path):
  """The value of config field `path` that the unit of `plan` runs with (None: not its block)."""
  block, field = path.split('.')
  if block == plan.spec.family:
    return (
        plan.fourier_scale_factor if field == 'fourier_scale_factor' else getattr(plan.arch, field)
    )
  settings = {'train': plan.train, 'kernel': plan.kernel}.get(block)
  return None if settings is None else getattr(settings, field)


def _ecrn_block(plan):
  """The ecrn block that the unit of `plan` (trained, or a twin) runs with."""
  block = dataclasses.asdict(plan.arch)
  return {**block, 'dtype': plan.network_dtype, 'fourier_scale_factor': plan.fourier_scale_factor}


def _separable(values):
  """A fake run_unit scoring a setting by a known separable function of its fields: the
  accuracy falls with the distance, on log scales, from `values` ({config path: optimum})."""

  def run_unit(plan, dataset):
    distance = 0.0
    for path, optimum in values.items():
      value = _value(plan, path)
      if value is not None:
        distance += abs(math.log2(max(value, 1e-6)) - math.log2(max(optimum, 1e-6)))
    return {'test': {'accuracy': 1.0 - distance / 100, 'cross_entropy': distance}}

  return run_unit


def test_grid_sweep_order_start_point_and_epoch_fractions_up_to_2():
  config = iris.get_config()
  axes, removed = plan_lib.read(config).grid('ntk_ecrn')
  assert removed == [] and list(axes)[0] == 'train.learning_rate'  # swept first
  assert list(axes)[1:] == sorted(list(axes)[1:])
  assert refinement.grid_size(axes) == 5 * 3 * 3 * 7 * 3 * 2
  # The configured values where the grid holds them, else the middle value.
  start = plan_lib.read(config).start_point('ntk_ecrn', axes)
  assert start['train.learning_rate'] == 1e-3 and start['ecrn.drop_rate'] == 0.1
  assert start['ecrn.fourier_scale_factor'] == 1.0 and start['train.epochs_fraction'] == 1.0
  config.ecrn.alpha = 0.7
  assert plan_lib.read(config).start_point('ntk_ecrn', axes)['ecrn.alpha'] == 1.0
  config.train.epochs = 10  # the epoch grid is relative to train.epochs, up to 2E
  run = plan_lib.read(config)
  epochs = {
      run.unit_selection('mlp', {'train.epochs_fraction': f})['train.epochs']
      for f in run.grid('mlp')[0]['train.epochs_fraction']
  }
  assert epochs == {5, 10, 20}
  with pytest.raises(ValueError, match='epochs_fraction values must be finite numbers > 0'):
    run.unit_selection('mlp', {'train.epochs_fraction': 0.0})
  # CIFAR's feature count, whose large values cost the most, is swept last, from 256.
  config = cifar_subset.get_config()
  axes, _ = plan_lib.read(config).grid('ntk_ecrn')
  assert list(axes)[0] == 'train.learning_rate' and list(axes)[-1] == 'ecrn.fourier_features'
  assert plan_lib.read(config).start_point('ntk_ecrn', axes)['ecrn.fourier_features'] == 256


def test_extension_is_one_step_of_the_axis_beyond_its_edge():
  assert refinement.extension((1e-4, 1e-3, 1e-2), 'upper') == pytest.approx(0.1)
  assert refinement.extension((1e-4, 1e-3, 1e-2), 'lower') == pytest.approx(1e-5)
  assert refinement.extension(common.SIGMA_FF_GRID, 'lower') == pytest.approx(0.125 / math.sqrt(2))
  assert refinement.extension((0.5, 1.0, 2.0), 'upper') == 4.0
  assert refinement.extension((0.0, 0.1), 'upper') == pytest.approx(0.2)
  assert refinement.extension((0.0, 0.1), 'lower') is None  # 0 bounds drop rates and decays
  assert refinement.extension((256, 512), 'upper') == 1024
  assert refinement.extension((True, False), 'upper') is None
  assert refinement.extension(('relu', 'gelu'), 'upper') is None
  assert (
      refinement.edge((0.0, 1e-4, 1e-3), 0.0) == 'lower' and refinement.edge((1, 2, 3), 2) is None
  )
  assert refinement.edge((True, False), True) is None


def test_refinement_tries_every_value_of_every_axis_and_finds_a_separable_optimum():
  axes = {'a': (1, 2, 3, 4, 5), 'b': (10, 20, 30), 'c': ('x', 'y')}
  optimum = {'a': 4, 'b': 10, 'c': 'y'}
  seen = []

  def evaluate(point, phase):
    seen.append((dict(point), phase))
    return (abs(point['a'] - 4) + abs(point['b'] - 10) + (point['c'] != 'y'), 0.0)

  ref = refinement.Refinement(axes, evaluate, max_trials=100)
  ref.refine({'a': 3, 'b': 20, 'c': 'x'}, rounds=3)
  assert ref.best == optimum
  assert len(seen) == len({json.dumps(p, sort_keys=True) for p, _ in seen})  # each once
  # Round 1: every other value of a, b, c; round 2 the same about the new best (moving
  # nothing, so no round 3).
  assert len(seen) == 1 + (4 + 2 + 1) + (4 + 2 + 0) and ref.rounds_run == 2
  assert [phase for _, phase in seen].count('round 2: a') == 4
  coverage = ref.coverage()
  assert coverage['axis_coverage'] == 1.0 and coverage['grid_size'] == 30
  assert coverage['coverage'] == pytest.approx(len(seen) / 30)
  # The cap stops it and says so.
  capped = refinement.Refinement(axes, evaluate, max_trials=3)
  capped.refine({'a': 3, 'b': 20, 'c': 'x'}, rounds=2)
  assert len(capped.points) == 3 and capped.capped


def test_coverage_is_recorded_and_comparable_across_models_and_data_sets(tmp_path):
  """Every model's every axis value is tried (axis coverage 1) whatever its grid's size; the
  grid size, trials and coverage are in search.json; and two data sets with different optima
  get different trials (no draw shared across data sets)."""
  paths = {}
  for name, optimum in (('iris', 3e-3), ('wine', 1e-4)):
    config = (iris if name == 'iris' else wine).get_config()
    config.seeds = (0,)
    config.models = ('mlp', 'standard_ntk', 'ntk_ecrn', 'ntk_ecrn_infinite')
    run_unit = _separable({'train.learning_rate': optimum, 'kernel.diag_reg': 1e-3})
    out = search.select(plan_lib.build(config), str(tmp_path / name), run_unit)
    entries = out['seeds']['0']['models']
    assert set(entries) == set(config.models)
    for model, entry in entries.items():
      axes = plan_lib.read(config).grid(model)[0]
      assert entry['grid_size'] == refinement.grid_size(axes)
      assert entry['trials_run'] == len(entry['trials']) <= config.search.trials
      assert entry['coverage'] == pytest.approx(entry['grid_points_tried'] / entry['grid_size'])
      assert entry['axis_coverage'] == 1.0, model
      for path, values in axes.items():
        assert set(values) <= set(entry['axes'][path]['tried']), (model, path)
    assert entries['ntk_ecrn']['grid_size'] == 1890 and entries['mlp']['grid_size'] == 45
    saved = json.load(open(tmp_path / name / 'search.json'))
    assert saved['seeds']['0']['models']['ntk_ecrn']['coverage'] == entries['ntk_ecrn']['coverage']
    paths[name] = [t['point'] for t in entries['ntk_ecrn']['trials']]
    selected = entries['mlp']['selected']['train.learning_rate']
    assert selected == optimum
  assert paths['iris'] != paths['wine']


def test_selected_edge_values_are_flagged_and_extended_once(tmp_path):
  """A toy search whose optimum lies beyond the grid's top learning rate: the selection moves
  to the one extension and stays flagged; with the optimum just past the top edge the
  extension loses, the edge value is kept and no longer flagged. A lower edge at 0 is flagged
  but not extended; nothing is extended twice."""
  config = iris.get_config()
  config.seeds = (0,)
  config.models = ('mlp',)
  config.search.space = dict(
      mlp=dict(train=dict(learning_rate=(1e-4, 1e-3, 1e-2), weight_decay=(0.0, 1e-3)))
  )
  for optimum, selected, edge in ((1.0, 0.1, 'upper'), (1.5e-2, 1e-2, None)):
    run_unit = _separable({'train.learning_rate': optimum, 'train.weight_decay': 0.0})
    out = search.select(plan_lib.build(config), str(tmp_path / str(optimum)), run_unit)
    entry = out['seeds']['0']['models']['mlp']
    lr = entry['axes']['train.learning_rate']
    assert entry['selected']['train.learning_rate'] == pytest.approx(selected)
    assert lr['edge'] == edge and lr['extension']['side'] == 'upper'
    assert lr['extension']['value'] == pytest.approx(0.1)
    assert [t['phase'] for t in entry['trials']].count('extension: train.learning_rate') == 1
    assert entry['trials'][lr['extension']['trial']]['phase'].startswith('extension')
    decay = entry['axes']['train.weight_decay']
    assert decay['edge'] == 'lower' and decay['extension']['value'] is None
    assert 'bound' in decay['extension']['not_run']
    assert entry['on_edge'] == {
        **({'train.learning_rate': 'upper'} if edge else {}),
        'train.weight_decay': 'lower',
    }
    table = search_tables.search_table(out)
    assert '**train.weight_decay = 0 on the lower edge**' in table
    assert ('**train.learning_rate = 0.1 on the upper edge**' in table) == (edge is not None)
    if edge is None:
      assert 'train.learning_rate: extended once to 0.1 (upper edge), not better' in table
  # 3 + 1 weight decay + 1 extension; the second run resumes nothing of the first's.
  assert len(entry['trials']) == 5


def test_unit_plan_applies_defaults_then_selection_then_variant():
  config = synthetic_regression.get_config('ablations')
  config.model_defaults.resnet18 = dict(train=dict(optimizer='momentum'))
  run = plan_lib.build(config)
  unit = run.unit('resnet18', 0, {'train.learning_rate': 0.01})
  assert (unit.train.optimizer, unit.train.learning_rate) == ('momentum', 0.01)
  assert run.unit('mlp').train.optimizer == 'adam'  # other models keep the config's
  selected = {'ecrn.drop_rate': 0.1, 'ecrn.fourier_scale_factor': 2.0}
  unit = run.unit('ntk_ecrn_no_stochastic_depth', 0, selected)
  assert unit.arch.drop_rate == 0.0 and unit.fourier_scale_factor == 2.0
  unit = run.unit('ntk_ecrn_no_fourier', 0, selected)
  assert unit.arch.fourier_features is None and unit.arch.drop_rate == 0.1
  assert run.unit('ntk_ecrn_sigma_ff_x0p25', 0, selected).fourier_scale_factor == 0.25
  assert run.base_model('ntk_ecrn_alpha1') == 'ntk_ecrn'
  assert unit.overrides == {
      'ecrn.drop_rate': 0.1,
      'ecrn.fourier_scale_factor': 2.0,
      'ecrn.fourier_features': None,
  }


def test_misspelled_search_field_or_model_fails_before_running():
  config = iris.get_config()
  config.search.space.mlp = dict(train=dict(learning_rat=(1e-3,)))
  with pytest.raises(ValueError, match='learning_rat'):
    plan_lib.build(config)
  config = iris.get_config()
  config.search.space.mpl = dict(train=dict(learning_rate=(1e-3,)))
  with pytest.raises(ValueError, match='mpl'):
    plan_lib.build(config)


def test_score_orders_by_mse_or_accuracy_then_cross_entropy():
  assert refinement.score('regression', {'mse': 0.5}) < refinement.score('regression', {'mse': 0.7})
  assert refinement.score('regression', {'mse': math.nan}) == (math.inf, 0.0)
  better = refinement.score('classification', {'accuracy': 0.9, 'cross_entropy': 0.5})
  tie = refinement.score('classification', {'accuracy': 0.9, 'cross_entropy': 0.3})
  worse = refinement.score('classification', {'accuracy': 0.8, 'cross_entropy': 0.1})
  assert tie < better < worse


def _raw(dataset, split):
  """The raw (unstandardized) feature rows of a split: undo the affine standardization."""
  x = dataset.x_test if split == 'test' else dataset.x_train
  return np.asarray(x, np.float64) * dataset.info['feature_std'] + dataset.info['feature_mean']


def _shared_rows(a, b) -> int:
  """How many rows of `a` equal (to float32 round-off) a row of `b`."""
  close = np.isclose(a[:, None, :], b[None, :, :], rtol=1e-4, atol=1e-4).all(-1)
  return int(close.any(1).sum())


def test_select_is_per_seed_on_the_validation_split_and_picks_the_best(tmp_path):
  config = iris.get_config()
  config.seeds = (0, 1)
  config.models = ('mlp', 'standard_ntk')
  config.search.space = dict(
      mlp=dict(train=dict(learning_rate=(1e-4, 1e-3, 1e-2))),
      standard_ntk=dict(kernel=dict(diag_reg=(1e-3, 1e-1, 1.0))),
  )
  seen = []
  # Best at lr 1e-3 and diag_reg 1e-1: inside the grids, so nothing is extended.
  scorer = _separable({'train.learning_rate': 1e-3, 'kernel.diag_reg': 1e-1})

  def run_unit(plan, dataset):
    seen.append((plan.seed, plan.model, dataset, plan.directory))
    return scorer(plan, dataset)

  run = plan_lib.build(config)
  out = search.select(run, str(tmp_path), run_unit)
  for seed in ('0', '1'):
    entries = out['seeds'][seed]['models']
    assert entries['mlp']['selected'] == {'train.learning_rate': 1e-3}
    assert entries['standard_ntk']['selected'] == {'kernel.diag_reg': 1e-1}
    assert not entries['mlp']['on_edge']
  assert len(seen) == 12  # 3 + 3 per seed
  for seed, model, dataset, directory in seen:
    assert f'seed_{seed}' in directory and model in directory
    full = input_pipeline.load_dataset(config.data, seed=seed)
    n_val = round(0.2 * len(full.x_train))
    assert len(dataset.x_test) == n_val
    assert len(dataset.x_train) == len(full.x_train) - n_val
  saved = json.load(open(os.path.join(tmp_path, 'search.json')))
  assert saved['budget']['max_trials_per_model_and_seed'] == config.search.trials
  assert [t['overrides'] for t in saved['seeds']['1']['models']['mlp']['trials']] == [
      {'train.learning_rate': v} for v in (1e-3, 1e-4, 1e-2)
  ]
  # Resumed: the finished trials are read back, nothing runs again.
  seen.clear()
  again = search.select(run, str(tmp_path), run_unit)
  assert not seen and utils.without_timings(again) == utils.without_timings(out)
  for seed in (0, 1):
    overrides = search.selected_overrides(out, run, 'mlp', seed)
    assert overrides == {'train.learning_rate': 1e-3}


def test_nested_selection_never_sees_a_test_point_of_its_seed(tmp_path):
  """Each seed's selection (its reduced training part and validation points) shares no row with
  that seed's test split; the selection of seed 0 alone (the old scheme) would have shared
  rows with the test splits of the other seeds."""
  config = wine.get_config()
  config.models = ('standard_ntk',)
  config.search.space = dict(standard_ntk=dict(kernel=dict(diag_reg=(1e-3,))))
  seen = {}

  def run_unit(plan, dataset):
    seen[plan.seed] = dataset
    return {'test': {'accuracy': 1.0, 'cross_entropy': 0.1}}

  search.select(plan_lib.build(config), str(tmp_path), run_unit)
  assert sorted(seen) == list(config.seeds) == [0, 1, 2, 3, 4]
  leaked = 0
  for seed, dataset in seen.items():
    test = _raw(input_pipeline.load_dataset(config.data, seed=seed), 'test')
    for split in ('train', 'test'):  # the reduced training part and the validation points
      assert _shared_rows(_raw(dataset, split), test) == 0, (seed, split)
    leaked += _shared_rows(_raw(seen[0], 'test'), test) if seed else 0
  assert leaked > 0


def test_search_then_final_runs_use_their_seeds_selection(iris_smoke_workdir):
  """End to end on iris:smoke (the shared run: two seeds, two trials per model and seed): each
  unit's recorded config is its own seed's selected trial; the twin's ecrn block is the tuned
  NTK-ECRN's of the same seed."""
  results = json.load(open(os.path.join(iris_smoke_workdir, 'results.json')))
  saved = json.load(open(os.path.join(iris_smoke_workdir, 'search.json')))
  models_run = {u['model'] for u in results['units']}
  assert set(saved['seeds']) == {'0', '1'}
  units = {(u['seed'], u['model']): u for u in results['units']}
  for (seed, model), unit in units.items():
    entry = saved['seeds'][str(seed)]['models'][model]
    assert len(entry['trials']) == 2 and set(saved['seeds'][str(seed)]['models']) == models_run
    assert unit['hyperparameters'] == {**entry.get('inherited', {}), **entry['selected']}
    if model == 'mlp':
      for path, value in entry['selected'].items():
        assert unit['train_config'][path.split('.')[1]] == value
    elif model == 'standard_ntk':
      assert unit['diag_reg'] == entry['selected']['kernel.diag_reg']
    elif model == 'ntk_ecrn_infinite':
      tuned = units[(seed, 'ntk_ecrn')]['hyperparameters']
      assert entry['inherited'] == {k: v for k, v in tuned.items() if k.startswith('ecrn.')}
      assert set(entry['selected']) == {'kernel.diag_reg'}


def test_the_twin_takes_the_tuned_networks_ecrn_block_per_seed(tmp_path):
  """ntk_ecrn_infinite's units (trials and final runs) have the ecrn block of the tuned
  ntk_ecrn of the same seed, which is searched first even when not among the models; only
  the twin's diag_reg is searched. The self-tuned twin keeps its own σ_ff."""
  config = iris.get_config()
  config.seeds = (0, 1)
  config.models = ('ntk_ecrn_infinite', 'ntk_ecrn_infinite_self_tuned')
  config.search.space.ntk_ecrn = dict(
      ecrn=dict(alpha=(0.5, 1.0), drop_rate=(0.0, 0.1), fourier_scale_factor=(0.25, 0.5, 1.0))
  )
  blocks = {}

  def run_unit(plan, dataset):
    # The tuned network's optimum depends on the seed: α 0.5, drop rate 0, σ_ff factor 0.25
    # for seed 0; the config's α and drop rate and σ_ff factor 0.5 for seed 1.
    ecrn = _ecrn_block(plan)
    optimum = (0.5, 0.0, 0.25) if plan.seed == 0 else (1.0, 0.1, 0.5)
    fields = (ecrn['alpha'], ecrn['drop_rate'], ecrn['fourier_scale_factor'])
    loss = sum(abs(a - b) for a, b in zip(fields, optimum))
    if plan.model == 'ntk_ecrn_infinite':
      blocks.setdefault(plan.seed, []).append(ecrn)
    return {'test': {'accuracy': 1.0 - loss / 10, 'cross_entropy': loss}}

  run = plan_lib.build(config)
  out = search.select(run, str(tmp_path), run_unit)
  for seed in (0, 1):
    entries = out['seeds'][str(seed)]['models']
    assert list(entries) == ['ntk_ecrn', 'ntk_ecrn_infinite', 'ntk_ecrn_infinite_self_tuned']
    assert 'searched_for' in entries['ntk_ecrn']
    twin = entries['ntk_ecrn_infinite']
    assert set(twin['axes']) == {'kernel.diag_reg'} and twin['inherited_from'] == 'ntk_ecrn'
    tuned = run.unit('ntk_ecrn', seed, search.selected_overrides(out, run, 'ntk_ecrn', seed))
    selected = search.selected_overrides(out, run, 'ntk_ecrn_infinite', seed)
    final = run.unit('ntk_ecrn_infinite', seed, selected)
    float64 = {**dataclasses.asdict(tuned.arch), 'dtype': 'float64'}
    assert _ecrn_block(final) == _ecrn_block(tuned) and dataclasses.asdict(final.arch) == float64
    assert all(block == _ecrn_block(tuned) for block in blocks[seed])
    assert len(blocks[seed]) == len(twin['trials'])
  assert blocks[0][0] != blocks[1][0] and blocks[0][0] != _ecrn_block(run.unit('ntk_ecrn'))
  assert (blocks[0][0]['alpha'], blocks[0][0]['drop_rate']) == (0.5, 0.0)
  self_tuned = out['seeds']['0']['models']['ntk_ecrn_infinite_self_tuned']
  assert 'inherited' not in self_tuned and 'ecrn.fourier_scale_factor' in self_tuned['axes']
  # Without a search the twin still takes ntk_ecrn's (defaults') block.
  config.model_defaults.ntk_ecrn = dict(ecrn=dict(alpha=0.5))
  overrides = search.selected_overrides(
      {'seeds': {}}, plan_lib.build(config), 'ntk_ecrn_infinite', 0
  )
  assert overrides == {'ecrn.alpha': 0.5}


def test_search_seeds_share_one_selection_only_where_no_test_point_is_in_it(tmp_path):
  """search.seeds=(0,) on synthetic data (drawn afresh per seed): only seed 0 is searched and
  seeds 1 and 2 use its selection; on a UCI table, whose seeds redraw one split, it is refused.
  """
  config = synthetic_regression.get_config()
  config.seeds = (0, 1, 2)
  config.models = ('mlp',)
  config.search.seeds = (0,)
  config.search.space.mlp = dict(train=dict(learning_rate=(1e-3, 1e-2)))
  seen = []

  def run_unit(plan, dataset):
    seen.append(plan.seed)
    return {'test': {'mse': abs(plan.train.learning_rate - 1e-2)}}

  run = plan_lib.build(config)
  out = search.select(run, str(tmp_path), run_unit)
  assert set(seen) == {0} and list(out['seeds']) == ['0']
  assert out['selection_seed'] == {'0': 0, '1': 0, '2': 0}
  for seed in (0, 1, 2):
    assert search.selected_overrides(out, run, 'mlp', seed) == {'train.learning_rate': 1e-2}
  assert 'on seeds (0,) only' in out['budget']['nested']
  config = iris.get_config()
  config.search.seeds = (0,)
  with pytest.raises(ValueError, match=r'redraws its train/test split per seed.*data_seed'):
    plan_lib.build(config)
  config.data.data_seed = 7  # one split for every seed: seed 0's validation is no test point
  plan_lib.build(config)
  config.search.seeds = (5,)
  with pytest.raises(ValueError, match=r'search\.seeds'):
    plan_lib.build(config)


def test_the_twin_draws_the_trained_networks_fourier_matrix():
  """A kernel unit's variables hold the B of the trained network of that seed (same key and
  dtype as `build_network`), in float64."""
  config = iris.get_config('smoke')
  dataset = input_pipeline.load_dataset(config.data, seed=3)
  run = plan_lib.build(config)
  unit = lambda name, seed=3: run.unit(name, seed).for_data(dataset)
  _, network = models.build_network(unit('ntk_ecrn'), dataset)
  twin = models.kernel_variables(unit('ntk_ecrn_infinite'), dataset)
  b_network = network['fourier']['fourier_features']['B']
  b_twin = twin['fourier']['fourier_features']['B']
  assert b_twin.dtype == np.float64 and b_network.dtype == np.float32
  np.testing.assert_array_equal(b_twin, np.asarray(b_network, np.float64))
  other = models.kernel_variables(unit('ntk_ecrn_infinite', 4), dataset)
  assert not np.allclose(other['fourier']['fourier_features']['B'], b_twin)
  assert models.kernel_variables(unit('standard_ntk'), dataset) is None


def test_ablation_variants_change_one_thing_each():
  config = synthetic_regression.get_config('ablations')
  assert set(config.variants) >= {
      'ntk_ecrn_no_fourier',
      'ntk_ecrn_alpha1',
      'ntk_ecrn_no_stochastic_depth',
  }
  assert set(config.variants) <= set(config.models)
  run = plan_lib.build(config)
  for name, variant in config.variants.items():
    overrides = run.variant_overrides(name)
    assert variant.base == 'ntk_ecrn'
    # α_l = 1 needs alpha and the constant schedule; every other ablation one field.
    assert len(overrides) == (2 if name == 'ntk_ecrn_alpha1' else 1), (name, overrides)
  assert len(common.ablation_variants()) == 4 + len(common.SIGMA_FF_FACTORS)


def _fixed_score(plan, dataset):
  return {'test': {'accuracy': 0.5, 'cross_entropy': 1.0}}


def test_an_override_pins_its_field_out_of_every_grid_and_search_json_says_so(tmp_path):
  from experiments import run  # pylint: disable=g-import-not-at-top

  overrides = ['train.learning_rate=0.3', "models=('mlp', 'standard_ntk')", 'search.trials=4']
  _, config = run.load_config('iris:smoke', overrides)
  assert config.pinned == ('models', 'search.trials', 'train.learning_rate')
  axes, removed = plan_lib.read(config).grid('mlp')
  # The weight decays and epoch fractions are left, no learning rate.
  assert set(axes) == {'train.weight_decay', 'train.epochs_fraction'}
  assert removed == ['train.learning_rate']
  # Unpinned (a library caller setting the field), the search still replaces it.
  unpinned = iris.get_config('smoke')
  unpinned.train.learning_rate = 0.3
  assert 'train.learning_rate' in plan_lib.read(unpinned).grid('mlp')[0]

  seen = []

  def run_unit(plan, dataset):
    seen.append((plan.model, plan.train.learning_rate if plan.train else None))
    return _fixed_score(plan, dataset)

  run = plan_lib.build(config)
  out = search.select(run, str(tmp_path), run_unit)
  assert [lr for model, lr in seen if model == 'mlp'] == [0.3] * 4  # 4: the trials cap
  for model in ('mlp', 'standard_ntk'):  # the final runs' plans too
    unit = run.unit(model, 0, search.selected_overrides(out, run, model, 0))
    assert 'train.learning_rate' not in unit.overrides
  assert unit.kernel is not None and run.unit('mlp').train.learning_rate == 0.3
  saved = json.load(open(os.path.join(tmp_path, 'search.json')))
  assert saved['pinned'] == {
      'models': ['mlp', 'standard_ntk'],
      'search.trials': 4,
      'train.learning_rate': 0.3,
  }
  entries = saved['seeds']['0']['models']
  assert entries['mlp']['pinned'] == {'train.learning_rate': 0.3}
  assert entries['mlp']['removed_from_grid'] == ['train.learning_rate']
  assert entries['mlp']['stopped_by_trials_cap'] and entries['mlp']['trials_run'] == 4
  assert entries['standard_ntk']['pinned'] == {}
  assert entries['standard_ntk']['removed_from_grid'] == []


def test_pinned_epochs_leave_the_epoch_grid_and_beat_the_model_defaults():
  from experiments import run  # pylint: disable=g-import-not-at-top

  _, config = run.load_config('iris:smoke', ['train.epochs=7', 'search.trials=50'])
  with config.unlocked():
    config.model_defaults.mlp = dict(train=dict(epochs=2, learning_rate=0.05))
  run = plan_lib.build(config)
  for model in ('mlp', 'ntk_ecrn'):
    assert plan_lib.EPOCHS_FRACTION not in run.grid(model)[0]
  assert search.pins(run, 'mlp') == {
      'pinned': {'train.epochs': 7},
      'removed_from_grid': ['train.epochs_fraction'],
  }
  axes = run.grid('mlp')[0]
  start = run.start_point('mlp', axes)
  for lr in axes['train.learning_rate']:
    selected = run.unit_selection('mlp', {**start, 'train.learning_rate': lr})
    unit = run.unit('mlp', 0, selected)
    assert unit.train.epochs == 7 and unit.train.learning_rate == lr
  unit = run.unit('mlp')  # the default beats the config, not the pin
  assert (unit.train.epochs, unit.train.learning_rate) == (7, 0.05)


def test_a_variant_keeps_its_own_value_of_a_pinned_field(caplog):
  from experiments import run  # pylint: disable=g-import-not-at-top

  _, config = run.load_config('iris:ablations,smoke', ['ecrn.drop_rate=0.05'])
  plan = plan_lib.build(config)
  axes = plan.grid('ntk_ecrn')[0]
  selected = plan.unit_selection('ntk_ecrn', plan.start_point('ntk_ecrn', axes))
  assert 'ecrn.drop_rate' not in selected
  assert plan.unit('ntk_ecrn', 0, selected).arch.drop_rate == 0.05
  assert plan.unit('ntk_ecrn_no_fourier', 0, selected).arch.drop_rate == 0.05
  assert plan.unit('ntk_ecrn_no_stochastic_depth').arch.drop_rate == 0.0
  # The twin inherits the tuned network's block but not over a pin.
  inherited = plan.inherited_overrides('ntk_ecrn_infinite', selected)
  assert 'ecrn.drop_rate' not in inherited and inherited
  with caplog.at_level('WARNING'):
    notes = search.pin_notes(plan)
  assert notes['pinned_but_set_by_variants'] == {
      'ntk_ecrn_no_stochastic_depth': {'ecrn.drop_rate': 0.0},
      'ntk_ecrn_drop_rate_0p1': {'ecrn.drop_rate': 0.1},
  }
  assert 'ntk_ecrn_no_stochastic_depth sets pinned field' in caplog.text


def _set_path(config, path, value):
  *parents, leaf = path.split('.')
  node = config
  for name in parents:
    node = node[name]
  with node.ignore_type():
    node[leaf] = value


def _set(path, value, pin=False):
  def change(config):
    _set_path(config, path, value)
    if pin:
      config.pinned = (path,)

  return change


def _add_default(config):
  config.model_defaults.mlp = dict(mlp=dict(activation='tanh'))


def _add_variant(config):
  config.variants = dict(bad_drop=dict(base='ntk_ecrn', ecrn=dict(drop_rate=1.0)))
  config.models = ('mlp', 'bad_drop')


@pytest.mark.parametrize(
    'change, expected',
    [
        (
            _set('ecrn.drop_rate', 1.5, pin=True),
            ('config.ecrn.drop_rate', '1.5', 'fix --config.ecrn.drop_rate'),
        ),
        (_set('ecrn.fourier_scale_factor', -1.0), ('config.ecrn.fourier_scale_factor', '-1.0')),
        (_set('ecrn.activation', 'tanh'), ('config.ecrn.activation', "'tanh'", 'relu')),
        (_set('kernel.diag_reg', -1.0, pin=True), ('config.kernel.diag_reg', 'standard_ntk')),
        (_set('kernel.t', -1.0), ('config.kernel.t', '-1.0')),
        (_set('kernel.kernel', 'rbf'), ('config.kernel.kernel', "'rbf'")),
        (_set('mlp.hidden_widths', (0,)), ('config.mlp.hidden_widths', 'got 0')),
        (_set('resnet18.mlp_widths', (0,)), ('config.resnet18.mlp_widths', 'model resnet18')),
        (_set('tracking.every', 0), ('config.tracking.every', 'model mlp')),
        (_set('seeds', (0, -1)), ('config.seeds', '-1')),
        (_set('search.validation_fraction', 1.0), ('config.search.validation_fraction',)),
        (
            _set('search.space.mlp', dict(train=dict(learning_rate=(1e-3, -1.0)))),
            (
                'config.train.learning_rate',
                'search grid point',
                'search.space.mlp.train.learning_rate',
            ),
        ),
        (
            # 2 warm-up epochs exceed the epochs of fraction 0.5 of 3.
            _set('train.warmup_epochs', 2),
            ('config.train.warmup_epochs', 'epochs=1', 'search grid point', "'train.epochs': 1"),
        ),
        (_add_default, ('config.mlp.activation', 'model_defaults.mlp.mlp.activation')),
        (
            _add_variant,
            ('config.ecrn.drop_rate', 'model bad_drop', 'variants.bad_drop.ecrn.drop_rate'),
        ),
        (
            # Deep in the grid, never a start value: every combination is built.
            _set('search.space.ntk_ecrn.ecrn.drop_rate', (0.0, 0.1, 0.5, 1.5)),
            ('config.ecrn.drop_rate', '1.5', 'search.space.ntk_ecrn.ecrn.drop_rate'),
        ),
        (
            _set(
                'search.space.ntk_ecrn_infinite',
                dict(kernel=dict(diag_reg=(1e-3,)), ecrn=dict(alpha=(0.5, 1.0))),
            ),
            ('search.space.ntk_ecrn_infinite.ecrn.alpha', 'tuned ntk_ecrn'),
        ),
        (_set('search.rounds', 0), ('config.search.rounds', 'got 0')),
    ],
)
def test_every_unit_config_is_built_and_checked_before_any_work(change, expected):
  """The defaults, every grid combination and each variant: an invalid value fails in check,
  naming the field, the model and where the value came from."""
  config = iris.get_config('smoke')
  change(config)
  with pytest.raises(ValueError) as error:
    plan_lib.build(config)
  for text in expected:
    assert text in str(error.value), str(error.value)


@pytest.mark.parametrize(
    'field, value', [('num_train', 0), ('num_test', -1), ('input_dim', 0), ('noise_std', -0.1)]
)
def test_data_fields_are_checked_without_loading_the_data(field, value):
  config = synthetic_regression.get_config('smoke')
  plan_lib.build(config)  # valid as given
  config.data[field] = value
  with pytest.raises(ValueError, match=rf'config\.data\.{field} must be .* got {value}'):
    plan_lib.build(config)


@pytest.mark.parametrize('arg, built', [('ablations', 210), (None, 245), ('smoke', 245)])
def test_check_builds_each_distinct_unit_plan_of_the_grids_once(arg, built):
  """The check of a config with a big search builds one unit plan per model and variant, and
  one per distinct block content of every grid combination (the counts of the checks before
  plans: no combination is built twice, and the ablation variants add none)."""
  assert checks.check(plan_lib.read(iris.get_config(arg))) == built
