"""The infinite-width twin (SPEC §2) and the expectation over stochastic-depth masks."""

import itertools
import math
import subprocess
import sys
import textwrap
import warnings

import jax
import numpy as np
import pytest
from neural_tangents import stax

from ecrn_jax import (ECRN, MLP, ECRNConfig, MLPConfig, embed_inputs,
                      expected_kernels_stochastic_depth, infinite_kernels, stax_twin,
                      to_stax_params)

warnings.filterwarnings('ignore', message='`FanIn` layers assume independent inputs')


def _phi(name):
  return {'gelu': stax.Gelu(approximate=False), 'erf': stax.Erf(), 'relu': stax.Relu()}[name]


def _hand_written_twin(depth, width, out_dim, act, scales, w_std, b_std, param):
  """SPEC §2 written out layer by layer, with the block scales α_l q̄_l given as numbers."""
  layers = [stax.Dense(width, W_std=w_std, b_std=b_std, parameterization=param)]
  for l in range(depth):
    branch = stax.serial(_phi(act), stax.Dense(width, W_std=w_std, b_std=b_std,
                                               parameterization=param),
                         stax.DotGeneral(rhs=scales[l]))
    layers += [stax.FanOut(2), stax.parallel(stax.Identity(), branch), stax.FanInSum()]
  layers += [_phi(act), stax.Dense(out_dim, W_std=w_std, b_std=b_std,
                                   parameterization=param)]
  return stax.serial(*layers)


@pytest.mark.parametrize('act, schedule, drop_rate, param', [
    ('gelu', 'inverse_sqrt_depth', 0.3, 'ntk'),
    ('erf', 'constant', 0.0, 'ntk'),
    ('relu', 'constant', 0.25, 'standard'),
    ('gelu', 'constant', 0.1, 'standard'),
    ('relu', 'inverse_sqrt_depth', 0.0, 'ntk'),
    ('erf', 'inverse_sqrt_depth', 0.5, 'standard'),
])
def test_twin_equals_hand_written_stax(act, schedule, drop_rate, param, rng):
  depth, alpha = 3, 0.9
  cfg = ECRNConfig(width=64, depth=depth, alpha=alpha, alpha_schedule=schedule,
                   activation=act, fourier_features=5, drop_rate=drop_rate, out_dim=2,
                   parameterization=param, w_std=1.2, b_std=0.15, dtype='float64')
  x1, x2 = rng.normal(size=(6, 3)), rng.normal(size=(4, 3))
  variables = ECRN(cfg).init(jax.random.PRNGKey(0), x1)
  alpha_l = alpha / math.sqrt(depth) if schedule == 'inverse_sqrt_depth' else alpha
  scales = [alpha_l * (1 - drop_rate)] * depth
  _, _, kernel_fn = _hand_written_twin(depth, 64, 2, act, scales, 1.2, 0.15, param)
  b = np.asarray(variables['fourier']['fourier_features']['B'])
  g = lambda x: np.concatenate([np.cos(2 * np.pi * x @ b), np.sin(2 * np.pi * x @ b)], 1)
  expected = kernel_fn(g(x1), g(x2), ('nngp', 'ntk'))
  ours = infinite_kernels(cfg, x1, x2, variables=variables)
  np.testing.assert_allclose(ours.nngp, expected.nngp, rtol=1e-12, atol=0)
  np.testing.assert_allclose(ours.ntk, expected.ntk, rtol=1e-12, atol=0)
  # Folding α_l q_l into W_std and b_std is exact in the NTK parameterization only (SPEC §2).
  folded = [stax.Dense(64, W_std=1.2, b_std=0.15, parameterization=param)]
  for s in scales:
    branch = stax.serial(_phi(act), stax.Dense(64, W_std=1.2 * s, b_std=0.15 * s,
                                               parameterization=param))
    folded += [stax.FanOut(2), stax.parallel(stax.Identity(), branch), stax.FanInSum()]
  folded += [_phi(act), stax.Dense(2, W_std=1.2, b_std=0.15, parameterization=param)]
  folded_ntk = stax.serial(*folded)[2](g(x1), g(x2), 'ntk')
  if param == 'ntk' or drop_rate == 0 and scales[0] == 1:
    np.testing.assert_allclose(folded_ntk, expected.ntk, rtol=1e-12)
  else:
    assert not np.allclose(folded_ntk, expected.ntk, rtol=1e-6)


@pytest.mark.parametrize('config', [
    ECRNConfig(width=8, depth=2, fourier_features=4, drop_rate=0.3, out_dim=3,
               activation='erf', dtype='float64'),
    ECRNConfig(width=8, depth=2, fourier_features=None, out_dim=2,
               parameterization='standard', dtype='float64'),
    MLPConfig(hidden_widths=(8, 6), out_dim=2, activation='gelu', dtype='float64'),
    MLPConfig(hidden_widths=(5,), parameterization='standard', dtype='float64'),
])
def test_twin_is_the_same_architecture(config, rng):
  """The twin's apply_fn with the finite network's params reproduces the finite network."""
  x = rng.normal(size=(5, 3))
  model = MLP(config) if isinstance(config, MLPConfig) else ECRN(config)
  variables = model.init(jax.random.PRNGKey(1), x)
  _, apply_fn, _ = stax_twin(config)
  out = apply_fn(to_stax_params(config, variables), embed_inputs(config, x, variables))
  np.testing.assert_allclose(out, model.apply(variables, x), rtol=1e-12, atol=1e-12)


