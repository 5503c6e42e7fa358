# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

r"""Empirical NTK: ecrn_jax (structured and generic) against neural-tangents, side by side.

One ECRN (width 512, 4 blocks, 256 Fourier features on CIFAR-shaped inputs of 3,072
features, float32), the same params in every method. Each (method, N) runs in its own
subprocess so that its peak RSS is its own; kernels are saved and compared with ours.

  python -m benchmarks.empirical_ntk_benchmark                       # N = 128, 512, 2048
  python -m benchmarks.empirical_ntk_benchmark --sizes=128 --repeats=3
  python -m benchmarks.empirical_ntk_benchmark --full_n=5000         # + the 5,000² kernel
  python -m benchmarks.empirical_ntk_benchmark --model=resnet18 --sizes=32 \
      --methods=structured,jacobian,generic --resnet_width=8 --vp_n=0  # CIFAR ResNet-18
  # The ResNet-18 row: each path of ours and each of neural-tangents', side by side (run in
  # the reference venv, jax 0.5.3 + neural-tangents 0.6.5):
  PYTHONPATH=$PWD /work/venv-ref/bin/python -m benchmarks.empirical_ntk_benchmark \
      --model=resnet18 --sizes=32,128,512 --vp_n=0 --repeats=1 --methods=structured,\
jacobian,generic,nt_jacobian_contraction,nt_ntk_vector_products,nt_structured_derivatives

With --model=resnet18 (experiments/resnet.py, 10 outputs, BatchNorm at running averages,
32×32×3 images; --resnet_width=64 is the 11.2 M-parameter network) 'structured' is the
structured form of any Flax module (Conv/Dense patches × output cotangents, BatchNorm locally)
and the reference when timed, else 'jacobian', the per-example Jacobian contraction.

Printed: median wall time of warm (compiled) runs, peak RSS, relative max difference to
our structured kernel, the speed-up of ours over each neural-tangents method, and achieved
FLOP/s (an analytic count of the structured method's work) as a fraction of the FLOP/s of a
jitted float32 matmul measured in the same run. neural-tangents runs under `nt.batch` with
blocks of `--nt_batch` inputs, which it needs to fit its N×P Jacobians in memory at N=2048.
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

FLAGS = flags.FLAGS
flags.DEFINE_list('sizes', ['128', '512', '2048'], 'Numbers of inputs N.')
flags.DEFINE_list(
    'methods',
    ['structured', 'generic', 'nt_jacobian_contraction', 'nt_ntk_vector_products'],
    'Methods to time.',
)
flags.DEFINE_integer('repeats', 3, 'Timed warm runs per (method, N) (median reported).')
flags.DEFINE_integer('max_seconds', 600, 'Skip further repeats once one run takes this long.')
flags.DEFINE_integer('width', 512, 'ECRN width.')
flags.DEFINE_integer('depth', 4, 'ECRN residual blocks.')
flags.DEFINE_integer('fourier_features', 256, 'm (γ has 2m features).')
flags.DEFINE_integer('input_dim', 3072, 'Input features (CIFAR: 32·32·3).')
flags.DEFINE_integer('out_dim', 1, 'Outputs C (the kernel is traced over them).')
flags.DEFINE_integer('nt_batch', 256, 'Block size for neural-tangents (nt.batch).')
flags.DEFINE_integer('full_n', 0, 'If > 0, also time our full N×N kernel at this N.')
flags.DEFINE_integer(
    'vp_n', 2048, 'If > 0, time ntk_vp_fn against a forward+backward pass at this N.'
)
flags.DEFINE_enum('model', 'ecrn', ['ecrn', 'resnet18'], 'The network.')
flags.DEFINE_integer('resnet_width', 64, "ResNet-18's first-stage channels (64: 11.2 M params).")
flags.DEFINE_list(
    'method_max_n',
    ['generic:32', 'nt_ntk_vector_products:128'],
    'method:N pairs: that method is not run above N inputs (the vector-product methods grow as '
    'N² passes over the network).',
)
flags.DEFINE_integer(
    'worker_timeout', 1800, 'Seconds a (method, N) worker may run before it is reported as such.'
)
flags.DEFINE_string('worker', None, 'Internal: "method,N,outfile" runs one measurement.')

NT_IMPLEMENTATION = {
    'nt_jacobian_contraction': 1,
    'nt_ntk_vector_products': 2,
    'nt_structured_derivatives': 3,
}


def _setup(n):
  import ecrn_jax  # pylint: disable=g-import-not-at-top

  if FLAGS.model == 'resnet18':
    from experiments import resnet  # pylint: disable=g-import-not-at-top

    model = resnet.ResNet18(num_classes=10, width=FLAGS.resnet_width)
    x = jax.random.normal(jax.random.PRNGKey(1), (n, 32, 32, 3), jnp.float32)
    return model, model.init(jax.random.PRNGKey(0), x[:2]), x
  config = ecrn_jax.ECRNConfig(
      width=FLAGS.width,
      depth=FLAGS.depth,
      fourier_features=FLAGS.fourier_features,
      out_dim=FLAGS.out_dim,
      dtype='float32',
  )
  model = ecrn_jax.ECRN(config)
  x = jax.random.normal(jax.random.PRNGKey(1), (n, FLAGS.input_dim), jnp.float32)
  variables = model.init(jax.random.PRNGKey(0), x[:1])
  return model, variables, x


def _kernel_fn(method, model, variables):
  import ecrn_jax  # pylint: disable=g-import-not-at-top

  if method in ('structured', 'jacobian', 'generic', 'auto'):
    return lambda x: ecrn_jax.empirical_ntk(model, variables, x, implementation=method)
  import neural_tangents as nt  # pylint: disable=g-import-not-at-top

  # neural-tangents 0.6.5's structured derivatives use jax.interpreters.ad.source_info_util and
  # .config, which jax 0.5 no longer re-exports: the aliases restored (as the reference test does).
  from jax._src import source_info_util  # pylint: disable=g-import-not-at-top

  ad = jax.interpreters.ad
  for name, value in (('source_info_util', source_info_util), ('config', jax.config)):
    if not hasattr(ad, name):
      setattr(ad, name, value)

  rest = {k: v for k, v in variables.items() if k != 'params'}
  f = lambda p, x: model.apply({'params': p, **rest}, x)
  fn = nt.empirical_ntk_fn(
      f, trace_axes=(-1,), vmap_axes=0, implementation=NT_IMPLEMENTATION[method]
  )
  batched = nt.batch(fn, batch_size=FLAGS.nt_batch, device_count=0)
  return lambda x: batched(x, None, variables['params'])


def _time(fn, repeats, max_seconds):
  start = time.perf_counter()
  result = jax.block_until_ready(fn())
  first = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
    if times[-1] > max_seconds:
      break
  return result, first, times


def worker(spec):
  """Runs one (method, N) measurement and writes it to the spec's output file."""
  method, n, outfile = spec.split(',')
  n = int(n)
  model, variables, x = _setup(n)
  kernel_fn = _kernel_fn(method, model, variables)
  repeats = FLAGS.repeats if n <= 512 else 1
  kernel, first, times = _time(lambda: kernel_fn(x), repeats, FLAGS.max_seconds)
  peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
  # The matmul reference is measured in the same process right after, under the same load.
  matmul = matmul_flops_per_s()
  np.save(outfile + '.npy', np.asarray(kernel))
  with open(outfile, 'w', encoding='utf-8') as f:
    json.dump(
        {
            'first_s': first,
            'times_s': times,
            'peak_rss_gib': peak_rss,
            'matmul_flops_per_s': matmul,
        },
        f,
    )


