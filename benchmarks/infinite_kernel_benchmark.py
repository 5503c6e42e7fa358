# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

r"""The twin's infinite-width kernels: native JAX against neural-tangents' stax, side by side.

  python benchmarks/infinite_kernel_benchmark.py                  # N = 2000, 5000; + 20000² NTK
  python -m benchmarks.infinite_kernel_benchmark --sizes=500 --big_n=2000     # quick
  python benchmarks/infinite_kernel_benchmark.py --dtypes=float64 --big_n=0 --repeats=3

The twin of ECRNConfig(width=512, depth=4, fourier_features=512, fourier_scale=1/(2π√d),
activation='gelu') on N synthetic standardized inputs of d features (each feature of a
normal draw standardized to mean 0 and variance 1, so 2π bᵀx has variance about 1), B from
`ECRN(config).init`. The kernels do not depend on the width. For each N and dtype:

- time, in this one process: the native `ecrn_jax.infinite_kernel_fn(config, variables=...)`
  called as `kernel_fn(x)` (symmetric, NNGP and NTK; γ(x) is computed inside), and
  neural-tangents' `kernel_fn` of `ecrn_jax.kernels.stax_twin(config)` on γ(x) (precomputed, not
  timed), called as users call it (eager, `kernel_fn(g, None, ('nngp', 'ntk'))`) and jitted
  (`jax.jit(kernel_fn, static_argnames='get')`). One warm-up call (compilation), then the
  best of --repeats calls, each to `jax.block_until_ready`. "×" is nt's time over ours;
  "err" is max|native − nt| / max|nt| for the NTK and the NNGP (the worse of nt eager and nt
  jit), so the times are of equal results. With jax_enable_x64 on (main turns it on),
  neural-tangents returns float64 kernels for float32 γ(x): a note under such a row says so.
- peak memory of each side, each (side, N, dtype) in its own child process (this script
  re-invoked with --worker): peak RSS minus the RSS after the imports and the input set-up
  (for nt, γ(x) is part of the set-up), in MiB, for the first call (compilation included)
  and, in parentheses, for a second, warm call, after the memory the first one freed has been
  handed back to the OS (gc, a pause for PJRT's asynchronous frees, glibc malloc_trim): the
  compiled call's own working set. Both include the two N × N results. The peak is the
  high-water mark getrusage's ru_maxrss reports, read as VmHWM from /proc/self/status
  and reset through /proc/self/clear_refs after the set-up and between the two calls: in a
  child started by fork + exec, ru_maxrss itself also holds the parent's RSS at the fork
  (ru_maxrss, without resets, off Linux; '-' where the reset is not possible).

Where neural_tangents cannot be imported (it needs jax < 0.6) only the native side runs.

--big_n (0 skips): the big_n × big_n twin NTK (get='ntk', --big_dtype) with
`ecrn_jax.batch(ecrn_jax.infinite_kernel_fn(config, ...))` into an `np.memmap` in a temporary
directory (deleted afterwards), in a child process: wall time, the memmap's size, the peak RSS
over the set-up RSS, and the peak anonymous RSS (sampled every 20 ms from /proc/self/status
RssAnon: the process's own memory, without the memmap's file-backed pages, which the peak RSS
does count and the kernel can write back and drop at will). Bounded memory shows as a peak
anonymous RSS far below the memmap's size. The leading block and one off-diagonal block are
checked against `kernel_fn`.

Times depend on the load of the machine; the ratios, measured back to back, less so.
"""

import ctypes
import gc
import json
import logging
import math
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import warnings

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import jax
import numpy as np

