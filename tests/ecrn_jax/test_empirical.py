# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The empirical NTK against an explicit Jacobian contraction and, in the reference lane,
neural-tangents' own empirical NTK (docs/spec.md §3, row 1)."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import RTOL, relative_max_error
from reference_ntk import jacobian_ntk
from ecrn_jax._src import empirical as empirical_lib
from ecrn_jax._src import vector_products as vp_lib
from ecrn_jax import (
    ECRN,
    MLP,
    ECRNConfig,
    MLPConfig,
    empirical_nngp,
    empirical_ntk,
    ntk_vp_fn,
)
from ecrn_jax.models import Dense


def _model(kind, parameterization, dtype, trainable=False, out_dim=3):
  if kind == 'mlp':
    return MLP(
        MLPConfig(
            hidden_widths=(12, 9),
            out_dim=out_dim,
            activation='erf',
            parameterization=parameterization,
            dtype=dtype,
        )
    )
  return ECRN(
      ECRNConfig(
          width=10,
          depth=2,
          fourier_features=5,
          fourier_trainable=trainable,
          drop_rate=0.2,
          out_dim=out_dim,
          parameterization=parameterization,
          dtype=dtype,
          alpha=0.8,
          b_std=0.3,
      )
  )


def _nt_kernel(nt, model, variables, x1, x2, trace_axes, implementation):
  rest = {k: v for k, v in variables.items() if k != 'params'}
  f = lambda p, x: model.apply({'params': p, **rest}, x)
  fn = nt.empirical_ntk_fn(f, trace_axes=trace_axes, vmap_axes=0, implementation=implementation)
  return fn(x1, x2, variables['params'])


CASES = [
    (kind, param, trainable)
    for kind in ('ecrn', 'mlp')
    for param in ('ntk', 'standard')
    for trainable in ((False, True) if kind == 'ecrn' else (False,))
]


def _both_implementations(model, variables, x1, x2, dtype):
  """(implementation, traced (7, 5), full (21, 15)) of our three empirical-NTK paths, with
  their shapes and dtype checked."""
  for implementation in ('generic', 'structured', 'jacobian'):
    ours = empirical_ntk(model, variables, x1, x2, block_size=3, implementation=implementation)
    ours_full = empirical_ntk(
        model, variables, x1, x2, trace_outputs=False, implementation=implementation
    )
    assert ours.shape == (7, 5) and ours_full.shape == (21, 15)
    assert ours.dtype == jnp.dtype(dtype)
    yield implementation, ours, ours_full


@pytest.mark.parametrize('dtype', ['float64', 'float32'])
@pytest.mark.parametrize('kind, parameterization, trainable', CASES)
@pytest.mark.x64
def test_matches_jacobian_contraction(kind, parameterization, trainable, dtype, rng):
  x1 = rng.normal(size=(7, 4))
  x2 = rng.normal(size=(5, 4))
  model = _model(kind, parameterization, dtype, trainable)
  variables = model.init(jax.random.PRNGKey(11), x1)
  # Two independent Jacobians (reverse and forward mode), contracted explicitly.
  ref = jacobian_ntk(model, variables, x1, x2, mode='rev')
  ref_full = jacobian_ntk(model, variables, x1, x2, trace_outputs=False, mode='fwd')  # (21, 15)
  np.testing.assert_allclose(
      np.einsum('iaja->ij', ref_full.reshape(7, 3, 5, 3)) / 3,
      ref,
      rtol=RTOL[dtype],
      atol=RTOL[dtype] * np.abs(ref).max(),
  )
  for implementation, ours, ours_full in _both_implementations(model, variables, x1, x2, dtype):
    assert relative_max_error(ours, ref) <= RTOL[dtype], implementation
    assert relative_max_error(ours_full, ref_full) <= RTOL[dtype], implementation


# Every case in float64, two in float32 (the main lane covers float32 against the Jacobian):
# the reference lane has a few minutes.
REFERENCE_CASES = [case + ('float64',) for case in CASES] + [
    ('ecrn', 'ntk', True, 'float32'),
    ('mlp', 'standard', False, 'float32'),
]


