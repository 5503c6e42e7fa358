# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""ecrn_jax.files' ownership by record: a manifest deletes what it lists and nothing else (not
outside its root, not through a link, not a directory holding other files), and a directory's
lock admits one holder and dies with it."""

import json
import os

import numpy as np
import pytest

import utils

from ecrn_jax import files


def _activated(root) -> files.Manifest:
  manifest = files.Manifest(str(root))
  manifest.activate()
  return manifest


def test_the_writers_claim_what_they_create_and_overwrite_deletes_only_that(tmp_path):
  _activated(tmp_path)
  files.write_json(str(tmp_path / 'a' / 'b.json'), {'x': 1})
  files.append_line(str(tmp_path / 'a' / 'c.jsonl'), {'x': 1})
  files.save_npz(str(tmp_path / 'd' / 'e.npz'), {'x': np.arange(2)})
  files.claim(str(tmp_path / 'd' / 'tree'), 'tree')
  (tmp_path / 'd' / 'tree' / 'deep').mkdir(parents=True)
  (tmp_path / 'd' / 'tree' / 'deep' / 'f').write_text('written by another library')
  mine = [tmp_path / 'a' / 'mine.txt', tmp_path / 'd' / '.e.npz.abcdefgh.tmp', tmp_path / 'x.tmp']
  for path in mine:
    path.write_text('the user')
  manifest = files.Manifest.load(str(tmp_path))
  assert manifest.entries == {
      'a': 'dir',
      'a/b.json': 'file',
      'a/c.jsonl': 'file',
      'd': 'dir',
      'd/e.npz': 'file',
      'd/tree': 'tree',
  }
  assert manifest.remove_listed() == ['a', 'd']
  left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob('*'))
  assert left == sorted(['a', 'a/mine.txt', 'd', 'd/.e.npz.abcdefgh.tmp', 'x.tmp', manifest.NAME])


def test_a_manifest_never_reaches_outside_its_root_nor_through_a_link(tmp_path):
  root, outside = tmp_path / 'root', tmp_path / 'outside'
  root.mkdir()
  outside.mkdir()
  (outside / 'precious.txt').write_text('the user')
  (root / 'link').symlink_to(outside, target_is_directory=True)
  lines = [{'format': 'ecrn_jax ownership manifest', 'version': 1}]
  for path in ('../outside/precious.txt', str(outside / 'precious.txt'), 'link/precious.txt'):
    lines.append({'file': path})
  lines += [{'tree': 'link'}, {'dir': 'link'}, {'file': 'a/../../outside/precious.txt'}]
  (root / files.Manifest.NAME).write_text(''.join(json.dumps(l) + '\n' for l in lines))
  manifest = files.Manifest.load(str(root))
  assert set(manifest.entries) == {'link/precious.txt', 'link'}  # the others are refused
  manifest.remove_listed()
  assert (outside / 'precious.txt').read_text() == 'the user' and (root / 'link').is_symlink()


def test_what_is_not_a_manifest_of_ours_is_none_and_a_cut_line_is_skipped(tmp_path):
  (tmp_path / files.Manifest.NAME).write_text('{"format": "another program"}\n{"file": "a"}\n')
  assert files.Manifest.load(str(tmp_path)) is None
  assert files.remove_stale_temporaries(str(tmp_path)) == []
  header = json.dumps({'format': 'ecrn_jax ownership manifest', 'version': 1})
  (tmp_path / files.Manifest.NAME).write_text(header + '\n{"file": "a"}\n{"file": "b')
  assert files.Manifest.load(str(tmp_path)).entries == {'a': 'file'}


def test_only_the_temporaries_of_a_recorded_token_are_stale(tmp_path):
  """A writer killed mid-write leaves `.NAME.<its token>.<8 chars>.tmp`; the manifest recorded
  the token, so the next process deletes it; look-alikes of other tokens are kept."""
  utils.kill_mid_write(tmp_path, os.path.join('sub', 'a.json'), adopt=False)
  (left,) = (tmp_path / 'sub').iterdir()
  kept = [tmp_path / 'sub' / '.a.json.abcdefgh.tmp', tmp_path / 'sub' / '.a.json.0123abcd.xyz.tmp']
  for path in kept:
    path.write_text('the user')
  manifest = files.Manifest.load(str(tmp_path))
  assert manifest.tokens and manifest.tokens[0] in left.name
  assert files.remove_stale_temporaries(str(tmp_path)) == [str(left)]
  assert all(p.exists() for p in kept)


def test_a_legacy_directory_is_adopted_by_names(tmp_path):
  for name in ('a.json', '.a.json.abcdefgh.tmp', 'b.json', 'steps/3/x', 'steps/notes'):
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text('')
  manifest = files.Manifest.from_names(str(tmp_path), r'a\.json|steps/\d+')
  assert manifest.entries == {
      'a.json': 'file',
      '.a.json.abcdefgh.tmp': 'temp',
      'steps': 'dir',
      'steps/3': 'tree',
  }
  assert manifest.activate() == [str(tmp_path / '.a.json.abcdefgh.tmp')]
  assert manifest.remove_listed() == ['steps']
  assert sorted(p.name for p in tmp_path.rglob('*')) == sorted(
      ['b.json', 'steps', 'notes', files.Manifest.NAME]
  )


def test_a_directory_lock_has_one_holder_and_dies_with_it(tmp_path):
  lock = files.DirectoryLock(str(tmp_path))
  with pytest.raises(files.DirectoryLocked, match=f'in use by process {os.getpid()} '):
    files.DirectoryLock(str(tmp_path))
  lock.release()
  with files.DirectoryLock(str(tmp_path)):
    pass
  with utils.lock_held_elsewhere(tmp_path) as pid:
    with pytest.raises(files.DirectoryLocked, match=rf'process {pid} \(started 20'):
      files.DirectoryLock(str(tmp_path))
  files.DirectoryLock(str(tmp_path)).release()  # the dead holder's lock is gone
