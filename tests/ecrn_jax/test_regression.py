# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Kernel regression: closed forms against independent solves (and, in the reference lane,
neural-tangents' predict), the twin's and the empirical NTK's regression, and the
cross-validated softmax calibration. The tiled twin kernels are tested in test_batching.py."""

import re
import subprocess
import sys
import textwrap
import warnings
from typing import Any, NamedTuple

import jax
import numpy as np
import pytest
import scipy.linalg
from conftest import relative_max_error
from reference_ntk import gp_posterior, gradient_flow_mse, jacobian_ntk

from ecrn_jax import ECRN, ECRNConfig
from ecrn_jax._src.infinite.deprecated import infinite_kernels  # the wrapper: same numbers
from ecrn_jax import regression
from ecrn_jax._src import linalg
from ecrn_jax._src.regression import dual_coefficients_of_ridges as sweep_solve
from ecrn_jax._src.linalg import RESIDUAL_TOLERANCE, solve_with_jitter
import utils

TOL = 1e-10


def _kernels(rng, n, m, rank=None):
  """Θ(X, X) (n, n), Θ(x, X) (m, n), Θ(x, x) (m, m) of a random feature map."""
  features = rng.normal(size=(n + m, rank or 3 * (n + m)))
  k = features @ features.T / features.shape[1] * 4.0
  return k[:n, :n], k[n:, :n], k[n:, n:]


def _reference_solve(k_train_train, y, k_test_train, diag_reg, t=None, learning_rate=1.0):
  """Independent closed form: numpy solve (t = ∞) or scipy's matrix exponential."""
  n = k_train_train.shape[0]
  regularized = k_train_train + diag_reg * np.trace(k_train_train) / n * np.eye(n)
  if t is None:
    return k_test_train @ np.linalg.solve(regularized, y)
  decay = np.eye(n) - scipy.linalg.expm(-learning_rate * t * regularized / n)
  return k_test_train @ np.linalg.solve(regularized, decay @ y)


@pytest.mark.parametrize('diag_reg', [0.0, 1e-3, 0.5])
@pytest.mark.parametrize('outputs', [None, 3])
@pytest.mark.parametrize('t', [None, 0.7, 40.0])
def test_kernel_regression_matches_independent_closed_form(diag_reg, outputs, t, rng):
  k_tt, k_st, _ = _kernels(rng, 12, 5)
  y = rng.normal(size=(12,) if outputs is None else (12, outputs))
  ours = regression.kernel_regression(k_tt, y, k_st, diag_reg=diag_reg, t=t, learning_rate=0.3)
  expected = _reference_solve(k_tt, y, k_st, diag_reg, t, learning_rate=0.3)
  assert ours.shape == expected.shape
  assert relative_max_error(ours, expected) < 1e-9


def _linearized_case(rng, t, linearized, lr, diag_reg, n=15, m=6, c=3):
  """(k_tt, k_st, y, f0_train, f0_test, ours): one kernel-regression problem and our answer."""
  k_tt, k_st, _ = _kernels(rng, n, m)
  y = rng.normal(size=(n, c))
  f0_train = rng.normal(size=(n, c)) if linearized else None
  f0_test = rng.normal(size=(m, c)) if linearized else None
  ours = regression.kernel_regression(
      k_tt,
      y,
      k_st,
      diag_reg=diag_reg,
      t=t,
      learning_rate=lr,
      fx_train_0=f0_train,
      fx_test_0=f0_test,
  )
  return k_tt, k_st, y, f0_train, f0_test, ours


@pytest.mark.parametrize('t', [None, 0.5, 25.0])
@pytest.mark.parametrize('linearized', [False, True])
def test_kernel_regression_matches_eigendecomposition_closed_form(t, linearized, rng):
  m, c, lr, diag_reg = 6, 3, 0.4, 1e-2
  k_tt, k_st, y, f0_train, f0_test, ours = _linearized_case(rng, t, linearized, lr, diag_reg)
  expected = gradient_flow_mse(
      k_tt, y, k_st, t=t, learning_rate=lr, diag_reg=diag_reg, f0_train=f0_train, f0_test=f0_test
  )
  assert ours.shape == expected.shape == (m, c)
  assert relative_max_error(ours, expected) < 1e-8
  # Time is normalized by N (not by N·C): a different η·t is a different prediction.
  if t is not None:
    other = gradient_flow_mse(
        k_tt,
        y,
        k_st,
        t=t,
        learning_rate=lr / c,
        diag_reg=diag_reg,
        f0_train=f0_train,
        f0_test=f0_test,
    )
    assert relative_max_error(ours, other) > 1e-4


@pytest.mark.reference
@pytest.mark.parametrize('t', [None, 0.5, 25.0])
@pytest.mark.parametrize('linearized', [False, True])
def test_kernel_regression_matches_neural_tangents_predict(t, linearized, rng, nt):
  m, c, lr, diag_reg = 6, 3, 0.4, 1e-2
  k_tt, k_st, y, f0_train, f0_test, ours = _linearized_case(rng, t, linearized, lr, diag_reg)
  # neural-tangents normalizes time by y.size = N·C (the loss averaged over outputs too).
  predict_fn = nt.predict.gradient_descent_mse(k_tt, y, learning_rate=lr * c, diag_reg=diag_reg)
  _, theirs = predict_fn(
      t,
      np.zeros_like(y) if f0_train is None else f0_train,
      np.zeros((m, c)) if f0_test is None else f0_test,
      k_st,
  )
  assert relative_max_error(ours, theirs) < 1e-8


