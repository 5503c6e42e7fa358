# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The infinite-width twin (docs/spec.md §2): native kernels, their closed forms, the Fourier-feature
limit, the expectation over stochastic-depth masks, and (reference lane) agreement with
neural-tangents' `stax`."""

import itertools
import math
import subprocess
import sys
import textwrap
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ecrn_jax import ECRN, MLP, ECRNConfig, MLPConfig, empirical_ntk, infinite_kernel_fn, ntk_vp_fn
from ecrn_jax._src.infinite import dual

# The deprecated wrappers over `infinite_kernel_fn` and `batch`: they give the same numbers.
from ecrn_jax._src.infinite.deprecated import batched_infinite_kernels
from ecrn_jax._src.infinite.deprecated import expected_kernels_stochastic_depth
from ecrn_jax._src.infinite.deprecated import infinite_kernels
from ecrn_jax.kernels import embed_inputs, stax_twin, to_stax_params

warnings.filterwarnings('ignore', message='`FanIn` layers assume independent inputs')


@pytest.fixture(scope='module')
def stax():
  from neural_tangents import stax as nt_stax  # pylint: disable=g-import-not-at-top

  return nt_stax


def _phi(stax, name):
  return {'gelu': stax.Gelu(approximate=False), 'erf': stax.Erf(), 'relu': stax.Relu()}[name]


def _hand_written_twin(stax, depth, width, out_dim, act, scales, w_std, b_std, param):
  """docs/spec.md §2 written out layer by layer, with the block scales α_l q̄_l given as numbers."""
  layers = [stax.Dense(width, W_std=w_std, b_std=b_std, parameterization=param)]
  for l in range(depth):
    branch = stax.serial(
        _phi(stax, act),
        stax.Dense(width, W_std=w_std, b_std=b_std, parameterization=param),
        stax.DotGeneral(rhs=scales[l]),
    )
    layers += [stax.FanOut(2), stax.parallel(stax.Identity(), branch), stax.FanInSum()]
  layers += [_phi(stax, act), stax.Dense(out_dim, W_std=w_std, b_std=b_std, parameterization=param)]
  return stax.serial(*layers)


def _rel(actual, expected):
  actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
  return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


# ---------------------------------------------------------------------------------------------
# Closed-form dual activations against two-dimensional Gauss–Hermite quadrature.

_PHI = {
    'relu': (lambda u: np.maximum(u, 0), lambda u: (u > 0).astype(float)),
    'erf': (lambda u: jax.scipy.special.erf(u), lambda u: 2 / math.sqrt(math.pi) * np.exp(-u * u)),
    'gelu': (
        lambda u: u * 0.5 * (1 + jax.scipy.special.erf(u / math.sqrt(2))),
        lambda u: 0.5 * (1 + jax.scipy.special.erf(u / math.sqrt(2)))
        + u * np.exp(-u * u / 2) / math.sqrt(2 * math.pi),
    ),
}


def _quadrature(f, g, c1, c2, k, order=160):
  """E[f(u) g(v)] for (u, v) ~ N(0, [[c1, k], [k, c2]]) by Gauss–Hermite (probabilists')."""
  z, w = np.polynomial.hermite_e.hermegauss(order)
  w = w / w.sum()
  chol = np.linalg.cholesky(np.array([[c1, k], [k, c2]]))
  z1, z2 = np.meshgrid(z, z, indexing='ij')
  u = chol[0, 0] * z1
  v = chol[1, 0] * z1 + chol[1, 1] * z2
  return float(np.sum(np.outer(w, w) * np.asarray(f(u)) * np.asarray(g(v))))


