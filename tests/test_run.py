"""The main job, end to end, as a user runs it."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args):
  return subprocess.run([sys.executable, '-m', 'experiments.run', *args], cwd=REPO,
                        capture_output=True, text=True, timeout=600)


def test_smoke_run_writes_results(tmp_path):
  result = _run('--config=finite_vs_infinite:smoke', f'--workdir={tmp_path}')
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'relative max error' in result.stdout and 'fitted slope' in result.stdout
  results = json.loads((tmp_path / 'results.json').read_text())
  assert results['empirical_ntk_vs_jacobian'] < 1e-10
  if 'empirical_ntk_vs_neural_tangents' in results:      # only where neural_tangents imports
    assert results['empirical_ntk_vs_neural_tangents'] < 1e-10
  assert results['ntk']['widths'] == [32, 64, 128]
  # Errors shrink with width even in the smoke run.
  assert results['ntk']['mean_relative_error'][-1] < results['ntk']['mean_relative_error'][0]


def test_unknown_config_lists_valid_names():
  result = _run('--config=cifar_everything')
  assert result.returncode != 0
  assert 'finite_vs_infinite' in result.stderr and 'cifar_everything' in result.stderr
  for name in ('synthetic_regression', 'synthetic_classification', 'boston', 'iris', 'wine',
               'cifar_subset'):
    assert name in result.stderr
  result = _run('--config=finite_vs_infinite:huge')
  assert result.returncode != 0 and 'smoke' in result.stderr
