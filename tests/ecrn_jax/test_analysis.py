# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Tests for `ecrn_jax.analysis`: the spectral statistics (`_src/spectral.py`) and the matrix-free
estimators (`_src/matrix_free.py`)."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ecrn_jax import analysis


@pytest.fixture(autouse=True, scope='module')
def enable_x64():
  """Runs this module in float64 and restores the previous setting after."""
  previous = jax.config.read('jax_enable_x64')
  jax.config.update('jax_enable_x64', True)
  yield
  jax.config.update('jax_enable_x64', previous)


def _kernel_like(n, p, seed, decay=0.98):
  """PSD `G diag(s) G^T / p` with a decaying column spectrum, plus a ridge."""
  rng = np.random.default_rng(seed)
  g = rng.standard_normal((n, p)) * decay ** np.arange(p)
  return g @ g.T / p + 1e-3 * np.eye(n)


def _known_spectrum(eigenvalues, seed):
  """`Q diag(eigenvalues) Q^T` with a random orthogonal `Q`."""
  rng = np.random.default_rng(seed)
  n = len(eigenvalues)
  q, _ = np.linalg.qr(rng.standard_normal((n, n)))
  return (q * np.asarray(eigenvalues)) @ q.T


def _matvec(a):
  a = jnp.asarray(a)
  return jax.jit(lambda v: a @ v)


# ---------------------------------------------------------------------------
# Lanczos.
# ---------------------------------------------------------------------------


@pytest.fixture(scope='module')
def kernel_500(enable_x64):
  return _kernel_like(500, 300, seed=0)


def test_top_eigenvalues_match_eigvalsh(kernel_500):
  exact = np.linalg.eigvalsh(kernel_500)[::-1]
  mv = _matvec(kernel_500)
  key = jax.random.PRNGKey(0)

  lam_max = analysis.top_eigenvalues(mv, 500, 1, key=key)
  assert lam_max.shape == (1,)
  assert lam_max.dtype == jnp.float64
  np.testing.assert_allclose(np.asarray(lam_max), exact[:1], rtol=1e-6)

  top5 = analysis.top_eigenvalues(mv, 500, 5, key=key)
  assert top5.shape == (5,)
  np.testing.assert_allclose(np.asarray(top5), exact[:5], rtol=1e-6)


def test_top_eigenvalues_clustered_marchenko_pastur():
  # No decay: top eigenvalues cluster at the Marchenko-Pastur edge.
  a = _kernel_like(500, 300, seed=1, decay=1.0)
  exact = np.linalg.eigvalsh(a)[::-1]
  top5 = analysis.top_eigenvalues(_matvec(a), 500, 5, key=jax.random.PRNGKey(3))
  np.testing.assert_allclose(np.asarray(top5), exact[:5], rtol=1e-6)


def test_top_eigenvalues_return_vectors(kernel_500):
  k = 4
  lam, vecs = analysis.top_eigenvalues(
      _matvec(kernel_500), 500, k, key=jax.random.PRNGKey(1), return_vectors=True
  )
  lam, vecs = np.asarray(lam), np.asarray(vecs)
  assert lam.shape == (k,) and vecs.shape == (500, k)
  np.testing.assert_allclose(np.linalg.norm(vecs, axis=0), 1.0, rtol=1e-10)
  np.testing.assert_allclose(vecs.T @ vecs, np.eye(k), atol=1e-8)
  residual = np.linalg.norm(kernel_500 @ vecs - vecs * lam, axis=0)
  assert np.all(residual <= 1e-6 * lam), residual
  # The vectors span the same space as the exact top eigenvectors.
  exact_vecs = np.linalg.eigh(kernel_500)[1][:, ::-1][:, :k]
  np.testing.assert_allclose(np.abs(np.sum(vecs * exact_vecs, axis=0)), 1.0, atol=1e-6)