def test_time_axis_limits_and_array_times(rng):
  k_tt, k_st, _ = _kernels(rng, 10, 4)
  y = rng.normal(size=(10, 2))
  times = np.array([0.0, 1.0, 1e9])
  stacked = regression.kernel_regression(k_tt, y, k_st, diag_reg=1e-2, t=times)
  assert stacked.shape == (3, 4, 2)
  assert np.all(stacked[0] == 0.0)
  single = regression.kernel_regression(k_tt, y, k_st, diag_reg=1e-2, t=1.0)
  np.testing.assert_allclose(stacked[1], single, rtol=1e-12, atol=0)
  converged = regression.kernel_regression(k_tt, y, k_st, diag_reg=1e-2, t=None)
  assert relative_max_error(stacked[2], converged) < 1e-8
  infinite = regression.kernel_regression(k_tt, y, k_st, diag_reg=1e-2, t=np.inf)
  np.testing.assert_array_equal(infinite, converged)


def test_diag_reg_is_relative_to_the_mean_diagonal(rng):
  k_tt, k_st, _ = _kernels(rng, 10, 4)
  y = rng.normal(size=10)
  base = regression.kernel_regression(k_tt, y, k_st, diag_reg=0.1)
  scaled = regression.kernel_regression(1e3 * k_tt, y, 1e3 * k_st, diag_reg=0.1)
  assert relative_max_error(scaled, base) < TOL
  absolute = 0.1 * np.trace(k_tt) / 10
  explicit = k_st @ np.linalg.solve(k_tt + absolute * np.eye(10), y)
  assert relative_max_error(base, explicit) < TOL
  unit_ridge = k_st @ np.linalg.solve(k_tt + 0.1 * np.eye(10), y)
  assert relative_max_error(base, unit_ridge) > 1e-3
  dual = regression.dual_coefficients(k_tt, y, diag_reg=0.1)
  assert relative_max_error(k_st @ dual, base) < TOL


def test_gp_posterior_matches_closed_form(rng):
  k_tt, k_st, k_ss = _kernels(rng, 14, 5)
  y = rng.normal(size=(14, 2))
  diag_reg = 1e-3
  mean, cov = gp_posterior(k_tt, y, k_st, k_ss, diag_reg=diag_reg)
  full = regression.gp_posterior(k_tt, y, k_st, k_ss, diag_reg=diag_reg)
  diag = regression.gp_posterior(k_tt, y, k_st, np.diag(k_ss), diag_reg=diag_reg)
  assert relative_max_error(full.mean, mean) < TOL
  assert relative_max_error(full.covariance, cov) < 1e-8
  assert relative_max_error(diag.covariance, np.diag(cov)) < 1e-8
  assert regression.gp_posterior(k_tt, y, k_st, diag_reg=diag_reg).covariance is None


@pytest.mark.reference
def test_gp_posterior_matches_neural_tangents(rng, nt):
  k_tt, k_st, k_ss = _kernels(rng, 14, 5)
  y = rng.normal(size=(14, 2))
  diag_reg = 1e-3
  full = regression.gp_posterior(k_tt, y, k_st, k_ss, diag_reg=diag_reg)
  theirs = nt.predict.gp_inference(k_tt, y, diag_reg=diag_reg)('nngp', k_st, k_ss)
  mean, cov = gp_posterior(k_tt, y, k_st, k_ss, diag_reg=diag_reg)
  assert relative_max_error(mean, theirs.mean) < 1e-8
  assert relative_max_error(cov, theirs.covariance) < 1e-8
  assert relative_max_error(full.mean, theirs.mean) < 1e-8
  assert relative_max_error(full.covariance, theirs.covariance) < 1e-8


def test_cholesky_retries_with_growing_jitter_and_warns(rng):
  k_tt, k_st, _ = _kernels(rng, 10, 3, rank=3)  # rank 3: singular
  y = rng.normal(size=10)
  with pytest.warns(regression.JitterWarning, match=r'jitter .*mean\(diag\) = '):
    predictions = regression.kernel_regression(k_tt, y, k_st, diag_reg=0.0)
  assert np.all(np.isfinite(predictions))
  with pytest.warns(regression.JitterWarning):
    factor, jitter = regression.cholesky_with_jitter(k_tt)
  assert jitter > 0
  assert relative_max_error(factor @ factor.T, k_tt + jitter * np.eye(10)) < 1e-10
  factor, jitter = regression.cholesky_with_jitter(k_tt + np.eye(10))
  assert jitter == 0.0
  indefinite = np.array([[1.0, 2.0], [2.0, 1.0]])
  with pytest.raises(ValueError, match='not positive definite'):
    regression.kernel_regression(indefinite, np.ones(2), indefinite)
  with pytest.raises(ValueError, match='positive diagonal'):
    regression.kernel_regression(-np.eye(3), np.ones(3), np.eye(3))


def _ill_conditioned_kernels(rng, n, m, smallest):
  """Θ(X, X) (n, n) and Θ(x, X) (m, n) of a PSD kernel with eigenvalues log-spaced 1..smallest."""
  basis, _ = np.linalg.qr(rng.normal(size=(n + m, n + m)))
  k = (basis * np.logspace(0, np.log10(smallest), n + m)) @ basis.T
  return k[:n, :n], k[n:, :n]


def _float32_system(k_tt, diag_reg, relative_jitter):
  """(Θ + diag_reg·mean(diag)·I) in float32 with relative_jitter·mean(diag) added, as factorized."""
  a = k_tt.astype(np.float32)
  a[np.diag_indices_from(a)] += diag_reg * float(np.trace(a)) / len(a)
  jittered = a.copy()
  jittered[np.diag_indices_from(jittered)] += relative_jitter * float(np.trace(a)) / len(a)
  return a, jittered


