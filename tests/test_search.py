# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Hyperparameter selection (experiments/search.py): the grid, the per-model configs, that the
selection sees only the validation split, and the ablation variants."""

import json
import math
import os

import numpy as np
import pytest


from experiments import input_pipeline
from experiments import models
from experiments import search
from experiments.configs import common
from experiments.configs import iris
from experiments.configs import synthetic_regression


def test_candidates_whole_small_grid_or_trials_distinct_points():
  config = iris.get_config()
  config.search.space.mlp = dict(train=dict(learning_rate=(1e-3, 1e-2)))
  points = search.candidates(config, 'mlp')
  assert points == [{'train.learning_rate': 1e-3}, {'train.learning_rate': 1e-2}]
  config.search.trials = 5
  drawn = search.candidates(config, 'ntk_ecrn')  # 3·2·2·4·3·2 = 288 points
  assert len(drawn) == 5
  assert len({json.dumps(p, sort_keys=True) for p in drawn}) == 5
  assert drawn == search.candidates(config, 'ntk_ecrn')  # deterministic
  for point in drawn:
    assert point['ecrn.alpha'] in (0.5, 1.0, 2.0)
    assert point['train.epochs'] in (100, 200)
  config.train.epochs = 10  # the epoch grid is relative to train.epochs
  assert {p['train.epochs'] for p in search.candidates(config, 'ntk_ecrn')} <= {5, 10}


def test_every_model_gets_the_same_number_of_trials():
  config = iris.get_config()
  counts = {m: len(search.candidates(config, m)) for m in config.models}
  assert set(counts.values()) == {config.search.trials}, counts


def test_model_config_applies_defaults_then_selection_then_variant():
  config = synthetic_regression.get_config('ablations')
  config.model_defaults.resnet18 = dict(train=dict(optimizer='momentum'))
  cfg = models.model_config(config, 'resnet18', {'train.learning_rate': 0.01})
  assert (cfg.train.optimizer, cfg.train.learning_rate) == ('momentum', 0.01)
  assert config.train.optimizer == 'adam'  # the input is not changed
  selected = {'ecrn.drop_rate': 0.1, 'ecrn.fourier_scale_factor': 2.0}
  cfg = models.model_config(config, 'ntk_ecrn_no_stochastic_depth', selected)
  assert cfg.ecrn.drop_rate == 0.0 and cfg.ecrn.fourier_scale_factor == 2.0
  cfg = models.model_config(config, 'ntk_ecrn_no_fourier', selected)
  assert cfg.ecrn.fourier_features is None and cfg.ecrn.drop_rate == 0.1
  cfg = models.model_config(config, 'ntk_ecrn_sigma_ff_x0p25', selected)
  assert cfg.ecrn.fourier_scale_factor == 0.25
  assert models.base_model(config, 'ntk_ecrn_alpha1') == 'ntk_ecrn'


def test_misspelled_search_field_or_model_fails_before_running():
  config = iris.get_config()
  config.search.space.mlp = dict(train=dict(learning_rat=(1e-3,)))
  with pytest.raises(ValueError, match='learning_rat'):
    search.check(config)
  config = iris.get_config()
  config.search.space.mpl = dict(train=dict(learning_rate=(1e-3,)))
  with pytest.raises(ValueError, match='mpl'):
    search.check(config)


def test_score_orders_by_mse_or_accuracy_then_cross_entropy():
  assert search.score('regression', {'mse': 0.5}) < search.score('regression', {'mse': 0.7})
  assert search.score('regression', {'mse': math.nan}) == (math.inf, 0.0)
  better = search.score('classification', {'accuracy': 0.9, 'cross_entropy': 0.5})
  tie = search.score('classification', {'accuracy': 0.9, 'cross_entropy': 0.3})
  worse = search.score('classification', {'accuracy': 0.8, 'cross_entropy': 0.1})
  assert tie < better < worse


def test_select_sees_only_the_validation_split_and_picks_the_best(tmp_path):
  config = iris.get_config()
  config.models = ('mlp', 'standard_ntk')
  config.search.space = dict(
      mlp=dict(train=dict(learning_rate=(1e-4, 1e-3, 1e-2))),
      standard_ntk=dict(kernel=dict(diag_reg=(1e-3, 1e-1, 1.0))),
  )
  full = input_pipeline.load_dataset(config.data, seed=0)
  seen = []

  def run_unit(model, unit_config, dataset, directory, label):
    seen.append((model, dataset))
    # A made-up validation score of the setting: best at lr 1e-3 and diag_reg 1e-1.
    value = (
        abs(math.log10(unit_config.train.learning_rate) + 3)
        if model == 'mlp'
        else abs(math.log10(unit_config.kernel.diag_reg) + 1)
    )
    return {'test': {'accuracy': 1.0 - value / 10, 'cross_entropy': value}}

  out = search.select(config, str(tmp_path), run_unit)
  assert out['models']['mlp']['selected'] == {'train.learning_rate': 1e-3}
  assert out['models']['standard_ntk']['selected'] == {'kernel.diag_reg': 1e-1}
  assert len(seen) == 6
  n_val = round(0.2 * len(full.x_train))
  for _, dataset in seen:
    assert len(dataset.x_test) == n_val
    assert len(dataset.x_train) == len(full.x_train) - n_val
    # Re-standardized, but the validation points are training points: undo the affine map.
    raw_val = dataset.x_test * dataset.info['feature_std'] + dataset.info['feature_mean']
    raw_full_test = full.x_test * full.info['feature_std'] + full.info['feature_mean']
    assert not {tuple(np.round(r, 4)) for r in raw_val} & {
        tuple(np.round(r, 4)) for r in raw_full_test
    }
  saved = json.load(open(os.path.join(tmp_path, 'search.json')))
  assert saved['budget']['trials_per_model'] == config.search.trials
  assert [t['overrides'] for t in saved['models']['mlp']['trials']] == [
      {'train.learning_rate': v} for v in (1e-4, 1e-3, 1e-2)
  ]
  # Resumed: the finished trials are read back, nothing runs again.
  seen.clear()
  again = search.select(config, str(tmp_path), run_unit)
  assert not seen and again['models']['mlp']['selected'] == {'train.learning_rate': 1e-3}


def test_search_then_final_runs_use_the_selected_setting(iris_smoke_workdir):
  """End to end on iris:smoke (the shared run), two trials per model: each unit's recorded
  config is the selected trial's."""
  results = json.load(open(os.path.join(iris_smoke_workdir, 'results.json')))
  chosen = json.load(open(os.path.join(iris_smoke_workdir, 'search.json')))['models']
  models_run = {u['model'] for u in results['units']}
  assert {m: len(e['trials']) for m, e in chosen.items()} == {m: 2 for m in models_run}
  for unit in results['units']:
    selected = chosen[unit['model']]['selected']
    assert unit['hyperparameters'] == selected
    if unit['model'] == 'mlp':
      for path, value in selected.items():
        assert unit['train_config'][path.split('.')[1]] == value
    elif unit['model'] == 'standard_ntk':
      assert unit['diag_reg'] == selected['kernel.diag_reg']