def _run_worker(method, n, tmp):
  out = os.path.join(tmp, f'{method}_{n}.json')
  cmd = [sys.executable, '-m', 'benchmarks.empirical_ntk_benchmark', f'--worker={method},{n},{out}']
  for name in (
      'model',
      'resnet_width',
      'width',
      'depth',
      'fourier_features',
      'input_dim',
      'out_dim',
      'nt_batch',
      'repeats',
      'max_seconds',
  ):
    cmd.append(f'--{name}={getattr(FLAGS, name)}')
  try:
    proc = subprocess.run(
        cmd, capture_output=True, text=True, check=False, timeout=FLAGS.worker_timeout
    )
  except subprocess.TimeoutExpired:
    return None, f'over {FLAGS.worker_timeout} s (stopped)'
  if proc.returncode != 0:
    return None, proc.stderr.strip().splitlines()[-1] if proc.stderr else 'failed'
  with open(out, encoding='utf-8') as f:
    return json.load(f), np.load(out + '.npy')


def matmul_flops_per_s(size=2048, repeats=10):
  a = jax.random.normal(jax.random.PRNGKey(0), (size, size), jnp.float32)
  mm = jax.jit(lambda a, b: a @ b)
  jax.block_until_ready(mm(a, a))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(mm(a, a))
    times.append(time.perf_counter() - start)
  return 2 * size**3 / statistics.median(times)