def _relu_expectations(c1, c2, k):
  """E[relu(u) relu(v)] and P(u > 0, v > 0) by one-dimensional adaptive quadrature over u > 0,
  with v | u ~ N(βu, s²) integrated in closed form (ReLU's kink defeats Gauss–Hermite)."""
  import scipy.integrate  # pylint: disable=g-import-not-at-top
  import scipy.stats  # pylint: disable=g-import-not-at-top

  beta, s = k / c1, math.sqrt(c2 - k * k / c1)
  density = lambda u: scipy.stats.norm.pdf(u, scale=math.sqrt(c1))

  def relu_v(u):
    m = beta * u
    return m * scipy.stats.norm.cdf(m / s) + s * scipy.stats.norm.pdf(m / s)

  value = scipy.integrate.quad(
      lambda u: u * relu_v(u) * density(u), 0, np.inf, epsabs=1e-13, epsrel=1e-12
  )[0]
  dot = scipy.integrate.quad(
      lambda u: scipy.stats.norm.cdf(beta * u / s) * density(u),
      0,
      np.inf,
      epsabs=1e-13,
      epsrel=1e-12,
  )[0]
  return value, dot


@pytest.mark.parametrize('name', ['relu', 'erf', 'gelu'])
@pytest.mark.parametrize(
    'c1, c2, k',
    [(1.0, 1.0, 0.3), (0.5, 2.0, -0.7), (3.0, 0.2, 0.6), (1.3, 1.1, 0.0), (2.0, 2.0, 1.9)],
)
@pytest.mark.x64
def test_dual_activations_match_quadrature(name, c1, c2, k):
  phi, dphi = _PHI[name]
  value, dot = dual.dual_activation(name).pair(jnp.float64(k), jnp.float64(c1), jnp.float64(c2))
  tol = 1e-9
  if name == 'relu':
    expected_value, expected_dot = _relu_expectations(c1, c2, k)
    expected_diagonal = _relu_expectations(c1, c1, c1 * (1 - 1e-14))[0]
  else:
    expected_value = _quadrature(phi, phi, c1, c2, k)
    expected_dot = _quadrature(dphi, dphi, c1, c2, k)
    expected_diagonal = _quadrature(phi, phi, c1, c1, c1 * (1 - 1e-12))
  assert float(value) == pytest.approx(expected_value, rel=tol, abs=tol)
  assert float(dot) == pytest.approx(expected_dot, rel=tol, abs=tol)
  diagonal = dual.dual_activation(name).diagonal(jnp.float64(c1))
  assert float(diagonal) == pytest.approx(expected_diagonal, rel=1e-9)


@pytest.mark.x64
def test_atan2_is_within_two_ulp_of_numpy():
  rng = np.random.default_rng(0)
  y = rng.normal(size=200_000) * 10.0 ** rng.uniform(-12, 12, 200_000)
  x = rng.normal(size=200_000) * 10.0 ** rng.uniform(-12, 12, 200_000)
  y = np.concatenate([y, [0.0, -0.0, 1.0, -1.0, 0.0, 1.0, 0.0]])
  x = np.concatenate([x, [0.0, -1.0, 0.0, 0.0, 1.0, -1.0, -2.0]])  # no x = −0.0 (docstring)
  ours = np.asarray(jax.jit(dual.atan2)(jnp.asarray(y), jnp.asarray(x)))
  expected = np.arctan2(y, x)
  ulp = np.spacing(np.maximum(np.abs(expected), 1e-300))
  assert np.max(np.abs(ours - expected) / ulp) <= 2.0
  np.testing.assert_array_equal(np.signbit(ours[-7:]), np.signbit(expected[-7:]))


# ---------------------------------------------------------------------------------------------
# Native kernels: properties, exact diagonals, API.