@pytest.mark.reference
@pytest.mark.parametrize('kind, parameterization, trainable, dtype', REFERENCE_CASES)
def test_matches_neural_tangents(kind, parameterization, trainable, dtype, rng, nt):
  x1 = rng.normal(size=(7, 4))
  x2 = rng.normal(size=(5, 4))
  model = _model(kind, parameterization, dtype, trainable)
  variables = model.init(jax.random.PRNGKey(11), x1)
  refs = [
      _nt_kernel(nt, model, variables, x1, x2, (-1,), implementation) for implementation in (1, 2)
  ]
  ref_full = _nt_kernel(nt, model, variables, x1, x2, (), 2)  # (N1, N2, C, C)
  # The in-repo reference of the main lane agrees with neural-tangents too.
  jac_full = jacobian_ntk(model, variables, x1, x2, trace_outputs=False)
  assert (
      relative_max_error(jac_full.reshape(7, 3, 5, 3).transpose(0, 2, 1, 3), ref_full)
      <= RTOL[dtype]
  )
  for implementation, ours, ours_full in _both_implementations(model, variables, x1, x2, dtype):
    for ref in refs:
      assert relative_max_error(ours, ref) <= RTOL[dtype], implementation
    ours_full = np.asarray(ours_full).reshape(7, 3, 5, 3).transpose(0, 2, 1, 3)
    assert relative_max_error(ours_full, ref_full) <= RTOL[dtype], implementation


@pytest.mark.parametrize('parameterization', ['ntk', 'standard'])
@pytest.mark.parametrize('trainable', [False, True])
@pytest.mark.parametrize('trace_outputs', [True, False])
@pytest.mark.x64
def test_structured_equals_generic(parameterization, trainable, trace_outputs, rng):
  x1, x2 = rng.normal(size=(11, 4)), rng.normal(size=(6, 4))
  model = _model('ecrn', parameterization, 'float64', trainable)
  variables = model.init(jax.random.PRNGKey(5), x1)
  generic = empirical_ntk(
      model, variables, x1, x2, implementation='generic', trace_outputs=trace_outputs
  )
  for block_size in (4, None):  # 4: padded last blocks on both sides
    fast = empirical_ntk(
        model,
        variables,
        x1,
        x2,
        implementation='structured',
        trace_outputs=trace_outputs,
        block_size=block_size,
    )
    assert relative_max_error(fast, generic) <= 1e-10
  sym = np.asarray(
      empirical_ntk(model, variables, x1, implementation='structured', trace_outputs=trace_outputs)
  )
  np.testing.assert_allclose(sym, sym.T, rtol=1e-12)
  # One drop mask (train=True with rngs) goes through the structured path too.
  rngs = {'dropout': jax.random.PRNGKey(3)}
  np.testing.assert_allclose(
      empirical_ntk(
          model,
          variables,
          x1,
          x2,
          implementation='structured',
          train=True,
          rngs=rngs,
          trace_outputs=trace_outputs,
      ),
      empirical_ntk(
          model,
          variables,
          x1,
          x2,
          implementation='generic',
          train=True,
          rngs=rngs,
          trace_outputs=trace_outputs,
      ),
      rtol=1e-10,
      atol=1e-12,
  )


class _FlaxDenseNet(nn.Module):

  @nn.compact
  def __call__(self, x):
    dense = lambda n: nn.Dense(n, dtype=jnp.float64, param_dtype=jnp.float64)
    return dense(2)(jnp.tanh(dense(8)(x)))


class _SharedLayer(nn.Module):

  @nn.compact
  def __call__(self, x):
    layer = Dense(4, w_std=1.0, b_std=0.1, dtype=jnp.float64)
    return Dense(1, 1.0, 0.1, dtype=jnp.float64)(layer(jnp.tanh(layer(x[:, :4]))))


@pytest.mark.parametrize('module', [_FlaxDenseNet(), _SharedLayer()])
@pytest.mark.x64
def test_every_path_exact_on_flax_dense_and_shared_layers(module, rng):
  """flax's Dense, and a layer called twice, take the structured path of any Flax module."""
  x = rng.normal(size=(5, 4))
  variables = module.init(jax.random.PRNGKey(0), x)
  ref = jacobian_ntk(module, variables, x)
  for implementation in ('structured', 'auto', 'jacobian', 'generic'):
    kernel = empirical_ntk(module, variables, x, implementation=implementation)
    assert relative_max_error(kernel, ref) <= 1e-10, implementation


