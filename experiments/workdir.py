# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The workdir of a run (layout: README.md, Experiments): its guard, its metrics log and the
trained units' checkpoints. Every file is written atomically (ecrn_jax.files) and nothing is
pickled: a workdir copied from elsewhere is data, never code.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Optional

from absl import logging
import jax
import ml_collections
import numpy as np

from ecrn_jax import files

# Fields that do not change what a run computes, as dotted paths: not compared when a run
# resumes, and not pinned when set on the command line (experiments/run.py).
UNCOMPARED = (
    'checkpoint_every',  # when a unit saves
    'data.data_dir',  # where the data live, not what they are
    'data.train_npz',
    'data.test_npz',
)


def _identity(resolved: dict) -> dict:
  """`resolved` without the UNCOMPARED fields (nor their entries in config.pinned)."""
  config = dict(resolved.get('config') or {})
  for path in UNCOMPARED:
    parent, _, name = path.rpartition('.')
    if not parent:
      config.pop(name, None)
    elif isinstance(config.get(parent), dict):
      config[parent] = {k: v for k, v in config[parent].items() if k != name}
  if isinstance(config.get('pinned'), list):
    config['pinned'] = [p for p in config['pinned'] if p not in UNCOMPARED]
  return {'name': resolved.get('name'), 'config': config}


class WorkdirError(FileExistsError):
  """A --workdir that this run cannot use: another config's, not ours, or not creatable."""


# What a run writes at the top of its workdir; `--overwrite` deletes these and nothing else.
_RUN_ENTRIES = re.compile(
    r'^(config\.json|results\.json|search\.json|metrics\.jsonl|search|seed_\d+|\..+\.tmp)$'
)


def _empty(workdir: str) -> None:
  """Deletes the run's files in `workdir`; anything else there is left (and logged)."""
  left = []
  for entry in sorted(os.listdir(workdir)):
    full = os.path.join(workdir, entry)
    if not _RUN_ENTRIES.match(entry):
      left.append(entry)
    elif os.path.isdir(full) and not os.path.islink(full):
      shutil.rmtree(full)
    else:
      os.remove(full)
  kept = f'; left {left} (not written by this program)' if left else ''
  logging.warning('--overwrite: deleted the run files in %s%s', workdir, kept)


def prepare(
    workdir: str, name: str, config: ml_collections.ConfigDict, *, overwrite: bool = False
) -> None:
  """Creates `workdir` with config.json, or checks that it belongs to this config (resumed):
  another config's is refused unless `overwrite` (then its run files are deleted), and a non-empty
  directory without a config.json of ours is refused whatever `overwrite` says."""
  resolved = {'name': name, 'config': files.jsonable(config.to_dict())}
  path = os.path.join(workdir, 'config.json')
  if os.path.isdir(workdir) and os.listdir(workdir):
    try:
      previous = files.read_json(path)
    except (OSError, ValueError):
      previous = None
    if not (isinstance(previous, dict) and set(previous) == {'name', 'config'}):
      raise WorkdirError(
          f'workdir {workdir} is not empty and holds no config.json written by this program, '
          'so it is not one of its workdirs and nothing in it will be deleted, not even with '
          '--overwrite; choose a new or empty --workdir.'
      )
    if _identity(previous) != _identity(resolved):
      if not overwrite:
        raise WorkdirError(
            f"workdir {workdir} holds config {previous.get('name')!r} with other values; "
            "choose another --workdir, or pass --overwrite to delete that run's files."
        )
      _empty(workdir)
    else:
      logging.info('workdir %s holds this config: resuming', workdir)
      for stale in files.remove_stale_temporaries(workdir):
        logging.info('removed %s, a file left half-written by a killed run', stale)
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise WorkdirError(f'cannot create workdir {workdir}: {e.strerror or e}.') from e
  files.write_json(path, resolved)


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


class MetricsLog:
  """metrics.jsonl: appends lines; `truncate_unit` drops a unit's lines past an epoch."""

  def __init__(self, path: str):
    self.path = path

  def write(self, record: dict) -> None:
    files.append_line(self.path, record)

  def truncate_unit(self, seed: int, model: str, after_epoch: int) -> None:
    """Removes the lines of (seed, model) with epoch > after_epoch (or with no epoch)."""
    if not os.path.exists(self.path):
      return
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

  def latest_epoch(self) -> Optional[int]:
    return self.manager.latest_step()

  def _tracker_path(self, epoch: int) -> str:
    return os.path.join(self.directory, f'tracker_{epoch}.npz')

  @staticmethod
  def _items(state) -> dict:
    items = {'params': state.params, 'opt_state': state.opt_state, 'step': state.step}
    if getattr(state, 'rest', None) and 'batch_stats' in state.rest:
      items['batch_stats'] = state.rest['batch_stats']
    return items

  def save(
      self, epoch: int, state, history: dict, tracker_state: Optional[dict[str, np.ndarray]] = None
  ) -> None:
    """Checkpoints `state` at `epoch` with the history and the tracker's state."""
    ocp = self._ocp
    if tracker_state is not None:
      files.save_npz(self._tracker_path(epoch), tracker_state)
    tree = jax.tree_util.tree_map(np.asarray, self._items(state))
    host = files.jsonable({'epoch': epoch, 'history': history})
    args = ocp.args.Composite(state=ocp.args.StandardSave(tree), host=ocp.args.JsonSave(host))
    self.manager.save(epoch, args=args, force=True)
    self.manager.wait_until_finished()
    kept = {os.path.basename(self._tracker_path(step)) for step in self.manager.all_steps()}
    for entry in os.listdir(self.directory):
      # Only names this class writes (tracker_<epoch>.npz, epoch in decimal): never a user's.
      if re.fullmatch(r'tracker_(0|[1-9][0-9]*)\.npz', entry) and entry not in kept:
        os.remove(os.path.join(self.directory, entry))

  def restore_latest(
      self, state, *, with_tracker: bool = False
  ) -> Optional[tuple[int, dict, dict, Optional[dict]]]:
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
        message = (
            'checkpoint of epoch %d in %s is unreadable (%s): moved aside to %d.unreadable; '
            'falling back to the previous one'
        )
        logging.warning(message, epoch, self.directory, why, epoch)
        self._set_aside(epoch)
    return None

  def _set_aside(self, epoch: int) -> None:
    """Moves an unreadable step (and its tracker file) to <epoch>.unreadable, out of orbax's
    sight, replacing an older copy: kept for inspection, never read again."""
    aside = os.path.join(self.directory, f'{epoch}.unreadable')
    if os.path.exists(aside):
      shutil.rmtree(aside)
    os.makedirs(aside)
    step, tracker = os.path.join(self.directory, str(epoch)), self._tracker_path(epoch)
    for path, name in ((step, 'step'), (tracker, os.path.basename(tracker))):
      if os.path.exists(path):
        os.replace(path, os.path.join(aside, name))
    self.manager.reload()

  def close(self):
    self.manager.close()