@pytest.mark.x64
def test_relu_mlp_diagonal_is_the_exact_scalar_recursion(rng):
  """At correlation 1 the ReLU dual is exact (c ↦ c/2, slope 1/2): the symmetric kernel's
  diagonal must equal the scalar recursion, with no √ε round-off."""
  cfg = MLPConfig(hidden_widths=(7, 5, 9), activation='relu', w_std=1.3, b_std=0.2, dtype='float64')
  x = rng.normal(size=(9, 4))
  k = infinite_kernels(cfg, x)
  c = np.sum(x * x, axis=1) / x.shape[1]
  theta = np.zeros_like(c)
  for _ in cfg.hidden_widths:
    c = cfg.w_std**2 * c + cfg.b_std**2
    theta = c + cfg.w_std**2 * theta
    c, theta = c / 2, theta / 2
  c = cfg.w_std**2 * c + cfg.b_std**2
  theta = c + cfg.w_std**2 * theta
  np.testing.assert_allclose(np.diag(k.nngp), c, rtol=1e-14)
  np.testing.assert_allclose(np.diag(k.ntk), theta, rtol=1e-14)


@pytest.mark.parametrize(
    'config',
    [
        ECRNConfig(
            width=16, depth=3, fourier_features=6, drop_rate=0.2, activation='relu', dtype='float64'
        ),
        ECRNConfig(
            width=16,
            depth=2,
            fourier_features=None,
            parameterization='standard',
            activation='erf',
            dtype='float64',
        ),
        MLPConfig(hidden_widths=(16, 8), activation='gelu', dtype='float64'),
    ],
)
@pytest.mark.x64
def test_native_kernels_are_symmetric_psd_and_consistent(config, rng):
  x = rng.normal(size=(11, 3))
  model = MLP(config) if isinstance(config, MLPConfig) else ECRN(config)
  variables = model.init(jax.random.PRNGKey(0), x)
  kernel_fn = infinite_kernel_fn(config, variables=variables)
  sym = kernel_fn(x)
  full = kernel_fn(x, x)
  blocks = kernel_fn(x[:4], x[4:], get='ntk')
  for name in ('nngp', 'ntk'):
    kernel = np.asarray(getattr(sym, name))
    np.testing.assert_allclose(kernel, kernel.T, rtol=1e-13, atol=0)
    assert np.linalg.eigvalsh(kernel).min() > -1e-10 * np.abs(kernel).max()
    # Symmetric and two-argument calls agree (to √ε on ReLU's diagonal, to round-off elsewhere).
    off = ~np.eye(len(x), dtype=bool)
    assert _rel(np.asarray(getattr(full, name))[off], kernel[off]) < 1e-13
    assert _rel(np.diag(getattr(full, name)), np.diag(kernel)) < 1e-7
  np.testing.assert_allclose(blocks, np.asarray(sym.ntk)[:4, 4:], rtol=1e-13)
  assert kernel_fn(x, get='nngp').shape == (11, 11)


@pytest.mark.x64
def test_kernel_fn_jits_vmaps_and_runs_in_float32(rng):
  cfg = ECRNConfig(width=8, depth=2, fourier_features=5, activation='gelu', dtype='float64')
  x = rng.normal(size=(6, 3))
  variables = ECRN(cfg).init(jax.random.PRNGKey(1), x)
  kernel_fn = infinite_kernel_fn(cfg, variables=variables)
  direct = kernel_fn(x[:3], x)
  jitted = jax.jit(kernel_fn, static_argnames='get')(jnp.asarray(x[:3]), jnp.asarray(x), get='ntk')
  np.testing.assert_allclose(jitted, direct.ntk, rtol=1e-14)
  batched = jax.vmap(lambda a: kernel_fn(a, x, get='ntk'))(jnp.asarray(x[:3])[:, None, :])
  np.testing.assert_allclose(batched[:, 0, :], direct.ntk, rtol=1e-13)
  cfg32 = cfg.replace(dtype='float32')
  k32 = infinite_kernel_fn(cfg32, variables=variables)(x[:3], x)
  assert k32.ntk.dtype == jnp.float32
  assert _rel(k32.ntk, direct.ntk) < 1e-5
  # Tiled over devices: the same kernel.
  tiled = batched_infinite_kernels(cfg, x, variables=variables, batch_size=2)
  assert _rel(tiled.ntk, kernel_fn(x).ntk) < 1e-14