class _ConvBatchNormNet(nn.Module):
  """Conv → BatchNorm (running averages) → ReLU → pooling → Dense: examples independent."""

  dtype: str = 'float64'

  @nn.compact
  def __call__(self, x):
    f64 = dict(dtype=self.dtype, param_dtype=self.dtype)
    x = nn.Conv(4, (3, 3), **f64)(x)
    x = nn.relu(nn.BatchNorm(use_running_average=True, **f64)(x))
    x = nn.avg_pool(x, (2, 2), (2, 2))
    return nn.Dense(3, **f64)(x.reshape(x.shape[0], -1))


class _BatchCentering(nn.Module):
  """Subtracts the batch mean: every output row depends on every example."""

  @nn.compact
  def __call__(self, x):
    h = nn.Dense(5, param_dtype=jnp.float64)(x)
    return nn.Dense(2, param_dtype=jnp.float64)(jnp.tanh(h - h.mean(0)))


def _conv_net_and_data(rng, dtype='float64'):
  x = rng.normal(size=(7, 6, 6, 2)).astype(dtype)
  model = _ConvBatchNormNet(dtype)
  variables = model.init(jax.random.PRNGKey(3), x)
  # Running statistics away from their (0, 1) start, so that they enter the kernel.
  stats = jax.tree_util.tree_map(
      lambda a: a + rng.uniform(0.2, 0.5, a.shape).astype(dtype), variables['batch_stats']
  )
  return model, {'params': variables['params'], 'batch_stats': stats}, x


@pytest.mark.parametrize('trace_outputs', [True, False])
@pytest.mark.x64
def test_jacobian_path_on_a_conv_batchnorm_net(trace_outputs, rng, monkeypatch):
  """The per-example path equals an explicit Jacobian contraction and the generic path to
  round-off, for any block size, with x2's Jacobians kept or recomputed per block of x1."""
  model, variables, x = _conv_net_and_data(rng)
  ref = jacobian_ntk(model, variables, x, x[:5], trace_outputs=trace_outputs)
  generic = empirical_ntk(
      model, variables, x, x[:5], trace_outputs=trace_outputs, implementation='generic'
  )
  assert relative_max_error(generic, ref) <= 1e-10
  ref_symmetric = jacobian_ntk(model, variables, x, x, trace_outputs=trace_outputs)
  for budget in (None, 1000):  # the default (x2's Jacobians kept); 1000 bytes: recomputed
    if budget:
      monkeypatch.setattr(empirical_lib, '_JACOBIAN_BYTES', budget)
    for block_size in (None, 1, 3):
      kwargs = dict(trace_outputs=trace_outputs, block_size=block_size)
      for implementation in ('jacobian', 'auto'):
        kernel = empirical_ntk(model, variables, x, x[:5], implementation=implementation, **kwargs)
        assert relative_max_error(kernel, ref) <= 1e-10, (budget, block_size, implementation)
      symmetric = empirical_ntk(model, variables, x, implementation='jacobian', **kwargs)
      assert relative_max_error(symmetric, ref_symmetric) <= 1e-10, (budget, block_size)


@pytest.mark.reference
@pytest.mark.parametrize('dtype, tolerance', [('float32', 1e-5), ('float64', 1e-10)])
def test_conv_batchnorm_net_matches_neural_tangents(dtype, tolerance, rng, nt, monkeypatch):
  """A Conv/BatchNorm (running averages)/pooling net: every path of ours against every
  implementation of neural-tangents' empirical_ntk_fn (Jacobian contraction, NTK–vector
  products, structured derivatives), traced and full."""
  # neural-tangents 0.6.5's structured derivatives use jax.interpreters.ad.source_info_util,
  # which jax 0.5 no longer re-exports: the alias restored for this test.
  ad = jax.interpreters.ad
  if not hasattr(ad, 'source_info_util'):
    from jax._src import source_info_util  # pylint: disable=g-import-not-at-top

    monkeypatch.setattr(ad, 'source_info_util', source_info_util, raising=False)
  if not hasattr(ad, 'config'):
    monkeypatch.setattr(ad, 'config', jax.config, raising=False)
  model, variables, x = _conv_net_and_data(rng, dtype)
  x1, x2 = x, x[:4]
  for trace_axes, trace_outputs in (((-1,), True), ((), False)):
    refs = [
        np.asarray(_nt_kernel(nt, model, variables, x1, x2, trace_axes, implementation))
        for implementation in (1, 2, 3)
    ]
    if not trace_outputs:  # (N1, N2, C, C) → (N1·C, N2·C)
      refs = [r.transpose(0, 2, 1, 3).reshape(7 * 3, 4 * 3) for r in refs]
    for implementation in ('structured', 'jacobian', 'generic', 'auto'):
      ours = empirical_ntk(
          model, variables, x1, x2, trace_outputs=trace_outputs, implementation=implementation
      )
      assert ours.dtype == jnp.dtype(dtype)
      for i, ref in enumerate(refs):
        error = relative_max_error(ours, ref)
        assert error <= tolerance, (implementation, i + 1, trace_outputs, error)