def _relative_residual(a, alpha, y) -> float:
  """max over columns of ‖a α − y‖/‖y‖ in float64."""
  a, alpha, y = (np.asarray(v, np.float64).reshape(len(a), -1) for v in (a, alpha, y))
  return float(np.max(np.linalg.norm(a @ alpha - y, axis=0) / np.linalg.norm(y, axis=0)))


_JITTER_REPORT = re.compile(
    r'needed jitter (\S+)·mean\(diag\) = \S+ on the diagonal.* residual '
    r'‖\(A \+ jitter·I\)α − y‖/‖y‖ is (\S+) \(tolerance (\S+), dtype float32\); against A itself '
    r'\(no jitter\) it is (\S+?), '
)


@pytest.mark.parametrize('diag_reg', [0.0, 1e-10])
@pytest.mark.parametrize('outputs', [None, 3])
@pytest.mark.parametrize('smallest', [1e-9, 1e-10])
def test_float32_solve_escalates_jitter_until_its_residual_is_met(diag_reg, outputs, smallest, rng):
  # The reproduction: the first jitter at which the float32 Cholesky succeeds gives a solve whose
  # predictions are far off; the jitter must grow until the residual meets √eps(float32).
  k_tt, k_st = _ill_conditioned_kernels(rng, 300, 40, smallest)
  y = rng.normal(size=(300,) if outputs is None else (300, outputs))
  y32 = y.astype(np.float32)
  expected = k_st @ np.linalg.solve(k_tt + diag_reg * np.trace(k_tt) / 300 * np.eye(300), y)
  with pytest.warns(regression.JitterWarning):
    factor, first_jitter = regression.cholesky_with_jitter(_float32_system(k_tt, diag_reg, 0)[0])
  first = scipy.linalg.cho_solve((factor, True), y32)
  assert relative_max_error(k_st @ first, expected) > 0.3  # what the old solve returned

  with pytest.warns(regression.JitterWarning) as record:
    predictions = regression.kernel_regression(k_tt, y, k_st, diag_reg=diag_reg, dtype='float32')
  with pytest.warns(regression.JitterWarning):
    alpha = regression.dual_coefficients(k_tt, y, diag_reg=diag_reg, dtype='float32')
  report = _JITTER_REPORT.search(str(record[0].message))
  assert report, str(record[0].message)
  relative_jitter, residual, tolerance, unjittered = map(float, report.groups())
  a, jittered = _float32_system(k_tt, diag_reg, relative_jitter)
  assert relative_jitter * np.trace(a) / 300 > first_jitter
  assert tolerance == pytest.approx(np.sqrt(np.finfo(np.float32).eps), rel=0.05)
  assert _relative_residual(jittered, alpha, y32) <= RESIDUAL_TOLERANCE
  assert _relative_residual(jittered, alpha, y32) == pytest.approx(residual, rel=0.06)
  assert _relative_residual(a, alpha, y32) == pytest.approx(unjittered, rel=0.06)
  # Accurate for the system it reports solving: a float64 solve with the same jitter.
  reference = k_st @ np.linalg.solve(jittered.astype(np.float64), y32.astype(np.float64))
  assert relative_max_error(predictions, reference) < 1e-3
  # The predictions are k_st·α in float32: they differ from numpy's product only by the two
  # products' rounding, each within γ_n·(|k_st|·|α|) (γ_n = n·eps/(1 − n·eps), any summation
  # order); α's entries reach ~1e3 against predictions ~1, so that bound, not the predictions'
  # size, is the scale (a relative 1e-5 held on AVX-512, failed on SSE's summation order).
  k_st32 = k_st.astype(np.float32)
  gamma = 300 * np.finfo(np.float32).eps / (1 - 300 * np.finfo(np.float32).eps)
  bound = 2 * gamma * (np.abs(k_st32).astype(np.float64) @ np.abs(alpha).astype(np.float64))
  assert np.all(np.abs(predictions - (k_st32 @ alpha).astype(np.float64)) <= bound)


@pytest.mark.parametrize('diag_reg', [0.0, 1e-3])
@pytest.mark.parametrize('outputs', [None, 3])
def test_well_conditioned_float32_solve_is_plain_cholesky_without_warning(diag_reg, outputs, rng):
  k_tt, k_st, _ = _kernels(rng, 40, 5)
  y = rng.normal(size=(40,) if outputs is None else (40, outputs))
  expected = k_st @ np.linalg.solve(k_tt + diag_reg * np.trace(k_tt) / 40 * np.eye(40), y)
  a, _ = _float32_system(k_tt, diag_reg, 0)
  with warnings.catch_warnings():
    warnings.simplefilter('error', regression.JitterWarning)
    predictions = regression.kernel_regression(k_tt, y, k_st, diag_reg=diag_reg, dtype='float32')
    mean = regression.gp_posterior(k_tt, y, k_st, diag_reg=diag_reg, dtype='float32').mean
    solve = solve_with_jitter(a, y.astype(np.float32))
  assert predictions.dtype == np.float32
  assert relative_max_error(predictions, expected) < 1e-4
  assert relative_max_error(mean, expected) < 1e-4
  assert solve.jitter == 0.0
  assert solve.residual <= RESIDUAL_TOLERANCE
  y32 = y.astype(np.float32)
  assert solve.residual == pytest.approx(_relative_residual(a, solve.coefficients, y32), rel=1e-6)
  plain = scipy.linalg.cho_solve(scipy.linalg.cho_factor(a, lower=True), y32)
  np.testing.assert_array_equal(solve.coefficients, plain)


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
def test_kernel_beyond_the_largest_jitter_raises(dtype, rng):
  basis, _ = np.linalg.qr(rng.normal(size=(30, 30)))
  eigenvalues = np.r_[np.ones(29), -0.05]  # mean diagonal 0.965: -0.05 beats jitter 1e-2·0.965
  indefinite = (basis * eigenvalues) @ basis.T
  with pytest.raises(ValueError, match='not positive definite, even with jitter 1e-02'):
    regression.kernel_regression(indefinite, np.ones(30), indefinite[:3], dtype=dtype)


