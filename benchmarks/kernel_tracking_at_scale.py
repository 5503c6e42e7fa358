# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Matrix-free kernel tracking at CIFAR scale, in bounded memory.

The default ECRN (width 512, 4 blocks, 256 Fourier features, float32) on N CIFAR-shaped
inputs (3,072 features). The empirical NTK would be an N × N matrix and its Jacobian
N × 1.3 M; neither is formed. Everything comes from NTK–vector products Θv = J(Jᵀv) (one vjp
and one jvp through the network), computed over input chunks (`ntk_vp_fn`'s batch_size; by
default the largest chunk within a memory budget, `auto_vp_batch_size`):

1. the time of one product (median of 3, compiled);
2. λ_max of Θ_0 by Lanczos (`analysis.top_eigenvalues` on `ntk_vp_fn`);
3. θ_t: one epoch of mini-batch momentum SGD (`train`) on regression targets;
4. ‖Θ_t − Θ_0‖_F and ‖Θ_0‖_F by Hutchinson (`frobenius_norm_estimate` on
   `difference_matvec` of the products at θ_t and θ_0), with standard errors;
5. (--tracker) the `KernelTracker` in matrix-free mode on all N inputs, at initialization and
   after one epoch: every docs/spec.md §4 quantity, written by a `TrackingWriter`;
6. (N ≤ --unchunked_max_n) one product with all N inputs at once (batch_size=0), side by side
   with stage 1: the time ratio chunked / unchunked, and its memory;
7. (--materialize_n M) the structured empirical NTK of M inputs written tile by tile into a
   memmap (`empirical_ntk(..., out=...)`).
Each stage's peak resident memory is its own (the kernel's high-water mark is reset before
it, /proc/self/clear_refs), the inputs included. Each N runs in its own process.

  python benchmarks/kernel_tracking_at_scale.py --n=5000,50000,100000
  python benchmarks/kernel_tracking_at_scale.py --n=5000 --tracker --data=cifar.npz
  python benchmarks/kernel_tracking_at_scale.py --n=5000 --materialize_n=20000

--data: an .npz with 'x' (N, 32, 32, 3) or (N, 3072) (or an .npy); else random standardized
inputs. About (lanczos_iterations + 3·num_probes + 4) products per N: ~3 min at N = 50,000
and ~6 min at 100,000 on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
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
from ecrn_jax import empirical_ntk
from ecrn_jax import ntk_vp_fn
from ecrn_jax import train
from ecrn_jax.kernels import auto_vp_batch_size


def _memory_gib(field: str) -> float:
  with open('/proc/self/status', encoding='utf-8') as f:
    for line in f:
      if line.startswith(field + ':'):
        return int(line.split()[1]) / 2**20
  return float('nan')


def reset_peak() -> None:
  """Restarts the kernel's resident high-water mark (VmHWM) at the current RSS."""
  try:
    with open('/proc/self/clear_refs', 'w', encoding='utf-8') as f:
      f.write('5')
  except OSError:
    pass  # not Linux: peaks then accumulate over the stages


class AnonymousPeak:
  """The largest anonymous RSS (RssAnon: not file pages such as a memmap's, which the kernel
  can write back and drop) seen by a thread that samples it every 20 ms while in use."""

  def __enter__(self):
    self.peak, self._stop = _memory_gib('RssAnon'), threading.Event()
    self._thread = threading.Thread(target=self._sample, daemon=True)
    self._thread.start()
    return self

  def _sample(self):
    while not self._stop.wait(0.02):
      self.peak = max(self.peak, _memory_gib('RssAnon'))

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()
    self.peak = max(self.peak, _memory_gib('RssAnon'))


class Stages:
  """Times and peak RSS of the stages of one N, printed as they finish."""

  def __init__(self, n: int):
    self.n, self.rows = n, []

  def run(self, name: str, fn, *args):
    """Runs fn(*args) as stage `name`, recording its seconds and peak memory."""
    reset_peak()
    start = time.perf_counter()
    with AnonymousPeak() as anonymous:
      value, text = fn(*args)
    seconds = time.perf_counter() - start
    row = dict(n=self.n, stage=name, seconds=seconds, peak_rss_gib=_memory_gib('VmHWM'))
    row.update({k: v for k, v in value.items() if isinstance(v, (int, float))})
    row.update(peak_anon_gib=anonymous.peak)
    self.rows.append(row)
    print(
        f'[{name}] {text} ({seconds:.1f} s; peak RSS {row["peak_rss_gib"]:.2f} GiB, anonymous '
        f'{anonymous.peak:.2f} GiB)',
        flush=True,
    )
    return value


