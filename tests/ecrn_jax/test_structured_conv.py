# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The structured eNTK of any Flax module (ecrn_jax/_src/structured_conv.py) against the
materialized Jacobian contraction: Conv layers with strides, paddings, dilations, without bias,
grouped (local form), called twice; BatchNorm at running averages, LayerNorm, Dense on positions."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import RTOL, relative_max_error
from reference_ntk import jacobian_ntk
import ecrn_jax
from ecrn_jax import empirical_ntk, ntk_vp_fn
from ecrn_jax._src import empirical as empirical_lib
from ecrn_jax._src import structured_conv


class _ConvNet(nn.Module):
  """Every Conv variant the structured form covers, and modules it takes locally."""

  dtype: str = 'float64'

  @nn.compact
  def __call__(self, x):
    kw = dict(dtype=self.dtype, param_dtype=self.dtype)
    x = nn.Conv(4, (3, 3), strides=(2, 1), padding='SAME', **kw)(x)
    x = nn.relu(nn.BatchNorm(use_running_average=True, **kw)(x))
    x = nn.Conv(4, (2, 2), padding='VALID', use_bias=False, kernel_dilation=(2, 1), **kw)(x)
    x = nn.LayerNorm(**kw)(x)
    shared = nn.Conv(4, (3, 3), padding='CIRCULAR', **kw)  # called twice
    x = jnp.tanh(shared(jnp.tanh(shared(x))))
    x = nn.Conv(4, (1, 2), padding=((1, 0), (0, 1)), feature_group_count=2, **kw)(x)  # local
    h = nn.Dense(5, **kw)(jnp.sin(x)).mean((1, 2))  # Dense on every position
    return nn.Dense(3, **kw)(h)


def _net_and_data(rng, dtype):
  x1 = rng.normal(size=(5, 8, 7, 2)).astype(dtype)
  x2 = rng.normal(size=(4, 8, 7, 2)).astype(dtype)
  model = _ConvNet(dtype)
  variables = model.init(jax.random.PRNGKey(0), x1)
  stats = jax.tree_util.tree_map(
      lambda a: a + rng.uniform(0.2, 0.5, a.shape).astype(dtype), variables['batch_stats']
  )
  return model, {'params': variables['params'], 'batch_stats': stats}, x1, x2


def _plan(model, variables, x1, x2, trace):
  params, rest = empirical_lib.split_variables(variables)
  return structured_conv.plan(model, (), params, rest, jnp.asarray(x1), len(x1), len(x2), trace)


@pytest.mark.x64
def test_conv_net_equals_jacobian_contraction(rng, monkeypatch):
  """Both forms of every layer (per-example gradients, Gram matrices) and the cost model's
  choice equal the materialized Jacobian contraction to 1e-10 in float64, traced and not,
  x1 ≠ x2 and x1 = x2, with padded blocks and with x2's features recomputed per panel of x1's
  blocks."""
  model, variables, x1, x2 = _net_and_data(rng, 'float64')
  ref_full = jacobian_ntk(model, variables, x1, x2, trace_outputs=False)
  ref = np.einsum('iaja->ij', ref_full.reshape(5, 3, 4, 3)) / 3
  layers = _plan(model, variables, x1, x2, True)
  kinds = {l.key: l.kind for l in layers}
  assert kinds == {
      'Conv_0': 'conv',
      'BatchNorm_0': 'local',
      'Conv_1': 'conv',
      'LayerNorm_0': 'local',
      'Conv_2': 'conv',
      'Conv_3': 'local',
      'Dense_0': 'dense',
      'Dense_1': 'dense',
  }
  assert [l.positions for l in layers if l.key in ('Conv_2', 'Dense_0')] == [2 * 12, 18]
  chosen = {l.form for l in layers if l.kind != 'local'}
  assert chosen == {'gradient', 'gram'}, layers  # the cost model uses both here
  kwargs = dict(implementation='structured', block_size=3)
  for form in ('gradient', 'gram'):
    forced = tuple(l._replace(form=form) for l in layers)
    monkeypatch.setattr(structured_conv, 'plan', lambda *a, forced=forced, **k: forced)
    for trace_outputs, expected in ((True, ref), (False, ref_full)):
      kernel = empirical_ntk(model, variables, x1, x2, trace_outputs=trace_outputs, **kwargs)
      assert relative_max_error(kernel, expected) <= 1e-10, (form, trace_outputs)
  monkeypatch.undo()
  monkeypatch.setattr(empirical_lib, '_FEATURE_BYTES', 1000)  # x2's features recomputed
  kernel = empirical_ntk(model, variables, x1, x2, implementation='structured')
  assert relative_max_error(kernel, ref) <= 1e-10
  # Panels of two blocks of one input: x1's features recomputed as x2's, in 3 passes.
  kept = structured_conv.feature_numbers(layers, 3)[0] * 8
  monkeypatch.setattr(empirical_lib, '_FEATURE_BYTES', 4 * kept)
  symmetric = empirical_ntk(model, variables, x1, block_size=1, implementation='structured')
  assert relative_max_error(symmetric, jacobian_ntk(model, variables, x1)) <= 1e-10