def test_ablation_variants_change_one_thing_each():
  config = synthetic_regression.get_config('ablations')
  assert set(config.variants) >= {
      'ntk_ecrn_no_fourier',
      'ntk_ecrn_alpha1',
      'ntk_ecrn_no_stochastic_depth',
  }
  assert set(config.variants) <= set(config.models)
  for name, variant in config.variants.items():
    overrides = models.variant_overrides(config, name)
    assert variant.base == 'ntk_ecrn'
    # α_l = 1 needs alpha and the constant schedule; every other ablation one field.
    assert len(overrides) == (2 if name == 'ntk_ecrn_alpha1' else 1), (name, overrides)
  assert len(common.ablation_variants()) == 4 + len(common.SIGMA_FF_FACTORS)


def _fixed_score(model, unit_config, dataset, directory, label):
  return {'test': {'accuracy': 0.5, 'cross_entropy': 1.0}}


def test_an_override_pins_its_field_out_of_every_grid_and_search_json_says_so(tmp_path):
  from experiments import run  # pylint: disable=g-import-not-at-top

  overrides = ['train.learning_rate=0.3', "models=('mlp', 'standard_ntk')", 'search.trials=4']
  _, config = run.load_config('iris:smoke', overrides)
  assert config.pinned == ('models', 'search.trials', 'train.learning_rate')
  points = search.candidates(config, 'mlp')
  # Four of the 3·2 points left: the weight decays and epoch fractions, no learning rate.
  assert len(points) == 4 and all(set(p) == {'train.weight_decay', 'train.epochs'} for p in points)
  # Unpinned (a library caller setting the field), the search still replaces it.
  unpinned = iris.get_config('smoke')
  unpinned.train.learning_rate = 0.3
  assert all('train.learning_rate' in p for p in search.candidates(unpinned, 'mlp'))

  seen = []

  def run_unit(model, unit_config, dataset, directory, label):
    seen.append((model, unit_config.train.learning_rate))
    return _fixed_score(model, unit_config, dataset, directory, label)

  out = search.select(config, str(tmp_path), run_unit)
  assert [lr for model, lr in seen if model == 'mlp'] == [0.3] * 4
  for model in ('mlp', 'standard_ntk'):  # the final runs' configs too
    selected = search.selected_overrides(out, config, model)
    assert models.model_config(config, model, selected).train.learning_rate == 0.3
  saved = json.load(open(os.path.join(tmp_path, 'search.json')))
  assert saved['pinned'] == {
      'models': ['mlp', 'standard_ntk'],
      'search.trials': 4,
      'train.learning_rate': 0.3,
  }
  assert saved['models']['mlp']['pinned'] == {'train.learning_rate': 0.3}
  assert saved['models']['mlp']['removed_from_grid'] == ['train.learning_rate']
  assert saved['models']['standard_ntk']['pinned'] == {}
  assert saved['models']['standard_ntk']['removed_from_grid'] == []


