# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The workdir of a run (layout: README.md, Experiments): its guard, its metrics log and the
trained units' checkpoints. Every file is written atomically (ecrn_jax.files) and nothing is
pickled: a workdir copied from elsewhere is data, never code.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import shutil
from typing import Optional

from absl import logging
import jax
import numpy as np

from ecrn_jax import files

# Fields that do not change what a run computes (when a unit saves, where the data live), as
# dotted paths: not compared when a run resumes, nor pinned when set on the command line (run.py).
UNCOMPARED = ('checkpoint_every', 'data.data_dir', 'data.train_npz', 'data.test_npz')


def _identity(resolved: dict) -> dict:
  """`resolved` without the UNCOMPARED fields (nor their entries in config.pinned)."""
  config = dict(resolved.get('config') or {})
  for path in UNCOMPARED:
    parent, _, name = path.rpartition('.')
    if not parent:
      config.pop(name, None)
    elif isinstance(config.get(parent), dict):
      config[parent] = {k: v for k, v in config[parent].items() if k != name}
  config['pinned'] = [p for p in config.get('pinned') or () if p not in UNCOMPARED]
  return {'name': resolved.get('name'), 'config': config}


class WorkdirError(FileExistsError):
  """A --workdir that this run cannot use: another config's, not ours, in use, not creatable."""


# What the previous version (no manifest) wrote, by path: its workdirs are adopted by these.
_WRITTEN = (
    r'((config|results|search)\.json|metrics\.jsonl|(search/seed_\d+/[^/]+/trial_\d+|seed_\d+/'
    r'[^/]+)/(plan\.json|result\.json|predictions\.npz|metrics\.jsonl|tracking/tracking(\.npz|'
    r'\.jsonl|_meta\.json)|checkpoints/(tracker_\d+\.npz|\d+|\d+\.unreadable)))'
)


def _inspect(workdir: str, resolved: dict, overwrite: bool) -> tuple:
  """(manifest or None, config.json's content if ours or None) of `workdir`; see `prepare`."""
  manifest, path, text = files.Manifest.load(workdir), os.path.join(workdir, 'config.json'), None
  try:
    old = json.loads(text := pathlib.Path(path).read_text(encoding='utf-8'))
  except (OSError, ValueError):
    old = None
  old = old if isinstance(old, dict) and set(old) == {'name', 'config'} else None
  if old is not None and _identity(old) == _identity(resolved):
    return manifest, old, False  # resumed (a config.json of the previous version included)
  kind = old and isinstance(old['config'], dict) and old['config'].get('experiment')
  written = text == json.dumps(old, indent=1) and kind in ('benchmark', 'finite_vs_infinite')
  here = set(os.listdir(workdir)) - {files.DirectoryLock.NAME} if os.path.isdir(workdir) else ()
  if manifest is None and not written and here:
    raise WorkdirError(
        f'workdir {workdir} holds files but no config.json of this program: not one of its '
        'workdirs; nothing in it will be deleted, not even by --overwrite; use a new --workdir.'
    )
  replace = old is not None or bool(manifest and manifest.present())  # another run's files
  if replace and not overwrite:
    held = f"config {old.get('name')!r} with other values" if old else "a run's files, no config"
    raise WorkdirError(
        f'workdir {workdir} holds {held}; choose another --workdir, or pass --overwrite to delete '
        "that run's files."
    )
  return manifest, old, replace


def prepare(workdir: str, name: str, config, *, overwrite: bool = False) -> files.DirectoryLock:
  """Locks `workdir` (the lock returned, held until dropped) and writes config.json, or checks it
  holds this config (resumed). Another config's is refused unless `overwrite`: then what its
  manifest lists is deleted, nothing else. One not ours is refused before anything is written."""
  resolved = {'name': name, 'config': files.jsonable(config.to_dict())}
  _inspect(workdir, resolved, overwrite)
  try:
    lock = files.DirectoryLock(workdir)
  except files.DirectoryLocked as e:
    raise WorkdirError(f'workdir {e}') from None
  except OSError as e:
    raise WorkdirError(f'cannot create workdir {workdir}: {e.strerror or e}.') from e
  manifest, previous, replace = _inspect(workdir, resolved, overwrite)  # again, under the lock
  if manifest is None and previous is not None:  # the previous version's: adopted by name
    manifest = files.Manifest.from_names(workdir, _WRITTEN)
  if replace:
    kept = manifest.remove_listed()
    logging.warning('--overwrite: deleted the run in %s, kept %s', workdir, kept)
  elif previous is not None:
    logging.info('workdir %s holds this config: resuming', workdir)
  for stale in (manifest or files.Manifest(workdir)).activate():
    logging.info('removed %s, a file left half-written by a killed run', stale)
  files.write_json(os.path.join(workdir, 'config.json'), resolved)
  return lock


def read_result(path: str) -> Optional[dict]:
  """A finished unit's or trial's result.json, or None when it is missing or unreadable (then
  deleted and logged: its unit runs again)."""
  if not os.path.exists(path):
    return None
  try:
    result = files.read_json(path)
    if isinstance(result, dict):
      return result
    problem = f'holds a {type(result).__name__}, not a result'
  except ValueError as e:
    problem = str(e)
  logging.warning('discarding %s (%s): that unit runs again', path, problem)
  os.remove(path)
  return None