def _barely_factorizable_kernel(rng, n, lifted):
  """(K, v): a symmetric (n, n) K = g gᵀ − β v vᵀ (g > 0, v ⟂ g a unit vector) whose one negative
  eigenvalue −β only the largest jitter, 1e-2·mean(diag K), lifts above zero, to
  `lifted`·1e-2·mean(diag K); every other eigenvalue is 1e-2·mean(diag K) or, along g, ~n·mean."""
  g = rng.uniform(0.5, 1.5, size=n)
  v = rng.normal(size=n)
  v -= (v @ g) / (g @ g) * g
  v /= np.linalg.norm(v)
  # mean(diag K) = mean(g²) − β/n and β = (1 − lifted)·1e-2·mean(diag K).
  c = 1e-2 * (1.0 - lifted)
  beta = c * np.mean(g * g) / (1.0 + c / n)
  return np.outer(g, g) - beta * np.outer(v, v), v


def test_float32_solve_that_no_jitter_makes_accurate_raises(rng):
  # Only jitter 1e-2·mean(diag) factorizes this K, and it leaves the eigenvalue along v at
  # 1e-5·mean(diag) beside ~n·mean(diag) along g: condition number ~1e7, within float32's
  # reach to factorize (the Cholesky succeeds) but not to solve. The right-hand side lies along
  # v, so the float32 residual is ~1e-1 (0.1–0.3 over seeds and orderings here), hundreds of
  # times the tolerance 3.5e-4 whatever the CPU's rounding; float64's is ~1e-10.
  n = 100
  k_tt, v = _barely_factorizable_kernel(rng, n, lifted=1e-3)
  y = v + 0.01 * rng.normal(size=n)
  with pytest.raises(ValueError, match='cannot be solved accurately in float32') as error:
    regression.kernel_regression(k_tt, y, k_tt[:2], dtype='float32')
  message = str(error.value)
  assert "dtype='float64'" in message and 'diag_reg' in message
  reached = re.search(r'reached was (\S+) \(at jitter (\S+)·mean\(diag\)\)', message)
  residual, relative_jitter = map(float, reached.groups())
  assert relative_jitter == 1e-2  # every smaller jitter leaves K indefinite
  assert residual > 30 * RESIDUAL_TOLERANCE
  # The same float32 system solved independently misses the tolerance as far.
  _, jittered = _float32_system(k_tt, 0.0, relative_jitter)
  y32 = y.astype(np.float32)
  alpha = scipy.linalg.cho_solve(scipy.linalg.cho_factor(jittered, lower=True), y32)
  independent = _relative_residual(jittered, alpha, y32)
  assert independent > 30 * RESIDUAL_TOLERANCE
  assert 0.1 < independent / residual < 10
  # float64 solves the same kernel accurately, with the same jitter (and says so).
  with pytest.warns(regression.JitterWarning, match='needed jitter 1e-02'):
    solve = solve_with_jitter(k_tt, y)
  assert solve.residual < 1e-3 * RESIDUAL_TOLERANCE
  jittered64 = k_tt + solve.jitter * np.eye(n)
  assert relative_max_error(solve.coefficients, np.linalg.solve(jittered64, y)) < 1e-6


@pytest.mark.parametrize('smallest', [1e-10, 1e-12])
def test_float64_solve_keeps_an_accurate_ill_conditioned_solution(smallest, rng):
  # Rounding costs this float64 solve ~1e-8..1e-6 of accuracy; jitter would bias it by O(1).
  k_tt, k_st = _ill_conditioned_kernels(rng, 300, 40, smallest)
  y = rng.normal(size=300)
  with warnings.catch_warnings():
    warnings.simplefilter('error', regression.JitterWarning)
    predictions = regression.kernel_regression(k_tt, y, k_st)
  assert relative_max_error(predictions, k_st @ np.linalg.solve(k_tt, y)) < 1e-4


def test_non_finite_and_malformed_inputs_raise_clear_errors(rng):
  k_tt, k_st, _ = _kernels(rng, 6, 2)
  y = np.ones(6)
  for bad, name in [
      (np.where(np.eye(6) > 0, np.nan, k_tt), 'k_train_train'),
      (np.full_like(k_tt, np.inf), 'k_train_train'),
  ]:
    with pytest.raises(ValueError, match=f'{name} contains .* NaN or inf'):
      regression.kernel_regression(bad, y, k_st)
  with pytest.raises(ValueError, match='y_train contains'):
    regression.kernel_regression(k_tt, np.r_[y[:-1], np.nan], k_st)
  with pytest.raises(ValueError, match='k_test_train contains'):
    regression.kernel_regression(k_tt, y, k_st * np.nan)
  with pytest.raises(ValueError, match=r'y_train must have shape \(N,\) or \(N, C\) with N = 6'):
    regression.kernel_regression(k_tt, np.ones(5), k_st)
  with pytest.raises(ValueError, match=r'k_test_train must have shape \(M, N\)'):
    regression.kernel_regression(k_tt, y, k_st[:, :4])
  with pytest.raises(ValueError, match='square'):
    regression.kernel_regression(k_tt[:, :5], y, k_st)
  with pytest.raises(ValueError, match='diag_reg'):
    regression.kernel_regression(k_tt, y, k_st, diag_reg=-1.0)
  with pytest.raises(ValueError, match='t must be'):
    regression.kernel_regression(k_tt, y, k_st, t=-1.0)
  with pytest.raises(ValueError, match='learning_rate'):
    regression.kernel_regression(k_tt, y, k_st, t=1.0, learning_rate=0.0)
  with pytest.raises(ValueError, match='both fx_train_0 and fx_test_0'):
    regression.kernel_regression(k_tt, y, k_st, fx_train_0=y)
  with pytest.raises(ValueError, match='k_test_test'):
    regression.gp_posterior(k_tt, y, k_st, np.ones(3))