def test_top_eigenvalues_full_iterations_indefinite():
  rng = np.random.default_rng(2)
  b = rng.standard_normal((40, 40))
  b = (b + b.T) / 2
  lam = analysis.top_eigenvalues(_matvec(b), 40, 40, key=jax.random.PRNGKey(0), num_iterations=40)
  np.testing.assert_allclose(np.asarray(lam), np.linalg.eigvalsh(b)[::-1], atol=1e-10)


@pytest.mark.parametrize(
    'eigenvalues',
    [
        [3.0, 2.0, 1.0] + [0.0] * 57,  # rank 3 < k: Krylov space exhausted early.
        [1.0] * 60,  # identity: breakdown after one step.
    ],
)
def test_top_eigenvalues_breakdown(eigenvalues):
  a = _known_spectrum(eigenvalues, seed=4)
  k = 6
  lam, vecs = analysis.top_eigenvalues(
      _matvec(a), 60, k, key=jax.random.PRNGKey(5), return_vectors=True
  )
  lam, vecs = np.asarray(lam), np.asarray(vecs)
  assert np.all(np.isfinite(lam)) and np.all(np.isfinite(vecs))
  np.testing.assert_allclose(lam, sorted(eigenvalues, reverse=True)[:k], atol=1e-10)
  np.testing.assert_allclose(vecs.T @ vecs, np.eye(k), atol=1e-8)


# ---------------------------------------------------------------------------
# Hutchinson / difference operators.
# ---------------------------------------------------------------------------


@pytest.fixture(scope='module')
def kernel_pair(enable_x64):
  k0 = _kernel_like(200, 100, seed=10)
  kt = _kernel_like(200, 100, seed=11, decay=0.95)
  return kt, k0


def test_difference_matvec(kernel_pair):
  kt, k0 = kernel_pair
  v = np.random.default_rng(0).standard_normal(200)
  diff = analysis.difference_matvec(_matvec(kt), _matvec(k0))
  np.testing.assert_allclose(
      np.asarray(diff(jnp.asarray(v))), (kt - k0) @ v, rtol=1e-12, atol=1e-12
  )


def test_frobenius_estimate_within_three_standard_errors(kernel_pair):
  kt, k0 = kernel_pair
  exact = np.linalg.norm(kt - k0, 'fro')
  diff = analysis.difference_matvec(_matvec(kt), _matvec(k0))
  estimate, se = analysis.frobenius_norm_estimate(
      diff, 200, num_probes=200, key=jax.random.PRNGKey(0), batch_size=64
  )
  estimate, se = float(estimate), float(se)
  assert se > 0
  assert abs(estimate - exact) <= 3 * se, (estimate, exact, se)
  # The dense path agrees exactly.
  dense = analysis.kernel_change(kt, k0)
  np.testing.assert_allclose(dense['delta_frobenius'], exact, rtol=1e-12)


def test_frobenius_standard_error_shrinks(kernel_pair):
  kt, k0 = kernel_pair
  diff = analysis.difference_matvec(_matvec(kt), _matvec(k0))
  key = jax.random.PRNGKey(1)
  _, se_small = analysis.frobenius_norm_estimate(diff, 200, num_probes=16, key=key)
  _, se_large = analysis.frobenius_norm_estimate(diff, 200, num_probes=1024, key=key)
  # Expected ratio is sqrt(1024 / 16) = 8.
  assert float(se_large) < float(se_small) / 3


def test_frobenius_standard_error_calibrated():
  # The reported (delta-method) standard error matches the spread of the
  # estimate over independent keys.
  rng = np.random.default_rng(12)
  a = rng.standard_normal((30, 30))
  mv = _matvec(a)
  # One compilation for the 24 keys.
  estimator = jax.jit(lambda key: analysis.frobenius_norm_estimate(mv, 30, num_probes=20, key=key))
  estimates, ses = [], []
  for seed in range(24):
    estimate, se = estimator(jax.random.PRNGKey(seed))
    estimates.append(float(estimate))
    ses.append(float(se))
  ratio = np.std(estimates, ddof=1) / np.mean(ses)
  assert 0.6 < ratio < 1.6, ratio
  np.testing.assert_allclose(
      np.mean(estimates),
      np.linalg.norm(a),
      rtol=4 * np.mean(ses) / np.sqrt(24) / np.linalg.norm(a) + 1e-3,
  )