FLAGS = flags.FLAGS
flags.DEFINE_list('sizes', ['2000', '5000'], 'Numbers of inputs N (kernels N × N).')
flags.DEFINE_list('dtypes', ['float64', 'float32'], 'Config dtypes.')
flags.DEFINE_integer('repeats', 2, 'Timed warm calls per (side, N, dtype); the best is shown.')
flags.DEFINE_integer('input_dim', 32, 'Input features d.')
flags.DEFINE_integer('width', 512, 'ECRN width (the kernels do not depend on it).')
flags.DEFINE_integer('depth', 4, 'ECRN residual blocks.')
flags.DEFINE_integer('fourier_features', 512, 'm (γ(x) has 2m features).')
flags.DEFINE_integer('seed', 0, 'Seed of the inputs and of B.')
flags.DEFINE_bool('memory', True, "Measure each side's peak memory in child processes.")
flags.DEFINE_integer('big_n', 20000, 'N of the tiled big_n × big_n NTK into a memmap; 0 skips.')
flags.DEFINE_enum('big_dtype', 'float64', ['float64', 'float32'], 'dtype of the big NTK.')
flags.DEFINE_integer('big_batch_size', 512, 'Tile edge of ecrn_jax.batch.')
flags.DEFINE_string(
    'worker',
    None,
    'Internal: "side,N,dtype,outfile" runs one measurement '
    'in this process (side: native, nt_eager, nt_jit or big).',
)

SIDES = ('native', 'nt_eager', 'nt_jit')
GET = ('nngp', 'ntk')
_WORKER_FLAGS = ('input_dim', 'width', 'depth', 'fourier_features', 'seed', 'big_batch_size')


def _config(dtype):
  import ecrn_jax  # pylint: disable=g-import-not-at-top

  return ecrn_jax.ECRNConfig(
      width=FLAGS.width,
      depth=FLAGS.depth,
      fourier_features=FLAGS.fourier_features,
      fourier_scale=1.0 / (2.0 * math.pi * math.sqrt(FLAGS.input_dim)),
      activation='gelu',
      dtype=dtype,
  )


def _setup(n, dtype):
  """(config, x (N, d) NumPy, variables): the same in the parent and in every child."""
  import ecrn_jax  # pylint: disable=g-import-not-at-top

  config = _config(dtype)
  x = np.random.default_rng(FLAGS.seed).normal(size=(n, FLAGS.input_dim))
  x = ((x - x.mean(axis=0)) / x.std(axis=0)).astype(dtype)
  variables = ecrn_jax.ECRN(config).init(jax.random.PRNGKey(FLAGS.seed), x[:1])
  return config, x, variables


def _import_nt():
  """neural_tangents, or the one-line reason it cannot be imported here."""
  try:
    import neural_tangents  # pylint: disable=g-import-not-at-top
  except Exception as e:  # pylint: disable=broad-except
    return None, f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}'
  return neural_tangents, None


def _side_fn(side, config, x, variables):
  """A thunk computing both kernels of (x, x) on `side`."""
  import ecrn_jax  # pylint: disable=g-import-not-at-top

  if side == 'native':
    kernel_fn = ecrn_jax.infinite_kernel_fn(config, variables=variables)
    return lambda: kernel_fn(x)
  _, _, kernel_fn = ecrn_jax.kernels.stax_twin(config)
  g = jax.block_until_ready(ecrn_jax.kernels.embed_inputs(config, x, variables))
  if side == 'nt_eager':
    return lambda: kernel_fn(g, None, GET)
  jitted = jax.jit(kernel_fn, static_argnames='get')
  return lambda: jitted(g, None, get=GET)


def _time(fn, repeats):
  """(result, first-call seconds, best of `repeats` warm calls)."""
  start = time.perf_counter()
  result = jax.block_until_ready(fn())
  first = time.perf_counter() - start
  best = math.inf
  for _ in range(max(repeats, 1)):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    best = min(best, time.perf_counter() - start)
  return result, first, best


def _status_mib(key):
  """A field of /proc/self/status in MiB (VmRSS, RssAnon, ...), or None off Linux."""
  try:
    with open('/proc/self/status', encoding='utf-8') as f:
      for line in f:
        if line.startswith(key + ':'):
          return int(line.split()[1]) / 1024.0
  except OSError:
    pass
  return None


