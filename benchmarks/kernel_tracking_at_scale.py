# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Matrix-free kernel tracking at CIFAR scale, in bounded memory.

The default ECRN (width 512, 4 blocks, 256 Fourier features, float32) on N = 5,000
CIFAR-shaped inputs (3,072 features). The empirical NTK would be a 5,000 × 5,000 matrix and
its Jacobian 5,000 × 1.3 M; neither is formed. Everything comes from NTK–vector products
Θv = J(Jᵀv) (one vjp and one jvp through the network):

1. the time of one product;
2. λ_max of Θ_0 by Lanczos (`analysis.top_eigenvalues` on `ntk_vp_fn`);
3. θ_t: one epoch of mini-batch momentum SGD (`train`) on regression targets;
4. ‖Θ_t − Θ_0‖_F and ‖Θ_0‖_F by Hutchinson (`frobenius_norm_estimate` on
   `difference_matvec` of the products at θ_t and θ_0), with standard errors;
5. (unless --skip_tracker) the `KernelTracker` in matrix-free mode on all N inputs, at
   initialization and after one epoch: every docs/spec.md §4 quantity, written by a `TrackingWriter`;
and the peak resident memory (getrusage) after each stage.

  python benchmarks/kernel_tracking_at_scale.py                  # random standardized inputs
  python benchmarks/kernel_tracking_at_scale.py --data=cifar.npz  # 'x' (N, 32, 32, 3) or (N, 3072)

A few minutes on 2 CPU cores: about (lanczos_iterations + 3·num_probes) products for
stages 2–4, and (lanczos_iterations + num_probes + 1 + cg_iterations) per tracker record.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from ecrn_jax import ECRN
from ecrn_jax import ECRNConfig
from ecrn_jax import KernelTracker
from ecrn_jax import TrackingConfig
from ecrn_jax import TrackingWriter
from ecrn_jax import TrainConfig
from ecrn_jax import analysis
from ecrn_jax import ntk_vp_fn
from ecrn_jax import train