_ECRN = utils.small_ecrn_config()


@pytest.mark.x64
def test_infinite_kernel_regression_matches_closed_form_with_twin_kernels(rng):
  x_train, x_test = rng.normal(size=(20, 4)), rng.normal(size=(7, 4))
  y = rng.normal(size=(20, 2))
  variables = ECRN(_ECRN).init(jax.random.PRNGKey(3), x_train[:1])
  train = infinite_kernels(_ECRN, x_train, variables=variables)
  test = infinite_kernels(_ECRN, x_test, x_train, variables=variables)
  for kernel in ('ntk', 'nngp'):
    for t in (None, 3.0):
      ours = regression.infinite_kernel_regression(
          _ECRN,
          x_train,
          y,
          x_test,
          variables=variables,
          kernel=kernel,
          t=t,
          diag_reg=1e-3,
          batch_size=8,
      )
      expected = _reference_solve(
          np.asarray(getattr(train, kernel)), y, np.asarray(getattr(test, kernel)), 1e-3, t
      )
      assert relative_max_error(ours, expected) < 1e-8
  posterior = regression.infinite_kernel_regression(
      _ECRN,
      x_train,
      y,
      x_test,
      variables=variables,
      kernel='nngp',
      diag_reg=1e-3,
      return_variance=True,
      batch_size=8,
  )
  k_ss = np.asarray(infinite_kernels(_ECRN, x_test, variables=variables).nngp)
  k_tt, k_st = np.asarray(train.nngp), np.asarray(test.nngp)
  regularized = k_tt + 1e-3 * np.trace(k_tt) / 20 * np.eye(20)
  variance = np.diag(k_ss - k_st @ np.linalg.solve(regularized, k_st.T))
  assert relative_max_error(posterior.covariance, variance) < 1e-8
  with pytest.raises(ValueError, match='return_variance'):
    regression.infinite_kernel_regression(
        _ECRN, x_train, y, x_test, variables=variables, kernel='ntk', return_variance=True
    )


class _EmpiricalRegressionCase(NamedTuple):
  model: Any
  variables: Any
  x_train: np.ndarray
  x_test: np.ndarray
  y: np.ndarray
  lr: float
  diag_reg: float
  ours: np.ndarray


def _empirical_regression_case(rng, t, trace_outputs) -> _EmpiricalRegressionCase:
  """A linearized ECRN (C = 2) regressed with its own empirical NTK, for the closed-form and
  neural-tangents comparisons."""
  cfg = ECRNConfig(
      width=32, depth=2, fourier_features=8, fourier_scale=0.5, out_dim=2, dtype='float64'
  )
  model = ECRN(cfg)
  x_train, x_test = rng.normal(size=(12, 3)), rng.normal(size=(5, 3))
  y = rng.normal(size=(12, 2))
  variables = model.init(jax.random.PRNGKey(0), x_train)
  lr, diag_reg = 0.5, 1e-3
  ours = regression.empirical_kernel_regression(
      model,
      variables,
      x_train,
      y,
      x_test,
      diag_reg=diag_reg,
      t=t,
      learning_rate=lr,
      linearized=True,
      trace_outputs=trace_outputs,
  )
  return _EmpiricalRegressionCase(model, variables, x_train, x_test, y, lr, diag_reg, ours)


def _check_empirical_regression(case, t, expected):
  assert case.ours.shape == (5, 2)
  assert relative_max_error(case.ours, expected) < 1e-8
  plain = regression.empirical_kernel_regression(
      case.model,
      case.variables,
      case.x_train,
      case.y,
      case.x_test,
      diag_reg=case.diag_reg,
      t=t,
      learning_rate=case.lr,
  )
  assert relative_max_error(plain, case.ours) > 1e-6  # f₀ ≢ 0 matters


@pytest.mark.parametrize('trace_outputs', [True, False])
@pytest.mark.parametrize('t', [None, 2.0])
@pytest.mark.x64
def test_empirical_kernel_regression_matches_jacobian_closed_form(trace_outputs, t, rng):
  case = _empirical_regression_case(rng, t, trace_outputs)
  model, variables, x_train, x_test, y, lr, diag_reg, _ = case
  kernel = lambda a, b=None: jacobian_ntk(model, variables, a, b, trace_outputs=trace_outputs)
  k_tt, k_st = kernel(x_train), kernel(x_test, x_train)
  f0_train = np.asarray(model.apply(variables, x_train))
  f0_test = np.asarray(model.apply(variables, x_test))
  if trace_outputs:  # Θ ⊗ I: each output column on its own, time normalized by N
    expected = gradient_flow_mse(
        k_tt, y, k_st, t=t, learning_rate=lr, diag_reg=diag_reg, f0_train=f0_train, f0_test=f0_test
    )
  else:  # the full (N·C, N·C) kernel on rows i·C + a, still time / N
    expected = gradient_flow_mse(
        k_tt,
        y.reshape(-1),
        k_st,
        t=t,
        learning_rate=lr,
        diag_reg=diag_reg,
        num_examples=12,
        f0_train=f0_train.reshape(-1),
        f0_test=f0_test.reshape(-1),
    ).reshape(5, 2)
  _check_empirical_regression(case, t, expected)


