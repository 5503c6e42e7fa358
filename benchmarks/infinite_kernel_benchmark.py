"""Time and peak memory of the ECRN twin's infinite-width kernel on CIFAR-shaped inputs.

    python benchmarks/infinite_kernel_benchmark.py                     # 5,000 random inputs
    python benchmarks/infinite_kernel_benchmark.py --data PATH/train_subset.npz
    XLA_FLAGS=--xla_force_host_platform_device_count=4 python benchmarks/... --devices 4

With the default ECRNConfig (fourier_features=256) the twin acts on γ(x) of 512 features.
Peak memory is resource.getrusage(RUSAGE_SELF).ru_maxrss (KiB on Linux), reported after the
imports and warm-up and at the end, so that the kernel's own share can be read off.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numpy as np


def _peak_rss_mib() -> float:
  kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return kib / 1024.0 if sys.platform != 'darwin' else kib / 2**20


def _inputs(args) -> np.ndarray:
  if args.data:
    with np.load(args.data) as data:
      if 'x' not in data:
        raise SystemExit(f'{args.data} has no array "x" (keys: {list(data)}).')
      x = data['x'][:args.n].reshape(min(args.n, len(data['x'])), -1).astype(np.float64)
    if len(x) < args.n:
      raise SystemExit(f'{args.data} holds {len(x)} inputs, fewer than --n {args.n}.')
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-8)
    return x.astype(args.dtype)
  return np.random.default_rng(args.seed).normal(size=(args.n, args.features)).astype(args.dtype)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--n', type=int, default=5000, help='number of inputs N (kernel N × N)')
  parser.add_argument('--features', type=int, default=3072,
                      help='input features of random inputs (CIFAR: 32·32·3)')
  parser.add_argument('--data', default=None,
                      help='optional .npz with an array "x" (e.g. the CIFAR-10 subset); its '
                      'first N rows are flattened and standardized per feature')
  parser.add_argument('--get', choices=['ntk', 'nngp', 'both'], default='ntk')
  parser.add_argument('--batch-size', type=int, default=512, help='tile edge per device')
  parser.add_argument('--devices', type=int, default=None,
                      help='number of local devices (default: all)')
  parser.add_argument('--dtype', choices=['float64', 'float32'], default='float64')
  parser.add_argument('--depth', type=int, default=4)
  parser.add_argument('--fourier-features', type=int, default=256)
  parser.add_argument('--fourier-scale', type=float, default=1.0)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--progress', action='store_true', help='report tiles to stderr')
  args = parser.parse_args(argv)

  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  import jax  # pylint: disable=g-import-not-at-top
  if args.dtype == 'float64':
    jax.config.update('jax_enable_x64', True)
  from ecrn_jax import ECRN, ECRNConfig  # pylint: disable=g-import-not-at-top
  from ecrn_jax._src import regression  # pylint: disable=g-import-not-at-top

  config = ECRNConfig(depth=args.depth, fourier_features=args.fourier_features,
                      fourier_scale=args.fourier_scale, dtype=args.dtype)
  get = ('nngp', 'ntk') if args.get == 'both' else args.get
  x = _inputs(args)
  variables = ECRN(config).init(jax.random.PRNGKey(args.seed), x[:1])
  devices = jax.local_devices()[:args.devices] if args.devices else jax.local_devices()
  common = dict(variables=variables, get=get, batch_size=args.batch_size,
                devices=len(devices))

  start = time.perf_counter()
  regression.batched_infinite_kernels(config, x[:min(args.n, args.batch_size)], **common)
  warmup_s = time.perf_counter() - start
  rss_before = _peak_rss_mib()

  start = time.perf_counter()
  kernels = regression.batched_infinite_kernels(config, x, progress=args.progress, **common)
  kernel_s = time.perf_counter() - start
  rss_after = _peak_rss_mib()

  arrays = {get: kernels} if isinstance(get, str) else kernels._asdict()
  result_mib = sum(a.nbytes for a in arrays.values()) / 2**20
  print(f'backend        {jax.default_backend()} ({len(devices)} device(s): '
        f'{devices[0].device_kind})')
  print(f'inputs         {x.shape} {x.dtype} '
        f'({"data: " + args.data if args.data else f"random normal, seed {args.seed}"})')
  print(f'twin           ECRN depth {config.depth}, {config.activation}, '
        f'γ(x) of {2 * config.fourier_features} features (σ_ff = {config.fourier_scale})')
  print(f'kernel         {args.get}, {args.n} × {args.n}, {args.dtype}, tiles of '
        f'{args.batch_size} per device')
  print(f'warm-up        {warmup_s:.2f} s (compilation and one {args.batch_size}-row tile)')
  print(f'kernel time    {kernel_s:.2f} s  '
        f'({args.n * args.n * len(arrays) / kernel_s / 1e6:.1f} M entries/s)')
  print(f'peak RSS       {rss_before:.0f} MiB after imports and warm-up, {rss_after:.0f} MiB at '
        f'the end (+{rss_after - rss_before:.0f} MiB; result {result_mib:.0f} MiB)')
  for name, array in arrays.items():
    block = array[:2000, :2000]
    eigenvalues = np.linalg.eigvalsh(block[:500, :500])
    print(f'check {name:5s}   mean diag {np.mean(np.diag(array)):.6g}, max |K − Kᵀ| on the '
          f'leading block {np.abs(block - block.T).max():.2e}, λ_min of the leading 500 × 500 '
          f'block {eigenvalues[0]:.3e}, finite: {bool(np.isfinite(array).all())}')


if __name__ == '__main__':
  main()