def test_frobenius_estimate_exact_for_diagonal():
  # For diagonal A, ||A v||^2 = sum_i a_i^2 for every Rademacher v.
  d = np.linspace(-2.0, 3.0, 50)
  estimate, se = analysis.frobenius_norm_estimate(
      lambda v: jnp.asarray(d) * v, 50, num_probes=10, key=jax.random.PRNGKey(2), batch_size=3
  )
  np.testing.assert_allclose(float(estimate), np.linalg.norm(d), rtol=1e-12)
  assert float(se) <= 1e-12


def test_deflated_estimate_is_exact_on_the_basis_and_unbiased_off_it(kernel_pair):
  kt, _ = kernel_pair
  n, p = 200, 64
  rng = np.random.default_rng(3)
  probes = rng.choice([-1.0, 1.0], size=(p, n))
  basis = np.linalg.eigh(kt)[1][:, ::-1][:, :3].T  # (r, n): Q^T
  projected = probes - (probes @ basis.T) @ basis
  out = analysis.deflated_estimate(
      projected @ kt, basis @ kt, projected_probes=projected, basis=basis
  )
  exact_part = basis @ kt
  np.testing.assert_allclose(
      out['frobenius_norm_sq'],
      np.sum(exact_part**2) + np.mean(np.sum((projected @ kt) ** 2, axis=1)),
      rtol=1e-12,
  )
  np.testing.assert_allclose(out['frobenius_norm'], np.sqrt(out['frobenius_norm_sq']), rtol=1e-14)
  np.testing.assert_allclose(
      out['frobenius_norm_stderr'],
      out['frobenius_norm_sq_stderr'] / (2 * out['frobenius_norm']),
      rtol=1e-14,
  )
  np.testing.assert_allclose(
      out['trace'],
      np.trace(basis @ kt @ basis.T) + np.mean(np.sum(projected * (projected @ kt), axis=1)),
      rtol=1e-12,
  )
  for name, exact in (('trace', np.trace(kt)), ('frobenius_norm', np.linalg.norm(kt))):
    assert abs(out[name] - exact) <= 4 * out[f'{name}_stderr'], name
  # Deflating the dominant eigenvectors reduces the error; r = 0 is plain Hutchinson.
  plain = analysis.deflated_estimate(probes @ kt, projected_probes=probes)
  assert out['frobenius_norm_stderr'] < plain['frobenius_norm_stderr']
  np.testing.assert_allclose(
      plain['trace'], np.mean(np.sum(probes * (probes @ kt), axis=1)), rtol=1e-12
  )
  # JAX arrays in (also under jit), JAX arrays out: the same numbers.
  traced = jax.jit(
      lambda u, q: analysis.deflated_estimate(
          u, q, projected_probes=jnp.asarray(projected), basis=jnp.asarray(basis)
      )
  )(jnp.asarray(projected @ kt), jnp.asarray(exact_part))
  for name, value in out.items():
    assert isinstance(traced[name], jax.Array)
    np.testing.assert_allclose(traced[name], value, rtol=1e-12, err_msg=name)
  # One probe: no standard error.
  single = analysis.deflated_estimate(probes[:1] @ kt)
  assert np.isnan(single['frobenius_norm_stderr'])


def test_ratio_with_stderr():
  ratio, se = analysis.ratio_with_stderr(2.0, 0.1, 4.0, 0.2)
  assert ratio == 0.5
  np.testing.assert_allclose(se, 0.5 * np.hypot(0.1 / 2.0, 0.2 / 4.0), rtol=1e-15)
  assert np.isnan(analysis.ratio_with_stderr(0.0, 0.0, 4.0, 0.2)[1])
  assert all(np.isnan(analysis.ratio_with_stderr(1.0, 0.1, 0.0, 0.0)))


