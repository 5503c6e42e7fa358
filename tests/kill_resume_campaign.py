# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""SIGKILL campaign: a run killed many times at random moments resumes to the same results.

Not a test (several minutes): a program whose figures go into the closing notes.

  python tests/kill_resume_campaign.py --kills=12 --seed=0

One uninterrupted reference run and one run that is killed (SIGKILL) and restarted on the
same workdir until it finishes, both of `synthetic_regression:smoke` with a search (2 trials a
model), two seeds, the trained MLP and NTK-ECRN (kernel-tracked) and the twin's kernel
regression, 8 epochs with a checkpoint every epoch. Kill moments alternate between a
random delay after the start (start-up plus, on average, 1/kills of the run) and the moment a checkpoint is being written (an
orbax temporary directory or a tracker file appears: mid-checkpoint). Compared afterwards:
results.json and search.json without timings, equal; metrics.jsonl with one line per
(seed, model, epoch) and the same values; every tracking.npz array equal. Exit status 0 when
all hold.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import random
import signal
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'tests'))

import utils  # pylint: disable=g-import-not-at-top,wrong-import-position

ARGS = (
    '--config=synthetic_regression:smoke',
    '--config.models=mlp',
    '--config.models=ntk_ecrn',
    '--config.models=ntk_ecrn_infinite',
    '--config.seeds=(0, 1)',
    '--config.train.epochs=8',
    '--config.checkpoint_every=1',
)


def _writes_in_progress(workdir: pathlib.Path) -> set[str]:
  """Checkpoint files being written: orbax's temporary step directories and the temporary
  files of atomic writes beside them (a tracker npz)."""
  found = set()
  for path in workdir.rglob('*'):
    name = path.name
    if 'orbax-checkpoint-tmp' in name or (name.endswith('.tmp') and 'checkpoints' in path.parts):
      found.add(str(path.relative_to(workdir)))
  return found


def _one_attempt(workdir: pathlib.Path, how: str, delay: float) -> tuple[str, float]:
  """Starts the run; kills it per `how`. Returns (outcome, seconds)."""
  before = _writes_in_progress(workdir) if workdir.exists() else set()
  start = time.time()
  proc = utils.cli(*ARGS, f'--workdir={workdir}')
  deadline = start + (delay if how == 'random' else 600)
  caught = ''
  while proc.poll() is None:
    if how == 'checkpoint' and workdir.exists():
      new = _writes_in_progress(workdir) - before
      if new:
        caught = f' while writing {sorted(new)[0]}'
        break
    if time.time() > deadline:
      break
    time.sleep(0.002)
  if proc.poll() is not None:
    _, err = proc.communicate()
    if proc.returncode != 0:
      raise SystemExit(f'run failed (exit {proc.returncode}):\n{err[-3000:]}')
    return 'finished', time.time() - start
  proc.send_signal(signal.SIGKILL)
  proc.communicate()
  return f'killed ({how}{caught})', time.time() - start


def _metrics(workdir: pathlib.Path) -> list:
  lines = [json.loads(l) for l in (workdir / 'metrics.jsonl').read_text().splitlines()]
  return [utils.without_timings(l) for l in lines]


def _compare(reference: pathlib.Path, killed: pathlib.Path) -> list[str]:
  import numpy as np  # pylint: disable=g-import-not-at-top

  problems = []
  for name in ('results.json', 'search.json'):
    a = utils.without_timings(json.loads((reference / name).read_text()))
    b = utils.without_timings(json.loads((killed / name).read_text()))
    if a != b:
      problems.append(f'{name} differs')
  a, b = _metrics(reference), _metrics(killed)
  keys = [(l.get('seed'), l.get('model'), l.get('epoch')) for l in b]
  if len(keys) != len(set(keys)):
    problems.append('metrics.jsonl has duplicate lines')
  if sorted(map(json.dumps, a)) != sorted(map(json.dumps, b)):
    problems.append('metrics.jsonl differs')
  for path in sorted(reference.rglob('tracking.npz')):
    x, y = np.load(path), np.load(killed / path.relative_to(reference))
    for key in x.files:
      if key != 'seconds' and not np.array_equal(x[key], y[key], equal_nan=True):
        problems.append(f'{path.relative_to(reference)}[{key}] differs')
  return problems


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--kills', type=int, default=12)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--workdir', default=None)
  args = parser.parse_args()
  root = pathlib.Path(args.workdir or tempfile.mkdtemp(prefix='kill_campaign_'))
  reference, killed = root / 'reference', root / 'killed'
  start = time.time()
  code, _, err = utils.run_cli(*ARGS, f'--workdir={reference}')
  if code:
    raise SystemExit(err[-3000:])
  total = time.time() - start
  print(f'reference run: {total:.1f} s', flush=True)
  rng = random.Random(args.seed)
  kills, attempts = 0, 0
  while True:
    how = 'checkpoint' if attempts % 2 else 'random'
    # Start-up (~3 s) plus on average 1/kills of the run: the kills spread over all of it.
    delay = 3.0 + rng.uniform(0.0, 2.0 * total / args.kills)
    if kills >= args.kills:
      how, delay = 'none', 1e9
    outcome, seconds = _one_attempt(killed, how, delay)
    attempts += 1
    print(f'attempt {attempts}: {outcome} after {seconds:.1f} s', flush=True)
    if outcome == 'finished':
      break
    kills += 1
  problems = _compare(reference, killed)
  print(f'{kills} SIGKILLs over {attempts} attempts; ' + ('; '.join(problems) or 'results equal'))
  return 1 if problems else 0


if __name__ == '__main__':
  sys.exit(main())
