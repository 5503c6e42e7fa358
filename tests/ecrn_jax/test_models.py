# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ecrn_jax import ECRN, MLP, ECRNConfig, MLPConfig
from ecrn_jax.models import Dense, fourier_embed, fourier_matrix
from ecrn_jax._src import compat


def _cfg(**kw):
  base = dict(width=16, depth=3, fourier_features=6, out_dim=2, dtype='float64')
  base.update(kw)
  return ECRNConfig(**base)


@pytest.mark.x64
def test_shapes_collections_and_dtype(rng):
  x = rng.normal(size=(5, 4))
  model = ECRN(_cfg())
  variables = model.init(jax.random.PRNGKey(0), x)
  assert set(variables) == {'params', 'fourier'}
  assert 'fourier_features' not in variables['params']
  assert variables['fourier']['fourier_features']['B'].shape == (4, 6)
  assert variables['params']['stem']['kernel'].shape == (12, 16)
  assert [k for k in variables['params'] if k.startswith('block_')] == [
      'block_0',
      'block_1',
      'block_2',
  ]
  out = model.apply(variables, x)
  assert out.shape == (5, 2) and out.dtype == jnp.float64
  for leaf in jax.tree_util.tree_leaves(variables):
    assert leaf.dtype == jnp.float64
  f32 = ECRN(_cfg(dtype='float32'))
  v32 = f32.init(jax.random.PRNGKey(0), x)
  assert all(l.dtype == jnp.float32 for l in jax.tree_util.tree_leaves(v32))
  assert f32.apply(v32, x).dtype == jnp.float32


@pytest.mark.x64
def test_trainable_fourier_matrix_is_a_parameter(rng):
  x = rng.normal(size=(3, 4))
  variables = ECRN(_cfg(fourier_trainable=True)).init(jax.random.PRNGKey(1), x)
  assert set(variables) == {'params'}
  assert variables['params']['fourier_features']['B'].shape == (4, 6)
  assert fourier_matrix(variables) is variables['params']['fourier_features']['B']
  assert set(ECRN(_cfg(fourier_features=None)).init(jax.random.PRNGKey(1), x)) == {'params'}


@pytest.mark.x64
def test_fourier_features_formula_and_scale(rng):
  x = rng.normal(size=(7, 3))
  sigma = 2.5
  model = ECRN(_cfg(fourier_features=4000, fourier_scale=sigma, width=4, depth=0))
  variables = model.init(jax.random.PRNGKey(2), x)
  b = np.asarray(fourier_matrix(variables))
  # B_ij ~ N(0, σ_ff²): 12,000 draws, so the sample std is within ~1% of σ_ff.
  assert abs(b.std() / sigma - 1) < 0.03 and abs(b.mean()) < 0.1
  gamma = np.asarray(fourier_embed(x, b))
  proj = 2 * np.pi * x @ b
  np.testing.assert_allclose(
      gamma, np.concatenate([np.cos(proj), np.sin(proj)], 1), rtol=1e-12, atol=1e-12
  )


@pytest.mark.x64
def test_forward_matches_spec_written_out(rng):
  """docs/spec.md §1 written out in numpy from the parameters, for both parameterizations."""
  x = rng.normal(size=(6, 3))
  for param, act in [('ntk', 'gelu'), ('standard', 'erf'), ('ntk', 'relu')]:
    cfg = _cfg(
        parameterization=param, activation=act, alpha=0.7, drop_rate=0.3, w_std=1.3, b_std=0.2
    )
    model = ECRN(cfg)
    variables = model.init(jax.random.PRNGKey(3), x)
    p = jax.tree_util.tree_map(np.asarray, variables['params'])
    phi = {
        'gelu': lambda z: np.asarray(jax.nn.gelu(z, approximate=False)),
        'erf': lambda z: np.asarray(jax.scipy.special.erf(z)),
        'relu': lambda z: np.maximum(z, 0),
    }[act]

    def dense(h, layer):
      w, b = layer['kernel'], layer['bias']
      if param == 'ntk':
        return 1.3 / math.sqrt(h.shape[1]) * h @ w + 0.2 * b
      return h @ w + b

    b_mat = np.asarray(variables['fourier']['fourier_features']['B'])
    g = np.concatenate([np.cos(2 * np.pi * x @ b_mat), np.sin(2 * np.pi * x @ b_mat)], 1)
    h = dense(g, p['stem'])
    for l in range(3):
      h = h + (0.7 / math.sqrt(3)) * 0.7 * dense(phi(h), p[f'block_{l}'])
    expected = dense(phi(h), p['readout'])
    np.testing.assert_allclose(model.apply(variables, x), expected, rtol=1e-12, atol=1e-12)