def test_conjugate_gradient_solves_spd_systems(kernel_pair):
  kt, _ = kernel_pair
  rhs = np.random.default_rng(4).standard_normal((2, 200))
  solutions, residuals = jax.jit(
      lambda b: analysis.conjugate_gradient(_matvec(kt), b, num_iterations=200)
  )(jnp.asarray(rhs))
  np.testing.assert_allclose(solutions, np.linalg.solve(kt, rhs.T).T, rtol=1e-6)
  np.testing.assert_allclose(
      residuals, np.linalg.norm(solutions @ kt - rhs, axis=1), rtol=1e-6, atol=1e-12
  )
  assert np.all(residuals < 1e-8 * np.linalg.norm(rhs, axis=1))


def test_matrix_free_summary_matches_kernel_summary():
  n, k = 24, 5
  k0 = _kernel_like(n, 20, seed=40)
  kt = k0 + 0.05 * _kernel_like(n, 10, seed=41)
  y = np.random.default_rng(42).standard_normal((n, 2))
  probes = jax.random.rademacher(jax.random.PRNGKey(0), (16, n), jnp.float64)
  key = jax.random.PRNGKey(1)
  common = dict(
      key=key,
      num_iterations=n,
      probes=probes,
      targets=jnp.asarray(y.T),
      cg_iterations=4 * n,
      batch_size=5,
  )
  first = analysis.matrix_free_products(_matvec(k0), n, deflation_rank=2, num_vectors=3, **common)
  assert first['basis'].shape == (2, n) and first['vectors'].shape == (n, 3)
  later = analysis.matrix_free_products(_matvec(kt), n, basis=first['basis'], **common)
  assert 'basis' not in later and later['probe_products'].shape == (16, n)
  free = analysis.matrix_free_summary(later, first, probes, y, top_k=k)
  dense = analysis.kernel_summary(kt, y, kernel_0=k0, top_k=k)
  # Lanczos with n steps: the whole spectrum; CG to convergence: the exact bound.
  for name in ('lambda_max', 'lambda_min', 'top_eigenvalues', 'arora_bound'):
    np.testing.assert_allclose(free[name], dense[name], rtol=1e-7, err_msg=name)
  # The alignment's numerator is exact, its ||K||_F the estimate.
  np.testing.assert_allclose(
      free['alignment'] * free['frobenius_norm'],
      dense['alignment'] * dense['frobenius_norm'],
      rtol=1e-12,
  )
  for name in ('trace', 'frobenius_norm', 'delta_frobenius', 'relative_delta_frobenius'):
    assert abs(free[name] - dense[name]) <= 4 * free[f'{name}_stderr'] + 1e-12, name
  assert free['arora_cg_relative_residual'] < 1e-8
  # At the reference itself the change is zero, exactly.
  same = analysis.matrix_free_summary(first, first, probes, y, top_k=k)
  assert same['delta_frobenius'] == 0 and np.isnan(same['relative_delta_frobenius_stderr'])


# ---------------------------------------------------------------------------
# Dense statistics.
# ---------------------------------------------------------------------------


EIGENVALUES = np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.1])


@pytest.fixture(scope='module')
def known_kernel():
  return _known_spectrum(EIGENVALUES, seed=20)


def test_spectrum(known_kernel):
  np.testing.assert_allclose(analysis.spectrum(known_kernel), EIGENVALUES, rtol=1e-12)
  # Symmetrization: an antisymmetric perturbation does not change it.
  skew = np.triu(np.ones((6, 6)), 1)
  np.testing.assert_allclose(
      analysis.spectrum(known_kernel + skew - skew.T), EIGENVALUES, rtol=1e-12
  )