@dataclasses.dataclass
class MetricsLog:
  """metrics.jsonl: appends lines; `truncate_unit` drops a unit's lines past an epoch."""

  path: str

  def write(self, record: dict) -> None:
    files.append_line(self.path, record)

  def truncate_unit(self, seed: int, model: str, after_epoch: int) -> None:
    """Removes the lines of (seed, model) with epoch > after_epoch (or with no epoch)."""
    ours = lambda rec: rec.get('seed') == seed and rec.get('model') == model
    past = lambda rec: rec.get('epoch') is None or rec['epoch'] > after_epoch
    kept = [r for r in files.read_lines(self.path) if not (ours(r) and past(r))]
    files.write_lines(self.path, kept)


class Checkpointer:
  """Orbax CheckpointManager of a unit (step = epoch, the last two kept, saved synchronously):
  'state' (params, opt_state, step, batch_stats as numpy) and 'host' (JSON: epoch, history); the
  kernel tracker's state goes beside them as tracker_<epoch>.npz before the step is committed."""

  def __init__(self, directory: str):
    import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top

    self._ocp = ocp
    self.directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=2, create=True, cleanup_tmp_directories=True, enable_async_checkpointing=False
    )
    self.manager = ocp.CheckpointManager(self.directory, options=options)

  def _tracker_path(self, epoch: int) -> str:
    return os.path.join(self.directory, f'tracker_{epoch}.npz')

  @staticmethod
  def _items(state) -> dict:
    items = {'params': state.params, 'opt_state': state.opt_state, 'step': state.step}
    if getattr(state, 'rest', None) and 'batch_stats' in state.rest:
      items['batch_stats'] = state.rest['batch_stats']
    return items

  def save(self, epoch: int, state, history: dict, tracker_state: Optional[dict] = None) -> None:
    """Checkpoints `state` at `epoch` with the history and the tracker's state."""
    ocp = self._ocp
    if tracker_state is not None:
      files.save_npz(self._tracker_path(epoch), tracker_state)
    tree = jax.tree_util.tree_map(np.asarray, self._items(state))
    host = files.jsonable({'epoch': epoch, 'history': history})
    args = ocp.args.Composite(state=ocp.args.StandardSave(tree), host=ocp.args.JsonSave(host))
    files.claim(os.path.join(self.directory, str(epoch)), 'tree')  # orbax's, deleted whole
    self.manager.save(epoch, args=args, force=True)
    self.manager.wait_until_finished()
    kept = {os.path.basename(self._tracker_path(step)) for step in self.manager.all_steps()}
    for entry in os.listdir(self.directory):
      # Only names this class writes (tracker_<epoch>.npz, epoch in decimal): never a user's.
      if re.fullmatch(r'tracker_(0|[1-9][0-9]*)\.npz', entry) and entry not in kept:
        os.remove(os.path.join(self.directory, entry))
    files.forget_missing(self.directory)  # the steps and tracker files deleted

  def restore_latest(self, state, *, with_tracker: bool = False) -> Optional[tuple]:
    """(epoch, state items, host {'epoch', 'history'}, tracker state or None) of the newest
    readable checkpoint, or None. An unreadable step (cut, damaged, or with a tracker file that is
    not plain arrays) is logged and set aside, and the one before it is tried."""
    ocp = self._ocp
    target = jax.tree_util.tree_map(
        lambda a: ocp.utils.to_shape_dtype_struct(np.zeros(np.shape(a), np.asarray(a).dtype)),
        self._items(state),
    )
    args = ocp.args.Composite(state=ocp.args.StandardRestore(target), host=ocp.args.JsonRestore())
    for epoch in sorted(self.manager.all_steps(), reverse=True):
      path = self._tracker_path(epoch)
      try:
        out = self.manager.restore(epoch, args=args)
        tracker_state = files.load_npz(path) if os.path.exists(path) else None
        if with_tracker and tracker_state is None:
          raise FileNotFoundError(f'no {os.path.basename(path)}')
        return epoch, out['state'], out['host'], tracker_state
      except Exception as e:  # pylint: disable=broad-except   (orbax/tensorstore/numpy errors)
        why = f'{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ""}'
        message = 'checkpoint of epoch %d in %s is unreadable (%s): moved aside to %d.unreadable; '
        message += 'falling back to the previous one'
        logging.warning(message, epoch, self.directory, why, epoch)
        self._set_aside(epoch)
    return None

  def _set_aside(self, epoch: int) -> None:
    """Moves an unreadable step (and its tracker file) to <epoch>.unreadable, out of orbax's
    sight, replacing an older copy: kept for inspection, never read again."""
    aside = os.path.join(self.directory, f'{epoch}.unreadable')
    files.claim(aside, 'tree')
    shutil.rmtree(aside, ignore_errors=True)
    os.makedirs(aside)
    step, tracker = os.path.join(self.directory, str(epoch)), self._tracker_path(epoch)
    for path, name in ((step, 'step'), (tracker, os.path.basename(tracker))):
      if os.path.exists(path):
        os.replace(path, os.path.join(aside, name))
    self.manager.reload()

  def close(self):
    self.manager.close()