def test_pinned_epochs_leave_the_epoch_grid_and_beat_the_model_defaults():
  from experiments import run  # pylint: disable=g-import-not-at-top

  _, config = run.load_config('iris:smoke', ['train.epochs=7', 'search.trials=50'])
  with config.unlocked():
    config.model_defaults.mlp = dict(train=dict(epochs=2, learning_rate=0.05))
  for model in ('mlp', 'ntk_ecrn'):
    assert all('train.epochs' not in p for p in search.candidates(config, model))
  assert search.pins(config, 'mlp') == {
      'pinned': {'train.epochs': 7},
      'removed_from_grid': ['train.epochs_fraction'],
  }
  for selected in search.candidates(config, 'mlp'):
    cfg = models.model_config(config, 'mlp', selected)
    assert cfg.train.epochs == 7 and cfg.train.learning_rate == selected['train.learning_rate']
  cfg = models.model_config(config, 'mlp')  # the default beats the config, not the pin
  assert (cfg.train.epochs, cfg.train.learning_rate) == (7, 0.05)


def test_a_variant_keeps_its_own_value_of_a_pinned_field(caplog):
  from experiments import run  # pylint: disable=g-import-not-at-top

  _, config = run.load_config('iris:ablations,smoke', ['ecrn.drop_rate=0.05'])
  selected = search.candidates(config, 'ntk_ecrn')[0]
  assert 'ecrn.drop_rate' not in selected
  assert models.model_config(config, 'ntk_ecrn', selected).ecrn.drop_rate == 0.05
  assert models.model_config(config, 'ntk_ecrn_no_fourier', selected).ecrn.drop_rate == 0.05
  assert models.model_config(config, 'ntk_ecrn_no_stochastic_depth').ecrn.drop_rate == 0.0
  with caplog.at_level('WARNING'):
    notes = search.pin_notes(config)
  assert notes['pinned_but_set_by_variants'] == {
      'ntk_ecrn_no_stochastic_depth': {'ecrn.drop_rate': 0.0},
      'ntk_ecrn_drop_rate_0p1': {'ecrn.drop_rate': 0.1},
  }
  assert 'ntk_ecrn_no_stochastic_depth sets pinned field' in caplog.text


def _set(path, value, pin=False):
  def change(config):
    models.set_path(config, path, value)
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
                'search candidate 1',
                'search.space.mlp.train.learning_rate',
            ),
        ),
        (
            # 2 warm-up epochs exceed the epochs of fraction 0.5 of 3.
            _set('train.warmup_epochs', 2),
            ('config.train.warmup_epochs', 'epochs=1', 'search candidate 0', "'train.epochs': 1}"),
        ),
        (_add_default, ('config.mlp.activation', 'model_defaults.mlp.mlp.activation')),
        (
            _add_variant,
            ('config.ecrn.drop_rate', 'model bad_drop', 'variants.bad_drop.ecrn.drop_rate'),
        ),
    ],
)
def test_every_unit_config_is_built_and_checked_before_any_work(change, expected):
  """The defaults, each search candidate and each variant: an invalid value fails in check,
  naming the field, the model and where the value came from."""
  config = iris.get_config('smoke')
  config.search.trials = 100  # every grid point
  change(config)
  with pytest.raises(ValueError) as error:
    search.check(config)
  for text in expected:
    assert text in str(error.value), str(error.value)


@pytest.mark.parametrize(
    'field, value', [('num_train', 0), ('num_test', -1), ('input_dim', 0), ('noise_std', -0.1)]
)
def test_data_fields_are_checked_without_loading_the_data(field, value):
  config = synthetic_regression.get_config('smoke')
  search.check(config)  # valid as given
  config.data[field] = value
  with pytest.raises(ValueError, match=rf'config\.data\.{field} must be .* got {value}'):
    search.check(config)


def test_check_of_a_config_with_a_big_search_takes_well_under_a_second():
  import time  # pylint: disable=g-import-not-at-top

  config = iris.get_config('ablations')
  start = time.perf_counter()
  search.check(config)
  assert time.perf_counter() - start < 1.0