def test_kernel_statistics(known_kernel):
  stats = analysis.kernel_statistics(known_kernel, top_k=3)
  lam = EIGENVALUES
  np.testing.assert_allclose(stats['lambda_max'], lam.max(), rtol=1e-12)
  np.testing.assert_allclose(stats['lambda_min'], lam.min(), rtol=1e-12)
  np.testing.assert_allclose(stats['top_eigenvalues'], lam[:3], rtol=1e-12)
  np.testing.assert_allclose(stats['trace'], np.trace(known_kernel), rtol=1e-12)
  np.testing.assert_allclose(stats['trace'], lam.sum(), rtol=1e-12)
  np.testing.assert_allclose(stats['condition_number'], lam.max() / lam.min(), rtol=1e-10)
  np.testing.assert_allclose(stats['effective_rank'], lam.sum() ** 2 / np.sum(lam**2), rtol=1e-12)
  np.testing.assert_allclose(
      stats['frobenius_norm'], np.linalg.norm(known_kernel, 'fro'), rtol=1e-12
  )
  # `top_k` larger than N is clipped.
  assert analysis.kernel_statistics(known_kernel)['top_eigenvalues'].shape == (6,)


def test_kernel_statistics_huge_finite_kernel(known_kernel):
  # A diverging network's NTK can be finite yet beyond 1e154: no OverflowError.
  stats = analysis.kernel_statistics(1e200 * known_kernel)
  lam = EIGENVALUES
  np.testing.assert_allclose(stats['effective_rank'], lam.sum() ** 2 / np.sum(lam**2), rtol=1e-12)
  np.testing.assert_allclose(stats['lambda_max'], 1e200 * lam.max(), rtol=1e-12)
  np.testing.assert_allclose(
      stats['frobenius_norm'], 1e200 * np.linalg.norm(known_kernel, 'fro'), rtol=1e-12
  )


def test_kernel_statistics_singular():
  stats = analysis.kernel_statistics(np.diag([2.0, 1.0, 0.0]))
  assert stats['condition_number'] == np.inf
  np.testing.assert_allclose(stats['effective_rank'], 9.0 / 5.0, rtol=1e-12)


@pytest.mark.parametrize('shape', [(6,), (6, 3)])
def test_kernel_target_alignment(known_kernel, shape):
  y = np.random.default_rng(22).standard_normal(shape)
  y2 = y.reshape(6, -1)
  expected = sum(y2[:, c] @ known_kernel @ y2[:, c] for c in range(y2.shape[1]))
  expected /= np.linalg.norm(known_kernel, 'fro') * np.sum(y**2)
  np.testing.assert_allclose(
      analysis.kernel_target_alignment(jnp.asarray(known_kernel), y), expected, rtol=1e-12
  )


def test_kernel_target_alignment_top_eigenvector(known_kernel):
  v = np.linalg.eigh(known_kernel)[1][:, -1]
  np.testing.assert_allclose(
      analysis.kernel_target_alignment(known_kernel, 3.0 * v),
      EIGENVALUES[0] / np.sqrt(np.sum(EIGENVALUES**2)),
      rtol=1e-12,
  )


@pytest.mark.parametrize('shape', [(6,), (6, 2)])
def test_generalization_bound(known_kernel, shape):
  y = np.random.default_rng(23).standard_normal(shape)
  quad = np.sum(y * np.linalg.solve(known_kernel, y))
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    bound = analysis.generalization_bound(known_kernel, y)
  np.testing.assert_allclose(bound, np.sqrt(2 * quad / 6), rtol=1e-10)


def test_generalization_bound_singular_falls_back_to_pinv():
  kernel = _known_spectrum([4.0, 2.0, 1.0, 0.0, 0.0], seed=24)
  y = np.random.default_rng(25).standard_normal(5)
  expected = np.sqrt(2 * y @ np.linalg.pinv(kernel, hermitian=True) @ y / 5)
  with pytest.warns(RuntimeWarning, match='not positive definite'):
    bound = analysis.generalization_bound(kernel, y)
  np.testing.assert_allclose(bound, expected, rtol=1e-8)


def test_kernel_change(kernel_pair):
  kt, k0 = kernel_pair
  change = analysis.kernel_change(jnp.asarray(kt), k0)
  delta = np.sqrt(np.sum((kt - k0) ** 2))
  np.testing.assert_allclose(change['delta_frobenius'], delta, rtol=1e-12)
  np.testing.assert_allclose(
      change['relative_delta_frobenius'], delta / np.sqrt(np.sum(k0**2)), rtol=1e-12
  )


