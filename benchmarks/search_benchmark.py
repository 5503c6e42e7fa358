# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

r"""A search slice the old way and the new way, one child process each, side by side.

  python -m benchmarks.search_benchmark                     # Iris, seeds 0 1, mlp ntk_ecrn resnet18
  python -m benchmarks.search_benchmark --models=mlp --epochs=5           # quick
  python -m benchmarks.search_benchmark --old_ref=HEAD~3 --new_ref=HEAD

Each side is a source tree: --old_ref and --new_ref name git revisions of this repository,
extracted with `git archive` into a temporary directory ('' for --new_ref: this checkout as
it is, uncommitted changes included). The default old side, 2f9a659, is the tree just before
the first compile-once commit (issue 24). Each side runs, in its own child process started from
its tree (which the child checks it imports), one run of

  python -m experiments.run --config=CONFIG --config.seeds=SEEDS --config.models=M ...
      --config.train.epochs=EPOCHS --workdir=<temporary>

with JAX_LOG_COMPILES=1, and the persistent compilation cache off, so both sides compile
everything they run. Printed for each side, and new over old:
- wall: the child's wall time, start to exit (imports included);
- compile s: the sum of jax's "Finished XLA compilation of ... in X sec" lines (backend
  compilation; tracing and lowering are in "trace+lower s");
- compilations: the number of "Compiling" lines (jax logs one per lowered program);
- trials/s: result.json files the run wrote (search trials and units) per second of wall;
- peak RSS: the child's VmHWM; and "RSS at trials": the child's resident memory when the
  run had written 50, 100, ... result files (--rss_every), sampled every 0.5 s: flat after
  warm-up is the target, growth per trial shows as a rising row.
Wall times depend on the load of the machine; run nothing else beside it. The two sides run
one after the other; the ratios are the point.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

_OLD_REF = flags.DEFINE_string('old_ref', '2f9a659', 'The old side: a git revision.')
_NEW_REF = flags.DEFINE_string('new_ref', '', "The new side: a git revision ('': this checkout).")
_CONFIG = flags.DEFINE_string('config', 'iris', 'The config (experiments/configs/NAME.py).')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1'], 'config.seeds.')
_MODELS = flags.DEFINE_list('models', ['mlp', 'ntk_ecrn', 'resnet18'], 'config.models.')
_EPOCHS = flags.DEFINE_integer('epochs', 20, 'config.train.epochs.')
_RSS_EVERY = flags.DEFINE_integer('rss_every', 50, 'RSS row every this many result files.')
_KEEP = flags.DEFINE_string('keep', '', 'A directory to keep the workdirs and logs in.')

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Run in the child, from the side's source tree: samples the RSS and the number of result
# files, then runs experiments.run as `python -m` would. argv: src workdir summary run-args...
_CHILD = r"""
import atexit, json, os, runpy, sys, threading, time
src, workdir, summary, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
sys.path.insert(0, src)
import ecrn_jax, experiments
for module in (ecrn_jax, experiments):
  if not os.path.abspath(module.__file__).startswith(os.path.abspath(src) + os.sep):
    sys.exit(f'{module.__name__} imported from {module.__file__}, not from {src}')
samples, start = [], time.perf_counter()

def status(field):
  with open('/proc/self/status') as f:
    for line in f:
      if line.startswith(field + ':'):
        return int(line.split()[1]) * 1024
  return 0

def results():
  return sum('result.json' in names for _, _, names in os.walk(workdir))

def sample():
  while True:
    samples.append((time.perf_counter() - start, status('VmRSS'), results()))
    time.sleep(0.5)

def write():
  samples.append((time.perf_counter() - start, status('VmRSS'), results()))
  with open(summary, 'w') as f:
    json.dump(dict(peak_rss=status('VmHWM'), samples=samples), f)