@pytest.mark.x64
def test_jacobian_path_refused_where_examples_are_coupled(rng):
  """A module that mixes examples, or a call with rngs, gets a ValueError naming the module and
  the fix; 'auto' takes the generic path there and stays exact."""
  x = rng.normal(size=(5, 4))
  model = _BatchCentering()
  variables = model.init(jax.random.PRNGKey(0), x)
  with pytest.raises(
      ValueError,
      match=r"'jacobian' does not apply to _BatchCentering: .*"
      r"another example's input.*implementation='generic'",
  ):
    empirical_ntk(model, variables, x, implementation='jacobian')
  with pytest.raises(ValueError, match=r"'structured' does not apply: .*another example's input"):
    empirical_ntk(model, variables, x, implementation='structured')
  ref = jacobian_ntk(model, variables, x)
  assert relative_max_error(empirical_ntk(model, variables, x), ref) <= 1e-10
  ecrn = _model('ecrn', 'ntk', 'float64')
  ecrn_variables = ecrn.init(jax.random.PRNGKey(1), x)
  with pytest.raises(ValueError, match="'jacobian' does not apply to ECRN: rngs are given"):
    empirical_ntk(
        ecrn,
        ecrn_variables,
        x,
        implementation='jacobian',
        rngs={'dropout': jax.random.PRNGKey(2)},
        train=True,
    )


@pytest.mark.x64
def test_fixed_fourier_matrix_is_not_differentiated(rng):
  """Trainable B adds a positive semi-definite term; fixed B does not."""
  x = rng.normal(size=(6, 3))
  fixed = _model('ecrn', 'ntk', 'float64', trainable=False, out_dim=1)
  trainable = _model('ecrn', 'ntk', 'float64', trainable=True, out_dim=1)
  v_fixed = fixed.init(jax.random.PRNGKey(0), x)
  params = dict(v_fixed['params'])
  params['fourier_features'] = {'B': v_fixed['fourier']['fourier_features']['B']}
  v_train = {'params': params}
  np.testing.assert_allclose(fixed.apply(v_fixed, x), trainable.apply(v_train, x), rtol=1e-13)
  extra = np.asarray(empirical_ntk(trainable, v_train, x) - empirical_ntk(fixed, v_fixed, x))
  eigenvalues = np.linalg.eigvalsh((extra + extra.T) / 2)
  assert eigenvalues.min() > -1e-10 * eigenvalues.max() and eigenvalues.max() > 1e-6


@pytest.mark.x64
def test_block_sizes_agree(rng):
  x1, x2 = rng.normal(size=(9, 4)), rng.normal(size=(4, 4))
  model = _model('ecrn', 'ntk', 'float64')
  variables = model.init(jax.random.PRNGKey(1), x1)
  reference = empirical_ntk(model, variables, x1, x2, block_size=100)
  for block_size in (1, 2, 4, None):
    kernel = empirical_ntk(model, variables, x1, x2, block_size=block_size)
    assert relative_max_error(kernel, reference) <= 1e-13
  symmetric = np.asarray(empirical_ntk(model, variables, x1))
  np.testing.assert_allclose(symmetric, symmetric.T, rtol=1e-12)