# ---------------------------------------------------------------------------
# Mode-wise convergence.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize('num_outputs', [None, 3])
def test_modewise_convergence_matches_linear_gd(num_outputs):
  n, steps, lr, top_k = 30, 25, 0.5, 5
  theta = _kernel_like(n, 20, seed=30)
  shape = (n,) if num_outputs is None else (n, num_outputs)
  r = np.random.default_rng(31).standard_normal(shape)
  residuals = [r]
  for _ in range(steps):
    r = r - (lr / n) * theta @ r
    residuals.append(r)
  residuals = np.stack(residuals)

  out = analysis.modewise_convergence(theta, residuals[0], residuals, learning_rate=lr, top_k=top_k)
  expected_shape = (steps + 1, top_k) + shape[1:]
  assert out['observed'].shape == expected_shape
  assert out['predicted'].shape == expected_shape
  np.testing.assert_allclose(
      out['eigenvalues'], np.linalg.eigvalsh(theta)[::-1][:top_k], rtol=1e-12
  )
  np.testing.assert_allclose(out['observed'], out['predicted'], atol=1e-10)
  # Observed projections are independent of the prediction formula.
  vecs = np.linalg.eigh(theta)[1][:, ::-1][:, :top_k]
  np.testing.assert_allclose(out['observed'][-1], vecs.T @ residuals[-1], atol=1e-12)
  # A wrong convention (no 1/N) is detectably different.
  wrong = analysis.modewise_convergence(
      theta, residuals[0], residuals, learning_rate=lr * n, top_k=top_k
  )
  assert np.max(np.abs(wrong['predicted'] - out['observed'])) > 1e-3


def test_kernel_summary(known_kernel):
  y = np.random.default_rng(26).standard_normal(6)
  summary = analysis.kernel_summary(known_kernel, y, kernel_0=2.0 * known_kernel, top_k=3)
  expected = {
      **analysis.kernel_statistics(known_kernel, top_k=3),
      **analysis.kernel_change(known_kernel, 2.0 * known_kernel),
      'alignment': analysis.kernel_target_alignment(known_kernel, y),
      'arora_bound': analysis.generalization_bound(known_kernel, y),
  }
  assert list(summary) == list(expected)
  for name, value in expected.items():
    np.testing.assert_array_equal(summary[name], value)
  assert analysis.kernel_summary(known_kernel, y)['delta_frobenius'] == 0


def test_modewise_prediction_follows_a_learning_rate_sequence_or_schedule():
  n, steps, top_k = 30, 12, 4
  theta = _kernel_like(n, 20, seed=32)
  eigs, vecs = np.linalg.eigh(theta)
  eigs, vecs = eigs[::-1][:top_k], vecs[:, ::-1][:, :top_k]
  etas = 0.5 + 0.4 * np.cos(np.arange(steps + 3))
  r = np.random.default_rng(33).standard_normal((n, 2))
  observed = [vecs.T @ r]
  for eta in etas[3:]:  # steps 3, 4, ... of a schedule
    r = r - (eta / n) * theta @ r
    observed.append(vecs.T @ r)
  t = np.arange(steps + 1)
  from_sequence = analysis.modewise_prediction(
      eigs, observed[0], t, num_examples=n, learning_rate=etas[3:]
  )
  assert from_sequence.shape == (steps + 1, top_k, 2)
  np.testing.assert_allclose(from_sequence, np.stack(observed), atol=1e-10)
  from_schedule = analysis.modewise_prediction(
      eigs,
      observed[0],
      t,
      num_examples=n,
      start_step=3,
      learning_rate=lambda s: 0.5 + 0.4 * jnp.cos(s.astype(jnp.float64)),
  )
  np.testing.assert_allclose(from_schedule, from_sequence, rtol=1e-12)
  # A scalar step count gives that step's prediction.
  np.testing.assert_array_equal(
      analysis.modewise_prediction(eigs, observed[0], 5, num_examples=n, learning_rate=etas[3:]),
      from_sequence[5],
  )
  constant = analysis.modewise_prediction(
      eigs, observed[0][:, 0], t, num_examples=n, learning_rate=0.5
  )
  np.testing.assert_allclose(
      constant, (1 - 0.5 * eigs / n)[None] ** t[:, None] * observed[0][:, 0], rtol=1e-13
  )


