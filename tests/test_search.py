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