def _peak_rss_mib():
  """This process's peak RSS: VmHWM where there is one, else getrusage's ru_maxrss.

  On Linux ru_maxrss is max(VmHWM, the RSS the process had before its exec), and a child
  started by fork + exec from this (large) parent would report the parent's RSS; VmHWM is
  the high-water mark of the child's own address space, and the one /proc/self/clear_refs
  resets.
  """
  hwm = _status_mib('VmHWM')
  if hwm is not None:
    return hwm
  kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return kib / 1024.0 if sys.platform != 'darwin' else kib / 2**20


def _rss_mib():
  rss = _status_mib('VmRSS')
  return _peak_rss_mib() if rss is None else rss


def _release_memory():
  """Returns freed memory to the OS, so that the next peak over the current RSS counts what a
  call needs rather than what the allocators still hold from before (PJRT frees buffers
  asynchronously, and glibc keeps freed memory in its per-thread arenas)."""
  gc.collect()
  time.sleep(0.5)
  try:
    ctypes.CDLL(None).malloc_trim(0)
  except (OSError, AttributeError):  # not glibc
    pass


def _reset_peak_rss():
  """Resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0); False where impossible."""
  try:
    with open('/proc/self/clear_refs', 'w', encoding='utf-8') as f:
      f.write('5')
  except OSError:
    return False
  return True


def _worker_small(side, n, dtype):
  if side != 'native':
    _import_nt()
  config, x, variables = _setup(n, dtype)
  fn = _side_fn(side, config, x, variables)
  _release_memory()
  reset = _reset_peak_rss()  # so that transients of the imports and set-up do not count
  base = _rss_mib()
  jax.block_until_ready(fn())
  first = _peak_rss_mib() - base
  warm = None
  _release_memory()
  if reset and _reset_peak_rss():
    base = _rss_mib()
    jax.block_until_ready(fn())
    warm = _peak_rss_mib() - base
  return {'first_mib': first, 'warm_mib': warm}