def peak_rss_gib() -> float:
  """Peak resident set size of this process so far (Linux reports KiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def load_inputs(path: str | None, n: int, seed: int) -> np.ndarray:
  """(n, 3072) float32 inputs, each feature standardized (docs/spec.md §1)."""
  if path is None:
    x = np.random.default_rng(seed).standard_normal((n, 3072)).astype(np.float32)
  else:
    data = np.load(path)
    x = data['x'] if isinstance(data, np.lib.npyio.NpzFile) else data
    if x.shape[0] < n:
      raise SystemExit(f'--data holds {x.shape[0]} inputs, fewer than --n={n}.')
    x = np.asarray(x[:n], np.float32).reshape(n, -1)
  std = x.std(axis=0)
  return ((x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)).astype(np.float32)


def timed(fn, *args):
  start = time.perf_counter()
  out = jax.block_until_ready(fn(*args))
  return out, time.perf_counter() - start


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--n', type=int, default=5000, help='number of inputs N')
  parser.add_argument('--data', default=None, help='.npz with x (or .npy); else random')
  parser.add_argument('--lanczos_iterations', type=int, default=30)
  parser.add_argument('--num_probes', type=int, default=8)
  parser.add_argument('--probe_batch_size', type=int, default=4)
  parser.add_argument(
      '--vp_batch_size',
      type=int,
      default=0,
      help='inputs per chunk of each kernel-vector product (0: all at once)',
  )
  parser.add_argument(
      '--cg_iterations',
      type=int,
      default=10,
      help='CG steps for the tracker’s Arora bound (0 skips it)',
  )
  parser.add_argument('--batch_size', type=int, default=250, help='training mini-batch')
  parser.add_argument('--learning_rate', type=float, default=0.5)
  parser.add_argument('--skip_tracker', action='store_true')
  parser.add_argument('--workdir', default=None, help='tracker output (default: a temp dir)')
  parser.add_argument('--seed', type=int, default=0)
  return parser.parse_args(argv)


def product_and_lanczos(args, model, variables_0, x, lanczos_key, hutchinson_key) -> None:
  """Stages 1 and 2: the time of one NTK–vector product; λ_max of Θ_0 by Lanczos."""
  n, chunk, m = x.shape[0], args.vp_batch_size or None, args.lanczos_iterations

  @jax.jit
  def product(variables, v):
    return ntk_vp_fn(model, variables, x, batch_size=chunk)(v)

  v = jax.random.rademacher(hutchinson_key, (n,), jnp.float32)
  _, compile_s = timed(product, variables_0, v)
  times = [timed(product, variables_0, v)[1] for _ in range(3)]
  per_product = float(np.median(times))
  print(
      f'[1] one NTK–vector product on {n} inputs: {per_product:.2f} s '
      f'(median of 3; first call with compilation {compile_s:.1f} s)'
  )

  @jax.jit
  def lanczos(variables, key):
    vp = ntk_vp_fn(model, variables, x, batch_size=chunk)
    return analysis.top_eigenvalues(vp, n, m, key=key, num_iterations=m)

  ritz, lanczos_s = timed(lanczos, variables_0, lanczos_key)
  ritz = np.asarray(ritz)
  print(
      f'[2] Lanczos, {m} iterations: λ_max(Θ_0) = {ritz[0]:.6g} '
      f'(top-5 Ritz values {np.array2string(ritz[:5], precision=5)}; smallest Ritz value '
      f'{ritz[-1]:.4g}) in {lanczos_s:.1f} s; peak RSS {peak_rss_gib():.2f} GiB'
  )


def hutchinson(args, model, variables_0, variables_t, x, hutchinson_key) -> None:
  """Stage 4: Hutchinson estimates of ‖Θ_t − Θ_0‖_F and ‖Θ_0‖_F."""
  n, chunk, p = x.shape[0], args.vp_batch_size or None, args.num_probes

  @jax.jit
  def delta_norm(variables_t, variables_0, key):
    diff = analysis.difference_matvec(
        ntk_vp_fn(model, variables_t, x, batch_size=chunk),
        ntk_vp_fn(model, variables_0, x, batch_size=chunk),
    )
    return analysis.frobenius_norm_estimate(
        diff, n, num_probes=p, key=key, batch_size=args.probe_batch_size
    )

  @jax.jit
  def norm(variables, key):
    return analysis.frobenius_norm_estimate(
        ntk_vp_fn(model, variables, x, batch_size=chunk),
        n,
        num_probes=p,
        key=key,
        batch_size=args.probe_batch_size,
    )

  (delta, delta_se), delta_s = timed(delta_norm, variables_t, variables_0, hutchinson_key)
  (norm0, norm0_se), norm_s = timed(norm, variables_0, hutchinson_key)
  delta, delta_se, norm0, norm0_se = map(float, (delta, delta_se, norm0, norm0_se))
  rel, rel_se = analysis.ratio_with_stderr(delta, delta_se, norm0, norm0_se)
  print(
      f'[4] Hutchinson, {p} Rademacher probes: ‖Θ_t − Θ_0‖_F = {delta:.5g} ± {delta_se:.2g} '
      f'({delta_s:.1f} s, {2 * p} products); ‖Θ_0‖_F = {norm0:.5g} ± {norm0_se:.2g} '
      f'({norm_s:.1f} s); relative {rel:.4g} ± {rel_se:.2g}; '
      f'peak RSS {peak_rss_gib():.2f} GiB'
  )


def tracker_stage(args, model, variables_0, x, y, train_config) -> None:
  """Stage 5: the tracker, matrix-free, on all N inputs, written by a `TrackingWriter`."""
  n = x.shape[0]
  workdir = args.workdir or tempfile.mkdtemp(prefix='kernel_tracking_')
  tracking_config = TrackingConfig(
      probe_size=n,
      top_k=5,
      modewise_k=5,
      dense_max_size=0,  # matrix-free at any N
      lanczos_iterations=args.lanczos_iterations,
      num_probes=args.num_probes,
      probe_batch_size=args.probe_batch_size,
      vp_batch_size=args.vp_batch_size,
      cg_iterations=args.cg_iterations,
      seed=args.seed,
  )
  tracker = KernelTracker(model, (x, y), train_config, tracking_config)
  _, history = train(
      model, variables_0, (x, y), train_config, callbacks=[TrackingWriter(tracker, workdir)]
  )
  print(
      f'[5] KernelTracker ({tracker.mode}, N_p = {tracker.n_p}) into {workdir}: '
      f'tracking {tracker.seconds:.1f} s for {len(tracker.records)} records, '
      f'training {history["train_seconds"]:.1f} s'
  )
  for rec in tracker.records:
    print(
        f'    epoch {rec["epoch"]}: λ_max {rec["lambda_max"]:.6g}, λ_min (Ritz) '
        f'{rec["lambda_min"]:.4g}, trace {rec["trace"]:.5g} ± {rec["trace_stderr"]:.2g}, '
        f'‖Θ‖_F {rec["frobenius_norm"]:.5g} ± {rec["frobenius_norm_stderr"]:.2g}, '
        f'‖ΔΘ‖_F {rec["delta_frobenius"]:.4g} ± {rec["delta_frobenius_stderr"]:.2g} '
        f'(relative {rec["relative_delta_frobenius"]:.4g}), eff. rank '
        f'{rec["effective_rank"]:.3g}, alignment {rec["alignment"]:.4g}, Arora bound '
        f'(CG {args.cg_iterations}) {rec["arora_bound"]:.4g}, {rec["seconds"]:.1f} s'
    )
  print(f'    peak RSS {peak_rss_gib():.2f} GiB')


def main(argv=None) -> int:
  args = parse_args(argv)
  print(f'jax {jax.__version__}, devices {jax.devices()}, x64 {jax.config.jax_enable_x64}')
  init_key, target_key, lanczos_key, hutchinson_key = jax.random.split(
      jax.random.PRNGKey(args.seed), 4
  )
  x = load_inputs(args.data, args.n, args.seed)
  n = x.shape[0]
  config = ECRNConfig()  # width 512, depth 4, fourier_features 256, float32
  model = ECRN(config)
  variables_0 = model.init(init_key, x[:1])
  num_params = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(variables_0['params']))
  y = np.asarray(
      jnp.sin(jnp.asarray(x[:, :8]).sum(axis=1) / np.sqrt(8.0))
      + 0.1 * jax.random.normal(target_key, (n,)),
      np.float32,
  )
  print(
      f'inputs {x.shape}, {config.width=} {config.depth=} {config.fourier_features=}, '
      f'{num_params:,} trained parameters; a Jacobian would be {n}×{num_params:,} '
      f'= {n * num_params * 4 / 2**30:.1f} GiB, the kernel {n}×{n}.'
  )
  print(f'[start] peak RSS {peak_rss_gib():.2f} GiB')
  product_and_lanczos(args, model, variables_0, x, lanczos_key, hutchinson_key)

  # 3. θ_t: one epoch of mini-batch momentum SGD.
  train_config = TrainConfig(
      optimizer='momentum',
      learning_rate=args.learning_rate,
      momentum=0.9,
      epochs=1,
      batch_size=args.batch_size,
      loss='mse',
      seed=args.seed,
  )
  variables_t, history = train(model, variables_0, (x, y), train_config)
  print(
      f'[3] trained 1 epoch ({history["steps_per_epoch"]} steps of {args.batch_size}): '
      f'loss {history["step_loss"][0]:.4f} → {history["step_loss"][-1]:.4f} in '
      f'{history["train_seconds"]:.1f} s; peak RSS {peak_rss_gib():.2f} GiB'
  )
  hutchinson(args, model, variables_0, variables_t, x, hutchinson_key)
  if not args.skip_tracker:
    tracker_stage(args, model, variables_0, x, y, train_config)
  print(
      f'peak RSS {peak_rss_gib():.2f} GiB (machine total '
      f'{os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30:.0f} GiB)'
  )
  return 0


if __name__ == '__main__':
  sys.exit(main())