def test_conv_net_float32_and_auto(rng):
  """float32: within the dtype's tolerance of the float64 Jacobian contraction (measured
  ~1e-7); 'auto' takes the structured path for a Conv/BatchNorm network."""
  model, variables, x1, x2 = _net_and_data(rng, 'float32')
  ref = jacobian_ntk(model, variables, x1, x2, trace_outputs=False)
  calls = []
  features_fn = structured_conv.features_fn

  def spy(*args):
    calls.append(args)
    return features_fn(*args)

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(structured_conv, 'features_fn', spy)
    kernel = empirical_ntk(model, variables, x1, x2, trace_outputs=False)
  assert calls and kernel.dtype == jnp.float32
  assert relative_max_error(kernel, ref) <= RTOL['float32'] / 10


class _PositionEmbedding(nn.Module):
  """An embedding of positions, shared by the examples: not per-example calls."""

  @nn.compact
  def __call__(self, x):
    positions = nn.Embed(x.shape[1], 3, param_dtype=jnp.float64)(jnp.arange(x.shape[1]))
    return nn.Dense(2, param_dtype=jnp.float64)((x[..., None] * positions).sum(1))


@pytest.mark.x64
def test_refused_where_calls_are_shared_by_the_examples(rng):
  """A layer called without the examples on its leading axis (even where that axis has as many
  entries as the shape-only probe's batch): 'structured' refuses, naming it; 'auto' is exact."""
  x = rng.normal(size=(4, 3))
  model = _PositionEmbedding()
  variables = model.init(jax.random.PRNGKey(0), x)
  with pytest.raises(ValueError, match=r"'structured' does not apply: layer 'Embed_0'"):
    empirical_ntk(model, variables, x, implementation='structured')
  ref = jacobian_ntk(model, variables, x)
  assert relative_max_error(empirical_ntk(model, variables, x), ref) <= 1e-10


class _WideWindow(nn.Module):
  """One 7×7 convolution to one channel: its patches (49 numbers a position and input channel)
  cost more to write than the per-example passes of the jacobian path."""

  @nn.compact
  def __call__(self, x):
    return nn.Conv(1, (7, 7), param_dtype=jnp.float64)(x).mean((1, 2))


class _BatchStatistics(nn.Module):
  """BatchNorm on batch statistics with train=True: every output row depends on every example."""

  @nn.compact
  def __call__(self, x, train=False):
    x = nn.Conv(3, (3, 3), param_dtype=jnp.float64)(x)
    x = nn.BatchNorm(use_running_average=not train, param_dtype=jnp.float64)(x)
    return nn.Dense(2, param_dtype=jnp.float64)(jnp.tanh(x).mean((1, 2)))


class _FirstOutput:
  """model.apply(..., mutable=...)'s output alone, for the in-repo reference."""

  def __init__(self, model):
    self.model = model

  def apply(self, variables, x, **kwargs):
    return self.model.apply(variables, x, **kwargs)[0]


def _mlp(dtype='float64'):
  from ecrn_jax import MLP, MLPConfig  # pylint: disable=g-import-not-at-top

  return MLP(MLPConfig(hidden_widths=(6,), out_dim=2, dtype=dtype))


