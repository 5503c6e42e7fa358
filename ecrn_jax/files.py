# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Atomic, umask-respecting files without pickle: the JSON, JSON-lines and npz helpers that
ecrn_jax and its experiments write and read with; the manifest of what a program created in a
directory (deletions by record, never by name) and the directory's lock."""

from ecrn_jax._src.files import append_line
from ecrn_jax._src.files import atomic_open
from ecrn_jax._src.files import claim
from ecrn_jax._src.files import DirectoryLock
from ecrn_jax._src.files import DirectoryLocked
from ecrn_jax._src.files import forget_missing
from ecrn_jax._src.files import jsonable
from ecrn_jax._src.files import load_npz
from ecrn_jax._src.files import Manifest
from ecrn_jax._src.files import read_json
from ecrn_jax._src.files import read_lines
from ecrn_jax._src.files import remove_stale_temporaries
from ecrn_jax._src.files import save_npz
from ecrn_jax._src.files import write_json
from ecrn_jax._src.files import write_lines

__all__ = [
    'DirectoryLock',
    'DirectoryLocked',
    'Manifest',
    'append_line',
    'atomic_open',
    'claim',
    'forget_missing',
    'jsonable',
    'load_npz',
    'read_json',
    'read_lines',
    'remove_stale_temporaries',
    'save_npz',
    'write_json',
    'write_lines',
]
