# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""A short accelerator check of the kernels (no neural-tangents, no absl needed).

  PYTHONPATH=. python benchmarks/device_check.py

Prints: structured vs generic empirical NTK agreement in float64 (must be ~1e-15), then on
the width-512, 4-block ECRN with CIFAR-shaped inputs in float32: the structured N×N kernel
time for several N, the achieved FLOP/s against a matmul measured in the same process, and
ntk_vp_fn against one forward + backward pass. Then the native infinite-width twin (depth 4,
512 Fourier features): Θ∞ and K∞ for N = 5,000 in float64 and float32, and the N = 20,000
NTK tiled by `ecrn_jax.batch`.
"""

import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, '.')
import ecrn_jax  # pylint: disable=g-import-not-at-top

SIZES = tuple(int(s) for s in os.environ.get('DEVICE_CHECK_SIZES', '2048,5000,20000').split(','))
MATMUL = int(os.environ.get('DEVICE_CHECK_MATMUL', '8192'))


def median_time(fn, repeats=3):
  jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def structured_flops(n, width=512, depth=4, m=256, d=3072, c=1):
  dense = [(2 * m, width)] + [(width, width)] * depth + [(width, c)]
  forward = 2 * n * (d * m + sum(i * o for i, o in dense))
  backward = c * 2 * n * sum(i * o for i, o in dense)
  return forward + backward + sum(2 * n * n * (i + c * o) for i, o in dense)


def _check_structured_vs_generic():
  """Prints the relative max difference of the two float64 empirical NTKs (must be ~1e-15)."""
  cfg = ecrn_jax.ECRNConfig(
      width=16,
      depth=2,
      fourier_features=5,
      fourier_trainable=True,
      out_dim=3,
      dtype='float64',
      parameterization='standard',
  )
  model = ecrn_jax.ECRN(cfg)
  x1 = np.random.default_rng(0).normal(size=(9, 4))
  x2 = np.random.default_rng(1).normal(size=(6, 4))
  v = model.init(jax.random.PRNGKey(0), x1)
  for trace in (True, False):
    a = ecrn_jax.empirical_ntk(model, v, x1, x2, implementation='generic', trace_outputs=trace)
    b = ecrn_jax.empirical_ntk(
        model, v, x1, x2, implementation='structured', trace_outputs=trace, block_size=4
    )
    print(
        f'float64 structured vs generic (trace_outputs={trace}): '
        f'{float(jnp.abs(a - b).max() / jnp.abs(a).max()):.1e}'
    )


def _time_structured(precision):
  """Times the float32 structured NTK for SIZES and ntk_vp_fn under one matmul precision."""
  with jax.default_matmul_precision(precision):
    a = jax.random.normal(jax.random.PRNGKey(0), (MATMUL, MATMUL), jnp.float32)
    mm = jax.jit(lambda a: a @ a)
    peak = 2 * MATMUL**3 / median_time(lambda: mm(a), 5)
    cfg = ecrn_jax.ECRNConfig(width=512, depth=4, fourier_features=256, dtype='float32')
    model = ecrn_jax.ECRN(cfg)
    x = jax.random.normal(jax.random.PRNGKey(1), (max(SIZES), 3072), jnp.float32)
    v = model.init(jax.random.PRNGKey(0), x[:1])
    print(f'\nmatmul precision {precision}: {MATMUL}³ float32 matmul {peak / 1e12:.1f} TFLOP/s')
    for n in SIZES:
      t = median_time(lambda: ecrn_jax.empirical_ntk(model, v, x[:n], block_size=2048))
      print(
          f'  structured {n}×{n} NTK: {t * 1e3:.1f} ms, '
          f'{structured_flops(n) / t / peak * 100:.0f}% of the matmul FLOP/s'
      )
    n = min(5000, max(SIZES))
    matvec = jax.jit(ecrn_jax.ntk_vp_fn(model, v, x[:n]))
    vec = jnp.ones((n,), jnp.float32)
    rest = {'fourier': v['fourier']}
    fb = jax.jit(jax.value_and_grad(lambda p: model.apply({'params': p, **rest}, x[:n]).sum()))
    t_vp = median_time(lambda: matvec(vec), 5)
    t_fb = median_time(lambda: fb(v['params']), 5)
    print(
        f'  ntk_vp_fn N={n}: {t_vp * 1e3:.2f} ms; forward+backward {t_fb * 1e3:.2f} ms; '
        f'ratio {t_vp / t_fb:.2f}'
    )


def _time_infinite_twin(x, dtype):
  """Times the native twin's K∞ and Θ∞ on x[:5000] and Θ∞ tiled on all of x (N, 32)."""
  cfg = ecrn_jax.ECRNConfig(
      width=512,
      depth=4,
      fourier_features=512,
      fourier_scale=1 / (2 * np.pi * 32**0.5),
      dtype=dtype,
  )
  v = ecrn_jax.ECRN(cfg).init(jax.random.PRNGKey(0), x[:1])
  kernel_fn = ecrn_jax.infinite_kernel_fn(cfg, variables=v)
  xs = jnp.asarray(x[:5000], dtype)
  t = median_time(lambda: kernel_fn(xs))
  print(f'  {dtype}: 5000² K∞ and Θ∞ {t * 1e3:.1f} ms')
  start = time.perf_counter()
  ecrn_jax.batch(kernel_fn, batch_size=4096)(x, get='ntk')
  print(
      f'  {dtype}: 20000² Θ∞ tiled (batch 4096, to host) {time.perf_counter() - start:.2f} s '
      '(first call, compile included)'
  )


def main():
  print('devices:', jax.devices(), 'jax', jax.__version__)
  jax.config.update('jax_enable_x64', True)  # float32 models below keep float32 parameters
  _check_structured_vs_generic()
  for precision in ('default', 'highest'):
    _time_structured(precision)
  print('\nnative infinite-width twin (depth 4, 512 Fourier features, d = 32)')
  x = np.random.default_rng(2).normal(size=(20000, 32))
  for dtype in ('float64', 'float32'):
    _time_infinite_twin(x, dtype)


if __name__ == '__main__':
  main()