AUTO_CASES = {
    'library_dense': (_mlp, (6, 3), {}, 'dense'),
    'conv_batchnorm': (_ConvNet, (5, 8, 7, 2), {}, 'layers'),
    'wide_window': (_WideWindow, (5, 9, 9, 2), {}, 'jacobian'),
    'shared_embedding': (_PositionEmbedding, (5, 3), {}, 'jacobian'),
    'batch_statistics': (
        _BatchStatistics,
        (5, 6, 6, 2),
        dict(train=True, mutable=('batch_stats',)),
        'generic',
    ),
}


@pytest.mark.parametrize('case', list(AUTO_CASES))
@pytest.mark.x64
def test_auto_takes_the_cheapest_path_that_applies(case, rng):
  """'auto' picks the path the cost model ranks first among those that apply (the generic one
  where examples are coupled), and its kernel equals the materialized Jacobian contraction."""
  factory, shape, kwargs, expected = AUTO_CASES[case]
  x = jnp.asarray(rng.normal(size=shape))
  model = factory()
  variables = model.init(jax.random.PRNGKey(0), x)
  if 'batch_stats' in variables:
    variables = {
        **variables,
        'batch_stats': jax.tree_util.tree_map(lambda a: a + 0.3, variables['batch_stats']),
    }
  params, rest = empirical_lib.split_variables(variables)
  frozen = empirical_lib.freeze_kwargs(kwargs)
  out_dim = 2 if case != 'conv_batchnorm' else 3
  path, _ = empirical_lib.choose_path(
      model, frozen, params, rest, None, x, x, True, 'auto', None, out_dim
  )
  assert path == expected
  reference = _FirstOutput(model) if 'mutable' in kwargs else model
  without_mutable = {k: v for k, v in kwargs.items() if k != 'mutable'}
  ref = (
      jacobian_ntk(reference, variables, x, mutable=('batch_stats',), **without_mutable)
      if ('mutable' in kwargs)
      else jacobian_ntk(model, variables, x)
  )
  kernel = empirical_ntk(model, variables, x, **kwargs)
  assert relative_max_error(kernel, ref) <= 1e-10


@pytest.mark.x64
def test_batch_statistics_refused_by_the_per_example_paths(rng):
  """BatchNorm on batch statistics: the per-example paths refuse it naming the module and the
  fix; without mutable= no path can run it, and the error says what to pass."""
  x = rng.normal(size=(4, 6, 6, 2))
  model = _BatchStatistics()
  variables = model.init(jax.random.PRNGKey(0), x)
  kwargs = dict(train=True, mutable=('batch_stats',))
  for implementation in ('jacobian', 'structured'):
    with pytest.raises(ValueError, match=r"does not apply.*another example's input.*generic"):
      empirical_ntk(model, variables, x, implementation=implementation, **kwargs)
  with pytest.raises(
      ValueError, match=r'_BatchStatistics cannot be differentiated as called: .*train=False'
  ):
    empirical_ntk(model, variables, x, train=True)


@pytest.mark.parametrize('trace_outputs', [True, False])
@pytest.mark.x64
def test_ntk_vp_fn_by_a_materialized_kernel(trace_outputs, rng):
  """ntk_vp_fn with one of empirical_ntk's implementations: Θv through the kernel built once,
  equal to the materialized Jacobian contraction times v; kernel_pays weighs it against the
  kernel–vector products."""
  model, variables, x1, x2 = _net_and_data(rng, 'float64')
  ref = jacobian_ntk(model, variables, x1, x2, trace_outputs=trace_outputs)
  v = rng.normal(size=(4,) if trace_outputs else (4, 3))
  for implementation in ('auto', 'jacobian'):
    matvec = ntk_vp_fn(
        model, variables, x1, x2, trace_outputs=trace_outputs, implementation=implementation
    )
    expected = ref @ v.reshape(-1)
    assert relative_max_error(matvec(v).reshape(-1), expected) <= 1e-10, implementation
  pays = ecrn_jax.kernels.kernel_pays
  # A traced product costs C vjps and jvps over all inputs; the kernel C backward passes and a
  # contraction: here it pays even for one product, unless its N² numbers do not fit.
  assert pays(model, variables, x1, 1)
  assert not pays(model, variables, x1, 100, memory_bytes=100)
  with pytest.raises(ValueError, match="'vector_products' or one of"):
    ntk_vp_fn(model, variables, x1, implementation='kernel')