def load_inputs(path: str | None, n: int, seed: int) -> np.ndarray:
  """(n, 3072) float32 inputs, each feature standardized (docs/spec.md §1)."""
  if path is None:
    x = np.random.default_rng(seed).standard_normal((n, 3072), np.float32)
  else:
    data = np.load(path)
    x = data['x'] if isinstance(data, np.lib.npyio.NpzFile) else data
    if x.shape[0] < n:
      raise SystemExit(f'--data holds {x.shape[0]} inputs, fewer than --n={n}.')
    x = np.asarray(x[:n], np.float32).reshape(n, -1)
  x -= x.mean(axis=0)
  std = x.std(axis=0)
  x /= np.where(std > 0, std, 1.0)
  return x


def timed(fn, *args):
  start = time.perf_counter()
  out = jax.block_until_ready(fn(*args))
  return out, time.perf_counter() - start


def parse_args(argv=None) -> argparse.Namespace:
  """The command line's options."""
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
  parser.add_argument('--n', default='5000', help='numbers of inputs N, comma-separated')
  parser.add_argument('--data', default=None, help='.npz with x (or .npy); else random')
  parser.add_argument('--lanczos_iterations', type=int, default=30)
  parser.add_argument('--num_probes', type=int, default=8)
  parser.add_argument('--probe_batch_size', type=int, default=4)
  parser.add_argument(
      '--vp_batch_size',
      type=int,
      default=None,
      help='inputs per chunk of each kernel-vector product (default: from the memory budget; '
      '0: all at once)',
  )
  parser.add_argument('--unchunked_max_n', type=int, default=50000, help='stage 6 up to this N')
  parser.add_argument('--materialize_n', type=int, default=0, help='stage 7 with this many inputs')
  parser.add_argument('--cg_iterations', type=int, default=10, help='tracker CG steps (0: none)')
  parser.add_argument('--batch_size', type=int, default=250, help='training mini-batch')
  parser.add_argument('--learning_rate', type=float, default=0.5)
  parser.add_argument('--tracker', action='store_true', help='run stage 5')
  parser.add_argument('--workdir', default=None, help='tracker output (default: a temp dir)')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--record', default=None, help=argparse.SUPPRESS)  # one N's rows, JSON
  return parser.parse_args(argv)


def product_stage(model, variables, x, key, batch_size):
  """Stage 1 (or 6 with batch_size=0): the median time of one compiled product."""
  # x is an argument, not a closed-over constant (which XLA would copy into the program).
  product = jax.jit(lambda var, x, v: ntk_vp_fn(model, var, x, batch_size=batch_size)(v))
  v = jax.random.rademacher(key, (x.shape[0],), jnp.float32)
  _, compile_s = timed(product, variables, x, v)
  seconds = float(np.median([timed(product, variables, x, v)[1] for _ in range(3)]))
  return {'product_s': seconds}, (
      f'one NTK–vector product on {x.shape[0]} inputs: {seconds:.2f} s (median of 3; first '
      f'call with compilation {compile_s:.1f} s)'
  )


def lanczos_stage(args, model, variables, x, key):
  """Stage 2: λ_max of Θ_0 by Lanczos."""
  n, m, chunk = x.shape[0], args.lanczos_iterations, args.vp_batch_size

  @jax.jit
  def lanczos(variables, x, key):
    vp = ntk_vp_fn(model, variables, x, batch_size=chunk)
    return analysis.top_eigenvalues(vp, n, m, key=key, num_iterations=m)

  ritz = np.asarray(lanczos(variables, x, key))
  return {'lambda_max': float(ritz[0])}, (
      f'Lanczos, {m} iterations: λ_max(Θ_0) = {ritz[0]:.6g} (top-5 Ritz values '
      f'{np.array2string(ritz[:5], precision=5)}; smallest {ritz[-1]:.4g})'
  )