def structured_flops(n, c=None):
  """Analytic FLOPs of the structured method for an N×N kernel (fwd, C bwd, contraction)."""
  c = FLAGS.out_dim if c is None else c
  w, m, d, depth = FLAGS.width, FLAGS.fourier_features, FLAGS.input_dim, FLAGS.depth
  dense = [(2 * m, w)] + [(w, w)] * depth + [(w, c)]  # (n_in, n_out) of each Dense
  forward = 2 * n * (d * m + sum(i * o for i, o in dense))
  backward = c * 2 * n * sum(i * o for i, o in dense)  # cotangents w.r.t. layer outputs
  contraction = sum(2 * n * n * (i + c * o) for i, o in dense)
  return forward + backward + contraction


def time_ntk_vp(n):
  """Θv (one vjp + one jvp, traced over C) against one forward + one backward pass."""
  import ecrn_jax  # pylint: disable=g-import-not-at-top

  model, variables, x = _setup(n)
  matvec = jax.jit(ecrn_jax.ntk_vp_fn(model, variables, x))
  v = jax.random.normal(jax.random.PRNGKey(2), (n,), jnp.float32)
  rest = {k: val for k, val in variables.items() if k != 'params'}
  loss = lambda p: jnp.sum(model.apply({'params': p, **rest}, x))
  fwd_bwd = jax.jit(jax.value_and_grad(loss))
  fwd = jax.jit(loss)
  _, _, t_vp = _time(lambda: matvec(v), 5, FLAGS.max_seconds)
  _, _, t_fb = _time(lambda: fwd_bwd(variables['params']), 5, FLAGS.max_seconds)
  _, _, t_f = _time(lambda: fwd(variables['params']), 5, FLAGS.max_seconds)
  t_vp, t_fb, t_f = map(statistics.median, (t_vp, t_fb, t_f))
  print(
      f'\nntk_vp_fn at N={n} (C={FLAGS.out_dim}): {t_vp * 1e3:.1f} ms; one forward + one '
      f'backward: {t_fb * 1e3:.1f} ms; one forward: {t_f * 1e3:.1f} ms; ratio Θv / (fwd+bwd) '
      f'= {t_vp / t_fb:.2f} (floor: a vjp alone is one forward + backward; the jvp adds '
      f'about one forward, and XLA may share the primal pass)'
  )


def _print_row(n, method, stats, kernel, ref, ours_t):
  """One table row: `method`'s times against the structured kernel `ref` (N, N) and its time."""
  t = statistics.median(stats['times_s'])
  diff = float(np.abs(kernel - ref).max() / np.abs(ref).max()) if ref is not None else float('nan')
  speedup = t / ours_t if ours_t else float('nan')
  frac = (
      structured_flops(n) / t / stats['matmul_flops_per_s'] * 100
      if method == 'structured' and FLAGS.model == 'ecrn'
      else float('nan')
  )
  print(
      f'{n:>6} {method:>24} {t:>9.3f} {stats["first_s"]:>8.2f} '
      f'{stats["peak_rss_gib"]:>7.2f}Gi {diff:>9.1e} {speedup:>7.1f} {frac:>6.1f}'
  )


