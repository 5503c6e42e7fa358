# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The public API: every exported name resolves, `dir` shows them all, and nothing outside the
library reaches into `ecrn_jax._src`."""

import ast
import importlib
import pathlib

import pytest

import ecrn_jax

REPO = pathlib.Path(__file__).resolve().parents[2]
PUBLIC_MODULES = (
    'ecrn_jax',
    'ecrn_jax.analysis',
    'ecrn_jax.regression',
    'ecrn_jax.io',
    'ecrn_jax.estimators',
)


@pytest.mark.parametrize('name', PUBLIC_MODULES)
def test_every_exported_name_resolves_and_is_listed(name):
  module = importlib.import_module(name)
  assert module.__all__ and len(module.__all__) == len(set(module.__all__))
  missing = [n for n in module.__all__ if not hasattr(module, n)]
  assert not missing, missing
  assert set(module.__all__) <= set(dir(module))


def test_lazy_estimators_are_listed_and_load():
  assert {'NTKRegressor', 'NTKClassifier', 'estimators'} <= set(dir(ecrn_jax))
  assert ecrn_jax.NTKRegressor is importlib.import_module('ecrn_jax.estimators').NTKRegressor
  with pytest.raises(AttributeError, match='no attribute'):
    ecrn_jax.no_such_name  # pylint: disable=pointless-statement


def _imports(path: pathlib.Path) -> set[str]:
  names = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      names.update(a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      names.add(node.module)
      names.update(f'{node.module}.{a.name}' for a in node.names)
  return names


def test_experiments_and_benchmarks_use_the_public_api_only():
  offenders = []
  for folder in ('experiments', 'benchmarks'):
    for path in sorted((REPO / folder).rglob('*.py')):
      if any(name.startswith('ecrn_jax._src') for name in _imports(path)):
        offenders.append(str(path.relative_to(REPO)))
  for path in sorted((REPO / 'experiments').rglob('*.ipynb')):
    if 'ecrn_jax._src' in path.read_text():
      offenders.append(str(path.relative_to(REPO)))
  assert not offenders, offenders