@pytest.mark.x64
def test_bad_inputs_are_refused(rng):
  cfg = ECRNConfig(width=8, depth=1, fourier_features=4, dtype='float64')
  x = rng.normal(size=(5, 2))
  variables = ECRN(cfg).init(jax.random.PRNGKey(0), x)
  bad = x.copy()
  bad[1, 0], bad[3, 1] = np.nan, np.inf
  with pytest.raises(ValueError, match=r'x1 has 2 NaN or inf entries'):
    infinite_kernels(cfg, bad, variables=variables)
  with pytest.raises(ValueError, match=r'x2 has 2 NaN or inf entries'):
    infinite_kernels(cfg, x, bad, variables=variables)
  with pytest.raises(ValueError, match=r'x1 has 2 NaN'):
    batched_infinite_kernels(cfg, bad, variables=variables)
  model = ECRN(cfg)
  with pytest.raises(ValueError, match=r'x1 has 2 NaN or inf entries'):
    empirical_ntk(model, variables, bad)
  with pytest.raises(ValueError, match=r'x2 has 2 NaN or inf entries'):
    ntk_vp_fn(model, variables, x, jnp.asarray(bad))
  for name, args in (('x1', (x[:0],)), ('x2', (x, x[:0]))):
    with pytest.raises(ValueError, match=rf'{name} is empty \(shape \(0, 2\)\)'):
      infinite_kernels(cfg, *args, variables=variables)
  assert model.apply(variables, x[:0]).shape == (0, 1)  # applying to no inputs is no error
  with pytest.raises(ValueError, match='implementation'):
    infinite_kernels(cfg, x, variables=variables, implementation='stax')
  with pytest.raises(ValueError, match="parameterization='ntk'"):
    infinite_kernels(cfg.replace(parameterization='standard'), x, fourier_limit=True)
  with pytest.raises(ValueError, match='Fourier features'):
    infinite_kernels(MLPConfig(dtype='float64'), x, fourier_limit=True)
  with pytest.raises(ValueError, match='mask'):
    infinite_kernel_fn(MLPConfig(dtype='float64'), mask=(1,))


# ---------------------------------------------------------------------------------------------
# Infinitely many Fourier features.