@pytest.mark.reference
@pytest.mark.parametrize('trace_outputs', [True, False])
@pytest.mark.parametrize('t', [None, 2.0])
def test_empirical_kernel_regression_matches_neural_tangents(trace_outputs, t, rng, nt):
  case = _empirical_regression_case(rng, t, trace_outputs)
  model, variables, x_train, x_test, y, lr, diag_reg, _ = case
  rest = {k: v for k, v in variables.items() if k != 'params'}
  f = lambda p, x: model.apply({'params': p, **rest}, x)
  axes = (-1,) if trace_outputs else ()
  kernel_fn = nt.empirical_ntk_fn(f, trace_axes=axes, vmap_axes=0)
  k_tt = kernel_fn(x_train, None, variables['params'])
  k_st = kernel_fn(x_test, x_train, variables['params'])
  predict_fn = nt.predict.gradient_descent_mse(
      k_tt, y, learning_rate=lr * 2, diag_reg=diag_reg, trace_axes=axes
  )
  _, theirs = predict_fn(t, f(variables['params'], x_train), f(variables['params'], x_test), k_st)
  _check_empirical_regression(case, t, theirs)


def test_classification_targets_and_softmax_calibration(rng):
  targets = regression.centered_one_hot(np.array([0, 2, 1]), 3)
  np.testing.assert_allclose(targets.sum(axis=1), 0.0, atol=1e-15)
  np.testing.assert_allclose(targets[1], [-1 / 3, -1 / 3, 2 / 3])
  with pytest.raises(ValueError, match='labels'):
    regression.centered_one_hot(np.array([0, 3]), 3)
  scores = rng.normal(scale=3.0, size=(4000, 4))
  probabilities = regression.calibrated_softmax(scores, 2.0)
  np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
  labels = np.array([rng.choice(4, p=p) for p in probabilities])
  assert abs(regression.fit_softmax_temperature(scores, labels) - 2.0) < 0.2


@pytest.mark.parametrize('t', [None, 2.0, np.array([0.5, 3.0])])
@pytest.mark.parametrize('linearized', [False, True])
def test_several_test_kernels_share_one_solve(t, linearized, rng, monkeypatch):
  k_tt, k_st, _ = _kernels(rng, 12, 5)
  y = rng.normal(size=(12, 2))
  f0_train, f0_test = rng.normal(size=(12, 2)), rng.normal(size=(5, 2))
  solve = dict(diag_reg=1e-3, t=t, learning_rate=0.4)
  initial = lambda fx_test_0: (dict(fx_train_0=f0_train, fx_test_0=fx_test_0) if linearized else {})
  separate = [
      regression.kernel_regression(k_tt, y, k_tt, **solve, **initial(f0_train)),
      regression.kernel_regression(k_tt, y, k_st, **solve, **initial(f0_test)),
  ]
  solves = []
  from ecrn_jax._src import regression as implementation  # pylint: disable=g-import-not-at-top

  dual_coefficients = implementation.dual_coefficients
  monkeypatch.setattr(
      implementation,
      'dual_coefficients',
      lambda *a, **k: solves.append(1) or dual_coefficients(*a, **k),
  )
  together = regression.kernel_regression(
      k_tt, y, (k_tt, k_st), **solve, **initial((f0_train, f0_test))
  )
  assert isinstance(together, tuple) and len(solves) == 1
  for ours, expected in zip(together, separate):
    assert ours.shape == expected.shape
    assert relative_max_error(ours, expected) < 1e-13
  # One matrix written as nested lists is still one kernel.
  nested = regression.kernel_regression(k_tt, y, k_st.tolist(), **solve, **initial(f0_test))
  assert relative_max_error(nested, separate[1]) < 1e-13
  if linearized:
    with pytest.raises(ValueError, match='fx_test_0 must be a list or tuple of 2'):
      regression.kernel_regression(k_tt, y, [k_tt, k_st], **solve, **initial(f0_test))
  with pytest.raises(ValueError, match=r'k_test_train must have shape \(M, N\)'):
    regression.kernel_regression(k_tt, y, [k_st, k_st[:, :4]], diag_reg=1e-3)


def _fold_loop(k, targets, folds, order, **solve):
  """The K-fold loop that the runner (experiments/train.py at 5b05e26) ran before `cross_validated_scores`."""
  n = len(targets)
  scores = np.zeros(targets.shape)
  for fold in range(folds):
    held = np.sort(order[fold::folds])
    fit = np.setdiff1d(np.arange(n), held)
    scores[held] = regression.kernel_regression(
        k[np.ix_(fit, fit)], targets[fit], k[np.ix_(held, fit)], **solve
    )
  return scores