def training_stage(args, model, variables, x, y):
  """Stage 3: θ_t after one epoch of mini-batch momentum SGD."""
  config = TrainConfig(
      optimizer='momentum',
      learning_rate=args.learning_rate,
      momentum=0.9,
      epochs=1,
      batch_size=args.batch_size,
      loss='mse',
      seed=args.seed,
  )
  variables_t, history = train(model, variables, (x, y), config)
  losses = history['step_loss']
  return {'variables_t': variables_t, 'config': config}, (
      f'trained 1 epoch ({history["steps_per_epoch"]} steps of {args.batch_size}): loss '
      f'{losses[0]:.4f} → {losses[-1]:.4f}'
  )


def hutchinson_stage(args, model, variables_0, variables_t, x, key):
  """Stage 4: Hutchinson estimates of ‖Θ_t − Θ_0‖_F and ‖Θ_0‖_F."""
  n, chunk, p = x.shape[0], args.vp_batch_size, args.num_probes
  estimate = lambda vp, key: analysis.frobenius_norm_estimate(
      vp, n, num_probes=p, key=key, batch_size=args.probe_batch_size
  )

  @jax.jit
  def norms(variables_t, variables_0, x, key):
    vp_t = ntk_vp_fn(model, variables_t, x, batch_size=chunk)
    vp_0 = ntk_vp_fn(model, variables_0, x, batch_size=chunk)
    return estimate(analysis.difference_matvec(vp_t, vp_0), key), estimate(vp_0, key)

  (delta, delta_se), (norm0, norm0_se) = jax.tree_util.tree_map(
      float, norms(variables_t, variables_0, x, key)
  )
  rel, rel_se = analysis.ratio_with_stderr(delta, delta_se, norm0, norm0_se)
  return {'delta_frobenius': delta, 'relative_delta': rel}, (
      f'Hutchinson, {p} Rademacher probes: ‖Θ_t − Θ_0‖_F = {delta:.5g} ± {delta_se:.2g}; '
      f'‖Θ_0‖_F = {norm0:.5g} ± {norm0_se:.2g}; relative {rel:.4g} ± {rel_se:.2g} '
      f'({3 * p} products)'
  )


def tracker_stage(args, model, variables_0, x, y, train_config):
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
  train(model, variables_0, (x, y), train_config, callbacks=[TrackingWriter(tracker, workdir)])
  lines = [
      f'    epoch {rec["epoch"]}: λ_max {rec["lambda_max"]:.6g}, trace {rec["trace"]:.5g} ± '
      f'{rec["trace_stderr"]:.2g}, ‖ΔΘ‖_F {rec["delta_frobenius"]:.4g} ± '
      f'{rec["delta_frobenius_stderr"]:.2g}, eff. rank {rec["effective_rank"]:.3g}, Arora '
      f'bound (CG {args.cg_iterations}) {rec["arora_bound"]:.4g}, {rec["seconds"]:.1f} s'
      for rec in tracker.records
  ]
  return {'tracking_s': tracker.seconds}, '\n'.join(
      [f'KernelTracker ({tracker.mode}, N_p = {tracker.n_p}) into {workdir}:'] + lines
  )


