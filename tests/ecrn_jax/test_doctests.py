# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The `>>>` examples of the public API run as doctests, and every public function has one.

Each public name's docstring is collected with `doctest.DocTestFinder` (the public modules
re-export from `ecrn_jax._src`, so `doctest.testmod` on them would find nothing) and run with
64-bit JAX, as the rest of the suite (tests/conftest.py). The examples are tiny: the whole run
takes a few seconds.
"""

import doctest
import importlib
import inspect
import types

import pytest

import utils

PUBLIC_MODULES = utils.PUBLIC_MODULES


def _public_names():
  for module_name in PUBLIC_MODULES:
    module = importlib.import_module(module_name)
    for name in module.__all__:
      value = getattr(module, name)
      if not isinstance(value, types.ModuleType):
        yield module_name, name, value


PUBLIC = sorted({f'{m}.{n}': v for m, n, v in _public_names()}.items())


def _examples(qualified, value):
  finder = doctest.DocTestFinder(recurse=False)
  return [t for t in finder.find(value, qualified, globs={}) if t.examples]


@pytest.mark.parametrize('qualified, value', PUBLIC, ids=[q for q, _ in PUBLIC])
@pytest.mark.x64
def test_docstring_examples_run(qualified, value):
  tests = _examples(qualified, value)
  if not tests:
    pytest.skip('no example')
  runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
  for test in tests:
    runner.run(test)
  result = runner.summarize(verbose=False)
  assert result.failed == 0, f'{qualified}: {result.failed} of {result.attempted} examples failed'


def test_every_public_function_has_an_example():
  missing = [
      qualified
      for qualified, value in PUBLIC
      if inspect.isfunction(value) and not _examples(qualified, value)
  ]
  assert not missing, missing
