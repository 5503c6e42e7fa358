# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Deprecated module attributes: an old spelling resolves for one release, with a warning.

As jax does: a public module keeps a table {old name: (new spelling, object)} and a module-level
`__getattr__` made by `deprecation_getattr`, called only for names the module does not define.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping
import warnings


def deprecation_message(module: str, name: str, new: str) -> str:
  """What `module.name` warns: that it is deprecated, and the spelling to use instead."""
  return (
      f'{module}.{name} is deprecated and will be removed in the next release: use {new} '
      'instead.'
  )


def deprecation_getattr(
    module: str, deprecated: Mapping[str, tuple[str, Any]], *, stacklevel: int = 2
) -> Callable[[str], Any]:
  """A module `__getattr__` that returns `deprecated[name][1]` with a DeprecationWarning.

  Args:
    module: the module's name, e.g. 'ecrn_jax'.
    deprecated: old name → (new spelling, the object it names).
    stacklevel: of the warning: 2 points at the caller of `__getattr__`; 3 when the module's
      own `__getattr__` calls this one.
  Returns:
    `__getattr__(name)`; unknown names raise AttributeError.

  >>> getattr_ = deprecation_getattr('pkg', {'old': ('pkg.new', 42)})
  >>> import warnings
  >>> with warnings.catch_warnings(record=True) as caught:
  ...   warnings.simplefilter('always')
  ...   value = getattr_('old')
  >>> value, str(caught[0].message).split(':')[0]
  (42, 'pkg.old is deprecated and will be removed in the next release')
  """

  def __getattr__(name: str) -> Any:  # pylint: disable=invalid-name
    if name in deprecated:
      new, value = deprecated[name]
      warnings.warn(
          deprecation_message(module, name, new), DeprecationWarning, stacklevel=stacklevel
      )
      return value
    raise AttributeError(f'module {module!r} has no attribute {name!r}')

  return __getattr__