# ---------------------------------------------------------------------------
# Input validation.
# ---------------------------------------------------------------------------


def _identity_matvec(v):
  return v


@pytest.mark.parametrize(
    'call, match',
    [
        (
            lambda: analysis.top_eigenvalues(_identity_matvec, 5, 6, key=jax.random.PRNGKey(0)),
            '`k`',
        ),
        (
            lambda: analysis.top_eigenvalues(_identity_matvec, 5, 0, key=jax.random.PRNGKey(0)),
            '`k`',
        ),
        (
            lambda: analysis.top_eigenvalues(
                _identity_matvec, 5, 3, key=jax.random.PRNGKey(0), num_iterations=2
            ),
            '`num_iterations`',
        ),
        (
            lambda: analysis.top_eigenvalues(lambda v: v[:3], 5, 2, key=jax.random.PRNGKey(0)),
            '`matvec`',
        ),
        (
            lambda: analysis.frobenius_norm_estimate(
                _identity_matvec, 5, num_probes=0, key=jax.random.PRNGKey(0)
            ),
            '`num_probes`',
        ),
        (lambda: analysis.spectrum(np.ones((3, 4))), '`kernel`'),
        (lambda: analysis.kernel_statistics(np.ones(3)), '`kernel`'),
        (lambda: analysis.kernel_statistics(np.eye(3), top_k=0), '`top_k`'),
        (lambda: analysis.kernel_target_alignment(np.ones((3, 4)), np.ones(3)), '`kernel`'),
        (lambda: analysis.kernel_target_alignment(np.eye(3), np.ones(4)), '`y`'),
        (lambda: analysis.generalization_bound(np.eye(3), np.ones((2, 2))), '`y`'),
        (lambda: analysis.generalization_bound(np.ones((2, 3)), np.ones(2)), '`kernel`'),
        (lambda: analysis.spectrum(np.array([[1.0, np.nan], [np.nan, 1.0]])), 'non-finite'),
        (lambda: analysis.kernel_statistics(np.array([[np.inf, 0.0], [0.0, 1.0]])), 'non-finite'),
        (lambda: analysis.kernel_change(np.eye(3), np.eye(4)), '`kernel_t`'),
        (lambda: analysis.kernel_change(np.eye(3), np.full((3, 3), np.nan)), '`kernel_0`'),
        (
            lambda: analysis.modewise_convergence(
                np.eye(3), np.ones(3), np.ones((4, 3)), learning_rate=0.1, top_k=4
            ),
            '`top_k`',
        ),
        (
            lambda: analysis.modewise_convergence(
                np.eye(3), np.ones(3), np.ones((4, 2)), learning_rate=0.1, top_k=2
            ),
            '`residuals`',
        ),
        (
            lambda: analysis.modewise_convergence(
                np.eye(3), np.ones(2), np.ones((4, 2)), learning_rate=0.1, top_k=2
            ),
            '`residual_0`',
        ),
        (
            lambda: analysis.modewise_convergence(
                np.eye(3), np.ones(3), np.ones((4, 3)), learning_rate=[0.1] * 2, top_k=2
            ),
            '`learning_rate`',
        ),
        (
            lambda: analysis.modewise_prediction(
                np.ones(2), np.ones(2), 3, num_examples=3, learning_rate=np.nan
            ),
            '`learning_rate`',
        ),
        (
            lambda: analysis.modewise_prediction(
                np.ones(2), np.ones(2), -1, num_examples=3, learning_rate=0.1
            ),
            '`steps`',
        ),
        (
            lambda: analysis.modewise_prediction(
                np.ones(2), np.ones(3), 1, num_examples=3, learning_rate=0.1
            ),
            '`projections_0`',
        ),
    ],
)
def test_value_errors(call, match):
  with pytest.raises(ValueError, match=match):
    call()
