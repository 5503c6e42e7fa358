# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""The files of a `KernelTracker` run: the tracker computes, `TrackingWriter` writes.

  tracker = KernelTracker(model, (x, y), train_config, TrackingConfig())
  writer = TrackingWriter(tracker, directory)
  train(model, variables, (x, y), train_config, callbacks=[writer])

The writer is a `train` callback: it calls the tracker and, when that made a record, writes
- `tracking.npz`: `tracker.arrays()` (the records stacked along time, and 'probe_indices'),
  rewritten after every record, so a stopped run keeps what was recorded;
- `tracking.jsonl`: one JSON object per record ('kernel' left out, non-finite numbers as
  null), appended;
- `tracking_meta.json`: `tracker.metadata()`, rewritten.
Every rewrite is atomic (`ecrn_jax.files`). A new writer makes the files match the
tracker's records, and so does `rewrite()`. On a resume, `writer.load_state_dict(state)`
restores the tracker (`KernelTracker.load_state_dict`) and rewrites all three files from its
records; `writer.state_dict()` is the tracker's.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from ecrn_jax._src import files

ARRAYS_FILE = 'tracking.npz'
RECORDS_FILE = 'tracking.jsonl'
METADATA_FILE = 'tracking_meta.json'


def json_record(record: Mapping[str, Any]) -> dict:
  """A record as written to tracking.jsonl: without the (N_p, N_p) 'kernel'."""
  return {k: v for k, v in record.items() if k != 'kernel'}


class TrackingWriter:
  """A `train` callback that runs a `KernelTracker` and writes its records to `directory`.

  Attributes:
    tracker: the wrapped `KernelTracker` (its records, seconds, mode, ...).
    directory: where tracking.npz, tracking.jsonl and tracking_meta.json are written.
  """

  def __init__(self, tracker, directory: str):
    self.tracker = tracker
    self.directory = directory
    os.makedirs(directory, exist_ok=True)
    self.rewrite()

  def path(self, name: str) -> str:
    return os.path.join(self.directory, name)

  def __call__(self, epoch: int, step: int, variables: Mapping[str, Any]) -> None:
    count = len(self.tracker.records)
    self.tracker(epoch, step, variables)
    if len(self.tracker.records) > count:
      self._write_arrays()
      files.append_line(self.path(RECORDS_FILE), json_record(self.tracker.records[-1]))

  def state_dict(self) -> dict:
    return self.tracker.state_dict()

  def load_state_dict(self, state: Mapping[str, Any]) -> None:
    """Restores the tracker's state, then rewrites the files from its records."""
    self.tracker.load_state_dict(state)
    self.rewrite()

  def rewrite(self) -> None:
    """Rewrites the three files from the tracker's records (while there are none: an empty
    tracking.jsonl, and no tracking.npz or tracking_meta.json left from before)."""
    if self.tracker.records:
      self._write_arrays()
    else:
      for name in (ARRAYS_FILE, METADATA_FILE):
        if os.path.exists(self.path(name)):
          os.remove(self.path(name))
    files.write_lines(self.path(RECORDS_FILE), map(json_record, self.tracker.records))

  def _write_arrays(self) -> None:
    files.save_npz(self.path(ARRAYS_FILE), self.tracker.arrays())
    files.write_json(self.path(METADATA_FILE), self.tracker.metadata())