@pytest.mark.x64
def test_fourier_limit_is_the_large_m_limit(rng):
  """γ(x)·γ(x')/2m → ½ exp(−2π²σ²‖x − x'‖²): the twin with m sampled features approaches the
  limit at rate m^(−1/2) (Monte Carlo over B)."""
  d, sigma = 3, 0.15
  x1, x2 = rng.normal(size=(6, d)), rng.normal(size=(4, d))
  base = ECRNConfig(
      width=8, depth=2, fourier_scale=sigma, activation='gelu', drop_rate=0.1, dtype='float64'
  )
  limit = infinite_kernels(base.replace(fourier_features=1), x1, x2, fourier_limit=True)
  sizes, errors = (64, 256, 1024, 4096, 16384), []
  for m in sizes:
    per_seed = []
    for seed in range(6):
      b = sigma * jax.random.normal(jax.random.PRNGKey(seed), (d, m), jnp.float64)
      k = infinite_kernels(
          base.replace(fourier_features=m),
          x1,
          x2,
          variables={'fourier': {'fourier_features': {'B': b}}},
      )
      per_seed.append(np.linalg.norm(k.ntk - limit.ntk) / np.linalg.norm(limit.ntk))
    errors.append(np.mean(per_seed))
  slope = np.polyfit(np.log(sizes), np.log(errors), 1)[0]
  assert -0.65 <= slope <= -0.35, (slope, errors)
  assert errors[-1] < 0.01, errors
  # The input kernel itself: exactly ½ on the diagonal, the Gaussian kernel off it.
  shallow = ECRNConfig(
      width=8,
      depth=0,
      fourier_scale=sigma,
      activation='relu',
      dtype='float64',
      w_std=1.0,
      b_std=0.0,
  )
  nngp = infinite_kernel_fn(shallow, fourier_limit=True)(x1, get='nngp')
  sq = np.sum((x1[:, None] - x1[None]) ** 2, -1)
  gauss = 0.5 * np.exp(-2 * math.pi**2 * sigma**2 * sq)
  c = 0.5
  rho = np.clip(gauss / c, -1, 1)
  arccos = c * (np.sqrt(1 - rho**2) + (math.pi - np.arccos(rho)) * rho) / (2 * math.pi)
  np.testing.assert_allclose(nngp, arccos, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Stochastic depth.


@pytest.mark.x64
def test_fourier_config_needs_variables(rng):
  cfg = ECRNConfig(width=8, depth=1, fourier_features=4, dtype='float64')
  x = rng.normal(size=(3, 2))
  with pytest.raises(ValueError, match='variables=model.init'):
    infinite_kernels(cfg, x)
  other = ECRN(cfg.replace(fourier_features=3)).init(jax.random.PRNGKey(0), x)
  with pytest.raises(ValueError, match='B has shape'):
    infinite_kernels(cfg, x, variables=other)


def _sd_config(drop_rate):
  return ECRNConfig(
      width=32,
      depth=4,
      alpha=1.5,
      alpha_schedule='constant',
      activation='relu',
      fourier_features=6,
      drop_rate=drop_rate,
      dtype='float64',
  )


@pytest.mark.x64
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
    total = total + prob * np.asarray(infinite_kernels(cfg, x, variables=variables, mask=mask).ntk)
  np.testing.assert_allclose(exact.ntk, total, rtol=1e-12)
  # The expectation over masks is not the evaluation-mode kernel (the scale enters squared).
  assert not np.allclose(exact.ntk, infinite_kernels(cfg, x, variables=variables).ntk, rtol=1e-3)
  no_drop = _sd_config(0.0)
  np.testing.assert_allclose(
      expected_kernels_stochastic_depth(no_drop, x, variables=variables).ntk,
      infinite_kernels(no_drop, x, variables=variables).ntk,
      rtol=1e-12,
  )


@pytest.mark.x64
def test_monte_carlo_over_masks_matches_exact_enumeration(rng):
  cfg = _sd_config(0.4)
  x1, x2 = rng.normal(size=(6, 3)), rng.normal(size=(4, 3))
  variables = ECRN(cfg).init(jax.random.PRNGKey(3), x1)
  exact = expected_kernels_stochastic_depth(cfg, x1, x2, variables=variables)
  mc = expected_kernels_stochastic_depth(
      cfg, x1, x2, variables=variables, method='mc', num_samples=2000, key=jax.random.PRNGKey(4)
  )
  for name in ('nngp', 'ntk'):
    z = np.abs(np.asarray(getattr(mc, name)) - np.asarray(getattr(exact, name)))
    z = z / np.asarray(getattr(mc, name + '_stderr'))
    assert z.max() < 4, (name, z.max())
  with pytest.raises(ValueError, match='key'):
    expected_kernels_stochastic_depth(cfg, x1, variables=variables, method='mc')
  with pytest.raises(ValueError, match='method'):
    expected_kernels_stochastic_depth(cfg, x1, variables=variables, method='mean')


def _run_python(code):
  return subprocess.run(
      [sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True, timeout=300
  )


def test_import_does_not_load_neural_tangents_or_tensorflow():
  result = _run_python("""
      import sys
      import ecrn_jax
      heavy = [m for m in sys.modules if m.split('.')[0] in ('neural_tangents', 'tensorflow')]
      assert not heavy, heavy
      print('clean')
  """)
  assert result.returncode == 0 and 'clean' in result.stdout, result.stderr


def test_every_kernel_works_without_neural_tangents():
  result = _run_python("""
      import sys
      class Block:
        def find_spec(self, name, path=None, target=None):
          if name.split('.')[0] in ('neural_tangents', 'tensorflow'):
            raise ImportError('blocked ' + name)
      sys.meta_path.insert(0, Block())
      import jax, numpy as np
      import ecrn_jax as E
      cfg = E.ECRNConfig(width=8, depth=1, fourier_features=3, drop_rate=0.2)
      model = E.ECRN(cfg)
      x = np.ones((3, 2), np.float32) * np.arange(3)[:, None]
      v = model.init(jax.random.PRNGKey(0), x)
      assert E.empirical_ntk(model, v, x).shape == (3, 3)
      assert E.infinite_kernel_fn(cfg, variables=v)(x).ntk.shape == (3, 3)
      expected = E.infinite_kernel_fn(cfg, variables=v, expectation='exact')
      assert expected(x).ntk.shape == (3, 3)
      assert E.batch(E.infinite_kernel_fn(cfg, variables=v))(x, get='ntk').shape == (3, 3)
      try:
        E.infinite_kernel_fn(cfg, variables=v, implementation='neural_tangents')(x)
      except ImportError as e:
        assert 'reference' in str(e), e
        print('clear error')
  """)
  assert result.returncode == 0 and 'clear error' in result.stdout, result.stderr


# ---------------------------------------------------------------------------------------------
# Reference lane: native = neural-tangents stax.


def _check_against_stax(config, variables, x1, x2, masks, stax_kernels, worst, symmetric=True):
  """Compares native with `stax`: evaluation mode for x2 (and x2=None if `symmetric`), each
  mask for x2."""
  for mask in masks:
    for other in ((x2, None) if mask is None and symmetric else (x2,)):
      ours = infinite_kernels(config, x1, other, variables=variables, mask=mask)
      theirs = stax_kernels(config, x1, other, variables, mask)
      for name in ('nngp', 'ntk'):
        a, b = np.asarray(getattr(ours, name)), np.asarray(getattr(theirs, name))
        if other is None and config.activation == 'relu':
          # neural-tangents' Gram diagonal (a matmul) and its variances (sums of squares) can
          # differ in the last bit; ReLU's dual turns that into √ε on its own diagonal, while
          # ours is exact there (test_relu_mlp_diagonal_is_the_exact_scalar_recursion).
          off = ~np.eye(len(a), dtype=bool)
          error = _rel(a[off], b[off])
          assert _rel(np.diag(a), np.diag(b)) < 1e-7
        else:
          error = _rel(a, b)
        key = (type(config).__name__, config.activation, config.parameterization)
        worst[key] = max(worst.get(key, 0.0), error)
        assert error <= 1e-12, (config, mask, other is None, name, error)


@pytest.fixture(scope='module')
def stax_kernels():
  def compute(config, x1, x2, variables, mask):
    return infinite_kernels(
        config, x1, x2, variables=variables, mask=mask, implementation='neural_tangents'
    )

  return compute


@pytest.mark.reference
@pytest.mark.parametrize('act', ['relu', 'erf', 'gelu'])
@pytest.mark.parametrize('param', ['ntk', 'standard'])
def test_native_equals_stax_over_the_grid(act, param, stax, stax_kernels):
  """{relu, erf, gelu} × {ntk, standard} × depth {0, 1, 4} × α schedules × {evaluation mode,
  single masks} × Fourier features on/off, x1 ≠ x2 (N₁ ≠ N₂) and x2 = None: ≤ 1e-12."""
  del stax
  rng = np.random.default_rng(7)
  x1, x2 = rng.normal(size=(7, 3)), rng.normal(size=(5, 3))
  worst = {}
  for depth, schedule, fourier in itertools.product(
      (0, 1, 4), ('constant', 'inverse_sqrt_depth'), (None, 5)
  ):
    cfg = ECRNConfig(
        width=16,
        depth=depth,
        alpha=0.8,
        alpha_schedule=schedule,
        activation=act,
        fourier_features=fourier,
        fourier_scale=0.4,
        drop_rate=0.25,
        out_dim=2,
        parameterization=param,
        w_std=1.3,
        b_std=0.2,
        dtype='float64',
    )
    variables = ECRN(cfg).init(jax.random.PRNGKey(depth), x1)
    all_masks = list(itertools.product((0, 1), repeat=depth))
    if depth == 4:  # all 16 in test_expected_kernels_native_equals_stax
      all_masks = [(0, 0, 0, 0), (1, 0, 1, 1)]
    # The schedule only changes the block scales: x2 = None once per structure suffices.
    _check_against_stax(
        cfg,
        variables,
        x1,
        x2,
        [None] + all_masks,
        stax_kernels,
        worst,
        symmetric=schedule == 'constant',
    )
  for hidden in ((9,), (9, 4), (6, 9, 5)):
    cfg = MLPConfig(
        hidden_widths=hidden,
        activation=act,
        parameterization=param,
        w_std=1.3,
        b_std=0.2,
        out_dim=2,
        dtype='float64',
    )
    _check_against_stax(cfg, None, x1, x2, [None], stax_kernels, worst)
  print(
      f'\nnative vs stax, {act}/{param}: worst relative max error '
      + ', '.join(f'{k[0]} {v:.1e}' for k, v in sorted(worst.items()))
  )


@pytest.mark.reference
def test_relu_diagonal_equals_stax_where_its_gram_diagonal_is_exact(stax_kernels):
  """On dyadic inputs neural-tangents' Gram diagonal and variances are exact, and then the
  ReLU diagonal agrees too: the √ε gap elsewhere is its round-off, not a difference in the
  kernel."""
  rng = np.random.default_rng(3)
  x = rng.integers(-4, 5, size=(8, 4)) / 2.0
  for cfg in (
      MLPConfig(hidden_widths=(9, 4), activation='relu', w_std=1.3, b_std=0.2, dtype='float64'),
      ECRNConfig(
          width=8, depth=3, fourier_features=None, activation='relu', drop_rate=0.3, dtype='float64'
      ),
  ):
    ours = infinite_kernels(cfg, x)
    theirs = stax_kernels(cfg, x, None, None, None)
    for name in ('nngp', 'ntk'):
      assert _rel(getattr(ours, name), getattr(theirs, name)) <= 1e-12


@pytest.mark.reference
def test_expected_kernels_native_equals_stax(rng, stax_kernels):
  """Every one of the 16 masks of a depth-4 ECRN, and their expectation."""
  cfg = ECRNConfig(
      width=16,
      depth=4,
      fourier_features=4,
      drop_rate=(0.3, 0.1, 0.5, 0.2),
      activation='gelu',
      dtype='float64',
  )
  x1, x2 = rng.normal(size=(5, 3)), rng.normal(size=(4, 3))
  variables = ECRN(cfg).init(jax.random.PRNGKey(0), x1)
  for mask in itertools.product((0, 1), repeat=4):
    ours = infinite_kernels(cfg, x1, x2, variables=variables, mask=mask)
    theirs = stax_kernels(cfg, x1, x2, variables, mask)
    for name in ('nngp', 'ntk'):
      assert _rel(getattr(ours, name), getattr(theirs, name)) <= 1e-12, mask
  native = expected_kernels_stochastic_depth(cfg, x1, x2, variables=variables)
  reference = expected_kernels_stochastic_depth(
      cfg, x1, x2, variables=variables, implementation='neural_tangents'
  )
  assert native.num_masks == reference.num_masks == 16
  for name in ('nngp', 'ntk'):
    assert _rel(getattr(native, name), getattr(reference, name)) <= 1e-12


@pytest.mark.reference
@pytest.mark.parametrize(
    'act, schedule, drop_rate, param',
    [
        ('gelu', 'inverse_sqrt_depth', 0.3, 'ntk'),
        ('erf', 'constant', 0.0, 'ntk'),
        ('relu', 'constant', 0.25, 'standard'),
        ('gelu', 'constant', 0.1, 'standard'),
        ('relu', 'inverse_sqrt_depth', 0.0, 'ntk'),
        ('erf', 'inverse_sqrt_depth', 0.5, 'standard'),
    ],
)
def test_twin_equals_hand_written_stax(act, schedule, drop_rate, param, rng, stax):
  depth, alpha = 3, 0.9
  cfg = ECRNConfig(
      width=64,
      depth=depth,
      alpha=alpha,
      alpha_schedule=schedule,
      activation=act,
      fourier_features=5,
      drop_rate=drop_rate,
      out_dim=2,
      parameterization=param,
      w_std=1.2,
      b_std=0.15,
      dtype='float64',
  )
  x1, x2 = rng.normal(size=(6, 3)), rng.normal(size=(4, 3))
  variables = ECRN(cfg).init(jax.random.PRNGKey(0), x1)
  alpha_l = alpha / math.sqrt(depth) if schedule == 'inverse_sqrt_depth' else alpha
  scales = [alpha_l * (1 - drop_rate)] * depth
  _, _, kernel_fn = _hand_written_twin(stax, depth, 64, 2, act, scales, 1.2, 0.15, param)
  b = np.asarray(variables['fourier']['fourier_features']['B'])
  g = lambda x: np.concatenate([np.cos(2 * np.pi * x @ b), np.sin(2 * np.pi * x @ b)], 1)
  expected = kernel_fn(g(x1), g(x2), ('nngp', 'ntk'))
  ours = infinite_kernels(cfg, x1, x2, variables=variables, implementation='neural_tangents')
  np.testing.assert_allclose(ours.nngp, expected.nngp, rtol=1e-12, atol=0)
  np.testing.assert_allclose(ours.ntk, expected.ntk, rtol=1e-12, atol=0)
  # Folding α_l q_l into W_std and b_std is exact in the NTK parameterization only (docs/spec.md §2).
  folded = [stax.Dense(64, W_std=1.2, b_std=0.15, parameterization=param)]
  for s in scales:
    branch = stax.serial(
        _phi(stax, act), stax.Dense(64, W_std=1.2 * s, b_std=0.15 * s, parameterization=param)
    )
    folded += [stax.FanOut(2), stax.parallel(stax.Identity(), branch), stax.FanInSum()]
  folded += [_phi(stax, act), stax.Dense(2, W_std=1.2, b_std=0.15, parameterization=param)]
  folded_ntk = stax.serial(*folded)[2](g(x1), g(x2), 'ntk')
  if param == 'ntk' or drop_rate == 0 and scales[0] == 1:
    np.testing.assert_allclose(folded_ntk, expected.ntk, rtol=1e-12)
  else:
    assert not np.allclose(folded_ntk, expected.ntk, rtol=1e-6)


@pytest.mark.reference
@pytest.mark.parametrize(
    'config',
    [
        ECRNConfig(
            width=8,
            depth=2,
            fourier_features=4,
            drop_rate=0.3,
            out_dim=3,
            activation='erf',
            dtype='float64',
        ),
        ECRNConfig(
            width=8,
            depth=2,
            fourier_features=None,
            out_dim=2,
            parameterization='standard',
            dtype='float64',
        ),
        MLPConfig(hidden_widths=(8, 6), out_dim=2, activation='gelu', dtype='float64'),
        MLPConfig(hidden_widths=(5,), parameterization='standard', dtype='float64'),
    ],
)
def test_twin_is_the_same_architecture(config, rng, stax):
  """The twin's apply_fn with the finite network's params reproduces the finite network."""
  x = rng.normal(size=(5, 3))
  model = MLP(config) if isinstance(config, MLPConfig) else ECRN(config)
  variables = model.init(jax.random.PRNGKey(1), x)
  _, apply_fn, _ = stax_twin(config)
  out = apply_fn(to_stax_params(config, variables), embed_inputs(config, x, variables))
  np.testing.assert_allclose(out, model.apply(variables, x), rtol=1e-12, atol=1e-12)