@pytest.mark.parametrize('diag_reg, t', [(1e-3, None), (0.3, None), (1e-2, 4.0)])
@pytest.mark.parametrize('outputs', [None, 3])
@pytest.mark.parametrize('folds', [2, 5, 23])
def test_cross_validated_scores_equal_the_fold_loop(diag_reg, t, outputs, folds, rng):
  k_tt, _, _ = _kernels(rng, 23, 0)
  targets = rng.normal(size=(23,) if outputs is None else (23, outputs))
  order = rng.permutation(23)
  ours = regression.cross_validated_scores(
      k_tt, targets, folds=folds, order=order, diag_reg=diag_reg, t=t
  )
  expected = _fold_loop(k_tt, targets, folds, order, diag_reg=diag_reg, t=t)
  assert ours.shape == targets.shape and ours.dtype == np.float64
  assert relative_max_error(ours, expected) < 1e-13
  # Each fold is a plain kernel_regression of its own blocks: the last fold by hand.
  held = np.sort(order[folds - 1 :: folds])
  fit = np.setdiff1d(np.arange(23), held)
  ridge = diag_reg * np.trace(k_tt[np.ix_(fit, fit)]) / len(fit)
  if t is None:
    by_hand = k_tt[np.ix_(held, fit)] @ np.linalg.solve(
        k_tt[np.ix_(fit, fit)] + ridge * np.eye(len(fit)), targets[fit]
    )
    assert relative_max_error(ours[held], by_hand) < 1e-9


def test_cross_validated_scores_with_array_times(rng):
  k_tt, _, _ = _kernels(rng, 10, 0)
  targets, order, times = rng.normal(size=10), rng.permutation(10), np.array([1.0, 9.0])
  stacked = regression.cross_validated_scores(
      k_tt, targets, folds=3, order=order, diag_reg=1e-2, t=times
  )
  assert stacked.shape == (2, 10)
  for scores, t in zip(stacked, times):
    single = regression.cross_validated_scores(
        k_tt, targets, folds=3, order=order, diag_reg=1e-2, t=t
    )
    assert relative_max_error(scores, single) < 1e-12


def test_bad_folds_and_orders_raise(rng):
  k_tt, _, _ = _kernels(rng, 6, 0)
  y = rng.normal(size=6)
  order = np.arange(6)
  for folds, match in [
      (1, 'folds must be an integer >= 2'),
      (0, 'folds'),
      (2.0, 'folds must be an integer'),
      (True, 'folds must be an integer'),
      (7, 'folds must be <= N = 6'),
  ]:
    with pytest.raises(ValueError, match=match):
      regression.cross_validated_scores(k_tt, y, folds=folds, order=order)
  for bad in [
      np.array([0, 1, 2, 3, 4, 4]),
      np.arange(5),
      np.arange(1, 7),
      np.arange(6.0),
      np.arange(6).reshape(2, 3),
  ]:
    with pytest.raises(
        ValueError, match=r'order must be a permutation of range\(N\) = ' r'range\(6\)'
    ):
      regression.cross_validated_scores(k_tt, y, folds=2, order=bad)
  with pytest.raises(ValueError, match='y_train must have shape'):
    regression.cross_validated_scores(k_tt, y[:5], folds=2, order=order)
  leave_one_out = regression.cross_validated_scores(
      k_tt, y, folds=6, order=order[::-1], diag_reg=1e-2
  )
  assert (
      relative_max_error(leave_one_out, _fold_loop(k_tt, y, 6, order[::-1], diag_reg=1e-2)) < 1e-13
  )


def test_calibrate_temperature_equals_the_fold_loop_and_fit(rng):
  n, c, folds = 60, 3, 4
  features = rng.normal(size=(n, 5))
  labels = np.argmax(features[:, :c] + 0.7 * rng.normal(size=(n, c)), axis=1)
  k_tt = np.exp(-0.1 * ((features[:, None] - features[None]) ** 2).sum(-1))
  order = rng.permutation(n)
  calibration = regression.calibrate_temperature(
      k_tt, labels, c, folds=folds, order=order, diag_reg=1e-2
  )
  scores = _fold_loop(k_tt, regression.centered_one_hot(labels, c), folds, order, diag_reg=1e-2)
  accuracy = float(np.mean(np.argmax(scores, -1) == labels))
  assert relative_max_error(calibration.held_out_scores, scores) < 1e-13
  assert calibration.held_out_accuracy == accuracy and 0.4 < accuracy < 1.0
  assert calibration.temperature == regression.fit_softmax_temperature(scores, labels)
  # On the training scores (near interpolation) T would run towards its lower bound.
  train_scores = regression.kernel_regression(
      k_tt, regression.centered_one_hot(labels, c), k_tt, diag_reg=1e-6
  )
  assert regression.fit_softmax_temperature(train_scores, labels) < calibration.temperature
  with pytest.raises(ValueError, match='one temperature'):
    regression.calibrate_temperature(
        k_tt, labels, c, folds=folds, order=order, t=np.array([1.0, 2.0])
    )
  with pytest.raises(ValueError, match='labels'):
    regression.calibrate_temperature(k_tt, labels + 1, c, folds=folds, order=order)


def test_modules_import_without_neural_tangents_or_tensorflow():
  code = textwrap.dedent("""
      import sys
      import ecrn_jax, ecrn_jax.regression, ecrn_jax.analysis, ecrn_jax.files, ecrn_jax.estimators
      import ecrn_jax.kernels, ecrn_jax.models, ecrn_jax.training
      heavy = [m for m in sys.modules if m.split('.')[0] in ('neural_tangents', 'tensorflow')]
      assert not heavy, heavy
      print('clean')
  """)
  result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
  assert result.returncode == 0 and 'clean' in result.stdout, result.stderr[-3000:]


# ---------------------------------------------------------------------------
# The finite-t solve checks its residual as the t = ∞ one does (issue 26, point 7).
# ---------------------------------------------------------------------------


