# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Files written by ecrn_jax: atomic, readable under the user's umask, no pickle anywhere.

Every file is written to a temporary name in its directory and renamed over the target, so a
reader (or a resumed run) sees the old file or the new one, never half of one. Temporary
files are created 0600 by `tempfile.mkstemp`; they are given the mode the user's umask
implies (0644 usually) before the rename, as `open()` would have. Arrays go to `.npz` and are
read back with `allow_pickle=False`; everything else is JSON, with non-finite numbers as null.

A program that owns a directory records what it creates there in a `Manifest` (the writers here
claim their files in it before creating them, and their temporaries' names carry a token it
records), so that it deletes only what it wrote; a `DirectoryLock` keeps a second process out.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import math
import os
import re
import secrets
import shutil
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
  claim(path)
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(
      dir=directory, prefix=f'.{os.path.basename(path)}.{_TOKEN}.', suffix='.tmp'
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
  claim(path)
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


# ---------------------------------------------------------------------------------------------
# Ownership by record: what a program created in a directory (its manifest), and its lock.

_FORMAT = {'format': 'ecrn_jax ownership manifest', 'version': 1}
_KINDS = ('file', 'dir', 'tree', 'temp')
# This process's token: in the names of its atomic writes' temporaries, and in the manifests it
# writes to, so that a temporary left by a kill is proven to be ours by record, not by its name.
_TOKEN = secrets.token_hex(4)
_ACTIVE: dict[str, Manifest] = {}  # root → the manifest recording what is created under it


def _relative(path: Any) -> bool:
  """Whether `path` is a normalized relative path below its root ('a/b', not '../a', '/a', '.')."""
  return (
      isinstance(path, str)
      and path not in ('', '.')
      and not os.path.isabs(path)
      and os.path.normpath(path) == path
      and '..' not in path.split('/')
  )


def _parse(line: str) -> Any:
  try:
    return json.loads(line)
  except ValueError:
    return None  # a line cut by a kill: it names a path that was not created


class Manifest:
  """The record of what a program created under `root`: files, directories, trees (directories
  another library writes whole: orbax's checkpoint steps), temporaries to delete, and the tokens in
  the names of its atomic writes' temporaries.

  It is root/ecrn_jax.manifest.jsonl: a format line no other program writes, then one JSON line
  per path, appended before the path is created (a line cut by a kill names a path that was not),
  the whole rewritten atomically by `activate`. `remove_listed` and `remove_stale_temporaries`
  delete what it lists and nothing else: a directory only once empty, nothing under a symbolic
  link, never a file that it does not list.

  >>> import os, tempfile
  >>> from ecrn_jax import files
  >>> root = tempfile.mkdtemp()
  >>> _ = files.Manifest(root).activate()
  >>> files.write_json(os.path.join(root, 'run', 'a.json'), {})
  >>> open(os.path.join(root, 'run', 'notes.txt'), 'w').close()  # not the program's
  >>> sorted(files.Manifest.load(root).entries.items())
  [('run', 'dir'), ('run/a.json', 'file')]
  >>> files.Manifest.load(root).remove_listed()  # the directories kept: not empty
  ['run']
  >>> os.listdir(os.path.join(root, 'run'))
  ['notes.txt']
  """

  NAME = 'ecrn_jax.manifest.jsonl'

  def __init__(self, root: str, entries: Optional[Mapping[str, str]] = None, tokens=()):
    self.root = os.path.abspath(root)
    self.path = os.path.join(self.root, self.NAME)
    self.entries: dict[str, str] = dict(entries or {})  # relative path ('/'-separated) → kind
    self.tokens: list[str] = list(tokens)

  @classmethod
  def load(cls, root: str) -> Optional[Manifest]:
    """The manifest of `root`, or None where there is none with the format line."""
    manifest = cls(root)
    try:
      with open(manifest.path, encoding='utf-8') as f:
        lines = [_parse(line) for line in f]
    except (OSError, ValueError):
      return None
    if not lines or lines[0] != _FORMAT:
      return None
    for line in lines[1:]:
      if not (isinstance(line, dict) and len(line) == 1):
        continue
      ((kind, path),) = line.items()
      if kind == 'token' and isinstance(path, str) and re.fullmatch('[0-9a-f]{8}', path):
        manifest.tokens.append(path)
      elif kind == 'forget':
        manifest.entries.pop(path, None)
      elif kind in _KINDS and _relative(path):
        manifest.entries[path] = kind
    return manifest

  @classmethod
  def from_names(cls, root: str, pattern: str) -> Manifest:
    """A manifest of the paths under `root` ('/'-separated) that fully match `pattern`: files,
    directories as trees, the temporaries such files' atomic writes left (`.NAME.<8 chars>.tmp`),
    and the directories above them. For a directory written before manifests were."""
    manifest = cls(root)
    for directory, dirs, names in os.walk(manifest.root):
      rel = os.path.relpath(directory, manifest.root)
      rel = '' if rel == '.' else rel + '/'
      for name in [d for d in dirs if re.fullmatch(pattern, rel + d)]:
        dirs.remove(name)
        if not os.path.islink(os.path.join(directory, name)):
          manifest.add(rel + name, 'tree')
      for name in names:
        temporary = re.fullmatch(r'\.(.+)\.[A-Za-z0-9_]{8}\.tmp', name)
        if re.fullmatch(pattern, rel + (temporary.group(1) if temporary else name)):
          manifest.add(rel + name, 'temp' if temporary else 'file')
    return manifest

  def add(self, rel: str, kind: str = 'file') -> list[tuple[str, str]]:
    """Lists `rel` and the directories above it (in memory); returns the new (kind, path)s."""
    parts, new = rel.split('/'), list[tuple[str, str]]()
    for i in range(1, len(parts) + 1):
      path = '/'.join(parts[:i])
      if self.entries.get(path) == 'tree':
        return new  # inside a tree: listed with it
      if path not in self.entries:
        self.entries[path] = kind if i == len(parts) else 'dir'
        new.append((self.entries[path], path))
    return new

  def _append(self, lines: list[dict]) -> None:
    if lines:  # one write: a kill keeps a prefix of them, the directories first
      with open(self.path, 'a', encoding='utf-8') as f:
        f.write(''.join(json.dumps(line) + '\n' for line in lines))

  def claim(self, path: str, kind: str = 'file') -> None:
    """Lists `path` (a file, 'dir' or 'tree' under root) and the directories above it, and
    appends them to the manifest file: called before `path` is created."""
    rel = os.path.relpath(os.path.abspath(path), self.root)
    if _relative(rel) and rel not in (self.NAME, DirectoryLock.NAME):
      self._append([{k: p} for k, p in self.add(rel, kind)])

  def forget_missing(self, directory: str) -> None:
    """Drops the entries under `directory` whose paths are gone (deleted by their writer)."""
    rel = os.path.relpath(os.path.abspath(directory), self.root)
    prefix = '' if rel == '.' else rel + '/'
    gone = [p for p in self.entries if p.startswith(prefix) and not self._exists(p)]
    for path in gone:
      del self.entries[path]
    self._append([{'forget': p} for p in gone])

  def _path(self, rel: str) -> Optional[str]:
    """The path of entry `rel`, or None when a directory above it is a symbolic link."""
    parts = rel.split('/')
    for i in range(1, len(parts)):
      if os.path.islink(os.path.join(self.root, *parts[:i])):
        return None
    return os.path.join(self.root, *parts)

  def _exists(self, rel: str) -> bool:
    path = self._path(rel)
    return path is not None and os.path.lexists(path)

  def present(self) -> list[str]:
    """The entries that exist, directories aside."""
    return [p for p, kind in self.entries.items() if kind != 'dir' and self._exists(p)]

  def remove_stale_temporaries(self) -> list[str]:
    """Deletes the temporaries left by killed writers: those listed, and those in root and the
    listed directories whose names carry a recorded token (not this process's: its writes may be
    in progress). Returns their paths."""
    tokens = '|'.join(t for t in self.tokens if t != _TOKEN) or '(?!)'
    ours = re.compile(rf'\..+\.({tokens})\.[A-Za-z0-9_]{{8}}\.tmp')
    own = re.compile(rf'\.{re.escape(self.NAME)}\.[0-9a-f]{{8}}\.[A-Za-z0-9_]{{8}}\.tmp')
    found = [p for p, kind in self.entries.items() if kind == 'temp']
    for rel in [''] + [p for p, kind in self.entries.items() if kind == 'dir']:
      directory = self._path(rel) if rel else self.root
      if directory and os.path.isdir(directory) and not os.path.islink(directory):
        for name in os.listdir(directory):
          if ours.fullmatch(name) or (not rel and own.fullmatch(name)):
            found.append(f'{rel}/{name}' if rel else name)
    removed = []
    for rel in found:
      path = self._path(rel)
      if path and os.path.isfile(path) and not os.path.islink(path):
        os.remove(path)
        removed.append(path)
      self.entries.pop(rel, None)
    return sorted(removed)

  def remove_listed(self) -> list[str]:
    """Deletes what the manifest lists, deepest first: its stale temporaries, files, trees, then
    its directories that are left empty. Returns the directories kept (holding other files)."""
    self.remove_stale_temporaries()
    kept = []
    for rel in sorted(self.entries, key=lambda p: (-p.count('/'), p)):
      path, kind = self._path(rel), self.entries[rel]
      if path is None or os.path.islink(path) or not os.path.exists(path):
        continue
      if kind in ('file', 'temp') and os.path.isfile(path):
        os.remove(path)
      elif kind == 'tree' and os.path.isdir(path):
        shutil.rmtree(path)
      elif kind == 'dir' and os.path.isdir(path):
        if os.listdir(path):
          kept.append(rel)
        else:
          os.rmdir(path)
    return sorted(kept)

  def activate(self) -> list[str]:
    """Makes this the manifest of root in this process: deletes the stale temporaries, rewrites
    the file atomically (the entries that exist, this process's token), and from then on lists
    every path that `atomic_open` and `append_line` create under root, before creating it.
    Returns the temporaries deleted."""
    removed = self.remove_stale_temporaries()
    self.entries = {p: k for p, k in self.entries.items() if self._exists(p)}
    self.tokens = [_TOKEN]
    lines = [_FORMAT, {'token': _TOKEN}] + [{k: p} for p, k in sorted(self.entries.items())]
    with atomic_open(self.path) as f:
      f.write(''.join(json.dumps(line) + '\n' for line in lines))
    _ACTIVE[self.root] = self
    return removed


def _active(path: str) -> Optional[Manifest]:
  path = os.path.abspath(path)
  return next((m for r, m in _ACTIVE.items() if path == r or path.startswith(r + os.sep)), None)


def claim(path: str, kind: str = 'file') -> None:
  """Lists `path` in the active manifest whose root holds it (`Manifest.activate`), before the
  caller creates it; nothing without one. `kind`: 'file', 'dir', or 'tree' (a directory that
  another library writes whole). `atomic_open` and `append_line` claim their files themselves.

  >>> import os, tempfile
  >>> from ecrn_jax import files
  >>> root = tempfile.mkdtemp()
  >>> _ = files.Manifest(root).activate()
  >>> files.claim(os.path.join(root, 'checkpoints', '3'), 'tree')
  >>> sorted(files.Manifest.load(root).entries.items())
  [('checkpoints', 'dir'), ('checkpoints/3', 'tree')]
  """
  manifest = _active(path)
  if manifest is not None:
    manifest.claim(path, kind)


def forget_missing(directory: str) -> None:
  """Drops from the active manifest the entries under `directory` that no longer exist.

  >>> import os, tempfile
  >>> from ecrn_jax import files
  >>> root = tempfile.mkdtemp()
  >>> _ = files.Manifest(root).activate()
  >>> files.write_json(os.path.join(root, 'a.json'), {})
  >>> os.remove(os.path.join(root, 'a.json'))
  >>> files.forget_missing(root)
  >>> files.Manifest.load(root).entries
  {}
  """
  manifest = _active(directory)
  if manifest is not None:
    manifest.forget_missing(directory)


def remove_stale_temporaries(directory: str) -> list[str]:
  """Deletes the temporary files that `atomic_open` left in `directory` when its process was
  killed mid-write, as the directory's manifest proves (`Manifest.remove_stale_temporaries`):
  without a manifest, nothing. Returns their paths.

  >>> import tempfile
  >>> from ecrn_jax import files
  >>> files.remove_stale_temporaries(tempfile.mkdtemp())
  []
  """
  manifest = Manifest.load(directory)
  return manifest.remove_stale_temporaries() if manifest is not None else []


class DirectoryLocked(RuntimeError):
  """Another process (or another `DirectoryLock` of this one) holds a directory's lock."""


class DirectoryLock:
  """An exclusive lock of `directory` (created if missing): `fcntl.flock` on its ecrn_jax.lock,
  which also records the holder's pid and start time. Held until `release()` (or until the object
  is dropped); the OS drops it when the process ends, a kill included, so it is never stale. A
  second holder, in this process or another, gets DirectoryLocked at once, naming the first.

  >>> import tempfile
  >>> from ecrn_jax import files
  >>> directory = tempfile.mkdtemp()
  >>> lock = files.DirectoryLock(directory)
  >>> files.DirectoryLock(directory)
  Traceback (most recent call last):
  ...
  ecrn_jax._src.files.DirectoryLocked: ... is in use by process ... (started ...)...
  >>> lock.release()
  >>> files.DirectoryLock(directory).release()
  """

  NAME = 'ecrn_jax.lock'

  def __init__(self, directory: str):
    self.path = os.path.join(directory, self.NAME)
    self._fd: Optional[int] = None
    os.makedirs(directory, exist_ok=True)
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(fd, 200, 0).decode('utf-8', 'replace').strip() or 'another process'
      os.close(fd)
      raise DirectoryLocked(
          f'{directory} is in use by {holder}; wait for it to end (or stop it), or use '
          'another directory.'
      ) from None
    started = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')
    os.ftruncate(fd, 0)
    os.pwrite(fd, f'process {os.getpid()} (started {started})\n'.encode(), 0)
    self._fd = fd

  def release(self) -> None:
    if self._fd is not None:
      os.close(self._fd)
      self._fd = None

  def __enter__(self) -> DirectoryLock:
    return self

  def __exit__(self, *exc) -> None:
    self.release()

  def __del__(self):
    self.release()