@pytest.mark.parametrize('batch_size', [None, 3])
@pytest.mark.parametrize('trace_outputs', [True, False])
@pytest.mark.x64
def test_ntk_vp_fn_equals_kernel_times_vector(trace_outputs, batch_size, rng):
  x1, x2 = rng.normal(size=(6, 4)), rng.normal(size=(8, 4))
  model = _model('ecrn', 'standard', 'float64')
  variables = model.init(jax.random.PRNGKey(2), x1)
  kernel = np.asarray(empirical_ntk(model, variables, x1, x2, trace_outputs=trace_outputs))
  matvec = ntk_vp_fn(model, variables, x1, x2, trace_outputs=trace_outputs, batch_size=batch_size)
  v = rng.normal(size=(8,) if trace_outputs else (8, 3))
  expected = kernel @ v.reshape(-1)
  np.testing.assert_allclose(np.asarray(matvec(v)).reshape(-1), expected, rtol=1e-10)
  np.testing.assert_allclose(np.asarray(jax.jit(matvec)(v)).reshape(-1), expected, rtol=1e-10)
  many = rng.normal(size=(3,) + v.shape)
  np.testing.assert_allclose(
      np.asarray(jax.vmap(matvec)(many)).reshape(3, -1), many.reshape(3, -1) @ kernel.T, rtol=1e-10
  )
  with pytest.raises(ValueError, match='v must have shape'):
    matvec(np.ones(5))


@pytest.mark.parametrize('trace_outputs', [True, False])
@pytest.mark.x64
def test_chunked_ntk_vp_equals_unchunked(trace_outputs, rng):
  """Θv over input chunks (chunks that do not divide N₁ or N₂, x1 ≠ x2, a drop mask drawn from
  rngs, inside jit with traced inputs, vmapped over vectors) = all at once, to round-off."""
  x1, x2 = rng.normal(size=(11, 4)), rng.normal(size=(7, 4))
  config = ECRNConfig(
      width=10, depth=3, fourier_features=5, drop_rate=0.6, out_dim=3, alpha=0.8, dtype='float64'
  )
  model = ECRN(config)
  variables = model.init(jax.random.PRNGKey(5), x1)
  rngs = {'dropout': jax.random.PRNGKey(1)}
  # The drawn mask drops a block: train-mode outputs differ from those with every block kept.
  kept = ECRN(config.replace(drop_rate=0.0)).apply(variables, x1)
  assert not np.allclose(model.apply(variables, x1, train=True, rngs=rngs), kept)
  vectors = rng.normal(size=(3, 7) if trace_outputs else (3, 7, 3))

  def products(batch_size, a, b):
    matvec = ntk_vp_fn(
        model,
        variables,
        a,
        b,
        trace_outputs=trace_outputs,
        rngs=rngs,
        train=True,
        batch_size=batch_size,
    )
    return jax.vmap(matvec)(vectors)

  whole = products(None, x1, x2)
  for batch_size in (1, 4, 7):  # 7 = N₂ < N₁; a chunk ≥ N is the unchunked function (tested)
    chunked = jax.jit(functools.partial(products, batch_size))(x1, x2)
    assert relative_max_error(chunked, whole) <= 1e-12, batch_size
  symmetric = ntk_vp_fn(model, variables, x1, trace_outputs=trace_outputs, batch_size=4)
  v = rng.normal(size=(11,) if trace_outputs else (11, 3))
  assert (
      relative_max_error(
          symmetric(v), ntk_vp_fn(model, variables, x1, trace_outputs=trace_outputs)(v)
      )
      <= 1e-12
  )
  for bad in (-2, 1.5, True, 'auto'):
    with pytest.raises(ValueError, match='batch_size'):
      ntk_vp_fn(model, variables, x1, batch_size=bad)