def _reference_method() -> str:
  """The method the others are compared with: ours for the network ('structured' when timed)."""
  if FLAGS.model == 'resnet18' and 'structured' not in FLAGS.methods:
    return 'jacobian'
  return 'structured'


def _compare_methods(n, tmp):
  """Runs every method at N = n in its own worker and prints their rows."""
  results = {}
  caps = dict(item.split(':') for item in FLAGS.method_max_n)
  for method in FLAGS.methods:
    if method in caps and n > int(caps[method]):
      results[method] = (None, f'not run above N = {caps[method]} (--method_max_n)')
      continue
    stats, kernel = _run_worker(method, n, tmp)
    results[method] = (stats, kernel)
  ref_stats, ref = results.get(_reference_method(), (None, None))
  ours_t = statistics.median(ref_stats['times_s']) if ref_stats else None
  for method, (stats, kernel) in results.items():
    if stats is None:
      print(f'{n:>6} {method:>24}  not timed: {kernel}')
      continue
    _print_row(n, method, stats, kernel, ref, ours_t)
  medians = {m: statistics.median(st['times_s']) for m, (st, _) in results.items() if st}
  ours = {m: t for m, t in medians.items() if not m.startswith('nt_')}
  theirs = {m: t for m, t in medians.items() if m.startswith('nt_')}
  if ours:
    best = min(ours, key=ours.get)
    line = f'{n:>6} best of ours: {best} {ours[best]:.2f} s'
    if 'generic' in ours:
      line += f'; generic / best = {ours["generic"] / ours[best]:.1f}×'
    if theirs:
      nt_best = min(theirs, key=theirs.get)
      line += f'; best of neural-tangents: {nt_best} {theirs[nt_best]:.2f} s'
      line += f' ({theirs[nt_best] / ours[best]:.1f}× ours)'
    print(line)
  print()


def _time_full_kernel(n, tmp):
  """Times our structured n×n kernel in a worker and prints it."""
  stats, _ = _run_worker('structured', n, tmp)
  t = statistics.median(stats['times_s'])
  frac = structured_flops(n) / t / stats['matmul_flops_per_s'] * 100
  print(
      f'full {n}×{n} kernel (structured): {t:.2f} s warm, '
      f'{stats["first_s"]:.2f} s first call, peak RSS {stats["peak_rss_gib"]:.2f} GiB, '
      f'{frac:.1f}% of the matmul FLOP/s measured in that process'
  )


def main(argv):
  del argv
  if FLAGS.worker:
    worker(FLAGS.worker)
    return
  print(f'devices: {jax.devices()}  jax {jax.__version__}')
  peak = matmul_flops_per_s()
  print(
      f'matmul (jitted float32 2048³, median of 10): {peak / 1e9:.1f} GFLOP/s here; each '
      'worker measures its own right after its timing, for "%peak"\n'
  )
  header = (
      f'{"N":>6} {"method":>24} {"median s":>9} {"first s":>8} {"peak RSS":>9} '
      f'{"rel diff":>9} {"ours ×":>7} {"%peak":>6}'
  )
  print(header)
  with tempfile.TemporaryDirectory() as tmp:
    for n in map(int, FLAGS.sizes):
      _compare_methods(n, tmp)
    if FLAGS.full_n:
      _time_full_kernel(FLAGS.full_n, tmp)
  if FLAGS.vp_n:
    time_ntk_vp(FLAGS.vp_n)
  print(
      f'\n"ours ×": that method\'s median time over ours ({_reference_method()}). "%peak": '
      'achieved FLOP/s of the structured method (analytic count) over the matmul FLOP/s '
      'measured in the same process. Under other load on the machine both figures move.'
  )


if __name__ == '__main__':
  app.run(main)
