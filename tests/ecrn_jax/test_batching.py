# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The twin's kernels in tiles (`batch`, `_src/infinite/batching.py`): equal to the direct kernels
on one and on several devices, written into given arrays, and their diagonal alone; the
deprecated `batched_infinite_kernels` and `batched_infinite_kernel_diagonal` give the same
numbers."""

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from conftest import relative_max_error

from ecrn_jax import ECRN, MLPConfig, batch, infinite_kernel_fn
from ecrn_jax._src.infinite import batching
from ecrn_jax._src.infinite.deprecated import batched_infinite_kernel_diagonal
from ecrn_jax._src.infinite.deprecated import batched_infinite_kernels
from ecrn_jax._src.infinite.deprecated import infinite_kernels
import utils

TOL = 1e-10


_ECRN = utils.small_ecrn_config()
_MLP = MLPConfig(hidden_widths=(16, 16), activation='relu', dtype='float64')


def _variables(config, x):
  if isinstance(config, MLPConfig):
    return None
  return ECRN(config).init(jax.random.PRNGKey(3), x[:1])


@pytest.mark.parametrize('config', [_ECRN, _MLP], ids=['ecrn', 'mlp'])
@pytest.mark.parametrize('symmetric', [True, False])
@pytest.mark.x64
def test_batched_kernels_equal_direct_kernels(config, symmetric, rng):
  x1, x2 = rng.normal(size=(37, 4)), rng.normal(size=(21, 4))
  variables = _variables(config, x1)
  other = None if symmetric else x2
  kernel_fn = infinite_kernel_fn(config, variables=variables)
  direct = kernel_fn(x1, other)
  calls = []
  tiled = batch(kernel_fn, batch_size=8, progress=lambda d, n: calls.append((d, n)))(x1, other)
  # ReLU's dual has infinite slope at correlation 1: the tiler recomputes the diagonal from
  # each point alone (exact, as infinite_kernels does), so ReLU meets the same tolerance.
  tol = TOL
  for ours, reference in zip(tiled, direct):
    assert isinstance(ours, np.ndarray) and ours.shape == reference.shape
    assert relative_max_error(ours, reference) < tol
  total = calls[-1][1]
  assert calls == [(i, total) for i in range(1, total + 1)]
  # 5 row tiles × 3 column tiles; symmetric: the 15 of 5 × 5 on or above the diagonal.
  assert total == 15
  only_ntk = batch(kernel_fn, batch_size=16)(x1, other, 'ntk')
  assert relative_max_error(only_ntk, direct.ntk) < tol


@pytest.mark.x64
def test_batched_kernels_write_into_given_arrays(tmp_path, rng):
  x = rng.normal(size=(19, 3))
  variables = _variables(_ECRN, x)
  out = {
      'nngp': np.lib.format.open_memmap(
          tmp_path / 'nngp.npy', mode='w+', dtype=np.float64, shape=(19, 19)
      )
  }
  kernel_fn = infinite_kernel_fn(_ECRN, variables=variables)
  result = batch(kernel_fn, batch_size=8)(x, get=('nngp',), out=out)
  assert result.nngp is out['nngp'] and result.ntk is None
  reference = kernel_fn(x).nngp
  assert relative_max_error(np.load(tmp_path / 'nngp.npy'), reference) < TOL
  with pytest.raises(ValueError, match='out'):
    batch(kernel_fn)(x, get='ntk', out={'ntk': np.empty((3, 3))})
  with pytest.raises(ValueError, match='get'):
    batch(kernel_fn)(x, get='rbf')
  with pytest.raises(ValueError, match='batch_size'):
    batch(kernel_fn, batch_size=0)
  with pytest.raises(ValueError, match='variables'):
    batch(infinite_kernel_fn(_ECRN))
  with pytest.raises(ValueError, match='native'):
    batch(infinite_kernel_fn(_ECRN, variables=variables, expectation='exact'))
  with pytest.raises(ValueError, match='x2=None'):
    batch(kernel_fn)(x, x, diagonal=True)


def test_multi_device_kernels_equal_single_device():
  """Four host CPU devices (XLA_FLAGS must be set before jax starts, hence a subprocess)."""
  code = textwrap.dedent("""
      import jax, numpy as np
      jax.config.update('jax_enable_x64', True)
      from ecrn_jax import ECRN, ECRNConfig, batch, infinite_kernel_fn
      from ecrn_jax._src.infinite import batching
      assert jax.device_count() == 4, jax.devices()
      cfg = ECRNConfig(width=16, depth=2, fourier_features=6, fourier_scale=0.5,
                       dtype='float64')
      rng = np.random.default_rng(1)
      x1, x2 = rng.normal(size=(45, 5)), rng.normal(size=(18, 5))
      v = ECRN(cfg).init(jax.random.PRNGKey(0), x1[:1])
      fn, _, mesh = batching._tile_kernel_fn(cfg, ('nngp', 'ntk'), tuple(jax.devices()),
                                             True, False)
      g = batching._twin_inputs('x1', cfg, x1[:8], v, False, 8)
      tile = fn(g, g[:4], batching._block_scales(cfg))[1]
      assert tile.shape == (8, 4) and len(tile.addressable_shards) == 4
      assert {s.data.shape for s in tile.addressable_shards} == {(2, 4)}
      worst = 0.0
      for other in (None, x2):
        kernel_fn = infinite_kernel_fn(cfg, variables=v)
        one = batch(kernel_fn, batch_size=4, devices=1)(x1, other)
        four = batch(kernel_fn, batch_size=4)(x1, other)
        direct = kernel_fn(x1, other)
        for a, b, c in zip(one, four, direct):
          worst = max(worst, np.abs(a - b).max() / np.abs(a).max(),
                      np.abs(b - np.asarray(c)).max() / np.abs(c).max())
      print('worst', worst)
      assert worst < 1e-12, worst
  """)
  env = dict(
      os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4', TF_CPP_MIN_LOG_LEVEL='3'
  )
  result = subprocess.run(
      [sys.executable, '-c', code], capture_output=True, text=True, env=env, timeout=300
  )
  assert result.returncode == 0 and 'worst' in result.stdout, result.stderr[-3000:]


@pytest.mark.parametrize('config', [_ECRN, _MLP], ids=['ecrn', 'mlp'])
@pytest.mark.x64
def test_kernel_diagonal_equals_the_diagonal_of_the_direct_kernels(config, rng):
  x = rng.normal(size=(19, 4))  # 19 = 2 blocks of 8 and a ragged 3
  variables = _variables(config, x)
  kernel_fn = infinite_kernel_fn(config, variables=variables)
  direct = kernel_fn(x)
  for name in ('nngp', 'ntk'):
    diagonal = batch(kernel_fn, batch_size=8)(x, get=name, diagonal=True)
    assert diagonal.shape == (19,)
    assert relative_max_error(diagonal, np.diag(getattr(direct, name))) < TOL
  both = batch(kernel_fn, batch_size=8)(x, diagonal=True)
  for name in ('nngp', 'ntk'):
    np.testing.assert_array_equal(
        getattr(both, name), batch(kernel_fn, batch_size=8)(x, get=name, diagonal=True)
    )
  with pytest.raises(ValueError, match='get'):
    batch(kernel_fn)(x, get='both', diagonal=True)


@pytest.mark.parametrize('config', [_ECRN, _MLP], ids=['ecrn', 'mlp'])
@pytest.mark.x64
def test_deprecated_batched_functions_equal_batch(config, rng):
  """The wrappers give exactly the numbers of `batch(infinite_kernel_fn(...))`, and their old
  checks."""
  x1, x2 = rng.normal(size=(19, 4)), rng.normal(size=(11, 4))
  variables = _variables(config, x1)
  kernel_fn = batch(infinite_kernel_fn(config, variables=variables), batch_size=8)
  for other in (None, x2):
    old = batched_infinite_kernels(config, x1, other, variables=variables, batch_size=8)
    for name, new in zip(('nngp', 'ntk'), kernel_fn(x1, other)):
      np.testing.assert_array_equal(getattr(old, name), new)
  direct = infinite_kernels(config, x1, variables=variables)
  for name in ('nngp', 'ntk'):
    old = batched_infinite_kernel_diagonal(config, x1, variables=variables, get=name, batch_size=8)
    np.testing.assert_array_equal(old, kernel_fn(x1, get=name, diagonal=True))
    assert relative_max_error(old, np.diag(getattr(direct, name))) < TOL
  with pytest.raises(ValueError, match='get'):
    batched_infinite_kernel_diagonal(config, x1, variables=variables, get='both')
  with pytest.raises(ValueError, match='get'):
    batched_infinite_kernel_diagonal(config, x1, variables=variables, get=('nngp',))
  with pytest.raises(ValueError, match='batch_size'):
    batched_infinite_kernel_diagonal(config, x1, variables=variables, batch_size=0)