@pytest.mark.x64
def test_automatic_chunk_from_memory_budget(rng, monkeypatch):
  """batch_size=None picks the chunk from the budget: the whole of N when it fits (the
  unchunked function itself), chunks when it does not, with the same products to round-off."""
  x = rng.normal(size=(23, 4))
  model = ECRN(ECRNConfig(width=16, depth=2, fourier_features=6, out_dim=2, dtype='float64'))
  variables = model.init(jax.random.PRNGKey(0), x)
  per_input = vp_lib.bytes_per_input(model, variables, x)
  wider = ECRN(model.config.replace(width=32))
  ratio = vp_lib.bytes_per_input(wider, wider.init(jax.random.PRNGKey(0), x), x) / per_input
  assert 1.5 < ratio < 2.5, ratio  # intermediates grow with the width
  # k = C = 2 cotangents when traced: (1 + 2·2)·per_input bytes per input.
  assert vp_lib.auto_vp_batch_size(model, variables, x, memory_bytes=5 * per_input * 7) == 7
  assert (
      vp_lib.auto_vp_batch_size(
          model, variables, x, trace_outputs=False, memory_bytes=3 * per_input * 7
      )
      == 7
  )
  vectors = rng.normal(size=(2, 23))
  whole = jax.vmap(ntk_vp_fn(model, variables, x, batch_size=0))(vectors)
  assert ntk_vp_fn(model, variables, x).func is ntk_vp_fn(model, variables, x, batch_size=0).func
  monkeypatch.setattr(vp_lib, 'DEFAULT_VP_BYTES', 5 * per_input * 6)
  auto = ntk_vp_fn(model, variables, x)
  assert auto.func is not ntk_vp_fn(model, variables, x, batch_size=0).func  # chunked
  assert relative_max_error(jax.vmap(auto)(vectors), whole) <= 1e-12


@pytest.mark.x64
def test_kernel_of_one_drop_mask(rng):
  """rngs + train=True give the kernel of the mask that key draws (its Jacobian contraction)."""
  x = rng.normal(size=(5, 4))
  model = _model('ecrn', 'ntk', 'float64')
  variables = model.init(jax.random.PRNGKey(3), x)
  rngs = {'dropout': jax.random.PRNGKey(9)}
  ours = empirical_ntk(model, variables, x, train=True, rngs=rngs, block_size=2)
  ref = jacobian_ntk(model, variables, x, mode='fwd', train=True, rngs=rngs)
  assert relative_max_error(ours, ref) <= 1e-10
  # ... which is not the kernel without drops.
  assert relative_max_error(jacobian_ntk(model, variables, x), ref) > 1e-3


@pytest.mark.x64
def test_empirical_nngp(rng):
  x1, x2 = rng.normal(size=(4, 4)), rng.normal(size=(3, 4))
  model = _model('mlp', 'ntk', 'float64')
  variables = model.init(jax.random.PRNGKey(4), x1)
  f1, f2 = model.apply(variables, x1), model.apply(variables, x2)
  np.testing.assert_allclose(empirical_nngp(model, variables, x1, x2), f1 @ f2.T / 3, rtol=1e-13)


@pytest.mark.x64
def test_bad_inputs(rng):
  model = _model('mlp', 'ntk', 'float64')
  x = rng.normal(size=(4, 4))
  variables = model.init(jax.random.PRNGKey(0), x)
  with pytest.raises(ValueError, match=r'x\[None\]'):
    empirical_ntk(model, variables, x[0])
  with pytest.raises(ValueError, match='feature shape'):
    empirical_ntk(model, variables, x, rng.normal(size=(3, 5)))
  with pytest.raises(ValueError, match="'params'"):
    empirical_ntk(model, {'batch_stats': {}}, x)
  with pytest.raises(ValueError, match='block_size'):
    empirical_ntk(model, variables, x, block_size=0)
  with pytest.raises(ValueError, match='implementation'):
    empirical_ntk(model, variables, x, implementation='fast')
  with pytest.raises(ValueError, match='hashable'):
    empirical_ntk(model, variables, x, extra=[1, 2])