def _spectrum_kernel(smallest, n=40, seed=0):
  """Q diag(logspace(0, smallest)) Qᵀ, Q a random orthogonal matrix (float64)."""
  q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))
  k = (q * np.logspace(0, smallest, n)) @ q.T
  return (k + k.T) / 2


def _eigh_residual(k, y, tau):
  """The relative residual ‖K A_τ − (I − e^{−τK}) y‖/‖(I − e^{−τK}) y‖ of the jitter-free
  eigendecomposition solve, max over τ: NumPy's eigh, written out here."""
  lam, v = np.linalg.eigh(k)
  lam = np.maximum(lam, 0.0)
  e = lam[None, :] * tau[:, None]
  gain = np.where(lam > 0, -np.expm1(-e) / np.where(lam > 0, lam, 1.0), tau[:, None])
  p = v.T @ y
  a, b = np.einsum('ij,tj,j->ti', v, gain, p), np.einsum('ij,tj,j->ti', v, -np.expm1(-e), p)
  return max(np.linalg.norm(k @ ai - bi) / np.linalg.norm(bi) for ai, bi in zip(a, b))


@pytest.mark.x64
def test_the_finite_time_solve_of_an_ill_conditioned_kernel_needs_jitter_and_says_so():
  # Eigenvalues down to 1e-20 (below float64's round-off of the largest) and a time long
  # enough that 1/λ of the round-off eigenvalues is reached: unchecked, the solve's residual
  # is orders of magnitude above the tolerance.
  k, y = _spectrum_kernel(-20), np.random.default_rng(1).normal(size=40)
  times = np.array([40e-3, 40.0, 4e21])  # τ = η t / N: 1e-3, 1, 1e20
  assert _eigh_residual(k, y, times / 40) > 1e4 * RESIDUAL_TOLERANCE
  with pytest.warns(regression.JitterWarning, match=r'finite-time solve .* needed jitter'):
    regression.dual_coefficients(k, y, t=times)
  with pytest.warns(regression.JitterWarning):
    checked = linalg.finite_time_solve(k, y, times / 40)
  assert checked.jitter > 0 and checked.residual <= RESIDUAL_TOLERANCE


@pytest.mark.x64
def test_the_finite_time_solve_of_a_well_conditioned_kernel_is_accurate_without_jitter():
  k, y = _spectrum_kernel(-2), np.random.default_rng(1).normal(size=40)
  tau = np.array([1e-3, 1.0, 1e20])
  assert _eigh_residual(k, y, tau) < 1e-6 * RESIDUAL_TOLERANCE
  with warnings.catch_warnings():
    warnings.simplefilter('error', regression.JitterWarning)
    solve = linalg.finite_time_solve(k, y, tau)
    coefficients = regression.dual_coefficients(k, y, t=tau * 40)
  assert solve.jitter == 0.0 and solve.residual < 1e-6 * RESIDUAL_TOLERANCE
  # Against K⁻¹ (I − expm(−τK)) y, written with scipy's matrix exponential.
  for a, t in zip(coefficients, tau):
    expected = np.linalg.solve(k, y - scipy.linalg.expm(-t * k) @ y)
    np.testing.assert_allclose(a, expected, rtol=1e-9, atol=1e-12 * np.abs(expected).max())


# ---------------------------------------------------------------------------
# One eigendecomposition serves every ridge of a sweep.
# ---------------------------------------------------------------------------


def _rbf_problem(n=30, seed=2):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, 3))
  k = np.exp(-0.5 * np.sum((x[:, None] - x[None]) ** 2, axis=-1))
  return k, rng.normal(size=(n, 2))


@pytest.mark.x64
@pytest.mark.parametrize('t', [None, 7.0, np.array([0.5, 10.0, 1e3])], ids=['inf', 'one', 'many'])
def test_the_ridges_of_a_sweep_from_one_eigendecomposition_equal_separate_solves(t):
  k, y = _rbf_problem()
  ridges = (1e-6, 1e-3, 0.1, 1.0)
  with warnings.catch_warnings():
    warnings.simplefilter('error', regression.JitterWarning)
    swept = sweep_solve(k, y, ridges, t=t, learning_rate=0.3)
    separate = [
        regression.dual_coefficients(k, y, diag_reg=r, t=t, learning_rate=0.3) for r in ridges
    ]
  assert swept.shape == (len(ridges),) + np.shape(separate[0])
  # Cholesky (t = ∞) or one eigendecomposition per ridge against one for all: round-off apart,
  # the kernel's condition number (~1e7 at the smallest ridge) times float64's eps.
  for a, b in zip(swept, separate):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9 * np.abs(b).max())
  assert np.abs(separate[0] - separate[-1]).max() > 1e-2 * np.abs(separate[0]).max()


@pytest.mark.x64
def test_a_ridge_too_small_for_one_eigendecomposition_is_solved_alone_with_its_jitter():
  # A rank-2 kernel with no ridge: singular, so that ridge goes through dual_coefficients
  # (jitter and its warning); the others come from the shared eigendecomposition.
  rng = np.random.default_rng(3)
  features = rng.normal(size=(20, 2))
  k, y = features @ features.T, rng.normal(size=20)
  with pytest.warns(regression.JitterWarning):
    alone = regression.dual_coefficients(k, y, diag_reg=0.0)
  with pytest.warns(regression.JitterWarning):
    swept = sweep_solve(k, y, (0.0, 0.1))
  np.testing.assert_array_equal(swept[0], alone)
  np.testing.assert_allclose(swept[1], regression.dual_coefficients(k, y, diag_reg=0.1), rtol=1e-9)