atexit.register(write)
threading.Thread(target=sample, daemon=True).start()
sys.argv = ['experiments.run'] + args
runpy.run_module('experiments.run', run_name='__main__', alter_sys=True)
"""


def _source(ref: str, scratch: str, name: str) -> str:
  """The source tree of `ref` ('' : this checkout), extracted under `scratch`."""
  if not ref:
    return _REPO
  directory = os.path.join(scratch, name)
  os.makedirs(directory)
  archive = subprocess.run(
      ['git', '-C', _REPO, 'archive', ref], check=True, capture_output=True
  ).stdout
  subprocess.run(['tar', '-x', '-C', directory], input=archive, check=True)
  return directory


def _run_side(src: str, scratch: str, name: str) -> dict:
  """One run of the slice from `src`; its figures."""
  workdir = os.path.join(scratch, f'{name}-workdir')
  summary = os.path.join(scratch, f'{name}-summary.json')
  log = os.path.join(scratch, f'{name}.log')
  args = [f'--config={os.path.join(src, "experiments", "configs", _CONFIG.value + ".py")}']
  args.append(f"--config.seeds=({', '.join(_SEEDS.value)},)")
  args += [f'--config.models={m}' for m in _MODELS.value]
  args += [f'--config.train.epochs={_EPOCHS.value}', f'--workdir={workdir}']
  env = dict(
      os.environ,
      JAX_LOG_COMPILES='1',
      JAX_ENABLE_COMPILATION_CACHE='false',
      PYTHONPATH=src,
  )
  start = time.perf_counter()
  with open(log, 'w', encoding='utf-8') as stderr:
    proc = subprocess.run(
        [sys.executable, '-c', _CHILD, src, workdir, summary] + args,
        cwd=src,
        env=env,
        stdout=stderr,
        stderr=subprocess.STDOUT,
        check=False,
    )
  wall = time.perf_counter() - start
  with open(log, encoding='utf-8', errors='replace') as f:
    text = f.read()
  if proc.returncode != 0:
    raise RuntimeError(f'{name}: exit {proc.returncode}; the end of {log}:\n{text[-3000:]}')
  seconds = lambda pattern: sum(float(s) for s in re.findall(pattern, text))
  with open(summary, encoding='utf-8') as f:
    memory = json.load(f)
  samples = memory['samples']
  rss_at = {}
  for _, rss, count in samples:
    mark = count // _RSS_EVERY.value * _RSS_EVERY.value
    if mark and mark not in rss_at:
      rss_at[mark] = rss
  return dict(
      wall=wall,
      compile=seconds(r'Finished XLA compilation of .* in ([0-9.eE+-]+) sec'),
      trace_lower=seconds(r'Finished tracing .* in ([0-9.eE+-]+) sec')
      + seconds(r'Finished jaxpr to MLIR module conversion .* in ([0-9.eE+-]+) sec'),
      compilations=len(re.findall(r'Compiling ', text)),
      results=samples[-1][2],
      peak_rss=memory['peak_rss'],
      rss_at=rss_at,
  )


def main(argv):
  del argv
  with tempfile.TemporaryDirectory(prefix='search_benchmark-') as tmp:
    scratch = _KEEP.value or tmp
    os.makedirs(scratch, exist_ok=True)
    sides = {}
    for name, ref in (('old', _OLD_REF.value), ('new', _NEW_REF.value)):
      src = _source(ref, scratch, name)
      print(f'{name}: {ref or "this checkout"} ({src}) ...', flush=True)
      sides[name] = _run_side(src, scratch, name)
  gib = 2.0**30
  rows = [
      ('wall s', lambda s: s['wall'], '{:.1f}'),
      ('compile s', lambda s: s['compile'], '{:.1f}'),
      ('trace+lower s', lambda s: s['trace_lower'], '{:.1f}'),
      ('compile share of wall', lambda s: s['compile'] / s['wall'], '{:.0%}'),
      ('compilations', lambda s: s['compilations'], '{:d}'),
      ('result files', lambda s: s['results'], '{:d}'),
      ('trials/s', lambda s: s['results'] / s['wall'], '{:.2f}'),
      ('peak RSS GiB', lambda s: s['peak_rss'] / gib, '{:.2f}'),
  ]
  print(
      f"\n{_CONFIG.value}, seeds {','.join(_SEEDS.value)}, models {','.join(_MODELS.value)},"
      f' {_EPOCHS.value} epochs'
  )
  print(f"{'':24s}{'old':>10s}{'new':>10s}{'new/old':>10s}")
  for label, value, form in rows:
    old, new = value(sides['old']), value(sides['new'])
    ratio = f'{new / old:.2f}' if old else '-'
    print(f'{label:24s}{form.format(old):>10s}{form.format(new):>10s}{ratio:>10s}')
  for name, side in sides.items():
    trail = ', '.join(f'{k}: {v / gib:.2f}' for k, v in sorted(side['rss_at'].items()))
    print(f'RSS GiB at result files ({name}): {trail or "-"}')


if __name__ == '__main__':
  app.run(main)