_FIVE = np.ones((3, 5))  # one feature more than the variables were initialised for
BAD_CALLS = {
    'apply, other feature size': (lambda m, v, x: m.apply(v, _FIVE), "'fourier_features' have 5"),
    'empirical_ntk, other feature size': (
        lambda m, v, x: empirical_ntk(m, v, _FIVE),
        r'x1 of shape \(5,\).*initialised',
    ),
    'empirical_ntk generic, other feature size': (
        lambda m, v, x: empirical_ntk(m, v, _FIVE, implementation='generic'),
        r'x1 of shape \(5,\).*initialised',
    ),
    'ntk_vp_fn, other feature size': (
        lambda m, v, x: ntk_vp_fn(m, v, _FIVE),
        r'x1 of shape \(5,\).*initialised',
    ),
    'ntk_vp_fn, x1 and x2 differ': (
        lambda m, v, x: ntk_vp_fn(m, v, x, _FIVE),
        r'same feature shape, got \(4,\) and \(5,\)',
    ),
    'ntk_vp_fn, empty x1': (
        lambda m, v, x: ntk_vp_fn(m, v, x[:0]),
        r'x1 is empty \(shape \(0, 4\)',
    ),
    'empirical_ntk, empty x2': (
        lambda m, v, x: empirical_ntk(m, v, x, x[:0]),
        r'x2 is empty',
    ),
    'ntk_vp_fn, NaN input': (
        lambda m, v, x: ntk_vp_fn(m, v, np.where(np.eye(4) > 0, np.nan, x)),
        'x1 has 4 NaN or inf entries',
    ),
    'ntk_vp_fn, negative batch_size': (
        lambda m, v, x: ntk_vp_fn(m, v, x, batch_size=-1),
        'batch_size must be None',
    ),
    'empirical_ntk, out of another shape': (
        lambda m, v, x: empirical_ntk(m, v, x, out=np.zeros((4, 3))),
        r"out must have the kernel's shape \(4, 4\), got \(4, 3\)",
    ),
    'empirical_ntk, out not an array': (
        lambda m, v, x: empirical_ntk(m, v, x, out=[[0.0] * 4] * 4),
        'out must be a writable array',
    ),
    'empirical_ntk, read-only out': (
        lambda m, v, x: empirical_ntk(m, v, x, out=np.broadcast_to(np.zeros(4), (4, 4))),
        'read-only',
    ),
}


@pytest.mark.parametrize('case', list(BAD_CALLS))
@pytest.mark.x64
def test_refuses_bad_inputs_in_one_sentence(case, rng):
  call, match = BAD_CALLS[case]
  model = ECRN(ECRNConfig(width=8, depth=2, fourier_features=3, dtype='float64'))
  x = rng.normal(size=(4, 4))
  variables = model.init(jax.random.PRNGKey(0), x)
  with pytest.raises(ValueError, match=match):
    call(model, variables, x)


@pytest.mark.parametrize('implementation', ['structured', 'jacobian', 'generic'])
@pytest.mark.parametrize('trace_outputs', [True, False])
@pytest.mark.x64
def test_kernel_written_into_a_memmap(implementation, trace_outputs, rng, tmp_path, monkeypatch):
  """out=memmap receives, tile by tile, exactly the kernel returned in memory (several row
  tiles: block and tile sizes smaller than N)."""
  monkeypatch.setattr(empirical_lib, '_DEFAULT_BLOCK_BYTES', 1000)  # structured: 1–4 rows a tile
  x1, x2 = rng.normal(size=(13, 4)), rng.normal(size=(9, 4))
  model = ECRN(ECRNConfig(width=8, depth=2, fourier_features=3, out_dim=2, dtype='float64'))
  variables = model.init(jax.random.PRNGKey(1), x1)
  kwargs = dict(trace_outputs=trace_outputs, implementation=implementation, block_size=4)
  for a, b in ((x1, x2), (x1, None)):
    expected = np.asarray(empirical_ntk(model, variables, a, b, **kwargs))
    path = tmp_path / f'{implementation}_{trace_outputs}_{b is None}.npy'
    out = np.lib.format.open_memmap(path, 'w+', np.float64, expected.shape)
    assert empirical_ntk(model, variables, a, b, out=out, **kwargs) is out
    np.testing.assert_array_equal(np.load(path), expected)


@pytest.mark.x64
def test_auto_falls_back_for_non_flax_apply_wrappers(rng):
  """An object with .apply wrapping a Flax model inside a jvp (a linearization) is not a
  Flax module: 'auto' takes the generic path and gives the right kernel."""
  x = rng.normal(size=(5, 4))
  model = _model('ecrn', 'ntk', 'float64')
  variables = model.init(jax.random.PRNGKey(6), x)

  class Linearized:

    def apply(self, v, x, **kwargs):
      delta = jax.tree_util.tree_map(lambda a, b: a - b, v['params'], variables['params'])
      f0, df = jax.jvp(
          lambda p: model.apply({**v, 'params': p}, x, **kwargs), (variables['params'],), (delta,)
      )
      return f0 + df

  ours = empirical_ntk(Linearized(), variables, x)
  assert relative_max_error(ours, empirical_ntk(model, variables, x)) <= 1e-10