def test_mlp_twin_and_kernel_properties(rng):
  cfg = MLPConfig(hidden_widths=(512,) * 3, activation='relu', dtype='float64')
  x = rng.normal(size=(6, 4))
  k = infinite_kernels(cfg, x)
  _, _, kernel_fn = stax.serial(stax.Dense(512, W_std=math.sqrt(2), b_std=0.1), stax.Relu(),
                                stax.Dense(512, W_std=math.sqrt(2), b_std=0.1), stax.Relu(),
                                stax.Dense(512, W_std=math.sqrt(2), b_std=0.1), stax.Relu(),
                                stax.Dense(1, W_std=math.sqrt(2), b_std=0.1))
  np.testing.assert_allclose(k.ntk, kernel_fn(x, None, 'ntk'), rtol=1e-12)
  for kernel in (k.nngp, k.ntk):
    kernel = np.asarray(kernel)
    np.testing.assert_allclose(kernel, kernel.T, rtol=1e-12)
    assert np.linalg.eigvalsh(kernel).min() > -1e-10


def test_fourier_config_needs_variables(rng):
  cfg = ECRNConfig(width=8, depth=1, fourier_features=4, dtype='float64')
  x = rng.normal(size=(3, 2))
  with pytest.raises(ValueError, match='variables=model.init'):
    infinite_kernels(cfg, x)
  other = ECRN(cfg.replace(fourier_features=3)).init(jax.random.PRNGKey(0), x)
  with pytest.raises(ValueError, match='B has shape'):
    infinite_kernels(cfg, x, variables=other)


def _sd_config(drop_rate):
  return ECRNConfig(width=32, depth=4, alpha=1.5, alpha_schedule='constant',
                    activation='relu', fourier_features=6, drop_rate=drop_rate,
                    dtype='float64')


def test_exact_expectation_is_the_weighted_sum_over_masks(rng):
  cfg = _sd_config((0.3, 0.0, 0.5, 0.2))
  x = rng.normal(size=(5, 3))
  variables = ECRN(cfg).init(jax.random.PRNGKey(2), x)
  exact = expected_kernels_stochastic_depth(cfg, x, variables=variables)
  assert exact.num_masks == 8  # block 2 never drops
  q = cfg.survival_probs
  total = 0.0
  for mask in itertools.product((0, 1), repeat=4):
    if mask[1] == 0:
      continue
    prob = np.prod([q[l] if m else 1 - q[l] for l, m in enumerate(mask)])
    total = total + prob * np.asarray(infinite_kernels(cfg, x, variables=variables,
                                                       mask=mask).ntk)
  np.testing.assert_allclose(exact.ntk, total, rtol=1e-12)
  # The expectation over masks is not the evaluation-mode kernel (the scale enters squared).
  assert not np.allclose(exact.ntk, infinite_kernels(cfg, x, variables=variables).ntk,
                         rtol=1e-3)
  no_drop = _sd_config(0.0)
  np.testing.assert_allclose(
      expected_kernels_stochastic_depth(no_drop, x, variables=variables).ntk,
      infinite_kernels(no_drop, x, variables=variables).ntk, rtol=1e-12)


def test_monte_carlo_over_masks_matches_exact_enumeration(rng):
  cfg = _sd_config(0.4)
  x1, x2 = rng.normal(size=(6, 3)), rng.normal(size=(4, 3))
  variables = ECRN(cfg).init(jax.random.PRNGKey(3), x1)
  exact = expected_kernels_stochastic_depth(cfg, x1, x2, variables=variables)
  mc = expected_kernels_stochastic_depth(cfg, x1, x2, variables=variables, method='mc',
                                         num_samples=2000, key=jax.random.PRNGKey(4))
  for name in ('nngp', 'ntk'):
    z = np.abs(np.asarray(getattr(mc, name)) - np.asarray(getattr(exact, name)))
    z = z / np.asarray(getattr(mc, name + '_stderr'))
    assert z.max() < 4, (name, z.max())
  with pytest.raises(ValueError, match='key'):
    expected_kernels_stochastic_depth(cfg, x1, variables=variables, method='mc')
  with pytest.raises(ValueError, match='method'):
    expected_kernels_stochastic_depth(cfg, x1, variables=variables, method='mean')


def _run_python(code):
  return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True,
                        text=True, timeout=300)


def test_import_does_not_load_neural_tangents_or_tensorflow():
  result = _run_python("""
      import sys
      import ecrn_jax
      heavy = [m for m in sys.modules if m.split('.')[0] in ('neural_tangents', 'tensorflow')]
      assert not heavy, heavy
      print('clean')
  """)
  assert result.returncode == 0 and 'clean' in result.stdout, result.stderr


def test_finite_width_paths_work_without_neural_tangents():
  result = _run_python("""
      import sys
      class Block:
        def find_spec(self, name, path=None, target=None):
          if name.split('.')[0] in ('neural_tangents', 'tensorflow'):
            raise ImportError('blocked ' + name)
      sys.meta_path.insert(0, Block())
      import jax, numpy as np
      import ecrn_jax as E
      cfg = E.ECRNConfig(width=8, depth=1, fourier_features=3)
      model = E.ECRN(cfg)
      x = np.ones((3, 2), np.float32)
      v = model.init(jax.random.PRNGKey(0), x)
      assert E.empirical_ntk(model, v, x).shape == (3, 3)
      try:
        E.infinite_kernels(cfg, x, variables=v)
      except ImportError as e:
        assert 'neural-tangents' in str(e), e
        print('clear error')
  """)
  assert result.returncode == 0 and 'clear error' in result.stdout, result.stderr