def test_standard_parameterization_initial_scales():
  x = jnp.ones((1, 400), jnp.float64)
  layer = Dense(300, w_std=2.0, b_std=0.5, parameterization='standard', dtype=jnp.float64)
  p = layer.init(jax.random.PRNGKey(0), x)['params']
  assert abs(float(p['kernel'].std()) / (2.0 / math.sqrt(400)) - 1) < 0.02
  assert abs(float(p['bias'].std()) / 0.5 - 1) < 0.2
  p_ntk = Dense(300, 2.0, 0.5, 'ntk', jnp.float64).init(jax.random.PRNGKey(0), x)['params']
  assert abs(float(p_ntk['kernel'].std()) - 1) < 0.02


@pytest.mark.x64
def test_eval_mode_equals_survival_scaled_network(rng):
  x = rng.normal(size=(4, 3))
  cfg = _cfg(drop_rate=(0.2, 0.5, 0.0), alpha=0.9)
  variables = ECRN(cfg).init(jax.random.PRNGKey(4), x)
  scaled = cfg.replace(
      drop_rate=0.0,
      alpha_schedule='constant',
      alpha=tuple(a * q for a, q in zip(cfg.alphas, cfg.survival_probs)),
  )
  np.testing.assert_allclose(
      ECRN(cfg).apply(variables, x, train=False),
      ECRN(scaled).apply(variables, x),
      rtol=1e-13,
      atol=1e-13,
  )
  # And it differs from the unscaled network, so the check has teeth.
  unscaled = scaled.replace(alpha=cfg.alphas)
  assert not np.allclose(ECRN(cfg).apply(variables, x), ECRN(unscaled).apply(variables, x))


@pytest.mark.x64
def test_train_mode_draws_one_mask_per_block(rng):
  x = rng.normal(size=(4, 3))
  cfg = _cfg(drop_rate=0.4, depth=3)
  model = ECRN(cfg)
  variables = model.init(jax.random.PRNGKey(5), x)
  masks = list(itertools.product((0, 1), repeat=3))
  candidates = [
      ECRN(
          cfg.replace(
              drop_rate=0.0,
              alpha_schedule='constant',
              alpha=tuple(a * m for a, m in zip(cfg.alphas, mask)),
          )
      ).apply(variables, x)
      for mask in masks
  ]
  counts = np.zeros(3)
  draws = 300
  for i in range(draws):
    out = model.apply(variables, x, train=True, rngs={'dropout': jax.random.PRNGKey(i)})
    matches = [j for j, c in enumerate(candidates) if np.allclose(out, c, rtol=1e-12)]
    assert len(matches) == 1, 'a training forward pass must equal exactly one mask network'
    counts += masks[matches[0]]
  # Each block survives with probability q = 0.6: binomial(300, 0.6) within 4 sigma.
  sigma = math.sqrt(draws * 0.6 * 0.4)
  assert np.all(np.abs(counts - 0.6 * draws) < 4 * sigma), counts
  same = [
      model.apply(variables, x, train=True, rngs={'dropout': jax.random.PRNGKey(7)})
      for _ in range(2)
  ]
  np.testing.assert_array_equal(same[0], same[1])
  with pytest.raises(Exception, match='dropout'):
    model.apply(variables, x, train=True)


@pytest.mark.x64
def test_mlp_forward(rng):
  x = rng.normal(size=(5, 3, 2))  # trailing axes are flattened
  cfg = MLPConfig(hidden_widths=(8, 7), out_dim=3, activation='relu', dtype='float64')
  variables = MLP(cfg).init(jax.random.PRNGKey(0), x)
  p = variables['params']
  h = x.reshape(5, -1)
  for name in ('dense_0', 'dense_1'):
    h = np.maximum(
        math.sqrt(2) / math.sqrt(h.shape[1]) * h @ p[name]['kernel'] + 0.1 * p[name]['bias'], 0
    )
  out = math.sqrt(2) / math.sqrt(7) * h @ p['readout']['kernel'] + 0.1 * p['readout']['bias']
  np.testing.assert_allclose(MLP(cfg).apply(variables, x), out, rtol=1e-12)


@pytest.mark.x64
def test_bad_inputs():
  model = ECRN(_cfg())
  with pytest.raises(ValueError, match=r'x\[None\]'):
    model.init(jax.random.PRNGKey(0), jnp.ones(4))
  with compat.disable_x64():
    with pytest.raises(ValueError, match='jax_enable_x64'):
      model.init(jax.random.PRNGKey(0), np.ones((2, 4), np.float32))