def materialize_stage(args, model, variables):
  """Stage 7: the structured eNTK of M inputs, written tile by tile into a memmap."""
  m = args.materialize_n
  x = load_inputs(None, m, args.seed + 1)
  with tempfile.TemporaryDirectory() as tmp:
    out = np.lib.format.open_memmap(os.path.join(tmp, 'ntk.npy'), 'w+', np.float32, (m, m))
    empirical_ntk(model, variables, x, out=out)
    diagonal = np.asarray(out[np.arange(0, m, m // 10), np.arange(0, m, m // 10)])
    del out
  return {'materialize_n': m}, (
      f'empirical NTK {m}×{m} ({m * m * 4 / 2**30:.1f} GiB float32) into a memmap; '
      f'diagonal samples {np.array2string(diagonal[:4], precision=5)}'
  )


def one_size(args, n: int) -> list[dict]:
  """All stages for N = n, in this process."""
  keys = dict(
      zip(
          ('init', 'target', 'lanczos', 'hutchinson'),
          jax.random.split(jax.random.PRNGKey(args.seed), 4),
      )
  )
  stages = Stages(n)
  x = load_inputs(args.data, n, args.seed)
  model = ECRN(ECRNConfig())  # width 512, depth 4, fourier_features 256, float32
  variables_0 = model.init(keys['init'], x[:1])
  num_params = sum(p.size for p in jax.tree_util.tree_leaves(variables_0['params']))
  y = np.sin(x[:, :8].sum(axis=1) / np.sqrt(8.0)) + 0.1 * np.asarray(
      jax.random.normal(keys['target'], (n,))
  )
  x = jax.device_put(x)  # one copy of the inputs, on the device, for every stage
  chunk = args.vp_batch_size
  if chunk is None:
    chunk = auto_vp_batch_size(model, variables_0, x[:1])
  print(
      f'N = {n}: inputs {x.shape} ({x.nbytes / 2**30:.2f} GiB), {num_params:,} trained '
      f'parameters (a Jacobian would be {n * num_params * 4 / 2**30:.0f} GiB); chunk '
      f'{min(chunk or n, n)} inputs; RSS {_memory_gib("VmRSS"):.2f} GiB',
      flush=True,
  )
  stages.run('1 product', product_stage, model, variables_0, x, keys['hutchinson'], chunk)
  stages.run('2 lanczos', lanczos_stage, args, model, variables_0, x, keys['lanczos'])
  trained = stages.run('3 train', training_stage, args, model, variables_0, x, y.astype(np.float32))
  stages.run(
      '4 hutchinson',
      hutchinson_stage,
      args,
      model,
      variables_0,
      trained['variables_t'],
      x,
      keys['hutchinson'],
  )
  if args.tracker:
    stages.run('5 tracker', tracker_stage, args, model, variables_0, x, y, trained['config'])
  if n <= args.unchunked_max_n and chunk and chunk < n:
    stages.run('6 unchunked', product_stage, model, variables_0, x, keys['hutchinson'], 0)
  if args.materialize_n:
    stages.run('7 materialize', materialize_stage, args, model, variables_0)
  return stages.rows


def print_table(rows: list[dict]) -> None:
  """Prints one line per (N, stage) and the chunked/unchunked ratios."""
  columns = ('n', 'stage', 'seconds', 'peak_rss_gib', 'peak_anon_gib')
  print(f'\n{"N":>7} {"stage":<14} {"seconds":>8} {"peak RSS":>9} {"(anon)":>8}  result')
  for row in rows:
    result = ', '.join(f'{k} {v:.5g}' for k, v in row.items() if k not in columns)
    print(
        f'{row["n"]:>7} {row["stage"]:<14} {row["seconds"]:>8.1f} {row["peak_rss_gib"]:>7.2f}Gi '
        f'{row["peak_anon_gib"]:>6.2f}Gi  {result}'
    )
  for n in sorted({row['n'] for row in rows}):
    by_stage = {row['stage']: row for row in rows if row['n'] == n}
    if '6 unchunked' in by_stage:
      chunked, whole = by_stage['1 product'], by_stage['6 unchunked']
      print(
          f'N = {n}: chunked / unchunked product time '
          f'{chunked["product_s"] / whole["product_s"]:.3f}'
          f', peak RSS {chunked["peak_rss_gib"]:.2f} vs {whole["peak_rss_gib"]:.2f} GiB'
      )


def main(argv=None) -> int:
  args = parse_args(argv)
  sizes = [int(n) for n in args.n.split(',')]
  print(f'jax {jax.__version__}, devices {jax.devices()}, x64 {jax.config.jax_enable_x64}')
  if args.record:
    rows = one_size(args, sizes[0])
    with open(args.record, 'w', encoding='utf-8') as f:
      json.dump(rows, f)
    return 0
  rows = []
  for n in sizes:  # one process each: each N's memory is its own
    with tempfile.NamedTemporaryFile(suffix='.json') as record:
      options = dict(vars(args), n=n, record=record.name)
      argv_n = [
          f'--{k}' if v is True else f'--{k}={v}'
          for k, v in options.items()
          if v is not None and v is not False
      ]
      subprocess.run([sys.executable, os.path.abspath(__file__)] + argv_n, check=True)
      with open(record.name, encoding='utf-8') as f:
        rows += json.load(f)
  print_table(rows)
  total = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30
  print(f'machine memory {total:.0f} GiB, {os.cpu_count()} cores')
  return 0


if __name__ == '__main__':
  sys.exit(main())
