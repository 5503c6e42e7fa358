# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Files written by ecrn_jax: atomic, readable under the user's umask, no pickle anywhere.

Every file is written to a temporary name in its directory and renamed over the target, so a
reader (or a resumed run) sees the old file or the new one, never half of one. Temporary
files are created 0600 by `tempfile.mkstemp`; they are given the mode the user's umask
implies (0644 usually) before the rename, as `open()` would have. Arrays go to `.npz` and are
read back with `allow_pickle=False`; everything else is JSON, with non-finite numbers as null.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
from typing import Any, Iterator, Mapping, Optional

import numpy as np


def jsonable(value: Any) -> Any:
  """`value` with arrays as lists, NumPy scalars as Python ones and NaN/inf as None.

  >>> import numpy as np
  >>> from ecrn_jax import files
  >>> files.jsonable({'a': np.arange(2), 'b': np.float32(0.5), 'c': float('nan')})
  {'a': [0, 1], 'b': 0.5, 'c': None}
  """
  if isinstance(value, Mapping):
    return {k: jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [jsonable(v) for v in value]
  if hasattr(value, '__array__') and not isinstance(value, (str, bytes)):
    return jsonable(np.asarray(value).tolist())
  if isinstance(value, (np.floating, float)):
    value = float(value)
    return value if math.isfinite(value) else None
  if isinstance(value, np.integer):
    return int(value)
  if isinstance(value, np.bool_):
    return bool(value)
  return value


def _umask() -> int:
  """The process umask, read from /proc where it can be (setting it to read it, as os.umask
  must, would race with other threads creating files); else by os.umask."""
  try:
    with open('/proc/self/status', encoding='utf-8') as f:
      for line in f:
        if line.startswith('Umask:'):
          return int(line.split()[1], 8)
  except OSError:
    pass
  mask = os.umask(0)
  os.umask(mask)
  return mask


@contextlib.contextmanager
def atomic_open(path: str, mode: str = 'w') -> Iterator[Any]:
  """Opens a temporary file beside `path`; on a clean exit it is synced and renamed to `path`.

  An exception leaves `path` as it was and removes the temporary file.

  >>> import os, tempfile
  >>> from ecrn_jax import files
  >>> directory = tempfile.mkdtemp()
  >>> path = os.path.join(directory, 'note.txt')
  >>> with files.atomic_open(path) as f:
  ...   _ = f.write('done')
  >>> open(path).read()
  'done'
  """
  directory = os.path.dirname(path) or '.'
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(
      dir=directory, prefix='.' + os.path.basename(path) + '.', suffix='.tmp'
  )
  try:
    os.fchmod(fd, 0o666 & ~_umask())
    with os.fdopen(fd, mode, encoding=None if 'b' in mode else 'utf-8') as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


_TEMPORARY = re.compile(r'^\..+\.[A-Za-z0-9_]{8}\.tmp$')  # atomic_open's mkstemp names


def remove_stale_temporaries(directory: str) -> list[str]:
  """Deletes the temporary files that `atomic_open` left under `directory` when its process was
  killed mid-write (`.<name>.<8 characters>.tmp`, nothing else); returns their paths.

  >>> import os, tempfile
  >>> from ecrn_jax import files
  >>> directory = tempfile.mkdtemp()
  >>> files.remove_stale_temporaries(directory)
  []
  """
  removed = []
  for root, _, files in os.walk(directory):
    for name in files:
      if _TEMPORARY.match(name):
        path = os.path.join(root, name)
        try:
          os.remove(path)
          removed.append(path)
        except FileNotFoundError:
          pass
  return sorted(removed)


def write_json(path: str, obj: Any, indent: Optional[int] = 1) -> None:
  """Writes `jsonable(obj)` to `path` atomically.

  >>> import os, tempfile
  >>> from ecrn_jax import files
  >>> directory = tempfile.mkdtemp()
  >>> files.write_json(os.path.join(directory, 'a.json'), {'x': 1, 'y': float('inf')})
  >>> files.read_json(os.path.join(directory, 'a.json'))
  {'x': 1, 'y': None}
  """
  with atomic_open(path) as f:
    json.dump(jsonable(obj), f, indent=indent, allow_nan=False)


def read_json(path: str) -> Any:
  """The JSON content of `path` (ValueError, naming the file, when it is not valid JSON).

  >>> import os, tempfile
  >>> from ecrn_jax import files
  >>> directory = tempfile.mkdtemp()
  >>> files.write_json(os.path.join(directory, 'a.json'), [1, 2])
  >>> files.read_json(os.path.join(directory, 'a.json'))
  [1, 2]
  """
  with open(path, encoding='utf-8') as f:
    try:
      return json.load(f)
    except ValueError as e:
      raise ValueError(f'{path} is not valid JSON ({e}).') from e


def write_lines(path: str, records) -> None:
  """Rewrites a JSON-lines file atomically, one `jsonable(record)` per line.

  >>> import os, tempfile
  >>> from ecrn_jax import files
  >>> directory = tempfile.mkdtemp()
  >>> files.write_lines(os.path.join(directory, 'a.jsonl'), [{'step': 1}, {'step': 2}])
  >>> files.read_lines(os.path.join(directory, 'a.jsonl'))
  [{'step': 1}, {'step': 2}]
  """
  with atomic_open(path) as f:
    for record in records:
      f.write(json.dumps(jsonable(record), allow_nan=False) + '\n')


def append_line(path: str, record: Any) -> None:
  """Appends one JSON line (a kill may cut the last line: readers skip such lines).

  >>> import os, tempfile
  >>> from ecrn_jax import files
  >>> directory = tempfile.mkdtemp()
  >>> files.append_line(os.path.join(directory, 'a.jsonl'), {'step': 1})
  >>> files.append_line(os.path.join(directory, 'a.jsonl'), {'step': 2})
  >>> files.read_lines(os.path.join(directory, 'a.jsonl'))
  [{'step': 1}, {'step': 2}]
  """
  with open(path, 'a', encoding='utf-8') as f:
    f.write(json.dumps(jsonable(record), allow_nan=False) + '\n')
    f.flush()


def read_lines(path: str) -> list:
  """The records of a JSON-lines file; lines that do not parse (cut by a kill) are skipped.

  >>> import os, tempfile
  >>> from ecrn_jax import files
  >>> directory = tempfile.mkdtemp()
  >>> files.write_lines(os.path.join(directory, 'a.jsonl'), [1, 'two'])
  >>> files.read_lines(os.path.join(directory, 'a.jsonl'))
  [1, 'two']
  """
  if not os.path.exists(path):
    return []
  out = []
  with open(path, encoding='utf-8') as f:
    for line in f:
      try:
        out.append(json.loads(line))
      except ValueError:
        continue
  return out


def save_npz(path: str, arrays: Mapping[str, Any]) -> None:
  """Writes `arrays` ({name: array}) to `path` (.npz) atomically. Object arrays are refused.

  >>> import os, tempfile
  >>> from ecrn_jax import files
  >>> directory = tempfile.mkdtemp()
  >>> import numpy as np
  >>> files.save_npz(os.path.join(directory, 'a.npz'), {'k': np.eye(2)})
  >>> files.load_npz(os.path.join(directory, 'a.npz'))['k'].shape
  (2, 2)
  """
  arrays = {name: np.asarray(value) for name, value in arrays.items()}
  for name, value in arrays.items():
    if value.dtype == object:
      raise ValueError(
          f'{name!r} is an object array; only numeric, bool and string arrays '
          'are written (files are read back without pickle).'
      )
  with atomic_open(path, 'wb') as f:
    np.savez(f, **arrays)


def load_npz(path: str) -> dict[str, np.ndarray]:
  """{name: array} of an .npz written by `save_npz`, read with allow_pickle=False.

  >>> import os, tempfile
  >>> from ecrn_jax import files
  >>> directory = tempfile.mkdtemp()
  >>> import numpy as np
  >>> files.save_npz(os.path.join(directory, 'a.npz'), {'k': np.arange(3)})
  >>> files.load_npz(os.path.join(directory, 'a.npz'))
  {'k': array([0, 1, 2])}
  """
  with np.load(path, allow_pickle=False) as data:
    return {name: data[name] for name in data.files}
