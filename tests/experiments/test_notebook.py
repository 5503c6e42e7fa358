# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The Colab notebook experiments/notebooks/finite_vs_infinite.ipynb runs top to bottom.

It is executed with nbclient in its tiny mode (ECRN_NOTEBOOK_SIZE=tiny: every cell runs, at sizes
too small for its numbers to mean anything; the smallest mode for a reader is 'small'). The kernel is pinned to this interpreter: a kernelspec written to a temporary
directory whose argv starts with sys.executable, so a user-level 'python3' kernelspec pointing
at another Python cannot be picked up; a cell appended to the in-memory copy checks it.
"""

import json
import os
import sys

import pytest

nbformat = pytest.importorskip(
    'nbformat', reason='the notebook test needs nbformat (pip install nbclient ipykernel)'
)
nbclient = pytest.importorskip(
    'nbclient', reason='the notebook test needs nbclient (pip install nbclient ipykernel)'
)
pytest.importorskip(
    'ipykernel',
    reason='the notebook test needs ipykernel in this environment '
    '(pip install nbclient ipykernel)',
)
from jupyter_client.kernelspec import KernelSpecManager  # pylint: disable=g-import-not-at-top
from jupyter_client.manager import AsyncKernelManager  # pylint: disable=g-import-not-at-top

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOTEBOOK = os.path.join(REPO, 'experiments', 'notebooks', 'finite_vs_infinite.ipynb')
CELL_TIMEOUT_S = 600
FIGURES = ('1_convergence', '2_spectra', '3_kernel_movement', '4_regression', '5_stochastic_depth')


def _read():
  return nbformat.read(NOTEBOOK, as_version=4)


def test_notebook_is_committed_without_outputs():
  nb = _read()
  nbformat.validate(nb)
  for i, cell in enumerate(nb.cells):
    if cell.cell_type == 'code':
      assert not cell.outputs and cell.execution_count is None, (
          f'cell {i} has stored outputs: strip them before committing '
          '(jupyter nbconvert --clear-output --inplace <notebook>).'
      )


def test_first_code_cell_installs_only_when_missing():
  first = next(c for c in _read().cells if c.cell_type == 'code').source
  assert 'REPO_URL =' in first and 'import ecrn_jax' in first and 'except ImportError' in first


def _kernel_manager(spec_dir):
  """An AsyncKernelManager whose 'python3' kernel is this interpreter."""
  os.makedirs(os.path.join(spec_dir, 'python3'))
  with open(os.path.join(spec_dir, 'python3', 'kernel.json'), 'w') as fp:
    json.dump(
        {
            'argv': [sys.executable, '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
            'display_name': 'Python 3 (test)',
            'language': 'python',
        },
        fp,
    )
  specs = KernelSpecManager(kernel_dirs=[spec_dir])
  assert specs.get_kernel_spec('python3').argv[0] == sys.executable
  return AsyncKernelManager(kernel_name='python3', kernel_spec_manager=specs)


@pytest.mark.slow
def test_notebook_runs_in_tiny_mode(tmp_path, monkeypatch):
  figures = tmp_path / 'figures'
  monkeypatch.setenv('ECRN_NOTEBOOK_SIZE', 'tiny')
  monkeypatch.setenv('ECRN_NOTEBOOK_FIGDIR', str(figures))
  monkeypatch.setenv('TF_CPP_MIN_LOG_LEVEL', '3')
  nb = _read()
  nb.cells.append(nbformat.v4.new_code_cell('import sys\nprint("KERNEL_PREFIX=" + sys.prefix)'))
  client = nbclient.NotebookClient(
      nb,
      km=_kernel_manager(str(tmp_path / 'kernels')),
      timeout=CELL_TIMEOUT_S,
      kernel_name='python3',
      resources={'metadata': {'path': str(tmp_path)}},
  )
  client.execute()  # raises CellExecutionError (with the cell and traceback) on any error
  printed = ''.join(
      out.get('text', '')
      for cell in nb.cells
      if cell.cell_type == 'code'
      for out in cell.outputs
      if out.output_type == 'stream'
  )
  assert f'KERNEL_PREFIX={sys.prefix}' in printed, 'the kernel ran in another environment'
  assert 'size: tiny (from the environment variable' in printed and 'total:' in printed
  for name in FIGURES:
    assert (figures / f'{name}.png').is_file(), f'figure {name} was not produced'