def _worker_big(n, dtype):
  import ecrn_jax  # pylint: disable=g-import-not-at-top

  config, x, variables = _setup(n, dtype)
  kernel_fn = ecrn_jax.infinite_kernel_fn(config, variables=variables)
  _release_memory()
  _reset_peak_rss()
  base, base_anon = _rss_mib(), _status_mib('RssAnon')
  peak_anon = [base_anon]
  done = threading.Event()

  def sample():
    while not done.wait(0.02):
      anon = _status_mib('RssAnon')
      if anon is not None:
        peak_anon[0] = max(peak_anon[0], anon)

  sampler = threading.Thread(target=sample, daemon=True)
  with tempfile.TemporaryDirectory() as tmp:
    out = np.memmap(os.path.join(tmp, 'ntk.dat'), dtype=np.dtype(dtype), mode='w+', shape=(n, n))
    if base_anon is not None:
      sampler.start()
    start = time.perf_counter()
    ecrn_jax.batch(
        ecrn_jax.infinite_kernel_fn(config, variables=variables),
        batch_size=FLAGS.big_batch_size,
        progress=True,
    )(x, get='ntk', out={'ntk': out})
    out.flush()
    wall = time.perf_counter() - start
    done.set()
    if base_anon is not None:
      sampler.join()
    peak = _peak_rss_mib()
    k = min(n, 500)
    lead = np.asarray(kernel_fn(x[:k], get='ntk'))
    off = np.asarray(kernel_fn(x[:k], x[n - k :], get='ntk'))
    err = max(
        float(np.abs(out[:k, :k] - lead).max() / np.abs(lead).max()),
        float(np.abs(out[:k, n - k :] - off).max() / np.abs(off).max()),
    )
    result = {
        'wall_s': wall,
        'memmap_mib': out.nbytes / 2**20,
        'peak_mib': peak - base,
        'peak_anon_mib': None if base_anon is None else peak_anon[0] - base_anon,
        'base_mib': base,
        'check_err': err,
        'check_k': k,
        'finite': bool(np.isfinite(out[:: max(1, n // 1000)]).all()),
    }
    del out
  return result


def worker(spec):
  side, n, dtype, outfile = spec.split(',')
  n = int(n)
  result = _worker_big(n, dtype) if side == 'big' else _worker_small(side, n, dtype)
  with open(outfile, 'w', encoding='utf-8') as f:
    json.dump(result, f)


def _run_worker(side, n, dtype, tmp, stream=False):
  """Runs one child; (result dict, None) or (None, the last line of its error)."""
  out = os.path.join(tmp, f'{side}_{n}_{dtype}.json')
  cmd = [sys.executable, os.path.abspath(__file__), f'--worker={side},{n},{dtype},{out}']
  cmd += [f'--{name}={getattr(FLAGS, name)}' for name in _WORKER_FLAGS]
  proc = subprocess.run(
      cmd,
      stdout=None if stream else subprocess.PIPE,
      stderr=None if stream else subprocess.PIPE,
      text=True,
      check=False,
  )
  if proc.returncode != 0 or not os.path.exists(out):
    lines = (proc.stderr or '').strip().splitlines()
    return None, lines[-1] if lines else f'exit status {proc.returncode}'
  with open(out, encoding='utf-8') as f:
    return json.load(f), None


def _rel_err(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.abs(a - b).max() / np.abs(b).max())


def _mem_cell(stats, error):
  if stats is None:
    return f'{"fail":>13}' if error else f'{"-":>13}'
  warm = '-' if stats['warm_mib'] is None else f'{stats["warm_mib"]:.0f}'
  return f'{stats["first_mib"]:>6.0f} ({warm:>4})'


def _print_header(nt, nt_reason, sides) -> None:
  cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
  devices = jax.devices()
  print(
      f'machine: {os.cpu_count()} cores ({cores} usable), load average '
      f'{" ".join(f"{v:.1f}" for v in os.getloadavg())}; jax {jax.__version__}, backend '
      f'{jax.default_backend()} ({len(devices)} × {devices[0].device_kind}); '
      f'neural_tangents {nt.__version__ if nt else "-"}'
  )
  config = _config('float64')
  print(
      f'twin: ECRN depth {config.depth}, {config.activation}, γ(x) of '
      f'{2 * config.fourier_features} features, σ_ff = 1/(2π√{FLAGS.input_dim}) = '
      f'{config.fourier_scale:.4g}; inputs (N, {FLAGS.input_dim}) standardized normal, seed '
      f'{FLAGS.seed}; kernels NNGP + NTK, symmetric (x2=None)'
  )
  if nt is None:
    print(f'neural_tangents cannot be imported here ({nt_reason}): native times only.')
  print(
      f'times: best of {FLAGS.repeats} warm calls, s. × = nt / native. err = max|native − nt|'
      f' / max|nt|. mem: peak RSS over set-up RSS, MiB, first call (warm call)'
      + ('' if FLAGS.memory else ' [--nomemory: skipped]')
      + '\n'
  )
  print(
      f'{"N":>6} {"dtype":>7} {"native s":>9} {"nt eager s":>10} {"nt jit s":>9} '
      f'{"eager ×":>8} {"jit ×":>6} {"err NTK":>8} {"err NNGP":>8}   '
      + ' '.join(f'{"mem " + s:>13}' for s in sides)
  )


def _compare_row(n: int, dtype: str, nt, sides, tmp: str) -> None:
  """Times every side at (n, dtype), compares their kernels, measures memory; prints a row."""
  config, x, variables = _setup(n, dtype)
  results, times = {}, {}
  for side in sides:
    results[side], _, times[side] = _time(_side_fn(side, config, x, variables), FLAGS.repeats)
  notes = []
  if nt is not None:
    errs = {
        name: max(
            _rel_err(getattr(results['native'], name), getattr(results[side], name))
            for side in ('nt_eager', 'nt_jit')
        )
        for name in GET
    }
    nt_dtypes = sorted({str(results[side].ntk.dtype) for side in ('nt_eager', 'nt_jit')})
    if nt_dtypes != [dtype]:
      notes.append(
          f'nt returns {"/".join(nt_dtypes)} kernels for {dtype} γ(x) (with '
          f'jax_enable_x64 on), so its side of this row is not all {dtype} '
          f'arithmetic; native returns {results["native"].ntk.dtype}'
      )
  del results
  mem = {side: _run_worker(side, n, dtype, tmp) if FLAGS.memory else (None, None) for side in sides}
  t_nat = times['native']
  row = f'{n:>6} {dtype:>7} {t_nat:>9.3f} '
  if nt is not None:
    row += (
        f'{times["nt_eager"]:>10.3f} {times["nt_jit"]:>9.3f} '
        f'{times["nt_eager"] / t_nat:>8.1f} {times["nt_jit"] / t_nat:>6.1f} '
        f'{errs["ntk"]:>8.1e} {errs["nngp"]:>8.1e}   '
    )
  else:
    row += f'{"-":>10} {"-":>9} {"-":>8} {"-":>6} {"-":>8} {"-":>8}   '
  row += ' '.join(_mem_cell(*mem[side]) for side in sides)
  print(row, flush=True)
  for note in notes:
    print(f'       note: {note}')
  for side in sides:
    if mem[side][1]:
      print(f'       memory child {side} failed: {mem[side][1]}')


def _big_kernel(tmp: str) -> None:
  n, dtype = FLAGS.big_n, FLAGS.big_dtype
  print(
      f'\nbig: {n} × {n} NTK ({dtype}) with ecrn_jax.batch, tiles of '
      f'{FLAGS.big_batch_size}, into an np.memmap in a temporary directory (child '
      'process; progress on stderr)',
      flush=True,
  )
  stats, error = _run_worker('big', n, dtype, tmp, stream=True)
  if stats is None:
    print(f'big: failed: {error}')
    return
  anon = '-' if stats['peak_anon_mib'] is None else f'{stats["peak_anon_mib"]:.0f} MiB'
  print(
      f'big: wall {stats["wall_s"]:.1f} s ({n * n / stats["wall_s"] / 1e6:.1f} M '
      f'entries/s); memmap {stats["memmap_mib"]:.0f} MiB '
      f'({stats["memmap_mib"] / 1024:.2f} GiB)'
  )
  print(
      f'big: peak anonymous RSS over set-up {anon}; peak RSS (VmHWM, counts the '
      f'memmap\'s file-backed pages) over set-up {stats["peak_mib"]:.0f} MiB; '
      f'set-up RSS {stats["base_mib"]:.0f} MiB'
  )
  print(
      f'big: leading and off-diagonal {stats["check_k"]}² blocks against kernel_fn: '
      f'rel. max err {stats["check_err"]:.1e}; finite: {stats["finite"]}'
  )


def main(argv):
  del argv
  jax.config.update('jax_enable_x64', True)
  logging.getLogger('jax._src.xla_bridge').setLevel(logging.WARNING)  # "no rocm/tpu" notes
  warnings.filterwarnings('ignore', message='`FanIn` layers assume independent inputs')
  if FLAGS.worker:
    worker(FLAGS.worker)
    return
  nt, nt_reason = _import_nt()
  sides = SIDES if nt is not None else ('native',)
  _print_header(nt, nt_reason, sides)
  with tempfile.TemporaryDirectory() as tmp:
    for n in map(int, FLAGS.sizes):
      for dtype in FLAGS.dtypes:
        _compare_row(n, dtype, nt, sides, tmp)
    if FLAGS.big_n:
      _big_kernel(tmp)


if __name__ == '__main__':
  app.run(main)
