"""Tests for `ecrn_jax._src.analysis`."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ecrn_jax._src import analysis


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
  a = _kernel_like(500, 300, seed=1, decay=1.)
  exact = np.linalg.eigvalsh(a)[::-1]
  top5 = analysis.top_eigenvalues(_matvec(a), 500, 5,
                                  key=jax.random.PRNGKey(3))
  np.testing.assert_allclose(np.asarray(top5), exact[:5], rtol=1e-6)


def test_top_eigenvalues_return_vectors(kernel_500):
  k = 4
  lam, vecs = analysis.top_eigenvalues(
      _matvec(kernel_500), 500, k, key=jax.random.PRNGKey(1),
      return_vectors=True)
  lam, vecs = np.asarray(lam), np.asarray(vecs)
  assert lam.shape == (k,) and vecs.shape == (500, k)
  np.testing.assert_allclose(np.linalg.norm(vecs, axis=0), 1., rtol=1e-10)
  np.testing.assert_allclose(vecs.T @ vecs, np.eye(k), atol=1e-8)
  residual = np.linalg.norm(kernel_500 @ vecs - vecs * lam, axis=0)
  assert np.all(residual <= 1e-6 * lam), residual
  # The vectors span the same space as the exact top eigenvectors.
  exact_vecs = np.linalg.eigh(kernel_500)[1][:, ::-1][:, :k]
  np.testing.assert_allclose(np.abs(np.sum(vecs * exact_vecs, axis=0)), 1.,
                             atol=1e-6)


def test_top_eigenvalues_full_iterations_indefinite():
  rng = np.random.default_rng(2)
  b = rng.standard_normal((40, 40))
  b = (b + b.T) / 2
  lam = analysis.top_eigenvalues(_matvec(b), 40, 40, key=jax.random.PRNGKey(0),
                                 num_iterations=40)
  np.testing.assert_allclose(np.asarray(lam), np.linalg.eigvalsh(b)[::-1],
                             atol=1e-10)


@pytest.mark.parametrize('eigenvalues', [
    [3., 2., 1.] + [0.] * 57,   # rank 3 < k: Krylov space exhausted early.
    [1.] * 60,                  # identity: breakdown after one step.
])
def test_top_eigenvalues_breakdown(eigenvalues):
  a = _known_spectrum(eigenvalues, seed=4)
  k = 6
  lam, vecs = analysis.top_eigenvalues(_matvec(a), 60, k,
                                       key=jax.random.PRNGKey(5),
                                       return_vectors=True)
  lam, vecs = np.asarray(lam), np.asarray(vecs)
  assert np.all(np.isfinite(lam)) and np.all(np.isfinite(vecs))
  np.testing.assert_allclose(lam, sorted(eigenvalues, reverse=True)[:k],
                             atol=1e-10)
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
  np.testing.assert_allclose(np.asarray(diff(jnp.asarray(v))), (kt - k0) @ v,
                             rtol=1e-12, atol=1e-12)


def test_frobenius_estimate_within_three_standard_errors(kernel_pair):
  kt, k0 = kernel_pair
  exact = np.linalg.norm(kt - k0, 'fro')
  diff = analysis.difference_matvec(_matvec(kt), _matvec(k0))
  estimate, se = analysis.frobenius_norm_estimate(
      diff, 200, num_probes=200, key=jax.random.PRNGKey(0), batch_size=64)
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
  _, se_small = analysis.frobenius_norm_estimate(diff, 200, num_probes=16,
                                                 key=key)
  _, se_large = analysis.frobenius_norm_estimate(diff, 200, num_probes=1024,
                                                 key=key)
  # Expected ratio is sqrt(1024 / 16) = 8.
  assert float(se_large) < float(se_small) / 3


def test_frobenius_standard_error_calibrated():
  # The reported (delta-method) standard error matches the spread of the
  # estimate over independent keys.
  rng = np.random.default_rng(12)
  a = rng.standard_normal((30, 30))
  mv = _matvec(a)
  estimates, ses = [], []
  for seed in range(24):
    estimate, se = analysis.frobenius_norm_estimate(
        mv, 30, num_probes=20, key=jax.random.PRNGKey(seed))
    estimates.append(float(estimate))
    ses.append(float(se))
  ratio = np.std(estimates, ddof=1) / np.mean(ses)
  assert 0.6 < ratio < 1.6, ratio
  np.testing.assert_allclose(np.mean(estimates), np.linalg.norm(a),
                             rtol=4 * np.mean(ses) / np.sqrt(24) /
                             np.linalg.norm(a) + 1e-3)


def test_frobenius_estimate_exact_for_diagonal():
  # For diagonal A, ||A v||^2 = sum_i a_i^2 for every Rademacher v.
  d = np.linspace(-2., 3., 50)
  estimate, se = analysis.frobenius_norm_estimate(
      lambda v: jnp.asarray(d) * v, 50, num_probes=10,
      key=jax.random.PRNGKey(2), batch_size=3)
  np.testing.assert_allclose(float(estimate), np.linalg.norm(d), rtol=1e-12)
  assert float(se) <= 1e-12


# ---------------------------------------------------------------------------
# Dense statistics.
# ---------------------------------------------------------------------------


EIGENVALUES = np.array([5., 3., 2., 1., 0.5, 0.1])


@pytest.fixture(scope='module')
def known_kernel():
  return _known_spectrum(EIGENVALUES, seed=20)


def test_spectrum(known_kernel):
  np.testing.assert_allclose(analysis.spectrum(known_kernel), EIGENVALUES,
                             rtol=1e-12)
  # Symmetrization: an antisymmetric perturbation does not change it.
  skew = np.triu(np.ones((6, 6)), 1)
  np.testing.assert_allclose(
      analysis.spectrum(known_kernel + skew - skew.T), EIGENVALUES,
      rtol=1e-12)


def test_kernel_statistics(known_kernel):
  stats = analysis.kernel_statistics(known_kernel, top_k=3)
  lam = EIGENVALUES
  np.testing.assert_allclose(stats['lambda_max'], lam.max(), rtol=1e-12)
  np.testing.assert_allclose(stats['lambda_min'], lam.min(), rtol=1e-12)
  np.testing.assert_allclose(stats['top_eigenvalues'], lam[:3], rtol=1e-12)
  np.testing.assert_allclose(stats['trace'], np.trace(known_kernel),
                             rtol=1e-12)
  np.testing.assert_allclose(stats['trace'], lam.sum(), rtol=1e-12)
  np.testing.assert_allclose(stats['condition_number'], lam.max() / lam.min(),
                             rtol=1e-10)
  np.testing.assert_allclose(stats['effective_rank'],
                             lam.sum()**2 / np.sum(lam**2), rtol=1e-12)
  np.testing.assert_allclose(stats['frobenius_norm'],
                             np.linalg.norm(known_kernel, 'fro'), rtol=1e-12)
  # `top_k` larger than N is clipped.
  assert analysis.kernel_statistics(known_kernel)['top_eigenvalues'].shape == (
      6,)


def test_kernel_statistics_huge_finite_kernel(known_kernel):
  # A diverging network's NTK can be finite yet beyond 1e154: no OverflowError.
  stats = analysis.kernel_statistics(1e200 * known_kernel)
  lam = EIGENVALUES
  np.testing.assert_allclose(stats['effective_rank'],
                             lam.sum()**2 / np.sum(lam**2), rtol=1e-12)
  np.testing.assert_allclose(stats['lambda_max'], 1e200 * lam.max(), rtol=1e-12)
  np.testing.assert_allclose(stats['frobenius_norm'],
                             1e200 * np.linalg.norm(known_kernel, 'fro'), rtol=1e-12)


def test_kernel_statistics_singular():
  stats = analysis.kernel_statistics(np.diag([2., 1., 0.]))
  assert stats['condition_number'] == np.inf
  np.testing.assert_allclose(stats['effective_rank'], 9. / 5., rtol=1e-12)


@pytest.mark.parametrize('shape', [(6,), (6, 3)])
def test_kernel_target_alignment(known_kernel, shape):
  y = np.random.default_rng(22).standard_normal(shape)
  y2 = y.reshape(6, -1)
  expected = sum(y2[:, c] @ known_kernel @ y2[:, c]
                 for c in range(y2.shape[1]))
  expected /= np.linalg.norm(known_kernel, 'fro') * np.sum(y**2)
  np.testing.assert_allclose(
      analysis.kernel_target_alignment(jnp.asarray(known_kernel), y),
      expected, rtol=1e-12)


def test_kernel_target_alignment_top_eigenvector(known_kernel):
  v = np.linalg.eigh(known_kernel)[1][:, -1]
  np.testing.assert_allclose(
      analysis.kernel_target_alignment(known_kernel, 3. * v),
      EIGENVALUES[0] / np.sqrt(np.sum(EIGENVALUES**2)), rtol=1e-12)


@pytest.mark.parametrize('shape', [(6,), (6, 2)])
def test_generalization_bound(known_kernel, shape):
  y = np.random.default_rng(23).standard_normal(shape)
  quad = np.sum(y * np.linalg.solve(known_kernel, y))
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    bound = analysis.generalization_bound(known_kernel, y)
  np.testing.assert_allclose(bound, np.sqrt(2 * quad / 6), rtol=1e-10)


def test_generalization_bound_singular_falls_back_to_pinv():
  kernel = _known_spectrum([4., 2., 1., 0., 0.], seed=24)
  y = np.random.default_rng(25).standard_normal(5)
  expected = np.sqrt(2 * y @ np.linalg.pinv(kernel, hermitian=True) @ y / 5)
  with pytest.warns(RuntimeWarning, match='not positive definite'):
    bound = analysis.generalization_bound(kernel, y)
  np.testing.assert_allclose(bound, expected, rtol=1e-8)


def test_kernel_change(kernel_pair):
  kt, k0 = kernel_pair
  change = analysis.kernel_change(jnp.asarray(kt), k0)
  delta = np.sqrt(np.sum((kt - k0)**2))
  np.testing.assert_allclose(change['delta_frobenius'], delta, rtol=1e-12)
  np.testing.assert_allclose(change['relative_delta_frobenius'],
                             delta / np.sqrt(np.sum(k0**2)), rtol=1e-12)


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

  out = analysis.modewise_convergence(theta, residuals[0], residuals,
                                      learning_rate=lr, top_k=top_k)
  expected_shape = (steps + 1, top_k) + shape[1:]
  assert out['observed'].shape == expected_shape
  assert out['predicted'].shape == expected_shape
  np.testing.assert_allclose(out['eigenvalues'],
                             np.linalg.eigvalsh(theta)[::-1][:top_k],
                             rtol=1e-12)
  np.testing.assert_allclose(out['observed'], out['predicted'], atol=1e-10)
  # Observed projections are independent of the prediction formula.
  vecs = np.linalg.eigh(theta)[1][:, ::-1][:, :top_k]
  np.testing.assert_allclose(out['observed'][-1],
                             vecs.T @ residuals[-1], atol=1e-12)
  # A wrong convention (no 1/N) is detectably different.
  wrong = analysis.modewise_convergence(theta, residuals[0], residuals,
                                        learning_rate=lr * n, top_k=top_k)
  assert np.max(np.abs(wrong['predicted'] - out['observed'])) > 1e-3


# ---------------------------------------------------------------------------
# Input validation.
# ---------------------------------------------------------------------------


def _identity_matvec(v):
  return v


@pytest.mark.parametrize('call, match', [
    (lambda: analysis.top_eigenvalues(_identity_matvec, 5, 6,
                                      key=jax.random.PRNGKey(0)), '`k`'),
    (lambda: analysis.top_eigenvalues(_identity_matvec, 5, 0,
                                      key=jax.random.PRNGKey(0)), '`k`'),
    (lambda: analysis.top_eigenvalues(_identity_matvec, 5, 3,
                                      key=jax.random.PRNGKey(0),
                                      num_iterations=2), '`num_iterations`'),
    (lambda: analysis.top_eigenvalues(lambda v: v[:3], 5, 2,
                                      key=jax.random.PRNGKey(0)), '`matvec`'),
    (lambda: analysis.frobenius_norm_estimate(_identity_matvec, 5,
                                              num_probes=0,
                                              key=jax.random.PRNGKey(0)),
     '`num_probes`'),
    (lambda: analysis.spectrum(np.ones((3, 4))), '`kernel`'),
    (lambda: analysis.kernel_statistics(np.ones(3)), '`kernel`'),
    (lambda: analysis.kernel_statistics(np.eye(3), top_k=0), '`top_k`'),
    (lambda: analysis.kernel_target_alignment(np.ones((3, 4)), np.ones(3)),
     '`kernel`'),
    (lambda: analysis.kernel_target_alignment(np.eye(3), np.ones(4)), '`y`'),
    (lambda: analysis.generalization_bound(np.eye(3), np.ones((2, 2))),
     '`y`'),
    (lambda: analysis.generalization_bound(np.ones((2, 3)), np.ones(2)),
     '`kernel`'),
    (lambda: analysis.spectrum(np.array([[1., np.nan], [np.nan, 1.]])),
     'non-finite'),
    (lambda: analysis.kernel_statistics(np.array([[np.inf, 0.], [0., 1.]])),
     'non-finite'),
    (lambda: analysis.kernel_change(np.eye(3), np.eye(4)), '`kernel_t`'),
    (lambda: analysis.kernel_change(np.eye(3), np.full((3, 3), np.nan)),
     '`kernel_0`'),
    (lambda: analysis.modewise_convergence(np.eye(3), np.ones(3),
                                           np.ones((4, 3)), learning_rate=.1,
                                           top_k=4), '`top_k`'),
    (lambda: analysis.modewise_convergence(np.eye(3), np.ones(3),
                                           np.ones((4, 2)), learning_rate=.1,
                                           top_k=2), '`residuals`'),
    (lambda: analysis.modewise_convergence(np.eye(3), np.ones(2),
                                           np.ones((4, 2)), learning_rate=.1,
                                           top_k=2), '`residual_0`'),
])
def test_value_errors(call, match):
  with pytest.raises(ValueError, match=match):
    call()
