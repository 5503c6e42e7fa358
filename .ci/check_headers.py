# Copyright 2025 The ecrn_jax Authors.
# SPDX-License-Identifier: Apache-2.0

"""Every Python source file starts with the project's two-line license header.

  python .ci/check_headers.py PATH [PATH ...]   (files, or folders searched for *.py)

Exits 1 and lists the files without it (an empty __init__.py is exempt).
"""

import pathlib
import sys

HEADER = ('# Copyright 2025 The ecrn_jax Authors.', '# SPDX-License-Identifier: Apache-2.0')


def missing_header(paths: list[str]) -> list[str]:
  """The .py files under `paths` whose first two lines are not `HEADER`."""
  files = []
  for path in map(pathlib.Path, paths):
    files += sorted(path.rglob('*.py')) if path.is_dir() else [path]
  out = []
  for path in files:
    text = path.read_text(encoding='utf-8')
    if not text.strip() and path.name == '__init__.py':
      continue
    if tuple(text.splitlines()[:2]) != HEADER:
      out.append(str(path))
  return out


def main(argv: list[str]) -> int:
  if len(argv) < 2:
    print(__doc__, file=sys.stderr)
    return 2
  offenders = missing_header(argv[1:])
  for path in offenders:
    print(f'{path}: no license header (its first two lines must be: {" / ".join(HEADER)})')
  return 1 if offenders else 0


if __name__ == '__main__':
  sys.exit(main(sys.argv))
